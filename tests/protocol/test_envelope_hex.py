"""The envelope's two digest fields (``workflow``, ``input``) take exactly ``0x`` + 64 lowercase
hex digits (protocol/envelope.py ``_hex32``, now one regex match): every near miss is refused,
both when built and when parsed from bytes, so node and validator agree on what is canonical."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from protocol.envelope import EnvelopeError, ResultEnvelope

pytestmark = pytest.mark.unit

GOOD = "0x" + "0123456789abcdef" * 4


def _fields(workflow: str) -> dict[str, object]:
    return {"v": 1, "workflow": workflow, "input": GOOD, "model": "m", "output": "x", "output_is_json": False}


def test_a_lowercase_digest_is_taken() -> None:
    envelope = ResultEnvelope.model_validate(_fields(GOOD))
    assert envelope.workflow == GOOD
    assert ResultEnvelope.from_bytes(envelope.to_bytes()) == envelope


@pytest.mark.parametrize(
    "bad",
    [
        "0x" + "0123456789ABCDEF" * 4,  # uppercase
        GOOD + "\n",  # a trailing newline ($ would let it through)
        GOOD[:-1] + "\n",  # 66 characters, the last a newline
        GOOD[:-1],  # 63 digits
        GOOD + "0",  # 65 digits
        "0X" + GOOD[2:],  # uppercase prefix
        "00" + GOOD[2:],  # no prefix
        GOOD[:-1] + "g",  # not hex
        GOOD[:-1] + "\u0661",  # a non-ASCII digit (ARABIC-INDIC ONE)
        "",
    ],
)
def test_every_near_miss_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="0x followed by 64 lowercase hex digits"):
        ResultEnvelope.model_validate(_fields(bad))
    raw = json.dumps(_fields(bad), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(EnvelopeError, match="workflow"):
        ResultEnvelope.from_bytes(raw)
