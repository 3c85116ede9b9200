"""Stream-scoped authentication of ``/synod/result/1.0.0`` between real py-libp2p hosts: the first
request's signature binds the stream's account, later unsigned requests inherit it, a later
signed request stands for itself only, and nothing carries over to another stream or peer."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from libp2p.abc import INetStream

from protocol.canonical import Digest, canonical_bytes, keccak256
from protocol.chain.signer import Signer, anvil_dev_signer
from protocol.p2p import AccessDenied
from protocol.p2p import client as client_module
from protocol.p2p.auth import sign_fetch
from protocol.p2p.client import _exchange as client_exchange
from protocol.p2p.server import AccessRule
from protocol.types import Address
from tests.p2p.helpers import dict_lookup, host, raw_stream

pytestmark = pytest.mark.integration

ROWS = [canonical_bytes({"task": i, "text": f"row {i} of a batch"}) for i in range(4)]
RESULTS: dict[bytes, bytes] = {bytes(keccak256(r)): r for r in ROWS}
DIGESTS = list(RESULTS)
MEMBER = anvil_dev_signer(1, 31337)
OUTSIDER = anvil_dev_signer(2, 31337)


def _committee_rule(seen: list[Address | None]) -> AccessRule:
    async def only_member(peer_id: str, wanted: Digest, account: Address | None) -> bool:
        seen.append(account)
        return account == MEMBER.address

    return only_member


async def _ask(stream: INetStream, digest: bytes, auth: str | None) -> bytes | str:
    """One exchange on an open raw stream: the bytes, or ``"denied"``."""
    try:
        return await client_exchange(stream, digest, 1 << 20, auth)
    except AccessDenied:
        return "denied"


def test_one_signature_admits_every_request_of_its_stream_only(tmp_path: Path) -> None:
    """Signed first request: the stream's 2nd..nth unsigned requests are made as the signer. A
    second stream of the same peer without auth is not; an unsigned first request binds nothing."""
    seen: list[Address | None] = []

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup(RESULTS), access=_committee_rule(seen)) as srv,
            host(tmp_path, "cli") as cli,
        ):
            first = await raw_stream(cli, srv)
            assert await _ask(first, DIGESTS[0], sign_fetch(MEMBER, cli.peer_id, DIGESTS[0])) == ROWS[0]
            for i in (1, 2, 3):
                assert await _ask(first, DIGESTS[i], None) == ROWS[i]
            # a second stream of the same peer, never signed: no account
            second = await raw_stream(cli, srv)
            assert await _ask(second, DIGESTS[1], None) == "denied"
            assert await _ask(second, DIGESTS[2], None) == "denied"
            await first.close()
            await second.close()

    trio.run(main)
    assert seen == [MEMBER.address] * 4 + [None, None]


def test_a_later_signature_stands_for_its_own_request_only(tmp_path: Path) -> None:
    """A later signed request is recovered on its own; the stream keeps its first account. An
    unsigned first request binds nothing even when a later request is signed."""
    seen: list[Address | None] = []

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup(RESULTS), access=_committee_rule(seen)) as srv,
            host(tmp_path, "cli") as cli,
        ):
            me = cli.peer_id
            bound = await raw_stream(cli, srv)
            assert await _ask(bound, DIGESTS[0], sign_fetch(MEMBER, me, DIGESTS[0])) == ROWS[0]
            assert await _ask(bound, DIGESTS[1], sign_fetch(OUTSIDER, me, DIGESTS[1])) == "denied"
            assert await _ask(bound, DIGESTS[2], None) == ROWS[2]  # back to the first account
            await bound.close()
            unbound = await raw_stream(cli, srv)
            assert await _ask(unbound, DIGESTS[0], None) == "denied"
            assert await _ask(unbound, DIGESTS[1], sign_fetch(MEMBER, me, DIGESTS[1])) == ROWS[1]
            assert await _ask(unbound, DIGESTS[2], None) == "denied"  # the later signature bound nothing
            await unbound.close()

    trio.run(main)
    assert seen == [MEMBER.address, OUTSIDER.address, MEMBER.address, None, MEMBER.address, None]


def test_a_captured_signature_binds_nothing_from_another_peer(tmp_path: Path) -> None:
    """The member's signature for the client's peer id, replayed by another peer as the first
    request of its stream, recovers some other account: that request and the stream's later
    unsigned ones are denied."""
    seen: list[Address | None] = []

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup(RESULTS), access=_committee_rule(seen)) as srv,
            host(tmp_path, "cli") as cli,
            host(tmp_path, "thief") as thief,
        ):
            stolen = sign_fetch(MEMBER, cli.peer_id, DIGESTS[0])
            stream = await raw_stream(thief, srv)
            assert await _ask(stream, DIGESTS[0], stolen) == "denied"
            assert await _ask(stream, DIGESTS[1], None) == "denied"
            await stream.close()

    trio.run(main)
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0] not in (None, MEMBER.address)


def test_fetch_many_signs_once_and_every_digest_is_admitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:meth:`P2pHost.fetch_many` with a signer: the client signs once (the first digest) and the
    rule sees the signer for every digest of the sequence; without a signer, nobody."""
    seen: list[Address | None] = []
    signed: list[bytes] = []

    def counting_sign(signer: Signer, peer_id: str, digest: bytes) -> str:
        signed.append(bytes(digest))
        return sign_fetch(signer, peer_id, digest)

    monkeypatch.setattr(client_module, "sign_fetch", counting_sign)

    async def main() -> None:
        async with (
            host(tmp_path, "srv", lookup=dict_lookup(RESULTS), access=_committee_rule(seen)) as srv,
            host(tmp_path, "cli") as cli,
        ):
            assert await cli.fetch_many(srv.multiaddr, DIGESTS, 20.0, signer=MEMBER) == ROWS
            got = await cli.fetch_many(srv.multiaddr, DIGESTS[:2], 20.0)
            assert all(isinstance(g, AccessDenied) for g in got)

    trio.run(main)
    assert seen == [MEMBER.address] * 4 + [None, None]
    assert signed == [DIGESTS[0]]
