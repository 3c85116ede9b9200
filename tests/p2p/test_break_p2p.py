"""Break-it review of the result server: refusals that must still cost the asking peer its tokens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from protocol.canonical import canonical_bytes, digest
from protocol.p2p import P2pHost, PeerProtocolError, RateLimited, ServeLimits
from protocol.p2p.client import _exchange as client_exchange
from protocol.p2p.client import _open as client_open
from protocol.p2p.client import peer_info
from tests.p2p.helpers import dict_lookup, host

pytestmark = pytest.mark.integration

RESULT = {"task": 1, "text": "x"}
DATA = canonical_bytes(RESULT)
KEY = digest(RESULT)


async def _ask(src: P2pHost, address: str, auth: str) -> str:
    stream = await client_open(src.host, peer_info(address))
    try:
        await client_exchange(stream, KEY, 1 << 20, auth)
    except RateLimited:
        return "rate_limited"
    except PeerProtocolError as exc:
        assert "bad_auth" in str(exc)
        return "bad_auth"
    finally:
        await stream.close()
    return "ok"


def test_unrecoverable_signatures_are_rate_limited_like_any_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Signature recovery (an ecrecover per request) ran before the peer's token bucket, so a peer
    # sending bad signatures was never throttled: unbounded CPU and warning logs for free.
    caplog.set_level(logging.ERROR, logger="protocol.p2p.server")
    limits = ServeLimits(peer_rate=0.001, peer_burst=3)
    answers: list[str] = []

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup({KEY: DATA}), limits=limits) as srv,
            host(tmp_path, "evil") as evil,
        ):
            for _ in range(6):
                answers.append(await _ask(evil, srv.multiaddr, "0x" + "00" * 65))
            assert srv.server is not None
            assert srv.server.refused == {"bad_auth": 3, "rate_limited": 3}

    trio.run(main)
    assert answers == ["bad_auth"] * 3 + ["rate_limited"] * 3
