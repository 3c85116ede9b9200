"""Token amounts: text in token units (``"150.5"``) <-> integer base units, by ``decimals()``.

Parsed with :class:`decimal.Decimal`, never floats: ``"0.1"`` with 18 decimals is exactly
``10**17``. An amount with more fractional digits than the token has is refused, not rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from protocol.errors import ConfigError

MAX_DECIMALS = 77
"""More decimals than any uint256 amount could use (10**78 > 2**256)."""


class AmountError(ConfigError):
    """Text that is not a usable token amount (not a number, negative, too precise)."""


@dataclass(frozen=True, slots=True)
class TokenUnits:
    """The unit of one ERC-20: ``decimals`` (from ``decimals()``) and its ``symbol``."""

    decimals: int
    symbol: str

    def __post_init__(self) -> None:
        if not 0 <= self.decimals <= MAX_DECIMALS:
            raise AmountError(f"token decimals {self.decimals} is outside 0..{MAX_DECIMALS}")

    def parse(self, text: str, what: str = "amount") -> int:
        """``text`` in token units -> base units. Raises :class:`AmountError` (one line naming
        ``what``) for non-numbers, NaN/infinity, negatives, exponents and too many decimals."""
        return parse_amount(text, self.decimals, what)

    def format(self, base_units: int, symbol: bool = True) -> str:
        """Base units -> ``"150.5 SYM"`` (no trailing zeros, no exponent)."""
        shown = format_amount(base_units, self.decimals)
        return f"{shown} {self.symbol}" if symbol and self.symbol else shown


def parse_amount(text: str, decimals: int, what: str = "amount") -> int:
    """Parse a plain decimal number (digits, one optional point) into base units of ``decimals``."""
    raw = text.strip().replace("_", "")
    if not raw or not all(c.isdigit() or c == "." for c in raw) or raw.count(".") > 1 or raw == ".":
        raise AmountError(f"{what} {text!r} is not a plain non-negative decimal number (e.g. 150 or 0.5)")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise AmountError(f"{what} {text!r} is not a decimal number") from None
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DECIMALS + len(raw)  # exact: no rounding at any size we accept
        scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{what} {text!r} has more than {decimals} decimal places (the token's precision)")
    base = int(scaled)
    if base >= 2**256:
        raise AmountError(f"{what} {text!r} is too large for a uint256")
    return base


def format_amount(base_units: int, decimals: int) -> str:
    """``base_units`` as a token-unit decimal string: ``150500000000000000000, 18 -> "150.5"``."""
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(base_units), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole}"
    digits = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{digits}"
