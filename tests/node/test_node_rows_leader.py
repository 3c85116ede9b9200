"""The group commit's leader is not held hostage by other rows: the caller that writes a group
returns once ITS row is durable, even while other rows (of other batches) keep finishing.

A leader that kept writing every group that queued behind it (until a write found nothing
pending) returned only when the stream of finished rows paused: under sustained load its batch's
commit waited for other batches' rows, toward its commit deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
import trio.testing

from node.rows import RowWriter
from node.state import NodeState
from protocol.store import Store
from tests.node.test_node_rows import ALPHA, WORKFLOW_HASH, _outcome

pytestmark = pytest.mark.unit

WRITE_S = 0.05
"""Added to every group write (in its worker thread): a slow disk."""


def _slow_writer(tmp_path: Path) -> tuple[Store, NodeState, RowWriter]:
    """A journal, a node state and a RowWriter over them whose every group write takes
    ``WRITE_S`` longer (in its worker thread)."""
    store = Store.open_sync(tmp_path / "journal.sqlite")
    state = NodeState.open(tmp_path)
    writer = RowWriter(store, state)
    inner = writer._write

    def slow_write(group: list) -> None:  # type: ignore[type-arg]
        time.sleep(WRITE_S)
        inner(group)

    writer._write = slow_write  # type: ignore[method-assign]
    return store, state, writer


def test_the_first_caller_returns_after_its_own_group_while_rows_keep_coming(tmp_path: Path) -> None:
    store, state, writer = _slow_writer(tmp_path)
    returned: dict[str, float] = {}

    async def main() -> None:
        start = trio.current_time()

        async def first() -> None:
            await writer.store(1, 0, _outcome(0), WORKFLOW_HASH, ALPHA)
            returned["first"] = trio.current_time() - start

        async def others() -> None:
            async with trio.open_nursery() as nursery:
                for i in range(1, 80):  # a row finishes every 10 ms for 0.8 s
                    await trio.sleep(0.01)
                    nursery.start_soon(writer.store, 2, i, _outcome(i), WORKFLOW_HASH, ALPHA)
            returned["others"] = trio.current_time() - start

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            nursery.start_soon(others)

    try:
        trio.run(main)
    finally:
        store.close()
        state.close()
    assert returned["others"] > 0.75
    assert returned["first"] < 4 * WRITE_S, returned
    assert len(state_tasks(tmp_path)) == 80


def state_tasks(tmp: Path) -> list[int]:
    state = NodeState.open(tmp)
    try:
        return sorted(state.tasks(1)) + sorted(state.tasks(2))
    finally:
        state.close()


def test_a_cancelled_caller_handed_the_next_write_still_writes_the_rows_behind_it(tmp_path: Path) -> None:
    """Rows 1 and 2 queue during row 0's write; row 1's caller is cancelled at once. The next
    write is handed to it: it must still write rows 1 and 2 (no new caller will come), and only
    then take its cancellation."""
    store, state, writer = _slow_writer(tmp_path)
    done: list[int] = []
    cancelled: list[bool] = []

    async def main() -> None:
        async def one(i: int) -> None:
            await writer.store(3, i, _outcome(i), WORKFLOW_HASH, ALPHA)
            done.append(i)

        async def cancelled_one() -> None:
            with trio.CancelScope() as scope:
                scope.cancel()
                await writer.store(3, 1, _outcome(1), WORKFLOW_HASH, ALPHA)
            cancelled.append(scope.cancelled_caught)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(one, 0)
                await trio.testing.wait_all_tasks_blocked()
                assert writer._writing  # row 0's write is in progress
                nursery.start_soon(cancelled_one)
                await trio.testing.wait_all_tasks_blocked()
                assert len(writer._pending) == 1  # row 1 first: the next write is handed to it
                nursery.start_soon(one, 2)

    try:
        trio.run(main)
    finally:
        store.close()
        state.close()
    assert sorted(done) == [0, 2] and cancelled == [True]
    reopened = NodeState.open(tmp_path)
    try:
        assert sorted(reopened.tasks(3)) == [0, 1, 2]
    finally:
        reopened.close()
    assert writer.groups == 2
