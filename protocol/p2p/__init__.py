"""P2p result exchange: a py-libp2p host serving result bytes by digest (``/synod/result/1.0.0``).

:func:`open_p2p_host` / :class:`P2pHost` (host, identity, multiaddr), :class:`ResultServer` and
:class:`ServeLimits` (serving rules), :func:`fetch_result` and :class:`FetchLimits` (the client),
the wire format in :mod:`protocol.p2p.wire` and the errors in :mod:`protocol.p2p.errors`.
"""

from protocol.p2p.client import FetchLimits, fetch_result
from protocol.p2p.errors import (
    AccessDenied,
    DigestMismatch,
    FetchError,
    IdentityError,
    NotFound,
    P2pError,
    PeerProtocolError,
    PeerUnreachable,
    RateLimited,
    Timeout,
    TooLarge,
)
from protocol.p2p.host import P2pHost, P2pSettings, open_p2p_host
from protocol.p2p.server import AccessRule, ResultLookup, ResultServer, ServeLimits, allow_all
from protocol.p2p.wire import PROTOCOL_ID

__all__ = [
    "PROTOCOL_ID",
    "AccessDenied",
    "AccessRule",
    "DigestMismatch",
    "FetchError",
    "FetchLimits",
    "IdentityError",
    "NotFound",
    "P2pError",
    "P2pHost",
    "P2pSettings",
    "PeerProtocolError",
    "PeerUnreachable",
    "RateLimited",
    "ResultLookup",
    "ResultServer",
    "ServeLimits",
    "Timeout",
    "TooLarge",
    "allow_all",
    "fetch_result",
    "open_p2p_host",
]
