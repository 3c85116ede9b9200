"""Canonical JSON bytes and their keccak256 digest (protocol.canonical)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import canonical_bytes, digest, digest_hex, keccak256
from protocol.errors import CanonicalError, SynodError

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def test_keys_sorted_at_every_level() -> None:
    value = {"b": 1, "a": {"z": [3, {"y": 1, "x": 2}], "c": None}}
    assert canonical_bytes(value) == b'{"a":{"c":null,"z":[3,{"x":2,"y":1}]},"b":1}'


def test_keys_sort_by_code_point_not_locale() -> None:
    assert canonical_bytes({"a": 1, "B": 2, "é": 3, "Z": 4}) == '{"B":2,"Z":4,"a":1,"é":3}'.encode()


def test_no_insignificant_whitespace_but_strings_kept() -> None:
    out = canonical_bytes({"k": [1, 2], "s": "a b\tc"})
    assert out == b'{"k":[1,2],"s":"a b\\tc"}'
    assert b" " not in out.replace(b"a b", b"")


def test_unicode_is_raw_utf8_not_escaped() -> None:
    out = canonical_bytes({"text": "Grüße 東京 🚀"})
    assert out == '{"text":"Grüße 東京 🚀"}'.encode()
    assert b"\\u" not in out


def test_scalars() -> None:
    assert (
        canonical_bytes([True, False, None, 0, -1, 1.5, 10**30])
        == b"[true,false,null,0,-1,1.5,1000000000000000000000000000000]"
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"x": [1, math.nan]}])
def test_non_finite_numbers_rejected(bad: Any) -> None:
    with pytest.raises(CanonicalError, match="non-finite"):
        canonical_bytes(bad)


@pytest.mark.parametrize("bad", [{1: "int key"}, {"x": b"bytes"}, {"s": {1, 2}}, object()])
def test_values_without_json_form_rejected(bad: Any) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_bytes(bad)
    assert isinstance(info.value, SynodError)


def test_error_names_the_failing_path() -> None:
    with pytest.raises(CanonicalError, match=r"rows\[1\]\.score"):
        canonical_bytes({"rows": [{"score": 1}, {"score": math.nan}]})


def test_digest_is_keccak_of_canonical_bytes() -> None:
    value = {"workflow": {"steps": []}, "input": "x"}
    assert digest(value) == keccak256(canonical_bytes(value))
    assert digest_hex(value) == "0x" + digest(value).hex()
    assert len(digest(value)) == 32


def test_keccak_known_vector() -> None:
    # keccak256("") from the Ethereum yellow paper, not SHA3-256.
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_insertion_order_does_not_change_digest() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest([1, 2]) != digest([2, 1])


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_round_trip_and_idempotent(value: Any) -> None:
    encoded = canonical_bytes(value)
    decoded = json.loads(encoded.decode("utf-8"))
    assert canonical_bytes(decoded) == encoded
    assert encoded == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
