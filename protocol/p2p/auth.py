"""Who is asking: an optional Ethereum signature in a fetch request, bound to the asking peer.

A result server must know which *account* asks (a committee member of the batch, the job's
requester), not only which libp2p peer. The client signs, with its Ethereum key (EIP-191
``personal_sign``), the text::

    synod-fetch/1 peer=<the asking peer's base58 id> digest=<0x digest>

and sends the 65-byte signature as ``FetchRequest.auth``. The server recovers the signer with the
peer id that the libp2p secure channel authenticated, so a captured signature is useless from any
other peer and for any other digest. The result server passes the recovered address to its
access rule (``None`` when the request carries no signature).

Authentication is stream-scoped: one signature serves a whole request sequence
(:mod:`protocol.p2p.wire`). The server binds the account recovered from a stream's FIRST request to
the stream, and a later request of that stream without ``auth`` is made as that account (a
libp2p stream lives inside one secure-channel connection, so every request on it comes from the
peer the signed text names; a captured signature is still useless from another peer id). A
later request that carries its own ``auth`` is recovered on its own and is made as that account
for that request only: the stream stays bound to its first account. :func:`~protocol.p2p.client.
fetch_results` therefore signs only the first request of its sequence (one ~1.5 ms signature and
one recovery per stream instead of per digest). A client that signs every request, as before, is
still served exactly as before, so the protocol id stays ``/synod/result/1.0.0``; a new client
talking to an older server gets its unsigned later requests refused by a committee rule (the
per-digest signed fetches that follow a failed sequence still succeed).
"""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct

from protocol.chain.signer import Signer
from protocol.errors import SynodError
from protocol.types import Address, address_of


class FetchAuthError(SynodError, ValueError):
    """A fetch signature that is malformed or recovers no address."""


def fetch_auth_text(peer_id: str, digest: bytes) -> str:
    """The text a client signs to fetch ``digest`` as peer ``peer_id`` (base58)."""
    return f"synod-fetch/1 peer={peer_id} digest=0x{bytes(digest).hex()}"


def sign_fetch(signer: Signer, peer_id: str, digest: bytes) -> str:
    """``FetchRequest.auth`` for ``signer`` asking for ``digest`` as ``peer_id``: 0x + 130 hex digits."""
    return "0x" + signer.sign_message(fetch_auth_text(peer_id, digest).encode("utf-8")).hex()


def recover_fetch_signer(auth: str, peer_id: str, digest: bytes) -> Address:
    """The account that signed ``auth`` for ``peer_id`` and ``digest``.

    Raises :class:`FetchAuthError` if ``auth`` is not a recoverable 65-byte signature.
    """
    try:
        signature = bytes.fromhex(auth[2:] if auth.startswith("0x") else auth)
        if len(signature) != 65:
            raise ValueError(f"{len(signature)} bytes, not 65")
        message = encode_defunct(text=fetch_auth_text(peer_id, digest))
        return address_of(Account.recover_message(message, signature=signature))
    except Exception as exc:  # eth-keys raises several types for a bad signature
        raise FetchAuthError(f"fetch signature does not recover: {exc}") from None
