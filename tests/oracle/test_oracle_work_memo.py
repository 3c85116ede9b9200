"""The batch-wide hash memo of :func:`oracle.daemon.work.check_envelope`: each row's and model
name's keccak is taken once per batch, and a memo never lets one row's envelope pass as another's."""

from __future__ import annotations

import pytest

from oracle.daemon.work import BatchWork, check_envelope
from protocol.canonical import canonical_bytes, keccak256
from protocol.envelope import success

pytestmark = pytest.mark.unit

WORKFLOW_HASH = keccak256(b"workflow")
MODEL = "gemma3:270m"
ROWS = (canonical_bytes({"question": "a?", "n": 0}), canonical_bytes({"question": "a?", "n": 1}))
WORK = BatchWork(
    batch_id=1,
    round=0,
    commit_count=3,
    rows=ROWS,
    workflow_hash=WORKFLOW_HASH,
    model_id=keccak256(MODEL.encode()),
    revealed=(),
)


def _envelope(row: int, model: str = MODEL) -> bytes:
    return success(workflow_hash=WORKFLOW_HASH, row=ROWS[row], model=model, output="b.").to_bytes()


def test_the_memo_holds_each_rows_and_models_hash_and_keeps_rows_apart() -> None:
    hashes: dict[bytes, bytes] = {}
    first, second = _envelope(0), _envelope(1)
    assert check_envelope(first, keccak256(first), WORK, 0, hashes) == ("b.", "")
    assert hashes == {ROWS[0]: keccak256(ROWS[0]), MODEL.encode(): keccak256(MODEL.encode())}
    # with row 0's hash memoised, row 1's envelope is still refused as row 0 and accepted as row 1
    assert "not row 0" in check_envelope(second, keccak256(second), WORK, 0, hashes)[1]
    assert check_envelope(second, keccak256(second), WORK, 1, hashes) == ("b.", "")
    assert "not row 1" in check_envelope(first, keccak256(first), WORK, 1, hashes)[1]
    # a memoised good model name does not let another model through
    other = _envelope(0, model="llama3:8b")
    assert "model" in check_envelope(other, keccak256(other), WORK, 0, hashes)[1]
    assert len(hashes) == 4
