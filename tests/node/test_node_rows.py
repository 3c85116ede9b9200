"""The node's group commit of finished rows (node/rows.py) on a real result store and a real
``node.sqlite``: rows stored together share one write, each is committed (visible to another
connection) when ``store`` returns, the speed estimate folds every success, and a failed group
fails every row in it and stores none of its task records, after which the writer goes on.
Also: the workflow worker process imports neither the p2p nor the chain stack (node/provider.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from node.rows import RowWriteFailed, RowWriter
from node.state import NodeState
from node.work import TaskOutcome
from protocol.canonical import keccak256
from protocol.envelope import failure, success
from protocol.store import Store
from scripts.devnet import ROOT

pytestmark = pytest.mark.unit

WORKFLOW_HASH = keccak256(b"workflow")
ALPHA = 0.5


def _outcome(i: int, *, ok: bool = True, seconds: float = 2.0) -> TaskOutcome:
    row = f'{{"n":{i}}}'.encode()
    if ok:
        envelope = success(workflow_hash=WORKFLOW_HASH, row=row, model="m:1b", output=f"out {i}")
    else:
        envelope = failure(workflow_hash=WORKFLOW_HASH, row=row, model="m:1b", reason=f"bad {i}")
    data = envelope.to_bytes()
    return TaskOutcome(envelope, data, keccak256(data), envelope.error, seconds)


def _committed(
    tmp: Path,
) -> tuple[dict[bytes, bytes], dict[int, tuple[bytes, str | None]], tuple[float, int] | None]:
    """What another connection sees: results by digest, batch 7's tasks, the speed row."""
    with sqlite3.connect(tmp / "journal.sqlite") as journal:
        results = {bytes(d): bytes(v) for d, v in journal.execute("SELECT digest, data FROM results")}
    with sqlite3.connect(tmp / "node.sqlite") as node:
        tasks = {
            r: (bytes(d), e)
            for r, d, e in node.execute("SELECT row, digest, error FROM tasks WHERE batch_id = 7")
        }
        speed = node.execute(
            "SELECT seconds, samples FROM speeds WHERE workflow_hash = ?", (WORKFLOW_HASH,)
        ).fetchone()
    return results, tasks, None if speed is None else (float(speed[0]), int(speed[1]))


def test_rows_finished_together_share_one_write_and_are_committed_on_return(tmp_path: Path) -> None:
    store = Store.open_sync(tmp_path / "journal.sqlite")
    state = NodeState.open(tmp_path)
    writer = RowWriter(store, state)
    outcomes = [_outcome(i, ok=i % 4 != 3) for i in range(12)]  # rows 3, 7, 11 failed
    seen_on_return: dict[int, bool] = {}

    async def one(i: int) -> None:
        await writer.store(7, i, outcomes[i], WORKFLOW_HASH, ALPHA)
        results, tasks, _ = _committed(tmp_path)
        seen_on_return[i] = results.get(outcomes[i].digest) == outcomes[i].data and tasks.get(i) == (
            outcomes[i].digest,
            outcomes[i].error,
        )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(one, i)

    try:
        trio.run(main)
        # the first row is written alone (no timer), the eleven that queued meanwhile in one more
        assert writer.groups == 2
        assert seen_on_return == dict.fromkeys(range(12), True)
        results, tasks, speed = _committed(tmp_path)
        assert tasks == {i: (o.digest, o.error) for i, o in enumerate(outcomes)}
        assert tasks[3][1] == "bad 3" and tasks[0][1] is None
        assert {o.digest for o in outcomes} <= set(results)
        # nine successes of 2.0 s folded (failures are not speeds)
        assert speed == (2.0, 9)
        assert state.tasks(7)[5].seconds == 2.0
        # one more row alone: its own write, the average moves by alpha
        trio.run(writer.store, 7, 12, _outcome(12, seconds=4.0), WORKFLOW_HASH, ALPHA)
        assert writer.groups == 3
        assert _committed(tmp_path)[2] == (3.0, 10)
    finally:
        state.close()
        store.close()


def test_a_failed_group_fails_every_row_in_it_and_the_writer_goes_on(tmp_path: Path) -> None:
    store = Store.open_sync(tmp_path / "journal.sqlite")
    state = NodeState.open(tmp_path)
    writer = RowWriter(store, state)
    good = [_outcome(i) for i in range(4)]
    broken = TaskOutcome(good[2].envelope, good[2].data, keccak256(b"not the envelope"), None, 1.0)
    errors: dict[int, str] = {}

    async def one(i: int, outcome: TaskOutcome) -> None:
        try:
            await writer.store(7, i, outcome, WORKFLOW_HASH, ALPHA)
        except RowWriteFailed as exc:
            errors[i] = str(exc)

    async def main() -> None:
        state._lock.acquire()  # holds row 0's write in its thread (node.sqlite's lock)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, 0, good[0])  # written alone first
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(one, 1, good[1])  # these three queue behind it: one group
            nursery.start_soon(one, 2, broken)
            nursery.start_soon(one, 3, good[3])
            await trio.testing.wait_all_tasks_blocked()
            state._lock.release()

    try:
        trio.run(main)
        assert sorted(errors) == [1, 2, 3]
        for i in (1, 2, 3):
            assert errors[i] == (
                f"row {i} of batch 7 was not stored: row 2: its digest is not the keccak256 of its envelope"
            )
        results, tasks, _ = _committed(tmp_path)
        assert tasks == {0: (good[0].digest, None)}  # nothing of the failed group
        assert good[1].digest not in results and good[3].digest not in results
        # not stuck: the next row is written
        trio.run(writer.store, 7, 1, good[1], WORKFLOW_HASH, ALPHA)
        assert set(_committed(tmp_path)[1]) == {0, 1}
    finally:
        state.close()
        store.close()


def test_the_workflow_worker_imports_no_p2p_or_chain_stack() -> None:
    code = (
        "import sys, node.worker\n"
        "names = ('libp2p', 'web3', 'eth_account', 'protocol.p2p', 'protocol.chain', 'node.config')\n"
        "heavy = sorted(m for m in names if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""


def test_worker_pipe_lines_queued_together_go_out_in_one_write_and_a_broken_pipe_fails_them() -> None:
    from node.worker import LineWriter

    async def main() -> None:
        writes: list[bytes] = []
        stream = trio.testing.MemorySendStream()

        async def hook() -> None:
            writes.append(bytes(stream.get_data_nowait()))

        stream.send_all_hook = hook
        writer = LineWriter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.pump, stream)
            await writer.line(b"first")
            async with trio.open_nursery() as lines:
                for i in range(5):
                    lines.start_soon(writer.line, f"row {i}".encode())
            nursery.cancel_scope.cancel()
        assert writes[0] == b"first\n"
        assert len(writes) == 2  # the five lines queued in one batch: one write
        assert sorted(writes[1].split(b"\n")) == [b"", *(f"row {i}".encode() for i in range(5))]
        with pytest.raises(trio.BrokenResourceError):  # the pump stopped: nothing is queued forever
            await writer.line(b"late")

        # a real pipe whose reader is gone: the queued lines and every later one fail
        read_fd, write_fd = os.pipe()
        os.close(read_fd)
        broken = LineWriter()
        failed: list[str] = []

        async def one(i: int) -> None:
            try:
                await broken.line(b"x" * i)
            except trio.BrokenResourceError:
                failed.append(str(i))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(broken.pump, trio.lowlevel.FdStream(write_fd))
            for i in range(3):
                nursery.start_soon(one, i)
        assert sorted(failed) == ["0", "1", "2"]
        with pytest.raises(trio.BrokenResourceError, match="the pipe broke"):
            await broken.line(b"after")

    trio.run(main)
