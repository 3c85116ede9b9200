"""Typed ids, commitments (pure Python side), settings and signers: no chain needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_account import Account
from pydantic import SecretStr, ValidationError

from protocol.canonical import keccak256
from protocol.chain.errors import SignerError
from protocol.chain.signer import anvil_dev_signer, keystore_signer, load_signer, write_keystore
from protocol.commitments import CommitmentError, new_salt, result_commitment, score_commitment
from protocol.errors import ConfigError
from protocol.settings import AnvilDevKey, ChainSettings, KeystoreKey
from protocol.types import TypeValidationError, address_of, bytes32_of, hex32, job_id_of, task_id_of

pytestmark = pytest.mark.unit

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # Anvil account 1


def test_ids_validate() -> None:
    assert task_id_of(1) == 1
    assert job_id_of(2**256 - 1) == 2**256 - 1
    for bad in (0, -1, 2**256, True, "1", 1.0):
        with pytest.raises(TypeValidationError):
            task_id_of(bad)


def test_address_checksummed_and_validated() -> None:
    assert address_of(ALICE.lower()) == ALICE
    assert address_of(ALICE) == ALICE
    for bad in (ALICE[:-1], "70997970C51812dc3A010C7d01b50e0d17dc79C8", ALICE.replace("C5", "c5"), 42):
        with pytest.raises(TypeValidationError):
            address_of(bad)


def test_bytes32() -> None:
    word = bytes(range(32))
    assert bytes32_of(word) == word
    assert bytes32_of("0x" + word.hex()) == word
    assert hex32(word) == "0x" + word.hex()
    for bad in (b"\x00" * 31, "0x" + "00" * 33, "00" * 32, 5):
        with pytest.raises(TypeValidationError):
            bytes32_of(bad)


def test_result_commitment_is_abi_encoded_keccak() -> None:
    digest, salt = bytes([1]) * 32, bytes([2]) * 32
    expected = keccak256(encode(["uint256", "address", "bytes32", "bytes32"], [7, ALICE, digest, salt]))
    assert bytes(result_commitment(7, ALICE, digest, salt)) == expected
    # the identity is bound: another node, task or salt gives another commitment
    assert bytes(result_commitment(7, "0x" + "11" * 20, digest, salt)) != expected
    assert bytes(result_commitment(8, ALICE, digest, salt)) != expected
    assert bytes(result_commitment(7, ALICE, digest, new_salt())) != expected


def test_score_commitment_is_abi_encoded_keccak() -> None:
    salt = bytes([3]) * 32
    expected = keccak256(encode(["uint256", "address", "uint8[]", "bytes32"], [9, ALICE, [0, 55, 100], salt]))
    assert bytes(score_commitment(9, ALICE, [0, 55, 100], salt)) == expected
    assert bytes(score_commitment(9, ALICE, [0, 100, 55], salt)) != expected
    assert bytes(score_commitment(9, ALICE, [], salt)) != expected


@pytest.mark.parametrize("scores", [[256], [-1], [True], [1.0]])
def test_score_commitment_rejects_non_uint8(scores: list[object]) -> None:
    with pytest.raises(CommitmentError, match=r"scores\[0\]"):
        score_commitment(1, ALICE, scores, bytes(32))  # type: ignore[arg-type]


def test_new_salt_is_random_32_bytes() -> None:
    salts = {new_salt() for _ in range(16)}
    assert len(salts) == 16
    assert all(len(s) == 32 for s in salts)


def test_settings_frozen_and_strict() -> None:
    s = ChainSettings()
    with pytest.raises(ValidationError):
        s.rpc_url = "http://x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ChainSettings(rpc_urll="http://x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ChainSettings(rpc_url="ws://127.0.0.1:8545")
    assert s.deployments_path(5) == Path("deployments/5.json")


def test_settings_from_env_and_secret_hidden() -> None:
    env = {
        "SYNOD_RPC_URL": "http://127.0.0.1:9",
        "SYNOD_KEYSTORE": "/k.json",
        "SYNOD_KEYSTORE_PASSWORD": "hunter2",
    }
    s = ChainSettings.from_env(env, confirmations=2)
    assert s.rpc_url == "http://127.0.0.1:9" and s.confirmations == 2
    assert isinstance(s.key, KeystoreKey)
    assert s.key.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    dev = ChainSettings.from_env({"SYNOD_DEV_KEY_INDEX": "3"})
    assert dev.key == AnvilDevKey(index=3)


def test_settings_from_env_errors_never_echo_secrets() -> None:
    env = {"SYNOD_KEYSTORE": "/k.json", "SYNOD_KEYSTORE_PASSWORD": "hunter2", "SYNOD_CONFIRMATIONS": "many"}
    with pytest.raises(ConfigError, match="confirmations") as info:
        ChainSettings.from_env(env)
    assert "hunter2" not in str(info.value)


def test_anvil_dev_keys_match_anvil_and_only_on_31337() -> None:
    assert anvil_dev_signer(0, 31337).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert anvil_dev_signer(1, 31337).address == ALICE
    with pytest.raises(SignerError, match="chain 1 "):
        anvil_dev_signer(0, 1)
    with pytest.raises(SignerError, match="chain 10"):
        load_signer(AnvilDevKey(index=0), 10)


def test_keystore_round_trip_and_wrong_password(tmp_path: Path) -> None:
    key = Account.create().key
    path = tmp_path / "key.json"
    address = write_keystore(path, bytes(key), "correct horse")
    assert path.stat().st_mode & 0o777 == 0o600
    signer = load_signer(KeystoreKey(path=path, password=SecretStr("correct horse")), chain_id=1)
    assert signer.address == address
    assert repr(signer) == f"Signer({address})"
    with pytest.raises(SignerError, match="cannot decrypt") as info:
        keystore_signer(path, "xyzzy-Not-The-Password")
    assert "xyzzy" not in str(info.value)
    with pytest.raises(SignerError, match="cannot read"):
        keystore_signer(tmp_path / "missing.json", "x")


def test_signer_signs_a_transaction_that_recovers_to_its_address() -> None:
    signer = anvil_dev_signer(2, 31337)
    tx = {"to": ALICE, "value": 1, "gas": 21000, "gasPrice": 1, "nonce": 0, "chainId": 31337}
    signed = signer.sign_transaction(tx)
    assert Account.recover_transaction(signed.raw_transaction) == signer.address
