"""Keystores: 0600, never overwritten, the address without the password, a wrong password named;
the password sources in their order; private keys never echoed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from protocol.chain.errors import SignerError
from protocol.operator.errors import PasswordError, WrongPassword
from protocol.operator.keys import (
    PASSWORD_ENV,
    keystore_address,
    parse_private_key,
    read_password_file,
    resolve_password,
    unlock,
    write_keystore,
)

pytestmark = pytest.mark.unit

KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")  # anvil #1
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
N = 2**4  # throwaway test keys only


def test_write_unlock_and_read_the_address(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "node.json"
    address = write_keystore(path, SecretStr("pw"), KEY, scrypt_n=N)
    assert address == ADDRESS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert keystore_address(path) == ADDRESS  # no password needed
    assert unlock(path, SecretStr("pw")).address == ADDRESS
    assert KEY.hex() not in path.read_text()


def test_umask_cannot_widen_the_file(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k.json"
        write_keystore(path, SecretStr("pw"), KEY, scrypt_n=N)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_random_keys_differ(tmp_path: Path) -> None:
    a = write_keystore(tmp_path / "a.json", SecretStr("pw"), scrypt_n=N)
    b = write_keystore(tmp_path / "b.json", SecretStr("pw"), scrypt_n=N)
    assert a != b


def test_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(path, SecretStr("pw"), KEY, scrypt_n=N)
    before = path.read_bytes()
    with pytest.raises(SignerError, match="refusing to overwrite"):
        write_keystore(path, SecretStr("other"), scrypt_n=N)
    assert path.read_bytes() == before


def test_wrong_password_is_named(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(path, SecretStr("pw"), KEY, scrypt_n=N)
    with pytest.raises(WrongPassword) as info:
        unlock(path, SecretStr("pW"))
    assert str(info.value) == f"wrong password for keystore {path}"


def test_tampered_address_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(path, SecretStr("pw"), KEY, scrypt_n=N)
    data = json.loads(path.read_text())
    data["address"] = "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    path.write_text(json.dumps(data))
    with pytest.raises(SignerError, match="holds the key of"):
        unlock(path, SecretStr("pw"))


@pytest.mark.parametrize("content", ["not json", "[]", '{"address": "00"}'])
def test_not_a_keystore(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(SignerError, match="not"):
        keystore_address(path)
    with pytest.raises(SignerError, match=r"no keystore at .*synod keys new"):
        keystore_address(tmp_path / "missing.json")


@pytest.mark.parametrize("text", ["1234567", "zz" * 32, "0x" + "00" * 32, "ab" * 33, "cd" * 31 + "zz"])
def test_bad_private_keys_never_echoed(text: str) -> None:
    with pytest.raises(SignerError) as info:
        parse_private_key(text)
    assert text not in str(info.value) and text[2:9] not in str(info.value)


def test_private_key_forms() -> None:
    assert parse_private_key("0x" + KEY.hex()) == KEY
    assert parse_private_key(KEY.hex().upper() + "\n") == KEY


def test_password_sources_in_order(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("from-flag\n")
    conf = tmp_path / "conf"
    conf.write_text("from-config\r\n")
    env = {PASSWORD_ENV: "from-env"}
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "from-prompt"

    assert resolve_password(flag, env, conf, prompt).get_secret_value() == "from-flag"
    assert resolve_password(None, env, conf, prompt).get_secret_value() == "from-env"
    assert resolve_password(None, {}, conf, prompt).get_secret_value() == "from-config"
    assert resolve_password(None, {}, None, prompt).get_secret_value() == "from-prompt"
    assert asked == ["Keystore password: "]
    assert resolve_password(None, {}, None, prompt, confirm=True).get_secret_value() == "from-prompt"
    assert len(asked) == 3


def test_password_failures(tmp_path: Path) -> None:
    with pytest.raises(PasswordError, match="--password-file FILE, set SYNOD_KEYSTORE_PASSWORD"):
        resolve_password(None, {}, None, None)
    answers = iter(["one", "two"])
    with pytest.raises(PasswordError, match="differ"):
        resolve_password(None, {}, None, lambda _: next(answers), confirm=True)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(PasswordError, match="is empty"):
        read_password_file(empty)
    with pytest.raises(PasswordError, match="cannot read password file"):
        read_password_file(tmp_path / "missing")
    # a password of one space is a password: only the trailing newline is dropped
    spaced = tmp_path / "spaced"
    spaced.write_text(" \n")
    assert read_password_file(spaced).get_secret_value() == " "
