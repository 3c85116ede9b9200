"""Typed ids, commitments (pure Python side), settings and signers: no chain needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak as keccak256  # plain bytes, independent of protocol.canonical
from pydantic import SecretStr, ValidationError

from protocol.chain.errors import SignerError
from protocol.chain.signer import anvil_dev_signer, keystore_signer, load_signer, write_keystore
from protocol.commitments import (
    CommitmentError,
    committee_seed,
    decode_scores,
    digests_hash,
    encode_scores,
    new_salt,
    result_commitment,
    rows_hash,
    score_commitment,
    scores_hash,
    seat_word,
    seed_entropy,
)
from protocol.errors import ConfigError
from protocol.settings import AnvilDevKey, ChainSettings, KeystoreKey
from protocol.types import (
    BatchId,
    TaskRef,
    TypeValidationError,
    address_of,
    batch_id_of,
    bytes32_of,
    hex32,
    job_id_of,
)

pytestmark = pytest.mark.unit

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # Anvil account 1


def test_ids_validate() -> None:
    assert batch_id_of(1) == 1
    assert job_id_of(2**256 - 1) == 2**256 - 1
    for bad in (0, -1, 2**256, True, "1", 1.0):
        with pytest.raises(TypeValidationError):
            batch_id_of(bad)


def test_task_ref_is_a_batch_and_a_row() -> None:
    ref = TaskRef(BatchId(3), 255)
    assert (ref.batch_id, ref.row) == (3, 255)
    assert TaskRef(BatchId(3), 0) < ref
    for batch_id, row in ((0, 0), (1, 256), (1, -1), (1, True)):
        with pytest.raises(TypeValidationError):
            TaskRef(BatchId(batch_id), row)


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


DIGESTS = [bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32]


def test_result_commitment_binds_batch_node_every_digest_and_salt() -> None:
    salt = bytes([9]) * 32
    packed = keccak256(b"".join(DIGESTS))
    assert digests_hash(DIGESTS) == packed
    expected = keccak256(encode(["uint256", "address", "bytes32", "bytes32"], [7, ALICE, packed, salt]))
    assert result_commitment(7, ALICE, DIGESTS, salt) == expected
    others = {
        result_commitment(7, "0x" + "11" * 20, DIGESTS, salt),
        result_commitment(8, ALICE, DIGESTS, salt),
        result_commitment(7, ALICE, DIGESTS, new_salt()),
        result_commitment(7, ALICE, DIGESTS[::-1], salt),  # order matters: digest r is row r
        result_commitment(7, ALICE, DIGESTS[:2], salt),
    }
    assert expected not in others and len(others) == 5
    assert digests_hash([]) == keccak256(b"")


@pytest.mark.parametrize("bad", [[b"\x00" * 31], [b"\x00" * 33], b"\x00" * 32, ["0x00"]])
def test_result_commitment_refuses_malformed_digests(bad: object) -> None:
    with pytest.raises((TypeValidationError, CommitmentError)):
        result_commitment(1, ALICE, bad, bytes(32))  # type: ignore[arg-type]


def test_score_commitment_hashes_the_vector_bytes() -> None:
    salt = bytes([3]) * 32
    vector = bytes([0, 55, 100, 7])
    expected = keccak256(
        encode(["uint256", "address", "bytes32", "bytes32"], [9, ALICE, keccak256(vector), salt])
    )
    assert score_commitment(9, ALICE, vector, salt) == expected
    assert score_commitment(9, ALICE, list(vector), salt) == expected  # ints or bytes alike
    assert scores_hash(vector) == keccak256(vector)
    assert score_commitment(9, ALICE, bytes([0, 100, 55, 7]), salt) != expected
    assert score_commitment(9, ALICE, b"", salt) != expected


@pytest.mark.parametrize("scores", [[256], [-1], [True], [1.0]])
def test_score_commitment_rejects_non_bytes(scores: list[object]) -> None:
    with pytest.raises(CommitmentError, match=r"scores\[0\]"):
        score_commitment(1, ALICE, scores, bytes(32))  # type: ignore[arg-type]


def test_score_vector_layout_is_seat_major() -> None:
    matrix = [[10, 11, 12], [20, 21, 22]]  # seat 0, seat 1; three rows
    vector = encode_scores(matrix, 3)
    assert vector == bytes([10, 11, 12, 20, 21, 22])
    assert vector[1 * 3 + 2] == matrix[1][2]  # byte seat * rows + row
    assert decode_scores(vector, 3) == matrix
    assert encode_scores([[100]], 1) == b"\x64"


@pytest.mark.parametrize(
    ("matrix", "rows", "match"),
    [
        ([[1, 2]], 3, "seat 0 has 2 scores"),
        ([[101]], 1, "seat 0, row 0 = 101"),
        ([[-1]], 1, "seat 0, row 0"),
        ([[True]], 1, "seat 0, row 0"),
        ([[0]] * 17, 1, "17 seats"),
        ([[0] * 257], 257, "rows = 257"),
        ([[]], 0, "rows = 0"),
    ],
)
def test_score_vector_shape_and_range_enforced(matrix: list[list[int]], rows: int, match: str) -> None:
    with pytest.raises(CommitmentError, match=match):
        encode_scores(matrix, rows)


def test_decode_scores_refuses_a_ragged_vector() -> None:
    with pytest.raises(CommitmentError, match="5 score bytes"):
        decode_scores(b"\x00" * 5, 2)


def test_rows_hash_and_committee_seed_formulas() -> None:
    rows = [b'{"a":1}', b"", b"x" * 100]
    assert rows_hash(rows) == keccak256(b"".join(keccak256(r) for r in rows))
    assert rows_hash(rows) != rows_hash(rows[::-1])
    commitment = bytes(range(32))
    word = seat_word(5, commitment)
    assert word >> 224 == 5 and word & ((1 << 224) - 1) == int.from_bytes(commitment[4:], "big")
    other = bytes([0xFF]) * 32
    entropy = seed_entropy([(5, commitment), (6, other)])
    assert int.from_bytes(entropy, "big") == seat_word(5, commitment) ^ seat_word(6, other)
    block_hash = bytes([7]) * 32
    expected = keccak256(encode(["bytes32", "bytes32", "uint256", "uint256"], [block_hash, entropy, 11, 1]))
    assert committee_seed(block_hash, entropy, 11, 1) == expected
    assert committee_seed(block_hash, entropy, 11, 0) != expected
    with pytest.raises(CommitmentError):
        seat_word(0, commitment)
    with pytest.raises(CommitmentError):
        committee_seed(block_hash, entropy, 11, -1)


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
