"""The wire format of ``/synod/result/1.0.0``: length-prefixed frames carrying pydantic messages.

A frame is an unsigned LEB128 varint length (the multiformats ``uvarint`` that libp2p uses for
its own length prefixes) followed by that many bytes; the reader checks the length against a cap
*before* reading the body, so an oversized frame costs the reader nothing.

One stream carries one exchange, or several in sequence (a requester fetching many digests from
one peer saves a stream negotiation per digest; the server answers each request in turn until the
requester closes its side)::

    requester -> server   frame(FetchRequest JSON)
    server -> requester   frame(FetchResponse JSON)  [frame(result bytes) if status == "ok"]
    (requester -> server  frame(FetchRequest JSON) ... again, or EOF)

The result bytes travel raw in their own frame (no base64), ``FetchResponse.size`` announces
their length, and the requester checks ``keccak256(bytes) == digest``.

``FetchRequest.auth`` is stream-scoped (:mod:`protocol.p2p.auth`): the first request's signature
names the account for the whole sequence; later requests may leave it out. Clients that sign
every request stay valid, so the protocol id is unchanged.
"""

from __future__ import annotations

import enum
from typing import Literal, Protocol

from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.utils.varint import encode_uvarint
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.canonical import Digest
from protocol.p2p.errors import FrameError

PROTOCOL_ID = TProtocol("/synod/result/1.0.0")
"""The libp2p protocol id of the result exchange."""

MAX_CONTROL_FRAME = 1024
"""Largest request or response header frame (JSON) either side accepts, in bytes."""

_MAX_VARINT_BYTES = 9
"""A length needs at most 9 uvarint bytes (63 bits); a longer prefix is garbage."""

_CHUNK = 64 * 1024

_READ = 64 * 1024
"""Bytes asked of the stream per read: a pipelined sequence's requests (about 100 bytes each) and
small answers arrive many to a read (libp2p returns what it has, up to this)."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class FetchRequest(_Message):
    """Ask for the bytes whose keccak256 is ``digest`` (0x-prefixed lowercase hex)."""

    v: Literal[1] = 1
    digest: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    auth: str | None = Field(default=None, pattern=r"^0x[0-9a-f]{130}$")
    """Optional EIP-191 signature naming the asking account (:mod:`protocol.p2p.auth`)."""

    @classmethod
    def for_digest(cls, digest: bytes, auth: str | None = None) -> FetchRequest:
        return cls(digest="0x" + bytes(digest).hex(), auth=auth)

    def digest_bytes(self) -> Digest:
        return Digest(bytes.fromhex(self.digest[2:]))


class Status(enum.StrEnum):
    """The server's answer to one request."""

    OK = "ok"
    NOT_FOUND = "not_found"
    DENIED = "denied"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    BAD_REQUEST = "bad_request"
    UNAVAILABLE = "unavailable"


class FetchResponse(_Message):
    """The header of an answer; ``size`` result bytes follow in one frame when ``status`` is ok."""

    v: Literal[1] = 1
    status: Status
    size: int = Field(default=0, ge=0)
    reason: str = Field(default="", max_length=200)


def encode_frame(payload: bytes) -> bytes:
    """``uvarint(len(payload)) + payload``."""
    return encode_uvarint(len(payload)) + payload


def encode_message(message: BaseModel) -> bytes:
    """A pydantic message as one frame of compact JSON."""
    return encode_frame(message.model_dump_json().encode())


class ByteStream(Protocol):
    """What the frame reader and writer need of a libp2p stream."""

    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


async def write_frame(stream: ByteStream, payload: bytes, before: bytes = b"") -> None:
    """Write ``before`` (e.g. an encoded header frame) and one frame of ``payload``, in writes of
    at most 64 KiB of payload (the muxer's flow control applies; small answers take one write)."""
    head = before + encode_uvarint(len(payload))
    await stream.write(head + payload[:_CHUNK])
    for start in range(_CHUNK, len(payload), _CHUNK):
        await stream.write(payload[start : start + _CHUNK])


class FrameReader:
    """Reads frames from one stream through a small buffer.

    :meth:`frame` raises :class:`FrameError` with reason ``too_large`` (the announced length is
    above the cap: nothing of the body is read), ``bad_length`` (not a varint) or ``truncated``
    (the stream ended mid-frame). Stream errors from libp2p propagate unchanged.
    """

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self, want: int) -> bool:
        try:
            data = await self._stream.read(max(want, _READ))
        except StreamEOF:
            return False
        if not data:
            return False
        self._buffer += data
        return True

    async def _length(self) -> int:
        value = shift = 0
        for index in range(_MAX_VARINT_BYTES):
            if index >= len(self._buffer) and not await self._fill(1):
                raise FrameError("truncated", "stream ended inside a length prefix")
            byte = self._buffer[index]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                del self._buffer[: index + 1]
                return value
        raise FrameError("bad_length", f"length prefix longer than {_MAX_VARINT_BYTES} bytes")

    async def at_eof(self) -> bool:
        """Whether the stream ended cleanly here (no byte of a further frame); waits for one."""
        return not self._buffer and not await self._fill(1)

    async def frame(self, max_length: int) -> bytes:
        """Read one frame of at most ``max_length`` payload bytes."""
        length = await self._length()
        if length > max_length:
            raise FrameError("too_large", f"frame of {length} bytes exceeds the cap of {max_length}")
        while len(self._buffer) < length:
            if not await self._fill(min(length - len(self._buffer), _CHUNK)):
                raise FrameError("truncated", f"stream ended after {len(self._buffer)} of {length} bytes")
        payload = bytes(self._buffer[:length])
        del self._buffer[:length]
        return payload


def decode_request(payload: bytes) -> FetchRequest:
    """Parse a request frame; raises :class:`FrameError` (``bad_message``)."""
    try:
        return FetchRequest.model_validate_json(payload)
    except ValidationError as exc:
        raise FrameError("bad_message", _summary(exc)) from None


def decode_response(payload: bytes) -> FetchResponse:
    """Parse a response header frame; raises :class:`FrameError` (``bad_message``)."""
    try:
        return FetchResponse.model_validate_json(payload)
    except ValidationError as exc:
        raise FrameError("bad_message", _summary(exc)) from None


def _summary(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}" for e in errors)[:200]
