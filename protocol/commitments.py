"""Commitments: what nodes and validators commit to before they reveal.

They bind the committer's identity so nobody can copy another's commitment. The contract exposes
the same functions (``TaskMarket.resultCommitment`` / ``scoreCommitment``, pure); a test proves both
sides agree on random inputs::

    result: keccak256(abi.encode(uint256 taskId, address node, bytes32 resultDigest, bytes32 salt))
    score:  keccak256(abi.encode(uint256 taskId, address validator, uint8[] scores, bytes32 salt))

``scores[i]`` scores the i-th revealed result in reveal order.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from eth_abi.abi import encode

from protocol.canonical import keccak256
from protocol.errors import SynodError
from protocol.types import Bytes32, address_of, bytes32_of, task_id_of

MAX_SCORE = 100
"""Scores run 0..MAX_SCORE; the contract's ``uint8`` would take up to 255."""


class CommitmentError(SynodError, ValueError):
    """A score outside uint8 (ids, addresses and words raise :class:`TypeValidationError`)."""


def new_salt() -> Bytes32:
    """32 bytes from the OS CSPRNG: the secret that hides a committed value until its reveal."""
    return Bytes32(secrets.token_bytes(32))


def result_commitment(task_id: int, node: str, result_digest: bytes, salt: bytes) -> Bytes32:
    """The commitment a node sends for its result digest on ``task_id``."""
    encoded = encode(
        ["uint256", "address", "bytes32", "bytes32"],
        [task_id_of(task_id), address_of(node), bytes32_of(result_digest), bytes32_of(salt)],
    )
    return Bytes32(keccak256(encoded))


def score_commitment(task_id: int, validator: str, scores: Sequence[int], salt: bytes) -> Bytes32:
    """The commitment a validator sends for its score vector on ``task_id``."""
    checked = list(scores)
    for i, score in enumerate(checked):
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 255:
            raise CommitmentError(f"scores[{i}] = {score!r} is not a uint8")
    encoded = encode(
        ["uint256", "address", "uint8[]", "bytes32"],
        [task_id_of(task_id), address_of(validator), checked, bytes32_of(salt)],
    )
    return Bytes32(keccak256(encoded))
