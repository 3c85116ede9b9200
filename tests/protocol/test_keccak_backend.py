"""protocol.canonical.keccak256 runs on safe-pysha3's C Keccak: the digests must be exactly the
EVM's keccak256 (eth-utils' reference path on pycryptodome, and the known vectors), for any bytes
and every bytes-like type the code passes, and text must be refused rather than hashed."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import keccak256

pytestmark = pytest.mark.unit


def test_known_vectors() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    # the ERC-20 Transfer event topic
    assert keccak256(b"Transfer(address,address,uint256)").hex() == (
        "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    )
    # a block of exactly the rate (136 bytes) and one past it: the padding boundary
    for n in (135, 136, 137, 272):
        assert keccak256(b"a" * n) == reference(b"a" * n)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_same_digest_as_the_reference_for_any_bytes(data: bytes) -> None:
    assert keccak256(data) == reference(data)
    assert keccak256(bytearray(data)) == reference(data)
    assert keccak256(memoryview(data)) == reference(data)
    assert isinstance(keccak256(data), bytes) and len(keccak256(data)) == 32


def test_text_and_numbers_are_refused() -> None:
    with pytest.raises(TypeError):
        keccak256("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keccak256(5)  # type: ignore[arg-type]
