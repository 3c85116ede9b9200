"""Signers: an eth-account encrypted keystore, or an Anvil development key on the devnet only.

A :class:`Signer` holds the key privately; its repr shows the address only and nothing here ever
logs key material.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from protocol.chain.errors import SignerError
from protocol.settings import ANVIL_DEV_ACCOUNTS, DEVNET_CHAIN_ID, AnvilDevKey, KeySource, KeystoreKey
from protocol.types import Address, address_of

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
"""The public test mnemonic Anvil funds accounts from (well known: devnet use only)."""


class Signer:
    """Signs transactions for one account."""

    __slots__ = ("_account", "address")

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        self.address: Address = address_of(account.address)

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        """Sign a complete transaction dict (nonce, gas, fees, chainId filled in)."""
        return self._account.sign_transaction(tx)

    def sign_message(self, text: bytes) -> bytes:
        """EIP-191 ``personal_sign`` of ``text``: the 65-byte signature (r, s, v)."""
        return bytes(self._account.sign_message(encode_defunct(primitive=text)).signature)

    def __repr__(self) -> str:
        return f"Signer({self.address})"


def anvil_dev_signer(index: int, chain_id: int) -> Signer:
    """Anvil's account ``index`` (m/44'/60'/0'/0/index); refused unless ``chain_id`` is 31337."""
    if chain_id != DEVNET_CHAIN_ID:
        raise SignerError(
            f"the Anvil dev keys are public: refused on chain {chain_id} (only {DEVNET_CHAIN_ID})"
        )
    if not 0 <= index < ANVIL_DEV_ACCOUNTS:
        raise SignerError(f"Anvil dev account index {index} is outside 0..{ANVIL_DEV_ACCOUNTS - 1}")
    seed = seed_from_mnemonic(ANVIL_MNEMONIC, "")
    return Signer(Account.from_key(key_from_seed(seed, f"m/44'/60'/0'/0/{index}")))


def keystore_signer(path: Path, password: str) -> Signer:
    """Open an encrypted keystore (JSON v3) file."""
    try:
        keyfile = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SignerError(f"cannot read keystore {path}: {exc}") from None
    try:
        key = Account.decrypt(keyfile, password)
    except (ValueError, KeyError, TypeError) as exc:
        # The message of a wrong password is "MAC mismatch"; it never contains the password.
        raise SignerError(f"cannot decrypt keystore {path}: {type(exc).__name__}: {exc}") from None
    return Signer(Account.from_key(key))


def write_keystore(path: Path, private_key: bytes, password: str) -> Address:
    """Encrypt ``private_key`` into a new keystore file (mode 0600); returns its address."""
    keyfile = Account.encrypt(private_key, password)
    path.touch(mode=0o600, exist_ok=False)
    path.write_text(json.dumps(keyfile), encoding="utf-8")
    return address_of(Account.from_key(private_key).address)


def load_signer(source: KeySource, chain_id: int) -> Signer:
    """The signer a :data:`~protocol.settings.KeySource` names, for a chain of ``chain_id``."""
    if isinstance(source, KeystoreKey):
        return keystore_signer(source.path, source.password.get_secret_value())
    if isinstance(source, AnvilDevKey):
        return anvil_dev_signer(source.index, chain_id)
    raise SignerError(f"unknown key source {type(source).__name__}")
