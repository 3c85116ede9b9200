"""Token amounts: Decimal text <-> base units, exact at every size, refused rather than rounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.operator.amounts import AmountError, TokenUnits, format_amount, parse_amount

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        ("150", 18, 150 * 10**18),
        ("0.1", 18, 10**17),
        ("150.5", 18, 1505 * 10**17),
        ("0.000000000000000001", 18, 1),  # exactly the token's precision
        ("1.50", 1, 15),  # trailing zeros beyond the precision are fine
        ("7", 0, 7),
        ("1_000", 6, 1000 * 10**6),
        (" 2.5 ", 6, 2_500_000),
        (
            "123456789012345678901234567890.123456789012345678",
            18,
            123456789012345678901234567890123456789012345678,
        ),
    ],
)
def test_parse_exact(text: str, decimals: int, expected: int) -> None:
    assert parse_amount(text, decimals) == expected


@pytest.mark.parametrize(
    ("text", "decimals", "needle"),
    [
        ("0.0000000000000000001", 18, "more than 18 decimal places"),  # one digit past the precision
        ("1.5", 0, "more than 0 decimal places"),
        ("-1", 18, "not a plain non-negative decimal"),
        ("1e3", 18, "not a plain"),
        ("nan", 18, "not a plain"),
        ("inf", 18, "not a plain"),
        ("", 18, "not a plain"),
        (".", 18, "not a plain"),
        ("1.2.3", 18, "not a plain"),
        ("0x10", 18, "not a plain"),
        (str(2**256), 0, "too large"),
    ],
)
def test_parse_refuses(text: str, decimals: int, needle: str) -> None:
    with pytest.raises(AmountError, match=needle) as info:
        parse_amount(text, decimals, "--stake")
    assert str(info.value).startswith("--stake ") and "\n" not in str(info.value)


def test_largest_uint256_parses() -> None:
    assert parse_amount(str(2**256 - 1), 0) == 2**256 - 1


@pytest.mark.parametrize(
    ("value", "decimals", "shown"),
    [
        (0, 18, "0"),
        (1, 18, "0.000000000000000001"),
        (1505 * 10**17, 18, "150.5"),
        (10**18, 18, "1"),
        (5, 0, "5"),
    ],
)
def test_format(value: int, decimals: int, shown: str) -> None:
    assert format_amount(value, decimals) == shown


@given(value=st.integers(0, 2**256 - 1), decimals=st.integers(0, 30))
def test_round_trip(value: int, decimals: int) -> None:
    assert parse_amount(format_amount(value, decimals), decimals) == value


def test_units_format_with_symbol() -> None:
    units = TokenUnits(18, "SYNDEV")
    assert units.format(25 * 10**17) == "2.5 SYNDEV"
    assert units.format(25 * 10**17, symbol=False) == "2.5"
    with pytest.raises(AmountError):
        TokenUnits(78, "X")
