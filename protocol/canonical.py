"""Canonical JSON bytes and their keccak256 digest: the one hashing every part of Synod uses.

Canonical form: UTF-8, keys sorted by code point, no insignificant whitespace, no NaN or
infinities, integers as integers. ``digest(value) == keccak256(canonical_bytes(value))``, which is
what the contracts store for specs and results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NewType

from sha3 import keccak_256

from protocol.errors import CanonicalError

Digest = NewType("Digest", bytes)
"""A 32-byte keccak256 digest."""


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalError(f"{path or '$'}: non-finite number {value!r} has no JSON form")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{path or '$'}: object key {key!r} is not a string")
            _check(item, f"{path}.{key}" if path else key)
        return
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    raise CanonicalError(f"{path or '$'}: {type(value).__name__} has no JSON form")


def has_utf8_form(value: Any) -> bool:
    """Whether every string in ``value`` (a parsed JSON value, object keys included) encodes as
    UTF-8: ``json.loads`` accepts lone surrogate escapes (``"\\udc00"``) that have no UTF-8 form and
    make any later ``.encode()`` raise. Iterative: any nesting the parser accepted is walked
    without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def canonical_bytes(value: Any) -> bytes:
    """Return the canonical JSON encoding of ``value`` (dicts, lists, str, int, float, bool, None)."""
    _check(value, "")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def keccak256(data: bytes | bytearray | memoryview) -> Digest:
    """keccak256 of raw bytes (the EVM's hash). Raises :class:`TypeError` for a non-bytes-like
    ``data``.

    Computed by safe-pysha3's C Keccak (the backend eth-hash calls ``pysha3``): the same digest as
    ``eth_utils.keccak`` on bytes, ~3 us a call where eth-utils' dispatch plus pycryptodome took
    ~15-30 us (the node and the validators hash every envelope several times)."""
    if isinstance(data, str):  # hashing text by accident must fail, as eth-utils did for str
        raise TypeError("keccak256 takes bytes, not str")
    return Digest(keccak_256(data).digest())


def digest(value: Any) -> Digest:
    """keccak256 of the canonical JSON bytes of ``value``."""
    return keccak256(canonical_bytes(value))


def digest_hex(value: Any) -> str:
    """``digest(value)`` as 0x-prefixed lowercase hex."""
    return "0x" + digest(value).hex()
