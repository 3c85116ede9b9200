"""A node's seat checks of one batch take turns: the rows that start together cost one chain read
(they used to read the same batch view once each), a fresh read (max_age 0) is never shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import trio

from node.daemon import NodeDaemon
from protocol.chain.models import Phase

pytestmark = pytest.mark.unit


@dataclass
class _View:
    phase: Phase
    commit_count: int


def _daemon(view: _View, reads: list[int]) -> NodeDaemon:
    """The real ``_seats_open`` over a counting ``_read`` that answers ``view`` after 50 ms."""
    daemon = NodeDaemon.__new__(NodeDaemon)  # only the seat-check state: no chain, no store
    daemon._seat_checks = {}
    daemon._seat_locks = {}

    async def read(fn: Any, batch_id: int) -> _View:
        reads.append(batch_id)
        await trio.sleep(0.05)
        return view

    daemon._read = read  # type: ignore[method-assign]
    daemon._market = type("M", (), {"batch": None})()
    return daemon


def test_a_burst_of_seat_checks_costs_one_read() -> None:
    reads: list[int] = []
    daemon = _daemon(_View(Phase.COMMITTING, 1), reads)
    answers: list[bool] = []

    async def main() -> None:
        async def check() -> None:
            answers.append(await daemon._seats_open(7, 3, 1.0))

        async with trio.open_nursery() as nursery:
            for _ in range(16):
                nursery.start_soon(check)

    trio.run(main)
    assert answers == [True] * 16 and reads == [7]


def test_fresh_or_filled_checks_are_never_shared() -> None:
    reads: list[int] = []
    daemon = _daemon(_View(Phase.COMMITTING, 3), reads)  # k = 3 seats taken: filled
    answers: list[bool] = []

    async def main() -> None:
        async def check(max_age: float) -> None:
            answers.append(await daemon._seats_open(7, 3, max_age))

        async with trio.open_nursery() as nursery:
            for max_age in (0.0, 0.0, 1.0, 1.0):
                nursery.start_soon(check, max_age)

    trio.run(main)
    assert answers == [False] * 4 and reads == [7] * 4  # a filled answer is not remembered
    daemon._seat_checks[7] = 0.0  # a free seat found long ago (monotonic time 0)
    reads.clear()
    assert trio.run(daemon._seats_open, 7, 3, 0.0) is False and reads == [7]
