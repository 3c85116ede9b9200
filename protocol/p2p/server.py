"""The serving side of ``/synod/result/1.0.0``: bytes by digest, to whoever the access rule admits.

Per stream, in order, each step bounded:

1. the request frame must arrive within ``request_timeout`` (a half-sent request cannot hold a
   stream) and fit ``MAX_CONTROL_FRAME`` (the length is checked before the body is read);
2. it must parse as a :class:`~protocol.p2p.wire.FetchRequest` (garbage is refused);
3. the peer's token bucket (``peer_rate`` per second, ``peer_burst`` deep) must hold a token, and
   its queue of waiting streams must be shorter than ``peer_queue``, else ``rate_limited``; then
   the server's own bucket (``total_rate``, ``total_burst``) must hold one, else ``busy`` (answered
   ``rate_limited``). Peer ids cost nothing to make, so per-peer limits alone let a flood from fresh
   ids through in full; the server-wide bucket bounds the work (signature recovery, access rules
   that may read the chain) whatever the number of ids. A stream's LATER requests (a pipelined
   sequence, after its first request was admitted) are shaped instead of policed: when a bucket
   is empty the server waits for its next token, at most ``sequence_wait`` seconds, and only then
   refuses. A committee member fetching a whole batch over one stream (up to 256 rows) is slowed
   to the buckets' rates, not cut off mid-sequence (which cost it every digest after the refusal
   and a per-digest retry each, again throttled); the waits are bounded by the peer's streams
   (``peer_concurrency`` + ``peer_queue``), so shaping gives a flood no extra throughput;
4. at most ``peer_concurrency`` streams of one peer and ``total_concurrency`` overall are served
   at once, the rest wait in their queue (a signed request's signature is recovered only after
   its token is taken, so bad signatures are throttled like any request). Authentication is
   stream-scoped (:mod:`protocol.p2p.auth`): the account recovered from the stream's FIRST request
   is bound to the stream, and its later requests without ``auth`` are made as that account; a
   later request WITH ``auth`` is recovered on its own and stands for that request only (the
   stream keeps its first account), so no request can change what the stream's other requests
   are entitled to. A stream whose first request is unsigned has no account;
5. the caller's access rule decides, then the caller's lookup finds the bytes; the answer must be
   written within ``response_timeout``.

Every refusal is logged as ``p2p_refused peer=... reason=...``; a peer's misbehaviour only ever
ends its own stream. Token buckets after the classic network-policer design (RFC 2697's single
rate; the shaping of sequences after the traffic shaper of RFC 2475, section 2.3.3.3); per-peer
state is kept for the ``max_tracked_peers`` most recent peers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import islice

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamError
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field

from protocol.canonical import Digest
from protocol.errors import SynodError
from protocol.log import get_logger
from protocol.p2p.auth import FetchAuthError, recover_fetch_signer
from protocol.p2p.errors import FrameError
from protocol.p2p.wire import (
    MAX_CONTROL_FRAME,
    FetchResponse,
    FrameReader,
    Status,
    decode_request,
    encode_message,
    write_frame,
)
from protocol.types import Address

log = get_logger(__name__)

ResultLookup = Callable[[Digest], Awaitable[bytes | None]]
"""``await lookup(digest)`` -> the bytes stored under ``digest``, or ``None``."""

AccessRule = Callable[[str, Digest, Address | None], Awaitable[bool]]
"""``await allowed(peer_id, digest, account)`` -> whether peer ``peer_id`` (base58) may have ``digest``;
``account`` is the Ethereum address that signed the request (:mod:`protocol.p2p.auth`), or ``None``."""


async def allow_all(peer_id: str, digest: Digest, account: Address | None) -> bool:
    """An access rule that admits everyone (results are public once revealed)."""
    return True


class ServeLimits(BaseModel):
    """The server's limits; the defaults suit one daemon serving a committee."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_result_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    """Largest result served, in bytes (a larger stored one is answered ``too_large``)."""
    request_timeout: float = Field(default=5.0, gt=0)
    """Seconds a requester has to deliver its whole request frame."""
    response_timeout: float = Field(default=30.0, gt=0)
    """Seconds to decide and write one answer, including the wait in the peer's queue."""
    peer_rate: float = Field(default=200.0, gt=0)
    """Requests per second one peer may make, on average (a validator of a devnet bench asks one
    node for up to 3,000 results of a 1,000-task job within about a minute)."""
    peer_burst: int = Field(default=512, ge=1)
    """Requests one peer may make at once after being idle (the bucket's depth: two whole batches
    of the contract's largest size, 256 rows)."""
    peer_concurrency: int = Field(default=8, ge=1)
    """Streams of one peer served at the same time."""
    peer_queue: int = Field(default=256, ge=0)
    """Streams of one peer allowed to wait for a serving slot; beyond that, ``rate_limited``."""
    total_concurrency: int = Field(default=64, ge=1)
    """Streams served at the same time over all peers."""
    total_rate: float = Field(default=500.0, gt=0)
    """Requests per second the server accepts over all peers, on average."""
    total_burst: int = Field(default=1000, ge=1)
    """Requests the server accepts at once over all peers after being idle."""
    max_tracked_peers: int = Field(default=10_000, ge=1)
    sequence_wait: float = Field(default=5.0, ge=0)
    """Seconds a later request of a stream may wait for a token before it is refused (0: police
    sequences like first requests)."""


@dataclass
class _Bucket:
    """A token bucket: ``rate`` tokens per second up to ``burst`` (RFC 2697's single rate)."""

    rate: float
    burst: int
    tokens: float
    updated: float | None = None
    """The clock's time at the last call; ``None`` before the first (a full bucket)."""

    def take(self, now: float) -> bool:
        """Refill for the time since the last call, then take one token if there is one."""
        elapsed = 0.0 if self.updated is None else now - self.updated
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def due(self) -> float:
        """Seconds from the last call until the bucket holds one whole token (0 when it does)."""
        return max(0.0, (1.0 - self.tokens) / self.rate)


@dataclass
class _StreamAccount:
    """The account bound to one stream: recovered from its first request's signature (``None``
    when that request was unsigned)."""

    account: Address | None = None


@dataclass
class _Peer:
    bucket: _Bucket
    slots: trio.Semaphore
    waiting: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class ResultServer:
    """Serves ``/synod/result/1.0.0``; register :meth:`handle` as the protocol's stream handler.

    ``lookup`` and ``access`` are the caller's (the journal's results and, e.g., "only this
    batch's committee after reveal"). ``clock`` is trio's by default (a seam for tests). With a
    ``registry`` (:func:`protocol.metrics.new_registry`) it counts ``synod_p2p_served_total``,
    ``synod_p2p_served_bytes_total`` and ``synod_p2p_refused_total{reason}``.
    """

    def __init__(
        self,
        lookup: ResultLookup,
        access: AccessRule = allow_all,
        limits: ServeLimits | None = None,
        clock: Callable[[], float] = trio.current_time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._lookup = lookup
        self._access = access
        self.limits = limits or ServeLimits()
        self._clock = clock
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._slots = trio.Semaphore(self.limits.total_concurrency)
        limits = self.limits
        self._bucket = _Bucket(limits.total_rate, limits.total_burst, float(limits.total_burst))
        self.served = 0
        self.refused: dict[str, int] = {}
        self._served_total: Counter | None = None
        self._bytes_total: Counter | None = None
        self._refused_total: Counter | None = None
        if registry is not None:
            self._served_total = Counter("synod_p2p_served", "results served", registry=registry)
            self._bytes_total = Counter("synod_p2p_served_bytes", "result bytes served", registry=registry)
            self._refused_total = Counter(
                "synod_p2p_refused", "requests refused, by reason", ["reason"], registry=registry
            )

    def _peer(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            limits = self.limits
            peer = _Peer(
                bucket=_Bucket(limits.peer_rate, limits.peer_burst, float(limits.peer_burst), self._clock()),
                slots=trio.Semaphore(limits.peer_concurrency),
            )
            self._peers[peer_id] = peer
            if len(self._peers) > self.limits.max_tracked_peers:
                # forget the least recent idle peers; never one with streams in flight (stopping at
                # the first busy one let a single slow stream pin the table: it grew without bound)
                excess = len(self._peers) - self.limits.max_tracked_peers
                idle = list(
                    islice((k for k, v in self._peers.items() if not v.waiting and k != peer_id), excess)
                )
                for key in idle:
                    del self._peers[key]
        self._peers.move_to_end(peer_id)
        return peer

    def _refuse(self, peer_id: str, reason: str, **fields: object) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        if self._refused_total is not None:
            self._refused_total.labels(reason=reason).inc()
        log.warning("p2p_refused", peer=peer_id, reason=reason, **fields)

    async def _answer(self, stream: INetStream, status: Status, reason: str = "") -> None:
        await stream.write(encode_message(FetchResponse(status=status, reason=reason)))

    async def handle(self, stream: INetStream) -> None:
        """Serve one stream; never raises for anything the remote peer does.

        An error of the caller's lookup or access rule (a :class:`SynodError`) is logged and
        answered ``unavailable``; any other error is logged and ends this stream only.
        """
        peer_id = str(stream.muxed_conn.peer_id)
        try:
            await self._serve(stream, peer_id)
        except StreamError as exc:
            self._refuse(peer_id, "stream_error", detail=type(exc).__name__)
            await _reset(stream)
        except trio.TooSlowError:
            self._refuse(peer_id, "response_timeout", timeout=self.limits.response_timeout)
            await _reset(stream)
        except Exception as exc:
            # The handler boundary: py-libp2p runs handlers in the connection's nursery, where an
            # escaping error would tear down the connection. Log it and drop this stream only.
            log.error("p2p_handler_failed", peer=peer_id, error=type(exc).__name__, detail=str(exc))
            await _reset(stream)

    async def _serve(self, stream: INetStream, peer_id: str) -> None:
        """Answer the stream's requests in turn (the wire module's sequence) until the requester
        closes its side or waits longer than ``request_timeout`` between two requests; every
        request passes the rate limit, the queue bound and the access rule on its own."""
        reader = FrameReader(stream)
        bound = _StreamAccount()
        if not await self._serve_one(stream, reader, peer_id, bound):
            return
        while True:
            with trio.move_on_after(self.limits.request_timeout) as idle:
                ended = await reader.at_eof()
            if idle.cancelled_caught or ended:
                await _close(stream)
                return
            if not await self._serve_one(stream, reader, peer_id, bound, sequel=True):
                return

    async def _shaped(self, bucket: _Bucket, peer: _Peer) -> bool:
        """Take a token from ``bucket``, waiting for it up to ``sequence_wait`` seconds in all; a
        waiting stream counts among the peer's waiting ones (the ``peer_queue`` bound)."""
        deadline = self._clock() + self.limits.sequence_wait
        while not bucket.take(self._clock()):
            wait = bucket.due()
            if self._clock() + wait > deadline:
                return False
            peer.waiting += 1
            try:
                await trio.sleep(wait)
            finally:
                peer.waiting -= 1
        return True

    async def _serve_one(
        self,
        stream: INetStream,
        reader: FrameReader,
        peer_id: str,
        bound: _StreamAccount,
        sequel: bool = False,
    ) -> bool:
        """One request and its answer; False when the stream was closed or reset after it.
        ``bound``: the stream's account (set by its first request); ``sequel``: a later request of
        the stream, whose empty buckets are waited for (shaped) and which inherits ``bound``."""
        try:
            with trio.fail_after(self.limits.request_timeout):
                request = decode_request(await reader.frame(MAX_CONTROL_FRAME))
        except trio.TooSlowError:
            self._refuse(peer_id, "request_timeout", timeout=self.limits.request_timeout)
            await _reset(stream)
            return False
        except FrameError as exc:
            self._refuse(peer_id, exc.reason, detail=str(exc))
            if exc.reason == "truncated":
                await _reset(stream)
            else:
                await self._answer(stream, Status.BAD_REQUEST, exc.reason)
                await _close(stream)
            return False
        digest = request.digest_bytes()
        peer = self._peer(peer_id)
        if not (await self._shaped(peer.bucket, peer) if sequel else peer.bucket.take(self._clock())):
            self._refuse(peer_id, "rate_limited", digest=digest)
            await self._answer(stream, Status.RATE_LIMITED, "rate limit")
            await _close(stream)
            return False
        if peer.waiting >= self.limits.peer_queue + self.limits.peer_concurrency:
            self._refuse(peer_id, "queue_full", digest=digest, waiting=peer.waiting)
            await self._answer(stream, Status.RATE_LIMITED, "queue full")
            await _close(stream)
            return False
        if not (await self._shaped(self._bucket, peer) if sequel else self._bucket.take(self._clock())):
            self._refuse(peer_id, "busy", digest=digest)
            await self._answer(stream, Status.RATE_LIMITED, "server busy")
            await _close(stream)
            return False
        # after the token: a signature recovery costs CPU, so bad ones must be throttled too
        account = bound.account
        if request.auth is not None:
            try:
                account = recover_fetch_signer(request.auth, peer_id, digest)
            except FetchAuthError as exc:
                self._refuse(peer_id, "bad_auth", detail=str(exc))
                await self._answer(stream, Status.BAD_REQUEST, "bad_auth")
                await _close(stream)
                return False
            if not sequel:
                bound.account = account
        peer.waiting += 1
        try:
            with trio.fail_after(self.limits.response_timeout):
                async with peer.slots, self._slots:
                    await self._respond(stream, peer_id, digest, account)
        finally:
            peer.waiting -= 1
        return True

    async def _respond(
        self, stream: INetStream, peer_id: str, digest: Digest, account: Address | None
    ) -> None:
        try:
            allowed = await self._access(peer_id, digest, account)
            data = await self._lookup(digest) if allowed else None
        except SynodError as exc:
            log.error("p2p_lookup_failed", peer=peer_id, digest=digest, error=str(exc))
            await self._answer(stream, Status.UNAVAILABLE, "lookup failed")
            return
        if not allowed:
            self._refuse(peer_id, "denied", digest=digest, account=account)
            await self._answer(stream, Status.DENIED, "access rule")
            return
        if data is None:
            self._refuse(peer_id, "not_found", digest=digest)
            await self._answer(stream, Status.NOT_FOUND)
            return
        if len(data) > self.limits.max_result_bytes:
            self._refuse(peer_id, "too_large", digest=digest, size=len(data))
            await self._answer(stream, Status.TOO_LARGE, f"{len(data)} bytes")
            return
        await write_frame(
            stream, data, before=encode_message(FetchResponse(status=Status.OK, size=len(data)))
        )
        self.served += 1
        if self._served_total is not None and self._bytes_total is not None:
            self._served_total.inc()
            self._bytes_total.inc(len(data))
        log.debug("p2p_served", peer=peer_id, digest=digest, size=len(data))


async def _reset(stream: INetStream) -> None:
    with suppress(StreamError):
        await stream.reset()


async def _close(stream: INetStream) -> None:
    try:
        await stream.close()
    except StreamError:
        await _reset(stream)
