"""Commitments and hashes of protocol v2 (batches): what nodes and validators commit to, and how.

Every formula is TaskMarket's (docs/contracts.md, "Ids, hashes and commitments"); the contract
exposes the pure ones as views (``resultCommitment``, ``scoreCommitment``, ``rowsHash``) and a
hypothesis test on a real Anvil proves both sides agree on random inputs::

    digests hash:       keccak256(abi.encodePacked(bytes32[] digests))     (the 32-byte words concatenated)
    result commitment:  keccak256(abi.encode(uint256 batchId, address node, bytes32 digestsHash,
                                             bytes32 salt))
    score commitment:   keccak256(abi.encode(uint256 batchId, address validator, bytes32 keccak256(scores),
                                             bytes32 salt))
    rows hash:          keccak256(abi.encodePacked(keccak256(row_0), ..., keccak256(row_{n-1})))
    input hash:         keccak256(abi.encode(bytes32 keccak256(workflow), bytes32 rowsHash))   (BatchView)
    committee seed:     keccak256(abi.encode(bytes32 blockhash(seedBlock), bytes32 entropy, uint256 batchId,
                                             uint256 round))
    entropy:            XOR over node seats of (nodeId << 224 | low 224 bits of the seat's commitment)

Commitments bind the committer's address, so a lazy participant cannot copy another's commitment.
A score vector is ``commitCount * rows`` bytes: byte ``seat * rows + row`` (0..100) scores node seat
``seat``'s digest for ``row`` (see :func:`encode_scores`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from eth_abi.abi import encode

from protocol.canonical import keccak256
from protocol.errors import SynodError
from protocol.types import Bytes32, address_of, batch_id_of, bytes32_of

MAX_SCORE = 100
"""Scores run 0..MAX_SCORE (the contract reverts ``BatchScoreOutOfRange`` above it at the reveal)."""

MAX_BATCH_SIZE = 256
"""Rows per batch at most (``TaskMarket.MAX_BATCH_SIZE``; checked against the contract by a test)."""

MAX_RESULTS = 16
"""Node seats per batch at most (``TaskMarket.MAX_RESULTS``; checked against the contract by a test)."""


class CommitmentError(SynodError, ValueError):
    """A score or score matrix of the wrong shape or range (ids, addresses and words raise
    :class:`~protocol.types.TypeValidationError`)."""


def new_salt() -> Bytes32:
    """32 bytes from the OS CSPRNG: the secret that hides a committed value until its reveal."""
    return Bytes32(secrets.token_bytes(32))


def _digest_list(digests: Sequence[bytes]) -> list[Bytes32]:
    if isinstance(digests, bytes | bytearray | str):
        raise CommitmentError("digests must be a sequence of 32-byte words, not one bytes/str value")
    return [bytes32_of(d) for d in digests]


def digests_hash(digests: Sequence[bytes]) -> Bytes32:
    """keccak256 of the 32-byte ``digests`` concatenated (``abi.encodePacked(bytes32[])``)."""
    return Bytes32(keccak256(b"".join(_digest_list(digests))))


def result_commitment(batch_id: int, node: str, digests: Sequence[bytes], salt: bytes) -> Bytes32:
    """The commitment node ``node`` sends for its ``digests`` (one per row, in row order) on ``batch_id``.

    Raises :class:`~protocol.types.TypeValidationError` for a bad id, address, digest or salt.
    """
    encoded = encode(
        ["uint256", "address", "bytes32", "bytes32"],
        [batch_id_of(batch_id), address_of(node), digests_hash(digests), bytes32_of(salt)],
    )
    return Bytes32(keccak256(encoded))


def _score_bytes(scores: Sequence[int] | bytes) -> bytes:
    if isinstance(scores, bytes | bytearray):
        return bytes(scores)
    checked = list(scores)
    for i, score in enumerate(checked):
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 255:
            raise CommitmentError(f"scores[{i}] = {score!r} is not a byte (0..255)")
    return bytes(checked)


def scores_hash(scores: Sequence[int] | bytes) -> Bytes32:
    """keccak256 of the score vector's bytes (what ``committeeSeat(...).seal`` holds after the reveal)."""
    return Bytes32(keccak256(_score_bytes(scores)))


def score_commitment(batch_id: int, validator: str, scores: Sequence[int] | bytes, salt: bytes) -> Bytes32:
    """The commitment committee member ``validator`` sends for its score vector on ``batch_id``.

    ``scores`` is the vector's bytes, or a sequence of ints 0..255 (raises :class:`CommitmentError`
    otherwise; the contract itself only refuses values above 100 at the reveal).
    """
    encoded = encode(
        ["uint256", "address", "bytes32", "bytes32"],
        [batch_id_of(batch_id), address_of(validator), scores_hash(scores), bytes32_of(salt)],
    )
    return Bytes32(keccak256(encoded))


def encode_scores(matrix: Sequence[Sequence[int]], rows: int) -> bytes:
    """The score vector for ``matrix[seat][row]`` (one list per node seat that committed, in seat order).

    Every seat that committed needs an entry, revealed or not (the contract ignores unrevealed
    seats' bytes but counts them: ``len == commitCount * rows``). Raises :class:`CommitmentError`
    unless every list has ``rows`` scores in 0..100 and ``1 <= rows <= 256``, ``len(matrix) <= 16``.
    """
    if not 1 <= rows <= MAX_BATCH_SIZE:
        raise CommitmentError(f"rows = {rows} is outside 1..{MAX_BATCH_SIZE}")
    if len(matrix) > MAX_RESULTS:
        raise CommitmentError(f"{len(matrix)} seats: at most {MAX_RESULTS}")
    out = bytearray()
    for seat, seat_scores in enumerate(matrix):
        if len(seat_scores) != rows:
            raise CommitmentError(f"seat {seat} has {len(seat_scores)} scores, the batch has {rows} rows")
        for row, score in enumerate(seat_scores):
            if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= MAX_SCORE:
                raise CommitmentError(f"score of seat {seat}, row {row} = {score!r} is not in 0..{MAX_SCORE}")
            out.append(score)
    return bytes(out)


def decode_scores(scores: bytes, rows: int) -> list[list[int]]:
    """The inverse of :func:`encode_scores`: ``result[seat][row]``; raises :class:`CommitmentError`
    when ``len(scores)`` is not a multiple of ``rows``."""
    if rows < 1 or len(scores) % rows:
        raise CommitmentError(f"{len(scores)} score bytes do not split into rows of {rows}")
    return [list(scores[i : i + rows]) for i in range(0, len(scores), rows)]


def rows_hash(rows: Sequence[bytes]) -> Bytes32:
    """keccak256 of the concatenated keccak256 of each row's bytes (``BatchPosted.rowsHash``)."""
    if isinstance(rows, bytes | bytearray | str):
        raise CommitmentError("rows must be a sequence of bytes values, not one bytes/str value")
    return Bytes32(keccak256(b"".join(keccak256(bytes(row)) for row in rows)))


def input_hash(workflow_hash: bytes, rows: Sequence[bytes]) -> Bytes32:
    """The word an open batch stores for its inputs (``BatchView.inputHash``): keccak256 of the ABI
    encoding of (``workflow_hash`` = keccak256 of the job's workflow bytes, :func:`rows_hash` of the
    batch's rows)."""
    encoded = encode(["bytes32", "bytes32"], [bytes32_of(workflow_hash), rows_hash(rows)])
    return Bytes32(keccak256(encoded))


def seat_word(node_id: int, commitment: bytes) -> int:
    """The stored word of a node seat: ``nodeId << 224 | low 224 bits of the commitment``.

    ``node_id`` is the node's registry id (``participant(node).id``, uint32).
    """
    if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 < node_id < 2**32:
        raise CommitmentError(f"node id {node_id!r} is not a uint32 registry id")
    low = int.from_bytes(bytes32_of(commitment), "big") & ((1 << 224) - 1)
    return node_id << 224 | low


def seed_entropy(seats: Sequence[tuple[int, bytes]]) -> Bytes32:
    """XOR of :func:`seat_word` over the batch's node seats, ``(node id, commitment)`` each."""
    acc = 0
    for node_id, commitment in seats:
        acc ^= seat_word(node_id, commitment)
    return Bytes32(acc.to_bytes(32, "big"))


def committee_seed(block_hash: bytes, entropy: bytes, batch_id: int, round_: int) -> Bytes32:
    """The committee seed of ``round_`` (0-based): anyone can recheck ``CommitteeDrawn.seed`` with it."""
    if isinstance(round_, bool) or not isinstance(round_, int) or round_ < 0:
        raise CommitmentError(f"round {round_!r} is not a non-negative int")
    encoded = encode(
        ["bytes32", "bytes32", "uint256", "uint256"],
        [bytes32_of(block_hash), bytes32_of(entropy), batch_id_of(batch_id), round_],
    )
    return Bytes32(keccak256(encoded))
