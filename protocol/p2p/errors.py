"""Errors of the p2p result exchange (:mod:`protocol.p2p`).

Every one derives from :class:`~protocol.errors.SynodError`::

    SynodError
    └── P2pError                   the p2p layer could not do what was asked
        ├── IdentityError          the peer key file is unreadable, corrupt or readable by others
        ├── FrameError             a frame broke the wire rules (too long, truncated, not a message)
        └── FetchError             a fetch did not return verified bytes
            ├── NotFound           the peer has nothing under that digest
            ├── AccessDenied       the peer's access rule refused us
            ├── RateLimited        the peer is throttling us; retry later
            ├── TooLarge           the result is larger than our cap (or the peer's)
            ├── DigestMismatch     the bytes that arrived do not hash to the digest asked for
            ├── Timeout            no complete answer within the deadline (also a TimeoutError)
            ├── PeerUnreachable    no connection or stream to the peer
            └── PeerProtocolError  the peer answered something that is not the protocol
"""

from __future__ import annotations

from protocol.errors import SynodError


class P2pError(SynodError):
    """Root of the p2p errors."""


class IdentityError(P2pError):
    """The peer identity file cannot be used (the message names the file, never the key)."""


class FrameError(P2pError):
    """A frame that breaks the wire rules; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class FetchError(P2pError):
    """A fetch that did not return verified bytes."""


class NotFound(FetchError, LookupError):
    """The peer serves nothing under the requested digest."""


class AccessDenied(FetchError, PermissionError):
    """The peer's access rule refused this requester for this digest."""


class RateLimited(FetchError):
    """The peer refused the request because this requester exceeded its rate or queue."""


class TooLarge(FetchError):
    """The result exceeds the requester's size cap or the server's."""


class DigestMismatch(FetchError):
    """The bytes received do not hash (keccak256) to the requested digest."""


class Timeout(FetchError, TimeoutError):
    """The fetch did not complete within its deadline."""


class PeerUnreachable(FetchError):
    """No connection or protocol stream could be opened to the peer."""


class PeerProtocolError(FetchError):
    """The peer's answer is not a valid ``/synod/result/1.0.0`` message."""
