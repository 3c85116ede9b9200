"""Fixtures of the adversary suite: one real Anvil with the contracts deployed per session, rolled back
after each test (``evm_snapshot`` / ``evm_revert``) so every case starts from the same chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3.types import RPCEndpoint

from protocol.chain.contracts import SynodContracts
from scripts.devnet import ROOT, Devnet, local_devnet


@pytest.fixture(scope="session")
def adversary_devnet() -> Iterator[Devnet]:
    with local_devnet(ROOT) as net:
        yield net


@pytest.fixture
def fresh_chain(adversary_devnet: Devnet) -> Iterator[SynodContracts]:
    """The session chain, rolled back to its state before the test when the test ends."""
    chain = SynodContracts.connect(adversary_devnet.settings, ROOT)
    snapshot = chain.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    try:
        yield chain
    finally:
        reverted = chain.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])["result"]
        assert reverted is True, f"evm_revert({snapshot}) failed"
