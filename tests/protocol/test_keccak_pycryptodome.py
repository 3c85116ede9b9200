"""safe-pysha3's keccak256 against pycryptodome's Keccak directly (not through eth-hash's backend
choice, which could itself pick pysha3): every length around the 136-byte rate, several blocks,
and 1 MiB (+1), with random contents."""

from __future__ import annotations

import random

import pytest
from Crypto.Hash import keccak as cryptodome_keccak

from protocol.canonical import keccak256

pytestmark = pytest.mark.unit


def _cryptodome(data: bytes) -> bytes:
    return bytes(cryptodome_keccak.new(digest_bits=256, data=data).digest())


@pytest.mark.parametrize("size", [0, 1, 135, 136, 137, 271, 272, 273, 4095, 1 << 20, (1 << 20) + 1])
def test_same_digest_as_pycryptodome_at_block_boundaries_and_1_mib(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert keccak256(data) == _cryptodome(data)
    assert keccak256(memoryview(data)) == _cryptodome(data)
