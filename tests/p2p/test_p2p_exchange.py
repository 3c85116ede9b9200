"""The result exchange between real py-libp2p hosts on 127.0.0.1: identity, multiaddr, fetch,
and every refusal an honest requester can meet (not found, denied, too large, lying peer, timeout,
unreachable)."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import pytest
import trio

from protocol.canonical import Digest, canonical_bytes, digest, keccak256
from protocol.chain.signer import anvil_dev_signer
from protocol.metrics import new_registry
from protocol.p2p import (
    AccessDenied,
    DigestMismatch,
    FetchLimits,
    IdentityError,
    NotFound,
    P2pHost,
    PeerProtocolError,
    PeerUnreachable,
    ServeLimits,
    Timeout,
    TooLarge,
)
from protocol.p2p.auth import fetch_auth_text, recover_fetch_signer, sign_fetch
from protocol.p2p.client import _exchange as client_exchange
from protocol.p2p.client import _open as client_open
from protocol.p2p.client import peer_info
from protocol.p2p.identity import load_or_create_identity
from protocol.store import StoreError, open_store
from protocol.types import Address
from scripts.devnet import free_port
from tests.p2p.helpers import dict_lookup, host, raw_stream

pytestmark = pytest.mark.integration

RESULT = {"task": 7, "text": "Glass owls nest in reed towers.", "score": 0.5}
DATA = canonical_bytes(RESULT)
KEY = digest(RESULT)


def test_identity_is_persistent_private_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def peer_id_of_a_run() -> tuple[str, str]:
        async with host(tmp_path, "a") as running:
            return running.peer_id, running.multiaddr

    first, address = trio.run(peer_id_of_a_run)
    second, _ = trio.run(peer_id_of_a_run)
    assert first == second
    key_file = tmp_path / "a.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert re.fullmatch(rf"/ip4/127\.0\.0\.1/tcp/(\d+)/p2p/{first}", address)
    assert int(address.split("/")[4]) != 0
    secret = load_or_create_identity(key_file).private_key.to_bytes()
    assert secret.hex() not in caplog.text and key_file.read_bytes().hex() not in caplog.text

    os.chmod(key_file, 0o644)
    with pytest.raises(IdentityError, match="mode 0644"):
        load_or_create_identity(key_file)
    os.chmod(key_file, 0o600)
    key_file.write_bytes(b"not a key")
    with pytest.raises(IdentityError, match="not a libp2p private key"):
        load_or_create_identity(key_file)


def test_fetch_serves_journaled_bytes_by_digest(tmp_path: Path) -> None:
    async def main() -> None:
        async with open_store(tmp_path / "j.sqlite") as store:
            stored = await store.put_result(RESULT)
            assert stored == KEY
            async with host(tmp_path, "srv", lookup=store.get_result) as srv, host(tmp_path, "cli") as cli:
                assert await cli.fetch(srv.multiaddr, KEY) == DATA
                big = os.urandom(3 * 1024 * 1024 + 17)  # several muxer windows and frames
                big_key = await store.put_result_bytes(big)
                assert await cli.fetch(srv.multiaddr, big_key) == big
                assert srv.server is not None and srv.server.served == 2

    trio.run(main)


def test_unknown_digest_is_not_found(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = new_registry("node")

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup({KEY: DATA}), registry=registry) as srv,
            host(tmp_path, "cli") as cli,
        ):
            with pytest.raises(NotFound, match="not_found"):
                await cli.fetch(srv.multiaddr, keccak256(b"nothing"))
            assert await cli.fetch(srv.multiaddr, KEY) == DATA  # the same connection still works

    trio.run(main)
    assert "p2p_refused" in caplog.text and "reason=not_found" in caplog.text
    assert registry.get_sample_value("synod_p2p_refused_total", {"reason": "not_found"}) == 1
    assert registry.get_sample_value("synod_p2p_served_total") == 1
    assert registry.get_sample_value("synod_p2p_served_bytes_total") == len(DATA)


def test_the_access_rule_admits_only_the_committee(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    committee: set[str] = set()
    asked: list[tuple[str, bytes]] = []

    async def only_committee(peer_id: str, wanted: Digest, account: Address | None) -> bool:
        asked.append((peer_id, bytes(wanted)))
        return peer_id in committee

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup({KEY: DATA}), access=only_committee) as srv,
            host(tmp_path, "member") as member,
            host(tmp_path, "outsider") as outsider,
        ):
            committee.add(member.peer_id)
            assert await member.fetch(srv.multiaddr, KEY) == DATA
            with pytest.raises(AccessDenied):
                await outsider.fetch(srv.multiaddr, KEY)
            assert asked == [(member.peer_id, KEY), (outsider.peer_id, KEY)]

    trio.run(main)
    assert "reason=denied" in caplog.text


def test_bytes_that_do_not_match_the_digest_are_rejected(tmp_path: Path) -> None:
    async def lying(wanted: Digest) -> bytes:
        return b'{"forged":true}'

    async def main() -> None:
        async with host(tmp_path, "liar", lookup=lying) as liar, host(tmp_path, "cli") as cli:
            with pytest.raises(DigestMismatch, match="hashing to 0x"):
                await cli.fetch(liar.multiaddr, KEY)

    trio.run(main)


def test_a_failing_lookup_or_rule_ends_one_stream_not_the_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_store(wanted: Digest) -> bytes | None:
        if wanted == KEY:
            return DATA
        raise StoreError("disk I/O error")

    async def buggy_rule(peer_id: str, wanted: Digest, account: Address | None) -> bool:
        if wanted == keccak256(b"bug"):
            raise KeyError("a bug in the caller's rule")
        return True

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=broken_store, access=buggy_rule) as srv,
            host(tmp_path, "cli") as cli,
        ):
            with pytest.raises(PeerUnreachable, match="unavailable: lookup failed"):
                await cli.fetch(srv.multiaddr, keccak256(b"other"))
            with pytest.raises(PeerProtocolError):
                await cli.fetch(srv.multiaddr, keccak256(b"bug"))
            assert await cli.fetch(srv.multiaddr, KEY) == DATA  # same connection, still serving

    trio.run(main)
    assert "p2p_lookup_failed" in caplog.text and "p2p_handler_failed" in caplog.text


def test_size_caps_on_both_sides_at_the_exact_boundary(tmp_path: Path) -> None:
    async def main() -> None:
        size = len(DATA)
        async with (
            host(tmp_path, "srv", lookup=dict_lookup({KEY: DATA})) as srv,
            host(tmp_path, "cli") as cli,
        ):
            assert await cli.fetch(srv.multiaddr, KEY, FetchLimits(max_size=size)) == DATA
            with pytest.raises(TooLarge, match=f"{size} bytes exceeds the cap of {size - 1}"):
                await cli.fetch(srv.multiaddr, KEY, FetchLimits(max_size=size - 1))
        small = ServeLimits(max_result_bytes=size - 1)
        async with (
            host(tmp_path, "srv2", lookup=dict_lookup({KEY: DATA}), limits=small) as srv,
            host(tmp_path, "cli") as cli,
        ):
            with pytest.raises(TooLarge, match="too_large"):
                await cli.fetch(srv.multiaddr, KEY)

    trio.run(main)


def test_a_peer_that_never_answers_times_out_in_time(tmp_path: Path) -> None:
    async def stuck(wanted: Digest) -> bytes | None:
        await trio.sleep_forever()
        return None

    async def main() -> float:
        async with host(tmp_path, "slow", lookup=stuck) as slow, host(tmp_path, "cli") as cli:
            start = trio.current_time()
            with pytest.raises(Timeout):
                await cli.fetch(slow.multiaddr, KEY, FetchLimits(deadline=1.0))
            return trio.current_time() - start

    elapsed = trio.run(main)
    assert 1.0 <= elapsed < 3.0  # the deadline, plus a margin for a loaded machine


def test_an_unreachable_peer_is_named(tmp_path: Path) -> None:
    async def main() -> None:
        async with host(tmp_path, "gone") as gone:
            peer_id = gone.peer_id
        async with host(tmp_path, "cli2") as cli:
            with pytest.raises(PeerUnreachable):
                await cli.fetch(f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{peer_id}", KEY)
            with pytest.raises(PeerUnreachable, match="not a dialable"):
                await cli.fetch("/ip4/127.0.0.1/tcp/1", KEY)

    trio.run(main)


def test_signed_fetch_admits_the_signing_account_only_from_its_own_peer(tmp_path: Path) -> None:
    """The access rule sees the account that signed; the same signature replayed by another peer
    recovers a different account and is denied; an unrecoverable one is a bad request."""
    member = anvil_dev_signer(1, 31337)
    seen: list[Address | None] = []

    async def only_member(peer_id: str, wanted: Digest, account: Address | None) -> bool:
        seen.append(account)
        return account == member.address

    async def replay(src: P2pHost, address: str, auth: str) -> bytes:
        stream = await client_open(src.host, peer_info(address))
        try:
            return await client_exchange(stream, KEY, 1 << 20, auth)
        finally:
            await stream.close()

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup({KEY: DATA}), access=only_member) as srv,
            host(tmp_path, "cli") as cli,
            host(tmp_path, "thief") as thief,
        ):
            assert await cli.fetch(srv.multiaddr, KEY, signer=member) == DATA
            with pytest.raises(AccessDenied):
                await cli.fetch(srv.multiaddr, KEY)
            stolen = sign_fetch(member, cli.peer_id, KEY)
            assert await replay(cli, srv.multiaddr, stolen) == DATA
            with pytest.raises(AccessDenied):
                await replay(thief, srv.multiaddr, stolen)
            with pytest.raises(PeerProtocolError, match="bad_auth"):
                await replay(thief, srv.multiaddr, "0x" + "00" * 65)

    trio.run(main)
    assert seen[:3] == [member.address, None, member.address]
    assert seen[3] not in (None, member.address) and len(seen) == 4
    assert recover_fetch_signer(sign_fetch(member, "QmX", KEY), "QmX", KEY) == member.address
    assert fetch_auth_text("QmX", KEY) == f"synod-fetch/1 peer=QmX digest=0x{KEY.hex()}"


def test_one_stream_carries_many_exchanges_each_answered_on_its_own(tmp_path: Path) -> None:
    """:meth:`P2pHost.fetch_many`: five digests over one stream; a refusal or a lying answer
    costs only its own digest; every request is signed and checked by the access rule."""
    other = canonical_bytes({"task": 8, "text": "Copper moths hum at noon."})
    missing, denied = keccak256(b"nobody stored this"), keccak256(b"secret")
    liar = keccak256(b"the bytes it should be")
    results = {KEY: DATA, keccak256(other): other, denied: b"secret", liar: b"other bytes"}
    seen: list[tuple[bytes, Address | None]] = []
    signer = anvil_dev_signer(4, 31337)

    async def rule(peer_id: str, wanted: Digest, account: Address | None) -> bool:
        seen.append((bytes(wanted), account))
        return bytes(wanted) != denied

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup(results), access=rule) as srv,
            host(tmp_path, "cli") as cli,
        ):
            wanted = [KEY, missing, denied, keccak256(other), liar]
            got = await cli.fetch_many(srv.multiaddr, wanted, 20.0, signer=signer)
            assert got[0] == DATA and got[3] == other
            assert isinstance(got[1], NotFound)
            assert isinstance(got[2], AccessDenied)
            assert isinstance(got[4], DigestMismatch)
            assert seen == [(d, signer.address) for d in wanted]
            assert await cli.fetch_many(srv.multiaddr, [], 20.0) == []
            # the sequence at the wire level: two requests, two answers, on one raw stream
            stream = await raw_stream(cli, srv)
            assert await client_exchange(stream, KEY, 1 << 20, None) == DATA
            assert await client_exchange(stream, keccak256(other), 1 << 20, None) == other
            await stream.close()

    trio.run(main)


def test_a_dead_peer_fails_every_digest_of_the_sequence(tmp_path: Path) -> None:
    async def main() -> None:
        async with host(tmp_path, "cli") as cli:
            port = free_port()
            address = f"/ip4/127.0.0.1/tcp/{port}/p2p/{cli.peer_id}"
            got = await cli.fetch_many(
                address.replace(cli.peer_id, _other_peer_id(tmp_path)), [KEY, KEY], 5.0
            )
            assert len(got) == 2 and all(isinstance(g, PeerUnreachable) for g in got)

    trio.run(main)


def _other_peer_id(tmp_path: Path) -> str:
    from libp2p.peer.id import ID

    return str(ID.from_pubkey(load_or_create_identity(tmp_path / "ghost.key").public_key))
