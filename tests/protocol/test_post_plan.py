"""Splitting a dataset into postJob transactions: whole batches, within the contract's and the size limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.chain.market import PostedBatch, PostedJob, PostLimits, encoded_size, plan_posts
from protocol.types import BatchId, Bytes32, JobId, TaskRef

pytestmark = pytest.mark.unit

CONTRACT = PostLimits(max_rows=1024, max_batches=128)


def test_small_job_is_one_post() -> None:
    assert plan_posts([200] * 100, 100, CONTRACT) == [range(0, 100)]
    assert plan_posts([10], 1, CONTRACT) == [range(0, 1)]


def test_rows_limit_splits_on_batch_boundaries() -> None:
    # 1025 rows of B=10: 1020 rows (102 batches) fit 1024 rows; the rest in a second post
    assert plan_posts([1] * 1025, 10, CONTRACT) == [range(0, 1020), range(1020, 1025)]
    # exactly at the limit: one post; one more row: two
    assert plan_posts([1] * 1024, 256, CONTRACT) == [range(0, 1024)]
    assert plan_posts([1] * 1025, 256, CONTRACT) == [range(0, 1024), range(1024, 1025)]


def test_batch_count_limit() -> None:
    # B=1: 128 batches per post at most, although 1024 rows would fit
    assert plan_posts([1] * 129, 1, CONTRACT) == [range(0, 128), range(128, 129)]


def test_byte_budget_splits_but_never_inside_a_batch() -> None:
    limits = PostLimits(max_rows=1024, max_batches=128, max_bytes=3 * encoded_size(100))
    assert plan_posts([100] * 7, 1, limits) == [range(0, 3), range(3, 6), range(6, 7)]
    # a batch bigger than the budget still goes, alone
    assert plan_posts([100] * 8, 4, limits) == [range(0, 4), range(4, 8)]


def test_encoded_size_is_the_abi_layout() -> None:
    assert encoded_size(0) == 64
    assert encoded_size(1) == encoded_size(32) == 96
    assert encoded_size(33) == 128
    assert encoded_size(200) == 64 + 224


@pytest.mark.parametrize(
    ("sizes", "batch_size", "limits"),
    [([], 1, CONTRACT), ([1], 0, CONTRACT), ([1], 1025, CONTRACT), ([1], 1, PostLimits(1024, 0))],
)
def test_impossible_plans_refused(sizes: list[int], batch_size: int, limits: PostLimits) -> None:
    with pytest.raises(ValueError):
        plan_posts(sizes, batch_size, limits)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=400),
    batch_size=st.integers(min_value=1, max_value=40),
    max_rows=st.integers(min_value=40, max_value=120),
    max_batches=st.integers(min_value=1, max_value=12),
    max_bytes=st.integers(min_value=64, max_value=20_000),
)
def test_plans_partition_the_rows_in_whole_batches_within_limits(
    sizes: list[int], batch_size: int, max_rows: int, max_batches: int, max_bytes: int
) -> None:
    limits = PostLimits(max_rows, max_batches, max_bytes)
    plans = plan_posts(sizes, batch_size, limits)
    assert [i for p in plans for i in p] == list(range(len(sizes)))
    for n, plan in enumerate(plans):
        batches = -(-len(plan) // batch_size)
        if n < len(plans) - 1:
            assert len(plan) % batch_size == 0  # the batches are those of one big post
        assert len(plan) <= max_rows and batches <= max_batches
        size = sum(encoded_size(sizes[i]) for i in plan)
        assert size <= max_bytes or batches == 1
        if n < len(plans) - 1:  # greedy: the next batch would not have fitted
            nxt = range(plan.stop, min(plan.stop + batch_size, len(sizes)))
            grown = size + sum(encoded_size(sizes[i]) for i in nxt)
            assert len(plan) + len(nxt) > max_rows or batches + 1 > max_batches or grown > max_bytes


def test_posted_job_maps_dataset_rows_to_tasks() -> None:
    word = Bytes32(b"\x00" * 32)
    batches = (
        PostedBatch(BatchId(4), JobId(2), 0, 3, word, 100),
        PostedBatch(BatchId(5), JobId(2), 3, 2, word, 100),
        PostedBatch(BatchId(6), JobId(3), 5, 3, word, 100),
    )
    posted = PostedJob(jobs=(), batches=batches, receipts=())
    assert posted.batch_ids == (4, 5, 6)
    assert [posted.task(i) for i in (0, 2, 3, 4, 5, 7)] == [
        TaskRef(BatchId(4), 0),
        TaskRef(BatchId(4), 2),
        TaskRef(BatchId(5), 0),
        TaskRef(BatchId(5), 1),
        TaskRef(BatchId(6), 0),
        TaskRef(BatchId(6), 2),
    ]
    with pytest.raises(ValueError, match="dataset row 8"):
        posted.task(8)
    with pytest.raises(ValueError, match="row 2 is outside"):
        batches[1].task(2)
