"""The result envelope: one byte form per result, refused unless canonical, capped, digest-checked."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.canonical import keccak256
from protocol.envelope import (
    MAX_ENVELOPE_BYTES,
    MAX_ERROR_CHARS,
    EnvelopeError,
    ResultEnvelope,
    failure,
    is_json_text,
    success,
)

pytestmark = pytest.mark.unit

WF = keccak256(b'{"name":"wf"}')
ROW = b'{"document":"Paris is the capital of France."}'


def test_success_bytes_are_canonical_and_fixed() -> None:
    env = success(workflow_hash=WF, row=ROW, model="gemma3:270m", output='[["Q?"],["A"]]')
    data = env.to_bytes()
    expected = (
        '{"error":null,"input":"0x' + keccak256(ROW).hex() + '","model":"gemma3:270m",'
        '"output":"[[\\"Q?\\"],[\\"A\\"]]","output_is_json":true,"v":1,"workflow":"0x' + WF.hex() + '"}'
    ).encode()
    assert data == expected
    assert env.digest() == keccak256(expected)
    assert ResultEnvelope.from_bytes(data, expect_digest=env.digest()) == env


def test_plain_text_output_is_not_json() -> None:
    env = success(workflow_hash=WF, row=ROW, model="m", output="Paris")
    assert env.output_is_json is False and env.ok
    assert is_json_text("NaN") is False and is_json_text("1") is True and is_json_text("[1") is False


def test_failure_envelope_cuts_reason_and_has_no_output() -> None:
    env = failure(workflow_hash=WF, row=ROW, model="m", reason="x" * (MAX_ERROR_CHARS + 10))
    assert not env.ok and env.output == "" and env.error is not None and len(env.error) == MAX_ERROR_CHARS
    assert ResultEnvelope.from_bytes(env.to_bytes()) == env


def test_non_canonical_encodings_of_same_content_refused() -> None:
    env = success(workflow_hash=WF, row=ROW, model="m", output="hi")
    spaced = json.dumps(env.model_dump(), sort_keys=True).encode()  # ", " and ": " separators
    with pytest.raises(EnvelopeError, match="canonical"):
        ResultEnvelope.from_bytes(spaced)
    unsorted = json.dumps(dict(reversed(list(env.model_dump().items()))), separators=(",", ":")).encode()
    with pytest.raises(EnvelopeError, match="canonical"):
        ResultEnvelope.from_bytes(unsorted)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not JSON"),
        (b"[" * 20000, "brackets"),
        (b'{"v":2}', "invalid result envelope"),
        (
            b'{"error":null,"input":"0x00","model":"m","output":"","output_is_json":false,"v":1,"workflow":"0x0000000000000000000000000000000000000000000000000000000000000000"}',
            "input",
        ),
    ],
)
def test_malformed_bytes_refused_with_reason(data: bytes, needle: str) -> None:
    with pytest.raises(EnvelopeError, match=needle):
        ResultEnvelope.from_bytes(data)


def test_lying_output_is_json_flag_refused() -> None:
    env = success(workflow_hash=WF, row=ROW, model="m", output="plain")
    raw = env.model_dump()
    raw["output_is_json"] = True
    data = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(EnvelopeError, match="output_is_json"):
        ResultEnvelope.from_bytes(data)


def test_digest_mismatch_refused() -> None:
    env = success(workflow_hash=WF, row=ROW, model="m", output="a")
    other = success(workflow_hash=WF, row=ROW, model="m", output="b")
    with pytest.raises(EnvelopeError, match="not the committed"):
        ResultEnvelope.from_bytes(env.to_bytes(), expect_digest=other.digest())


def test_size_cap_at_exact_boundary() -> None:
    base = len(success(workflow_hash=WF, row=ROW, model="m", output="").to_bytes())
    at_cap = success(workflow_hash=WF, row=ROW, model="m", output="a" * (MAX_ENVELOPE_BYTES - base))
    assert len(at_cap.to_bytes()) == MAX_ENVELOPE_BYTES
    assert ResultEnvelope.from_bytes(at_cap.to_bytes()) == at_cap
    with pytest.raises(EnvelopeError, match="over the cap"):
        success(workflow_hash=WF, row=ROW, model="m", output="a" * (MAX_ENVELOPE_BYTES - base + 1))
    with pytest.raises(EnvelopeError, match="over the cap"):
        ResultEnvelope.from_bytes(b" " * (MAX_ENVELOPE_BYTES + 1))


@given(st.text(max_size=300), st.binary(max_size=100), st.text(min_size=1, max_size=20))
def test_roundtrip_any_output(output: str, row: bytes, model: str) -> None:
    env = success(workflow_hash=WF, row=row, model=model, output=output)
    assert ResultEnvelope.from_bytes(env.to_bytes(), expect_digest=env.digest()) == env
    assert env.input == "0x" + keccak256(row).hex()
