"""The node's serving memory (:mod:`node.serving`): bounds at the exact byte, the digest index,
committees by round, and the one-hop load of a revealed batch from a real state and journal."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.serving import ServedBatch, ServingCache, load_revealed
from node.state import BatchRecord, BatchStatus, JobRecord, NodeState, TaskRecord
from protocol.canonical import keccak256
from protocol.store import open_store
from protocol.types import address_of
from tests.node.helpers import params

pytestmark = pytest.mark.unit

A, B, C = (address_of("0x" + c * 40) for c in "abc")
ZERO = address_of("0x" + "0" * 40)


def _batch(batch_id: int, *payloads: bytes) -> ServedBatch:
    return ServedBatch(batch_id, "0x" + "11" * 20, {bytes(keccak256(p)): p for p in payloads})


def test_results_are_kept_within_max_bytes_at_the_exact_boundary() -> None:
    cache = ServingCache(max_bytes=10, max_batches=8)
    assert cache.add(_batch(1, b"aaaa", b"bbbb")) is True  # 8 bytes
    assert cache.add(_batch(2, b"cc")) is True  # 10 bytes: exactly full, nothing evicted
    assert cache.held_bytes == 10 and cache.result(keccak256(b"aaaa")) == b"aaaa"
    assert cache.add(_batch(3, b"d")) is True  # 11 > 10: batch 1, the least recently used, goes
    assert cache.result(keccak256(b"aaaa")) is None and cache.batches_of(keccak256(b"bbbb")) == []
    assert cache.held_bytes == 3 and cache.result(keccak256(b"cc")) == b"cc"
    assert cache.add(_batch(4, b"x" * 11)) is False, "a batch larger than the cap is never kept"
    assert cache.held_bytes == 3 and cache.result(keccak256(b"x" * 11)) is None
    assert cache.add(_batch(5, b"y" * 10)) is True and cache.held_bytes == 10
    assert cache.result(keccak256(b"cc")) is None and cache.result(keccak256(b"d")) is None


def test_a_digest_of_two_batches_survives_one_drop_and_max_batches_bounds() -> None:
    cache = ServingCache(max_bytes=100, max_batches=2)
    shared = b"same envelope"
    cache.add(_batch(1, shared))
    cache.add(_batch(2, shared, b"other"))
    assert sorted(b.batch_id for b in cache.batches_of(keccak256(shared))) == [1, 2]
    cache.drop(1)
    assert [b.batch_id for b in cache.batches_of(keccak256(shared))] == [2]
    assert cache.result(keccak256(shared)) == shared
    cache.add(_batch(3, b"three"))
    cache.add(_batch(4, b"four"))  # max_batches 2: batch 2 is out
    assert cache.result(keccak256(shared)) is None
    assert cache.held_bytes == len(b"three") + len(b"four")


def test_committees_are_kept_per_round_and_a_new_round_drops_the_old() -> None:
    cache = ServingCache(max_committees=2)
    assert cache.committee(7, 0) is None
    kept = cache.remember_committee(7, 0, [A, B, ZERO])
    assert kept == frozenset({A, B}), "an empty (zero) seat admits nobody"
    assert cache.committee(7, 0) == kept and cache.committee(7, 1) is None
    cache.remember_committee(7, 1, [C])
    assert cache.committee(7, 0) is None, "a re-draw forgets the old round's members"
    assert cache.rounds_of(7) == {1: frozenset({C})}
    cache.remember_committee(8, 0, [A])
    cache.remember_committee(9, 0, [B])  # max_committees 2: (7, 1) is the least recently used
    assert cache.committee(7, 1) is None and cache.committee(9, 0) == frozenset({B})
    cache.forget_committee(9)
    assert cache.rounds_of(9) == {} and cache.committee(8, 0) == frozenset({A})


def test_forgetting_a_reorged_batch_drops_its_results_index_and_committees_only() -> None:
    """A reorg removed batch 7 (node/daemon.py ``_rewind``): its id may come back with other rows
    and another committee, so nothing kept of it may answer a request; batch 8 is untouched."""
    cache = ServingCache(max_bytes=100, max_batches=8)
    cache.add(_batch(7, b"seven", b"shared"))
    cache.add(_batch(8, b"eight", b"shared"))
    cache.remember_committee(7, 0, [A])
    cache.remember_committee(7, 1, [B])
    cache.remember_committee(8, 0, [C])
    cache.forget(7)
    assert cache.result(keccak256(b"seven")) is None and cache.batches_of(keccak256(b"seven")) == []
    assert [b.batch_id for b in cache.batches_of(keccak256(b"shared"))] == [8]
    assert cache.rounds_of(7) == {} and cache.committee(8, 0) == frozenset({C})
    assert cache.held_bytes == len(b"eight") + len(b"shared")


def test_load_revealed_reads_a_revealed_batch_whole_and_only_names_the_others(tmp_path: Path) -> None:
    state = NodeState.open(tmp_path / "state")
    requester = "0x" + "22" * 20
    state.put_job(
        JobRecord(
            job_id=1,
            workflow=b"{}",
            workflow_hash=keccak256(b"{}"),
            requester=requester,
            params=params(),
            block=1,
        )
    )
    envelopes = [b'{"row":0}', b'{"row":1}', b'{"row":2}']
    digests = [bytes(keccak256(e)) for e in envelopes]

    async def main() -> None:
        async with open_store(tmp_path / "journal.sqlite") as store:
            for e in envelopes[:2]:
                await store.put_result_bytes(e)
            for batch_id, status in ((3, BatchStatus.REVEALED), (4, BatchStatus.COMMITTED)):
                state.put_batch(
                    BatchRecord(
                        batch_id=batch_id,
                        job_id=1,
                        first_row=0,
                        commit_deadline=10**10,
                        rows=(b"{}",) * 3,
                        status=status,
                        block=1,
                    )
                )
                for row, d in enumerate(digests):
                    state.put_task(TaskRecord(batch_id=batch_id, row=row, digest=d, error=None, seconds=0.1))
            ids, loaded = load_revealed(state, store, digests[1])
            assert sorted(ids) == [3, 4]
            (served,) = loaded
            assert (served.batch_id, served.requester) == (3, requester)
            assert served.results == {digests[0]: envelopes[0], digests[1]: envelopes[1]}, "row 2 not stored"
            assert load_revealed(state, store, keccak256(b"unknown")) == ([], [])

    trio.run(main)
    state.close()
