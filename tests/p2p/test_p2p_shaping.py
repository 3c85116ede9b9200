"""A pipelined sequence is shaped, not cut: a committee member fetching a whole batch over one
stream gets every result at the buckets' rates, while a fresh stream on an empty bucket is still
refused at once (real py-libp2p hosts on 127.0.0.1)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from protocol.canonical import canonical_bytes, keccak256
from protocol.p2p import RateLimited, ServeLimits
from tests.p2p.helpers import dict_lookup, host

pytestmark = pytest.mark.integration

ROWS = [canonical_bytes({"row": i, "text": f"Result number {i}."}) for i in range(20)]
RESULTS = {bytes(keccak256(r)): r for r in ROWS}
DIGESTS = list(RESULTS)


def _run(tmp_path: Path, limits: ServeLimits) -> tuple[list[bytes | Exception], float, Exception | None]:
    """Fetch the 20 digests over one stream, then one more on a fresh stream at once: (answers,
    seconds of the sequence, the fresh fetch's error or None)."""
    out: list[bytes | Exception] = []
    fresh: list[Exception | None] = [None]
    took = [0.0]

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup(RESULTS), limits=limits) as srv,
            host(tmp_path, "cli") as cli,
        ):
            started = trio.current_time()
            out.extend(await cli.fetch_many(srv.multiaddr, DIGESTS, 30.0))
            took[0] = trio.current_time() - started
            try:
                await cli.fetch(srv.multiaddr, DIGESTS[0])
            except RateLimited as exc:
                fresh[0] = exc

    trio.run(main)
    return out, took[0], fresh[0]


def test_a_sequence_past_the_peer_burst_is_served_whole_at_the_peer_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="protocol.p2p.server")
    # burst 5, 10 tokens/s: the 15 requests beyond the burst wait ~1.5 s in all (policing cut
    # the sequence at the 6th answer and failed the 15 digests after it)
    limits = ServeLimits(peer_rate=10.0, peer_burst=5, sequence_wait=5.0)
    answers, seconds, fresh = _run(tmp_path, limits)
    assert answers == ROWS
    assert seconds >= (20 - 5) / 10.0 - 0.1
    # a new stream's first request is policed: the bucket is empty, so it is refused at once
    assert isinstance(fresh, RateLimited)


def test_the_server_wide_bucket_shapes_a_sequence_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="protocol.p2p.server")
    limits = ServeLimits(total_rate=10.0, total_burst=5, sequence_wait=5.0)
    answers, seconds, fresh = _run(tmp_path, limits)
    assert answers == ROWS
    assert seconds >= (20 - 5) / 10.0 - 0.1
    assert isinstance(fresh, RateLimited) and "server busy" in str(fresh)


def test_a_wait_longer_than_sequence_wait_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="protocol.p2p.server")
    # 0.5 tokens/s: the 6th request's token is 2 s away, more than the 1 s allowed: refused, and
    # the stream ends there (the 14 digests after it get the same error)
    limits = ServeLimits(peer_rate=0.5, peer_burst=5, sequence_wait=1.0)
    answers, seconds, _ = _run(tmp_path, limits)
    assert answers[:5] == ROWS[:5]
    assert all(isinstance(a, RateLimited) for a in answers[5:])
    assert seconds < 1.0 + 5.0  # refused without waiting out the token


def test_the_default_limits_serve_two_largest_batches_in_one_burst() -> None:
    # the contract's largest batch is 256 rows: a validator asking a node for two of them at
    # once must not meet the policer (the old default burst of 100 cut a 128-row batch)
    limits = ServeLimits()
    assert limits.peer_burst >= 2 * 256
    assert limits.total_burst >= limits.peer_burst
    assert limits.sequence_wait > 0
