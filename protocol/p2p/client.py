"""The requesting side of ``/synod/result/1.0.0``: fetch bytes by digest, verified, with a deadline.

:func:`fetch_result` dials the peer's multiaddr (``/ip4/.../tcp/.../p2p/<peer id>``, as
registered on chain) if not connected, opens a stream, sends one request and reads the answer
under one ``trio.fail_after``; the bytes are returned only if keccak256 of them is the digest.
:func:`fetch_results` asks one peer for many digests over one stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.peerinfo import InvalidAddrError, PeerInfo, info_from_p2p_addr
from pydantic import BaseModel, ConfigDict, Field

from protocol.canonical import keccak256
from protocol.chain.signer import Signer
from protocol.log import get_logger
from protocol.p2p.auth import sign_fetch
from protocol.p2p.errors import (
    AccessDenied,
    DigestMismatch,
    FetchError,
    FrameError,
    NotFound,
    PeerProtocolError,
    PeerUnreachable,
    RateLimited,
    Timeout,
    TooLarge,
)
from protocol.p2p.wire import (
    MAX_CONTROL_FRAME,
    PROTOCOL_ID,
    FetchRequest,
    FrameReader,
    Status,
    decode_response,
    encode_message,
)

log = get_logger(__name__)

_REFUSALS: dict[Status, type[FetchError]] = {
    Status.NOT_FOUND: NotFound,
    Status.DENIED: AccessDenied,
    Status.RATE_LIMITED: RateLimited,
    Status.TOO_LARGE: TooLarge,
    Status.BAD_REQUEST: PeerProtocolError,
    Status.UNAVAILABLE: PeerUnreachable,
}


def peer_info(address: str) -> PeerInfo:
    """Parse a multiaddr that ends in ``/p2p/<peer id>``; raises :class:`PeerUnreachable`."""
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(address))
    except (InvalidAddrError, ValueError) as exc:
        raise PeerUnreachable(f"not a dialable /p2p/ multiaddr: {address!r} ({exc})") from None


async def _open(host: IHost, peer: PeerInfo) -> INetStream:
    try:
        await host.connect(peer)
        return await host.new_stream(peer.peer_id, [PROTOCOL_ID])
    except (trio.Cancelled, KeyboardInterrupt):
        raise
    except Exception as exc:  # py-libp2p raises many unrelated types for a failed dial
        raise PeerUnreachable(f"{peer.peer_id}: {type(exc).__name__}: {exc}") from None


async def _exchange(stream: INetStream, digest: bytes, max_size: int, auth: str | None) -> bytes:
    await stream.write(encode_message(FetchRequest.for_digest(digest, auth)))
    return await _answer(FrameReader(stream), digest, max_size)


async def _answer(reader: FrameReader, digest: bytes, max_size: int) -> bytes:
    """Read one answer (header, then the result frame if ok) and verify it against ``digest``."""
    try:
        header = decode_response(await reader.frame(MAX_CONTROL_FRAME))
    except FrameError as exc:
        raise PeerProtocolError(f"bad response header: {exc}") from None
    if header.status is not Status.OK:
        raise _REFUSALS[header.status](f"peer answered {header.status.value}: {header.reason}")
    if header.size > max_size:
        raise TooLarge(f"result of {header.size} bytes exceeds the cap of {max_size}")
    try:
        data = await reader.frame(header.size)
    except FrameError as exc:
        raise PeerProtocolError(f"bad result frame: {exc}") from None
    if len(data) != header.size:
        raise PeerProtocolError(f"announced {header.size} bytes, sent {len(data)}")
    if keccak256(data) != digest:
        raise DigestMismatch(f"received {len(data)} bytes hashing to 0x{keccak256(data).hex()}")
    return data


class FetchLimits(BaseModel):
    """The deadline and size cap of one fetch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline: float = Field(default=30.0, gt=0)
    """Seconds for the whole fetch: dial, stream, request and answer."""
    max_size: int = Field(default=16 * 1024 * 1024, ge=0)
    """Largest result accepted, in bytes."""


async def fetch_result(
    host: IHost, address: str, digest: bytes, limits: FetchLimits, signer: Signer | None = None
) -> bytes:
    """The bytes whose keccak256 is ``digest``, from the peer at multiaddr ``address``.

    With a ``signer`` the request carries its signature (:mod:`protocol.p2p.auth`), so the server's
    access rule can admit that account (a committee member, the job's requester).

    Everything happens within ``limits.deadline`` seconds. Raises a :class:`FetchError`:
    :class:`NotFound`, :class:`AccessDenied`, :class:`RateLimited`, :class:`TooLarge` (above
    ``limits.max_size`` bytes), :class:`DigestMismatch`, :class:`Timeout`,
    :class:`PeerUnreachable` or :class:`PeerProtocolError`.
    """
    timeout, max_size = limits.deadline, limits.max_size
    info = peer_info(address)
    auth = sign_fetch(signer, str(host.get_id()), digest) if signer is not None else None
    stream: INetStream | None = None
    finished = False
    try:
        with trio.fail_after(timeout):
            stream = await _open(host, info)
            data = await _exchange(stream, digest, max_size, auth)
            await stream.close()
            finished = True
    except trio.TooSlowError:
        raise Timeout(f"fetch of 0x{bytes(digest).hex()} from {info.peer_id} took over {timeout}s") from None
    except StreamError as exc:
        raise PeerProtocolError(f"stream to {info.peer_id} failed: {type(exc).__name__}") from None
    except FetchError as exc:
        log.warning(
            "p2p_fetch_failed", peer=str(info.peer_id), digest=bytes(digest), error=type(exc).__name__
        )
        raise
    finally:
        if stream is not None and not finished:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0), suppress(StreamError):
                await stream.reset()
    log.debug("p2p_fetched", peer=str(info.peer_id), digest=bytes(digest), size=len(data))
    return data


async def fetch_results(
    host: IHost,
    address: str,
    digests: Sequence[bytes],
    limits: FetchLimits,
    signer: Signer | None = None,
) -> list[bytes | FetchError]:
    """Fetch many digests from one peer over ONE stream (the wire module's request sequence, the
    requests pipelined): for each digest, in order, its verified bytes or the :class:`FetchError`
    it got.

    A refusal (not found, denied) or a digest mismatch answers that digest only; when the stream
    itself fails (closed, reset, rate limited, a result above ``limits.max_size``) the digests
    not answered yet get that error, as they do when ``limits.deadline`` (seconds, for the whole
    sequence) runs out. Never raises a :class:`FetchError`. With a ``signer`` only the FIRST request
    is signed (as :func:`fetch_result`'s): the server makes the stream's later requests as that
    account (stream-scoped authentication, :mod:`protocol.p2p.auth`).
    """
    out: list[bytes | FetchError] = []
    if not digests:
        return out
    info = peer_info(address)
    stream: INetStream | None = None
    finished = False
    reason: FetchError | None = None
    # only the first request is signed: the server binds its account to the whole stream
    # (protocol.p2p.auth); every request written at once (pipelined): the server, which answers
    # them in turn, never waits for the next one, and the sequence costs one round trip, not one each
    first = sign_fetch(signer, str(host.get_id()), digests[0]) if signer is not None else None
    requests = b"".join(
        encode_message(FetchRequest.for_digest(d, first if i == 0 else None)) for i, d in enumerate(digests)
    )
    try:
        with trio.fail_after(limits.deadline):
            stream = await _open(host, info)
            await stream.write(requests)
            reader = FrameReader(stream)
            for digest in digests:
                try:
                    out.append(await _answer(reader, digest, limits.max_size))
                except (NotFound, AccessDenied, DigestMismatch) as exc:
                    out.append(exc)  # the answer was read whole: the stream is still in step
            await stream.close()
            finished = True
    except trio.TooSlowError:
        reason = Timeout(f"fetch of {len(digests)} digests from {info.peer_id} took over {limits.deadline}s")
    except StreamError as exc:
        reason = PeerProtocolError(f"stream to {info.peer_id} failed: {type(exc).__name__}")
    except FetchError as exc:
        reason = exc
    finally:
        if stream is not None and not finished:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0), suppress(StreamError):
                await stream.reset()
    if reason is not None:
        log.warning(
            "p2p_fetch_many_failed",
            peer=str(info.peer_id),
            answered=len(out),
            of=len(digests),
            error=type(reason).__name__,
        )
        out.extend(reason for _ in range(len(digests) - len(out)))
    return out
