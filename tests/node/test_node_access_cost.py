"""The node's access rule under a refused-account flood: a request for a digest of a revealed batch
that is already kept in the serving memory must not reload the batch's rows from the journal.

Accounts cost nothing to make and the digests of a revealed batch are public (on chain), so every
signed request of an outsider reaches :meth:`NodeDaemon.access`; reloading the whole batch
(every row's bytes, up to 256 rows) per refused request made each cheap request cost a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from node.daemon import NodeDaemon
from node.serving import Admission, ServingCache, load_revealed
from node.state import BatchRecord, BatchStatus, JobRecord, NodeState, TaskRecord
from protocol.canonical import keccak256
from protocol.chain.models import Phase
from protocol.store import Store, open_store
from protocol.types import Address, address_of
from tests.node.helpers import params

pytestmark = pytest.mark.unit

MEMBER = address_of("0x" + "aa" * 20)
OUTSIDER = address_of("0x" + "bb" * 20)
ROWS = [f'{{"row":{i}}}'.encode() for i in range(8)]
DIGESTS = [bytes(keccak256(r)) for r in ROWS]


class _CountingStore:
    """The real journal, counting the per-row byte reads of :func:`node.serving.load_revealed`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.row_reads = 0

    def get_result_sync(self, digest: bytes) -> bytes | None:
        self.row_reads += 1
        return self._store.get_result_sync(digest)

    async def get_result(self, digest: bytes) -> bytes | None:
        return await self._store.get_result(digest)


def _daemon(
    state: NodeState, store: _CountingStore, reads: list[int], seated: dict[int, Address] | None = None
) -> NodeDaemon:
    daemon = NodeDaemon.__new__(NodeDaemon)  # only the access state: a real state and journal
    daemon.state = state
    daemon.store = store  # type: ignore[assignment]
    daemon._serving = ServingCache()
    daemon._access_ok = {}

    async def read(fn: Any, market: Any, batch_id: int, known: Any) -> Admission:
        reads.append(batch_id)
        member = (seated or {}).get(batch_id, MEMBER)
        return Admission(Phase.SCORE_COMMITTING, 0, frozenset({member}), fresh=not known)

    daemon._read = read  # type: ignore[method-assign]
    daemon._market = None  # type: ignore[assignment]
    return daemon


def _state(tmp_path: Path, batches: tuple[int, ...]) -> NodeState:
    state = NodeState.open(tmp_path / "state")
    state.put_job(
        JobRecord(
            job_id=1,
            workflow=b"{}",
            workflow_hash=keccak256(b"{}"),
            requester="0x" + "22" * 20,
            params=params(),
            block=1,
        )
    )
    for batch_id in batches:
        _put_batch(state, batch_id)
    return state


def _put_batch(state: NodeState, batch_id: int, digests: list[bytes] = DIGESTS) -> None:
    state.put_batch(
        BatchRecord(
            batch_id=batch_id,
            job_id=1,
            first_row=0,
            commit_deadline=10**10,
            rows=(b"{}",) * len(digests),
            status=BatchStatus.REVEALED,
            block=1,
        )
    )
    for row, d in enumerate(digests):
        state.put_task(TaskRecord(batch_id=batch_id, row=row, digest=d, error=None, seconds=0.1))


def test_refused_requests_do_not_reload_a_kept_batch(tmp_path: Path) -> None:
    state = _state(tmp_path, (5,))
    reads: list[int] = []
    verdicts: list[bool] = []

    async def main() -> None:
        async with open_store(tmp_path / "journal.sqlite") as real:
            for r in ROWS:
                await real.put_result_bytes(r)
            store = _CountingStore(real)
            daemon = _daemon(state, store, reads)
            assert await daemon.access("peer", DIGESTS[0], MEMBER) is True
            assert store.row_reads == len(ROWS), "the first request loads the batch once"
            for i in range(20):
                verdicts.append(await daemon.access("peer", DIGESTS[i % len(ROWS)], OUTSIDER))
            assert store.row_reads == len(ROWS), "a refused request reloaded the kept batch"
            assert await daemon.lookup(DIGESTS[3]) == ROWS[3]

    trio.run(main)
    state.close()
    assert verdicts == [False] * 20
    assert reads == [5] * 21, "one admission read per request, no more"


def test_a_digest_shared_with_an_unkept_batch_still_admits_that_batch_committee(tmp_path: Path) -> None:
    """Batch 5 (kept, committee MEMBER) and batch 6 (revealed, not yet kept, committee OUTSIDER) hold
    the same digests: OUTSIDER is refused by 5 and admitted by 6, which is then loaded (5 is not
    reloaded); a third account is refused by both."""
    state = _state(tmp_path, (5, 6))
    reads: list[int] = []
    third = address_of("0x" + "cc" * 20)

    async def main() -> None:
        async with open_store(tmp_path / "journal.sqlite") as real:
            for r in ROWS:
                await real.put_result_bytes(r)
            store = _CountingStore(real)
            daemon = _daemon(state, store, reads, seated={5: MEMBER, 6: OUTSIDER})
            daemon._serving.add(load_revealed(state, real, DIGESTS[0])[1][0])  # keep batch 5 only
            daemon._serving.drop(6)
            assert [b.batch_id for b in daemon._serving.batches_of(DIGESTS[1])] == [5]
            assert await daemon.access("peer", DIGESTS[1], OUTSIDER) is True
            assert store.row_reads == len(ROWS), "batch 6 loaded once, batch 5 not again"
            assert sorted(b.batch_id for b in daemon._serving.batches_of(DIGESTS[1])) == [5, 6]
            assert await daemon.access("peer", DIGESTS[2], third) is False

    trio.run(main)
    state.close()


def test_a_batch_larger_than_the_memory_is_read_at_most_once_and_only_up_to_the_bound(
    tmp_path: Path,
) -> None:
    """A revealed batch whose bytes exceed ``max_bytes`` is never kept; its rows must not be read
    whole again on every request (up to 256 rows of up to 16 MiB each, at once per stream):
    loading stops at the bound, the batch is remembered as too large, and later requests are
    decided from the journal's records (the pre-cache path) and served from the journal."""
    state = _state(tmp_path, (5,))
    reads: list[int] = []
    verdicts: list[bool] = []

    async def main() -> None:
        async with open_store(tmp_path / "journal.sqlite") as real:
            for r in ROWS:
                await real.put_result_bytes(r)
            store = _CountingStore(real)
            daemon = _daemon(state, store, reads)
            daemon._serving = ServingCache(max_bytes=3 * len(ROWS[0]))  # 3 of the 8 rows fit
            assert await daemon.access("peer", DIGESTS[0], MEMBER) is True
            assert store.row_reads == 4, "reading stops at the first row past the bound"
            assert daemon._serving.held_bytes == 0
            for i in range(10):
                verdicts.append(await daemon.access("peer", DIGESTS[i % len(ROWS)], OUTSIDER))
            assert await daemon.access("peer", DIGESTS[5], MEMBER) is True
            assert store.row_reads == 4, "an oversized batch was read again"
            assert await daemon.lookup(DIGESTS[6]) == ROWS[6]

    trio.run(main)
    state.close()
    assert verdicts == [False] * 10


def test_refused_requests_across_batches_never_read_result_bytes(tmp_path: Path) -> None:
    """The digests of every batch a node ever revealed are on chain and accounts are free: an
    outsider asking for digests of batches that are not kept (more of them than the memory holds)
    must be refused from the batch records alone; only an admitted request loads a batch's bytes."""
    other_rows = [f'{{"other":{i}}}'.encode() for i in range(len(ROWS))]
    other = [bytes(keccak256(r)) for r in other_rows]
    state = _state(tmp_path, (5,))
    _put_batch(state, 6, other)
    reads: list[int] = []
    verdicts: list[bool] = []

    async def main() -> None:
        async with open_store(tmp_path / "journal.sqlite") as real:
            for r in (*ROWS, *other_rows):
                await real.put_result_bytes(r)
            store = _CountingStore(real)
            daemon = _daemon(state, store, reads)
            daemon._serving = ServingCache(max_batches=1)
            for i in range(10):  # alternating batches: each would evict the other
                verdicts.append(await daemon.access("peer", (DIGESTS, other)[i % 2][i % len(ROWS)], OUTSIDER))
            assert store.row_reads == 0, "a refused request read result bytes"
            assert await daemon.access("peer", other[2], MEMBER) is True
            assert store.row_reads == len(ROWS), "the admitted request loads its batch, once"
            assert daemon._serving.result(other[3]) == other_rows[3]
            assert await daemon.access("peer", other[4], MEMBER) is True
            assert store.row_reads == len(ROWS)

    trio.run(main)
    state.close()
    assert verdicts == [False] * 10
