"""Break-it review of the result server: refusals that must still cost the asking peer its tokens."""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair, PublicKey
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

from protocol.canonical import Digest, canonical_bytes, digest
from protocol.chain.signer import anvil_dev_signer
from protocol.p2p import AccessDenied, P2pHost, PeerProtocolError, PeerUnreachable, RateLimited, ServeLimits
from protocol.p2p.auth import sign_fetch
from protocol.p2p.client import _exchange as client_exchange
from protocol.p2p.client import _open as client_open
from protocol.p2p.client import peer_info
from protocol.p2p.identity import load_or_create_identity
from protocol.p2p.server import ResultServer
from protocol.types import Address
from tests.p2p.helpers import dict_lookup, host, identity_path

pytestmark = pytest.mark.integration

RESULT = {"task": 1, "text": "x"}
DATA = canonical_bytes(RESULT)
KEY = digest(RESULT)


async def _ask(src: P2pHost, address: str, auth: str | None) -> str:
    stream = await client_open(src.host, peer_info(address))
    try:
        await client_exchange(stream, KEY, 1 << 20, auth)
    except RateLimited as exc:
        return "busy" if "server busy" in str(exc) else "rate_limited"
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


def test_a_flood_from_fresh_peer_ids_is_bounded_by_the_server_wide_bucket(tmp_path: Path) -> None:
    # Peer ids are free: with only per-peer buckets, every new id brought a full burst, so a flood
    # from many ids was served in full (and each request may cost an ecrecover and chain reads).
    limits = ServeLimits(peer_rate=0.001, peer_burst=3, total_rate=0.001, total_burst=7)
    answers: dict[str, list[str]] = {}

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup({KEY: DATA}), limits=limits) as srv,
            host(tmp_path, "a") as a,
            host(tmp_path, "b") as b,
            host(tmp_path, "c") as c,
        ):
            for name, src in (("a", a), ("b", b), ("c", c)):
                answers[name] = [await _ask(src, srv.multiaddr, None) for _ in range(4)]
            assert srv.server is not None
            assert srv.server.refused == {"rate_limited": 3, "busy": 2}
            assert srv.server.served == 7

    trio.run(main)
    # each id: its own burst of 3, then its own limit; the third id meets the server's limit after
    # the 7th request overall (a has 3, b has 3, c gets the 7th, then the server is busy)
    assert answers == {
        "a": ["ok", "ok", "ok", "rate_limited"],
        "b": ["ok", "ok", "ok", "rate_limited"],
        "c": ["ok", "busy", "busy", "rate_limited"],
    }


class _ClaimedKey(Ed25519PrivateKey):
    """A private key that claims someone else's public key: what a plaintext handshake accepts,
    since it asks for no proof of possession."""

    def __init__(self, real: Ed25519PrivateKey, claimed: PublicKey) -> None:
        super().__init__(real.impl)
        self._claimed = claimed

    def get_public_key(self) -> PublicKey:
        return self._claimed


def test_a_peer_id_cannot_be_claimed_over_a_plaintext_handshake(tmp_path: Path) -> None:
    # py-libp2p's new_host offers /plaintext/2.0.0 among its security transports by default; the
    # plaintext exchange takes the remote's word for its public key. Anyone could then speak as
    # any peer id: pass a peer-id access rule, and replay a signature a member made for its own
    # peer id (obtained by any server the member fetched that digest from).
    member = anvil_dev_signer(1, 31337)
    seen: list[tuple[str, Address | None]] = []

    async def only_member(peer_id: str, wanted: Digest, account: Address | None) -> bool:
        seen.append((peer_id, account))
        return account == member.address

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup({KEY: DATA}), access=only_member) as srv,
            host(tmp_path, "member") as honest,
        ):
            assert await honest.fetch(srv.multiaddr, KEY, signer=member) == DATA
            stolen = sign_fetch(member, honest.peer_id, KEY)
            victim = load_or_create_identity(identity_path(tmp_path, "member"))
            own = Ed25519PrivateKey.new()
            fake = _ClaimedKey(own, victim.public_key)
            pair = KeyPair(fake, victim.public_key)
            impostor = new_host(
                key_pair=pair,
                sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(pair)},
                listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")],
            )
            async with impostor.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                got: bytes | None = None
                with suppress(PeerUnreachable, PeerProtocolError, AccessDenied):
                    stream = await client_open(impostor, peer_info(srv.multiaddr))
                    try:
                        got = await client_exchange(stream, KEY, 1 << 20, stolen)
                    finally:
                        with suppress(Exception):
                            await stream.close()
                assert got is None, "an impostor fetched with a replayed signature"

    trio.run(main)
    assert len(seen) == 1 and seen[0][1] == member.address


@pytest.mark.unit
def test_one_busy_peer_does_not_pin_the_peer_table() -> None:
    # Eviction stopped at the oldest peer when it had a stream in flight: one slow stream, then a
    # fresh peer id per request, and the table (and its semaphores) grew without bound.
    server = ResultServer(dict_lookup({}), limits=ServeLimits(max_tracked_peers=3))

    async def main() -> None:
        busy = server._peer("busy")
        busy.waiting = 1
        for i in range(100):
            server._peer(f"sybil-{i}")
        assert len(server._peers) == 3
        assert "busy" in server._peers and "sybil-99" in server._peers

    trio.run(main)
