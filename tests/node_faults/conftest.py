"""Fixtures of the node fault suite: one fault devnet per session, rolled back after each test;
the Ollama-API test server (the real model) once per session, behind a connection-dropping proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devnet.scripted_model import ScriptedModelServer, hashed_reply
from scripts.devnet import DEMO_MODEL
from tests.node_faults.harness import DropProxy, FaultNet, fault_devnet, rpc
from tests.providers.ollama_server import OllamaTestServer


@pytest.fixture(scope="session")
def fault_net_session() -> Iterator[FaultNet]:
    """Anvil + the v2 contracts (5 s minimum phase) + scripted participants, for the session."""
    with fault_devnet() as net:
        yield net


@pytest.fixture
def net(fault_net_session: FaultNet) -> Iterator[FaultNet]:
    """The session devnet with automine on and fresh senders, reverted to its state before the test
    at the end."""
    chain = fault_net_session.chain
    snapshot = rpc(chain, "evm_snapshot", [])
    try:
        yield fault_net_session.fresh()
    finally:
        # a transaction a test's node left pending (a nonce gap) would outlive the revert
        rpc(chain, "anvil_dropAllTransactions", [])
        rpc(chain, "evm_setAutomine", [True])
        assert rpc(chain, "evm_revert", [snapshot]) is True


@pytest.fixture(scope="session")
def ollama() -> Iterator[OllamaTestServer]:
    """The Ollama-API test server answering from the real local model."""
    with OllamaTestServer() as server:
        yield server


@pytest.fixture
def real_model_server(ollama: OllamaTestServer) -> Iterator[DropProxy]:
    """A disarmed :class:`DropProxy` in front of the real-model Ollama test server (serves
    :data:`MODEL_TAG`)."""
    port = int(ollama.base_url.rsplit(":", 1)[1])
    with DropProxy(upstream_port=port) as proxy:
        yield proxy
    ollama.behaviour.reset()


@pytest.fixture
def model_server() -> Iterator[DropProxy]:
    """A disarmed :class:`DropProxy` in front of a scripted Ollama-API server (zero model latency,
    serves :data:`DEMO_MODEL`): the cases about chain and process faults need no real model."""
    with ScriptedModelServer(models=[DEMO_MODEL], answer=hashed_reply) as server:
        port = int(server.url.rstrip("/").rsplit(":", 1)[1])
        with DropProxy(upstream_port=port) as proxy:
            yield proxy
