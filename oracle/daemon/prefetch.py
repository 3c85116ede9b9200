"""Fetch a batch's results one stream per node before the per-result fetches.

A validator needs every revealed (seat, row) result of a batch: ``rows x seats`` fetches. Over
``/synod/result/1.0.0`` each of them used to open its own stream (a multistream negotiation, a
signature check and an access check per result: 96 streams for a 32-row batch with k = 3, which a
loaded node answered slowly or not at all). :func:`prefetch` asks each revealed node for all its
digests over ONE stream (:meth:`protocol.p2p.host.P2pHost.fetch_many`), the nodes concurrently;
what it got is handed to the per-result fetch of :func:`oracle.daemon.work.fetch_all`, which
fetches only what is still missing (so a node that failed the sequence is retried digest by
digest, with the per-result errors in the record). The bytes are checked against the digest by
the client, and again as envelopes by :func:`oracle.daemon.work.check_envelope`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from oracle.daemon.work import BatchWork
from protocol.log import get_logger
from protocol.p2p.errors import FetchError

log = get_logger(__name__)

FetchMany = Callable[[str, Sequence[bytes], float], Awaitable[list[bytes | FetchError]]]
"""``await fetch_many(multiaddr, digests, deadline_s)``: one result or error per digest."""


async def prefetch(work: BatchWork, fetch_many: FetchMany, deadline: float) -> dict[tuple[str, bytes], bytes]:
    """``{(multiaddr, digest): bytes}`` of every result the revealed nodes served within
    ``deadline`` seconds (one sequence per node, all nodes at once). Never raises for what a
    peer does: a failed or slow node just leaves its digests out."""
    got: dict[tuple[str, bytes], bytes] = {}
    started = trio.current_time()

    async def one(address: str, digests: list[bytes]) -> None:
        answers = await fetch_many(address, digests, deadline)
        for digest, answer in zip(digests, answers, strict=True):
            if isinstance(answer, bytes):
                got[(address, digest)] = answer

    wanted: dict[str, list[bytes]] = {}
    for seat in work.revealed:
        queue = wanted.setdefault(seat.address, [])
        queue.extend(d for d in dict.fromkeys(bytes(x) for x in seat.digests) if d not in queue)
    with trio.move_on_after(deadline + 1.0):
        async with trio.open_nursery() as nursery:
            for address, digests in wanted.items():
                nursery.start_soon(one, address, digests)
    log.info(
        "batch_prefetched",
        batch=work.batch_id,
        results=len(got),
        nodes=len(wanted),
        seconds=round(trio.current_time() - started, 2),
    )
    return got
