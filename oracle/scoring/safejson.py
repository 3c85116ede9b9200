"""JSON from untrusted bytes: nesting, number sizes and non-standard constants refused up front.

``json.loads`` recurses once per nesting level (a hostile ``[[[[...`` raises RecursionError, or
overflows the C stack if the recursion limit was raised), turns ``1e999`` into ``inf``, accepts
``NaN``, and spends quadratic time on a 100,000-digit integer. :func:`loads` refuses all of these
with :class:`UnsafeJsonError` (a ``ValueError``) before or while parsing. The bracket-depth scan
is the same idea as ``workflow/validate.py``'s.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted."""
MAX_INT_DIGITS = 64
"""Longest integer literal accepted (a 64-digit integer is far beyond any real field)."""
MAX_FLOAT_CHARS = 64

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


class UnsafeJsonError(ValueError):
    """Text that is not JSON, or JSON this module refuses; the message says which and why."""


def depth(text: str) -> int:
    """The deepest bracket nesting of JSON text (brackets inside strings not counted)."""
    brackets = _BRACKET.findall(_JSON_STRING.sub('""', text))
    return max(itertools.accumulate((1 if b in "[{" else -1 for b in brackets), initial=0))


def _int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_INT_DIGITS:
        raise UnsafeJsonError(f"integer of {len(token)} digits (limit {MAX_INT_DIGITS})")
    return int(token)


def _float(token: str) -> float:
    if len(token) > MAX_FLOAT_CHARS:
        raise UnsafeJsonError(f"number literal of {len(token)} characters (limit {MAX_FLOAT_CHARS})")
    value = float(token)
    if not math.isfinite(value):
        raise UnsafeJsonError(f"number {token[:20]} overflows a float")
    return value


def _constant(token: str) -> Any:
    raise UnsafeJsonError(f"{token} is not JSON")


def loads(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` as strict JSON; raises :class:`UnsafeJsonError` with a one-line reason."""
    found = depth(text)
    if found > max_depth:
        raise UnsafeJsonError(f"JSON nested {found} levels deep (limit {max_depth})")
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except UnsafeJsonError:
        raise
    except (ValueError, RecursionError) as exc:
        raise UnsafeJsonError(f"not JSON: {exc}") from None
