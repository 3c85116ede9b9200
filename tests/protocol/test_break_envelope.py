"""Break-it review of the result envelope: inputs an honest node can produce or a hostile one can send."""

from __future__ import annotations

import sys
import time

import pytest

from protocol.canonical import keccak256
from protocol.envelope import (
    MAX_ENVELOPE_BYTES,
    MAX_JSON_DEPTH,
    EnvelopeError,
    ResultEnvelope,
    failure,
    is_json_text,
    json_depth,
    success,
)

pytestmark = pytest.mark.unit

WF = keccak256(b'{"name":"wf"}')
ROW = b'{"q":"x"}'
HEX = "0x" + "11" * 32


def test_an_output_full_of_brackets_round_trips() -> None:
    # Brackets inside the output string are text, not nesting: an honest node's envelope of
    # 10,001 "[" used to be refused by every validator ("too many brackets").
    env = success(workflow_hash=WF, row=ROW, model="m", output="[" * 10_001 + "{" * 10_001)
    assert ResultEnvelope.from_bytes(env.to_bytes(), expect_digest=env.digest()) == env


def test_a_nested_envelope_is_refused_without_recursion() -> None:
    data = ("[" * 100_000 + "]" * 100_000).encode()
    with pytest.raises(EnvelopeError, match="nests brackets deeper"):
        ResultEnvelope.from_bytes(data)


def _at_stack_depth(frames: int, text: str) -> bool:
    if frames == 0:
        return is_json_text(text)
    return _at_stack_depth(frames - 1, text)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 990])
def test_output_is_json_does_not_depend_on_the_callers_stack(depth: int) -> None:
    # The C parser's recursion limit counts the caller's frames: at depth 990 a shallow caller
    # said True and a caller 100 frames deeper said False, so node and validator disagreed.
    text = "[" * depth + "]" * depth
    shallow = is_json_text(text)
    deep = _at_stack_depth(sys.getrecursionlimit() // 2, text)
    assert shallow == deep == (depth <= MAX_JSON_DEPTH)


def test_json_depth_ignores_brackets_in_strings_and_escapes() -> None:
    assert json_depth('{"a":"[[[{","b":["\\"]]"]}') == 2
    assert json_depth('"\\\\"') == 0
    assert json_depth("[[1],[[2]]]") == 3


def test_json_depth_is_linear_on_hostile_escapes() -> None:
    text = '"' + '\\"' * (MAX_ENVELOPE_BYTES // 2)
    started = time.perf_counter()
    json_depth(text + "[[")
    assert time.perf_counter() - started < 2.0


def test_a_lone_surrogate_from_a_hostile_peer_is_an_envelope_error() -> None:
    data = (
        '{"error":null,"input":"' + HEX + '","model":"m","output":"\\ud800",'
        '"output_is_json":false,"v":1,"workflow":"' + HEX + '"}'
    ).encode()
    with pytest.raises(EnvelopeError, match="no UTF-8 form"):
        ResultEnvelope.from_bytes(data)


def test_a_lone_surrogate_in_a_node_output_is_an_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="no UTF-8 form"):
        success(workflow_hash=WF, row=ROW, model="m", output="ok \ud800")


def test_failure_never_raises_for_a_surrogate_reason() -> None:
    env = failure(workflow_hash=WF, row=ROW, model="m", reason="bad \udcff byte")
    assert env.error == "bad ? byte"
    assert ResultEnvelope.from_bytes(env.to_bytes()) == env
