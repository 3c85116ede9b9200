"""Encrypted keystores (eth-account, JSON v3) and where their passwords come from.

* A keystore file is created 0600 (``O_EXCL``: an existing key is never overwritten) in a 0700
  directory; the default directory is ``$XDG_CONFIG_HOME/synod/keys``.
* The password comes from, in order: ``--password-file``, ``$SYNOD_KEYSTORE_PASSWORD``, the
  config's ``account.password_file``, an interactive prompt (getpass; a terminal is required).
* Reading the address needs no password (the keystore's ``address`` field, as ``geth account
  list`` does); signing decrypts, and a wrong password raises :class:`WrongPassword`.

Nothing here logs or echoes a password or a private key, not even a malformed one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from pydantic import SecretStr

from protocol.chain.errors import SignerError
from protocol.chain.signer import Signer
from protocol.log import get_logger
from protocol.operator.errors import PasswordError, WrongPassword
from protocol.types import Address, TypeValidationError, address_of

log = get_logger(__name__)

PASSWORD_ENV = "SYNOD_KEYSTORE_PASSWORD"
PRIVATE_KEY_HEX_CHARS = 64

Prompt = Callable[[str], str]
"""Asks for a secret without echo (``getpass.getpass``)."""


def read_password_file(path: Path) -> SecretStr:
    """The password in ``path``: its text without one trailing newline. Raises
    :class:`PasswordError` for an unreadable or empty file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PasswordError(f"cannot read password file {path}: {exc.strerror}") from None
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if not text:
        raise PasswordError(f"password file {path} is empty")
    return SecretStr(text)


def resolve_password(
    password_file: Path | None,
    environ: Mapping[str, str],
    config_password_file: Path | None = None,
    prompt: Prompt | None = None,
    confirm: bool = False,
) -> SecretStr:
    """The keystore password from the first source that has one (see the module docstring).

    ``prompt`` is ``None`` when there is no terminal; ``confirm`` asks twice (new keys).
    Raises :class:`PasswordError` when no source has a password or the two entries differ.
    """
    if password_file is not None:
        return read_password_file(password_file)
    if environ.get(PASSWORD_ENV):
        return SecretStr(environ[PASSWORD_ENV])
    if config_password_file is not None:
        return read_password_file(config_password_file)
    if prompt is None:
        raise PasswordError(
            f"no keystore password: pass --password-file FILE, set {PASSWORD_ENV}, or run in a "
            "terminal to be asked"
        )
    first = prompt("Keystore password: ")
    if not first:
        raise PasswordError("the password is empty")
    if confirm and prompt("Repeat the password: ") != first:
        raise PasswordError("the two passwords differ; nothing was written")
    return SecretStr(first)


def parse_private_key(text: str) -> bytes:
    """32 bytes from 64 hex characters (``0x`` optional, surrounding whitespace ignored).
    Raises :class:`SignerError` without echoing any of ``text``."""
    raw = text.strip()
    if raw[:2].lower() == "0x":
        raw = raw[2:]
    if len(raw) != PRIVATE_KEY_HEX_CHARS or any(c not in "0123456789abcdefABCDEF" for c in raw):
        raise SignerError(f"a private key is {PRIVATE_KEY_HEX_CHARS} hex characters (0x optional)")
    key = bytes.fromhex(raw)
    if int.from_bytes(key, "big") == 0:
        raise SignerError("the private key is zero")
    return key


def write_keystore(
    path: Path, password: SecretStr, private_key: bytes | None = None, scrypt_n: int | None = None
) -> Address:
    """Encrypt ``private_key`` (a new random key when ``None``) into a new 0600 keystore file.

    ``scrypt_n`` is the scrypt work factor (eth-account's default, 2**18, when ``None``; a power
    of two). Raises :class:`SignerError` when ``path`` exists (keys are never overwritten) or
    cannot be written. Returns the account's address.
    """
    account = Account.create() if private_key is None else Account.from_key(private_key)
    keyfile: dict[str, Any] = Account.encrypt(
        account.key, password.get_secret_value(), kdf="scrypt", iterations=scrypt_n
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SignerError(f"{path} exists: refusing to overwrite a key (choose another path)") from None
    except OSError as exc:
        raise SignerError(f"cannot create keystore {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        json.dump(keyfile, handle)
    address = address_of(account.address)
    log.info("keystore_written", path=str(path), address=address)
    return address


def _keyfile(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SignerError(
            f"no keystore at {path}: create one with `synod keys new` or `synod keys import`"
        ) from None
    except OSError as exc:
        raise SignerError(f"cannot read keystore {path}: {exc.strerror}") from None
    except ValueError:
        raise SignerError(f"{path} is not a keystore (not JSON)") from None
    if not isinstance(data, dict) or "crypto" not in {k.lower() for k in data}:
        raise SignerError(f"{path} is not an encrypted keystore (no 'crypto' section)")
    return data


def _declared(value: object) -> Address:
    """A keystore's ``address`` field (eth-account writes it without ``0x``)."""
    if isinstance(value, str) and not value.startswith("0x"):
        value = "0x" + value
    return address_of(value)


def keystore_address(path: Path) -> Address:
    """The address a keystore declares, read without its password (for read-only commands)."""
    data = _keyfile(path)
    try:
        return _declared(data.get("address"))
    except TypeValidationError:
        raise SignerError(f"keystore {path} declares no valid address") from None


def unlock(path: Path, password: SecretStr) -> Signer:
    """Decrypt the keystore into a :class:`Signer`. Raises :class:`WrongPassword` for a MAC
    mismatch and :class:`SignerError` for anything else; checks the declared address."""
    data = _keyfile(path)
    try:
        key = Account.decrypt(data, password.get_secret_value())
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword(f"wrong password for keystore {path}") from None
        raise SignerError(f"cannot decrypt keystore {path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise SignerError(f"keystore {path} is malformed ({type(exc).__name__}: {exc})") from None
    signer = Signer(Account.from_key(key))
    declared = data.get("address")
    if declared is not None:
        try:
            matches = _declared(declared) == signer.address
        except TypeValidationError:
            matches = False
        if not matches:
            raise SignerError(
                f"keystore {path} declares address {declared} but holds the key of {signer.address}"
            )
    return signer
