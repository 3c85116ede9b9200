"""Crash recovery against a real Anvil: a real child process journals a signed transaction, is
SIGKILLed before or after sending it, and recovery reconciles the journal with the chain: resend
what was never sent, record what was mined (success or revert), drop what lost its nonce, and
leave pending what the mempool holds. Nothing is ever sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from protocol.store import ActionState, Store, open_store
from protocol.store.recovery import Outcome, Recovered, Web3Lookup, recover
from scripts.devnet import anvil, free_port
from tests.store.helpers import GWEI, RECIPIENT, key_for, signed_tx

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    with anvil(ROOT) as rpc_url:
        yield Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))


class CountingLookup(Web3Lookup):
    """The real web3 lookup, counting the raw transactions it broadcasts."""

    def __init__(self, w3: Web3) -> None:
        super().__init__(w3, timeout=10.0)
        self.sent: list[bytes] = []

    async def send_raw(self, raw: bytes) -> None:
        self.sent.append(raw)
        await super().send_raw(raw)


def _crash(store_path: Path, w3: Web3, account: int, mode: str) -> bytes:
    """Run the child until it reports READY, SIGKILL it, return the journaled tx hash."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rpc_url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
    with subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_child", str(store_path), rpc_url, str(account), mode],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline().split()
            assert line[:1] == ["READY"], f"child said {line}"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return bytes.fromhex(line[1][2:])


def _recover(path: Path, lookup: CountingLookup) -> list[Recovered]:
    async def main() -> list[Recovered]:
        async with open_store(path) as store:  # the dead child's lock is gone with it
            return await recover(store, lookup)

    return trio.run(main)


def test_crash_before_send_is_resent_once_and_then_mined(tmp_path: Path, w3: Web3) -> None:
    path, account = tmp_path / "j.sqlite", 1
    sender = key_for(account).participant
    balance = w3.eth.get_balance(RECIPIENT)
    tx_hash = _crash(path, w3, account, "before_send")
    assert w3.eth.get_transaction_count(sender) == 0  # really never sent

    lookup = CountingLookup(w3)
    [first] = _recover(path, lookup)
    assert (first.before, first.outcome, first.after, first.tx_hash) == (
        ActionState.INTENDED,
        Outcome.RESENT,
        ActionState.SENT,
        tx_hash,
    )
    assert len(lookup.sent) == 1
    [second] = _recover(path, lookup)  # anvil automines: the resent tx now has a receipt
    assert (second.outcome, second.after) == (Outcome.MINED, ActionState.MINED_SUCCESS)
    assert len(lookup.sent) == 1
    assert _recover(path, lookup) == []  # nothing unfinished is left
    assert w3.eth.get_transaction_count(sender) == 1
    assert w3.eth.get_balance(RECIPIENT) == balance + 1

    store = Store.open_sync(path)
    try:
        action = store.get_action_sync(key_for(account))
        assert action is not None
        assert action.salt == b"\x5a" * 32 and action.digest == b"\xd1" * 32
        assert action.block_number == w3.eth.get_transaction_receipt(tx_hash)["blockNumber"]
    finally:
        store.close()


def test_crash_after_send_is_recorded_mined_without_a_resend(tmp_path: Path, w3: Web3) -> None:
    path, account = tmp_path / "j.sqlite", 2
    tx_hash = _crash(path, w3, account, "after_send")
    lookup = CountingLookup(w3)
    [result] = _recover(path, lookup)
    assert (result.before, result.outcome, result.after, result.tx_hash) == (
        ActionState.INTENDED,
        Outcome.MINED,
        ActionState.MINED_SUCCESS,
        tx_hash,
    )
    assert lookup.sent == []
    assert w3.eth.get_transaction_count(key_for(account).participant) == 1


def test_a_reverted_transaction_is_recorded_as_reverted(tmp_path: Path, w3: Web3) -> None:
    account = 3
    # contract creation whose init code is PUSH1 0 PUSH1 0 REVERT: mined with status 0
    tx = signed_tx(account, nonce=0, to=None, value=0, data=bytes.fromhex("60006000fd"), gas=100_000)
    store = Store.open_sync(tmp_path / "j.sqlite")
    try:
        store.record_intent_sync(key_for(account), tx)
        w3.eth.send_raw_transaction(tx.raw)
        [result] = trio.run(recover, store, CountingLookup(w3))
        assert (result.outcome, result.after) == (Outcome.MINED, ActionState.MINED_REVERTED)
        assert w3.eth.get_transaction_receipt(tx.tx_hash)["status"] == 0
    finally:
        store.close()


def test_a_nonce_taken_by_another_transaction_is_dropped(tmp_path: Path, w3: Web3) -> None:
    account = 4
    journaled = signed_tx(account, nonce=0, value=1)
    other = signed_tx(account, nonce=0, value=2)  # e.g. sent by another tool with the same key
    store = Store.open_sync(tmp_path / "j.sqlite")
    try:
        store.record_intent_sync(key_for(account), journaled)
        w3.eth.send_raw_transaction(other.raw)
        lookup = CountingLookup(w3)
        [result] = trio.run(recover, store, lookup)
        assert (result.outcome, result.after) == (Outcome.DROPPED, ActionState.DROPPED)
        assert "nonce 0" in result.reason and lookup.sent == []
    finally:
        store.close()


def test_a_pending_transaction_is_left_to_the_writer_then_mined(tmp_path: Path, w3: Web3) -> None:
    account = 5
    tx = signed_tx(account, nonce=0, max_fee=50 * GWEI)
    store = Store.open_sync(tmp_path / "j.sqlite")
    w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    try:
        store.record_intent_sync(key_for(account), tx)
        w3.eth.send_raw_transaction(tx.raw)
        lookup = CountingLookup(w3)
        [pending] = trio.run(recover, store, lookup)
        assert (pending.outcome, pending.after) == (Outcome.PENDING, ActionState.SENT)
        assert lookup.sent == []
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        [mined] = trio.run(recover, store, lookup)
        assert (mined.outcome, mined.after) == (Outcome.MINED, ActionState.MINED_SUCCESS)
    finally:
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
        store.close()


def test_an_unreachable_chain_leaves_the_journal_unchanged(tmp_path: Path) -> None:
    nobody = Web3(HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 2}))
    store = Store.open_sync(tmp_path / "j.sqlite")
    try:
        tx = signed_tx(6, nonce=0)
        store.record_intent_sync(key_for(6), tx)
        [result] = trio.run(recover, store, Web3Lookup(nobody, timeout=5.0))
        assert (result.outcome, result.after) == (Outcome.FAILED, ActionState.INTENDED)
        assert result.reason.startswith("eth_getTransactionReceipt: ")
        assert store.unfinished_actions_sync()[0].state is ActionState.INTENDED
    finally:
        store.close()
