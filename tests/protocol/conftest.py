"""Fixtures for the chain tests: one real Anvil per session with the contracts deployed.

The session fixture starts ``node_modules/.bin/anvil`` on a free port, builds and deploys with
``scripts/Deploy.s.sol`` (under the forge lock, into a private deployment file) and kills Anvil at
the end. Each test that changes chain state takes ``fresh_chain``: an ``evm_snapshot`` before and
an ``evm_revert`` after, so tests never see each other's tasks; transaction senders are created
per test because a revert rewinds the accounts' nonces.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3.types import RPCEndpoint

from protocol.chain.contracts import SynodContracts
from scripts.devnet import ROOT, Devnet, local_devnet


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    with local_devnet(ROOT) as net:
        yield net


@pytest.fixture(scope="session")
def chain(devnet: Devnet) -> SynodContracts:
    return SynodContracts.connect(devnet.settings, ROOT)


@pytest.fixture
def fresh_chain(chain: SynodContracts) -> Iterator[SynodContracts]:
    """The session chain, rolled back to its state before the test when the test ends."""
    snapshot = chain.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    try:
        yield chain
    finally:
        reverted = chain.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])["result"]
        assert reverted is True, f"evm_revert({snapshot}) failed"
