"""The requester suites' chain: one Anvil devnet with the contracts deployed, per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol.chain.contracts import SynodContracts
from scripts.devnet import ROOT, Devnet, local_devnet


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    with local_devnet(ROOT) as net:
        yield net


@pytest.fixture(scope="module")
def chain(devnet: Devnet) -> SynodContracts:
    return SynodContracts.connect(devnet.settings, ROOT)
