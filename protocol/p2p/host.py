"""A py-libp2p host (trio) with a persistent identity that serves and fetches results.

::

    async with open_p2p_host(settings, lookup=store.get_result, access=rule) as p2p:
        await registry.register(..., multiaddr=p2p.multiaddr)   # what goes on chain
        data = await p2p.fetch(other_multiaddr, digest)

The host runs inside ``host.run`` (py-libp2p's own service nursery) for the life of the
``async with``; leaving it stops the listener and closes every connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TSecurityOptions
from libp2p.network.config import ConnectionConfig
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress

from protocol.chain.signer import Signer
from protocol.log import get_logger
from protocol.p2p.client import FetchLimits, fetch_result, fetch_results
from protocol.p2p.errors import FetchError, P2pError
from protocol.p2p.identity import load_or_create_identity
from protocol.p2p.server import AccessRule, ResultLookup, ResultServer, ServeLimits, allow_all
from protocol.p2p.wire import PROTOCOL_ID

log = get_logger(__name__)

_CLOSE_TIMEOUT = 5.0
"""Seconds allowed for closing connections when the host stops."""


class P2pSettings(BaseModel):
    """Where the host listens, who it is, and the limits of serving and fetching."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identity_file: Path
    """The peer key file (created 0600 on first start; keep it: the peer id derives from it)."""
    listen_host: IPvAnyAddress = IPv4Address("127.0.0.1")
    listen_port: int = Field(default=0, ge=0, le=65535)
    """0 picks a free port; :attr:`P2pHost.multiaddr` reports the real one."""
    fetch_timeout: float = Field(default=30.0, gt=0)
    """Seconds for one whole fetch (dial, request, answer)."""
    max_fetch_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    """Largest result this host accepts from a peer."""
    handshake_timeout: float = Field(default=10.0, ge=1.0, le=120.0)
    """Seconds an inbound connection has for its security and muxer handshake, and a stream for
    its protocol negotiation (whole seconds for the latter: py-libp2p truncates it)."""
    limits: ServeLimits = Field(default_factory=ServeLimits)


@dataclass(frozen=True)
class P2pHost:
    """A running host: ``multiaddr`` is ``/ip4/<host>/tcp/<port>/p2p/<peer id>``."""

    host: IHost
    peer_id: str
    multiaddr: str
    settings: P2pSettings
    server: ResultServer | None

    async def fetch(
        self,
        address: str,
        digest: bytes,
        limits: FetchLimits | None = None,
        signer: Signer | None = None,
    ) -> bytes:
        """:func:`~protocol.p2p.client.fetch_result`; ``limits`` default to the settings'; with a
        ``signer`` the request is signed as that account (:mod:`protocol.p2p.auth`)."""
        default = FetchLimits(deadline=self.settings.fetch_timeout, max_size=self.settings.max_fetch_bytes)
        return await fetch_result(self.host, address, digest, limits or default, signer)

    async def fetch_many(
        self,
        address: str,
        digests: Sequence[bytes],
        deadline: float,
        signer: Signer | None = None,
    ) -> list[bytes | FetchError]:
        """:func:`~protocol.p2p.client.fetch_results`: many digests from one peer over one stream,
        within ``deadline`` seconds in all; the size cap is the settings'."""
        limits = FetchLimits(deadline=deadline, max_size=self.settings.max_fetch_bytes)
        return await fetch_results(self.host, address, digests, limits, signer)


async def _disconnect_all(host: IHost) -> None:
    """Close every connection: py-libp2p's service shutdown leaves outbound sockets open."""
    for peer in host.get_connected_peers():
        try:
            await host.disconnect(peer)
        except Exception as exc:  # best effort on the way out; py-libp2p raises assorted types
            log.debug("p2p_disconnect_failed", peer=str(peer), error=type(exc).__name__)


def _listen_addr(settings: P2pSettings) -> multiaddr.Multiaddr:
    family = "ip4" if settings.listen_host.version == 4 else "ip6"
    return multiaddr.Multiaddr(f"/{family}/{settings.listen_host}/tcp/{settings.listen_port}")


def authenticated_security(key_pair: KeyPair) -> TSecurityOptions:
    """The connection security Synod hosts accept: Noise only (the libp2p handshake go-libp2p
    and rust-libp2p default to), which proves the remote holds its identity key.

    py-libp2p's ``new_host`` also offers ``/plaintext/2.0.0`` by default, whose exchange takes the
    remote's word for its public key: any peer could then claim any peer id, pass an access rule
    keyed on peer ids, and replay a fetch signature made for another peer (:mod:`protocol.p2p.auth`).
    """
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    return {NOISE_PROTOCOL_ID: noise}


@asynccontextmanager
async def open_p2p_host(
    settings: P2pSettings,
    *,
    lookup: ResultLookup | None = None,
    access: AccessRule = allow_all,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[P2pHost]:
    """Start a host listening on ``settings.listen_host``; serve results if ``lookup`` is given
    (counted in ``registry`` if one is given, see :class:`ResultServer`).

    Raises :class:`~protocol.p2p.errors.IdentityError` for an unusable key file and
    :class:`P2pError` if the host cannot listen.
    """
    key_pair = await trio.to_thread.run_sync(load_or_create_identity, settings.identity_file)
    listen = _listen_addr(settings)
    limits = ConnectionConfig(
        inbound_upgrade_timeout=settings.handshake_timeout,
        inbound_stream_protocol_negotiation_timeout=settings.handshake_timeout,
        outbound_stream_protocol_negotiation_timeout=settings.handshake_timeout,
    )
    host = new_host(
        key_pair=key_pair,
        listen_addrs=[listen],
        connection_config=limits,
        sec_opt=authenticated_security(key_pair),
    )
    server = ResultServer(lookup, access, settings.limits, registry=registry) if lookup is not None else None
    if server is not None:
        host.set_stream_handler(PROTOCOL_ID, server.handle)
    async with host.run(listen_addrs=[listen]):
        # Synod dials peers on demand; py-libp2p's auto-connector would keep re-dialing every
        # peer in the peerstore to hold a floor of 50 connections. Stop it.
        connector = getattr(host.get_network(), "auto_connector", None)
        if connector is not None:
            await connector.stop()
        addrs = [str(a) for a in host.get_addrs()]
        wanted = f"/{listen.protocols()[0].name}/{settings.listen_host}/tcp/"
        chosen = next((a for a in addrs if a.startswith(wanted)), None)
        if chosen is None:
            raise P2pError(f"host did not report a listen address on {listen}: {addrs}")
        peer_id = str(host.get_id())
        log.info("p2p_listening", multiaddr=chosen, serving=server is not None)
        try:
            yield P2pHost(host=host, peer_id=peer_id, multiaddr=chosen, settings=settings, server=server)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                await _disconnect_all(host)
    log.info("p2p_stopped", peer_id=peer_id)
