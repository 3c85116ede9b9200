"""Helpers of the p2p tests: real hosts on 127.0.0.1 and raw protocol streams for hostile peers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from libp2p.abc import INetStream
from prometheus_client import CollectorRegistry

from protocol.canonical import Digest
from protocol.p2p import P2pHost, P2pSettings, ServeLimits, open_p2p_host
from protocol.p2p.client import peer_info
from protocol.p2p.server import AccessRule, ResultLookup, allow_all
from protocol.p2p.wire import PROTOCOL_ID


def dict_lookup(results: dict[bytes, bytes]) -> ResultLookup:
    async def lookup(digest: Digest) -> bytes | None:
        return results.get(bytes(digest))

    return lookup


@asynccontextmanager
async def host(
    tmp_path: Path,
    name: str,
    *,
    lookup: ResultLookup | None = None,
    access: AccessRule = allow_all,
    limits: ServeLimits | None = None,
    fetch_timeout: float = 20.0,
    handshake_timeout: float = 10.0,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[P2pHost]:
    settings = P2pSettings(
        identity_file=tmp_path / f"{name}.key",
        limits=limits or ServeLimits(),
        fetch_timeout=fetch_timeout,
        handshake_timeout=handshake_timeout,
    )
    async with open_p2p_host(settings, lookup=lookup, access=access, registry=registry) as running:
        yield running


async def raw_stream(client: P2pHost, server: P2pHost) -> INetStream:
    """A negotiated ``/synod/result/1.0.0`` stream from ``client`` to ``server``, for hostile bytes."""
    info = peer_info(server.multiaddr)
    await client.host.connect(info)
    return await client.host.new_stream(info.peer_id, [PROTOCOL_ID])


def identity_path(tmp_path: Path, name: str) -> Path:
    return tmp_path / f"{name}.key"
