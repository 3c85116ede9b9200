"""The kinds of workflow the original engine (Ollama Workflows, as Dria uses it) runs and Synod once
refused or ran differently, one small case each, written for this project: scalar external memory,
steps to no task, unknown fields, empty tool names, schema forms, function calling without a call
or with a call written in the text, the original's tool names. The model is scripted; tools are
real objects speaking the tool interface."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest
import trio
from test_wf_engine import END, _in, _out, _task, run
from wf_helpers import ScriptedProvider, workflow_dict

from workflow.calls import coerce_arguments, parse_text_calls
from workflow.errors import ToolNotFoundError, WorkflowRuntimeError, WorkflowValidationError
from workflow.providers.base import ToolCall, ToolSpec
from workflow.schema import JsonSchema, SchemaError, TextConstraint, decode_schema
from workflow.tools.base import Source, ToolResult
from workflow.tools.http import Fetcher
from workflow.tools.registry import ToolSettings, build_toolset, resolve_call
from workflow.validate import inspect_workflow, parse_workflow

pytestmark = pytest.mark.unit


class PageTool:
    """A real tool under the scraper's name: returns a fixed page for any ``url``."""

    def __init__(self, name: str = "scraper") -> None:
        self._name = name
        self.calls: list[Mapping[str, Any]] = []

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self._name,
            description="Fetch a page.",
            parameters={"type": "object", "properties": {"url": {"type": "string"}}},
        )

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.calls.append(arguments)
        return ToolResult(
            content=f"page {arguments.get('url')}", sources=(Source(url="memory://p", digest="0x0"),)
        )


# 1. external_memory: every entry is readable -------------------------------------------------


def test_scalar_external_memory_is_read_with_read_and_lists_are_stacks() -> None:
    data = workflow_dict(
        external_memory={"topic": "owls", "spec": {"n": 3}, "names": ["Ada", "Bo"]},
        tasks=[
            _task(
                "A",
                "{{topic}} {{spec}} {{top}} {{all}}",
                [
                    _in("topic", "read", "topic"),
                    _in("spec", "read", "spec"),
                    _in("top", "pop", "names"),
                    _in("all", "get_all", "names"),
                ],
                [_out("write", "r")],
            ),
            END,
        ],
    )
    provider = ScriptedProvider(["ok"])
    outcome = run(provider, data)
    assert outcome.error is None
    assert provider.prompts == ['owls {"n":3} Bo Ada \n']


# 2. a step to no task ends the run; a step *from* no task fails when reached ------------------


def test_a_step_target_naming_no_task_ends_the_run() -> None:
    data = workflow_dict(steps=[{"source": "A", "target": "end"}])
    checked = inspect_workflow(data)
    assert [w.path for w in checked.warnings] == ["steps[0].target"]
    outcome = run(ScriptedProvider(["said"]), data, {"topic": "t"})
    assert outcome.error is None and outcome.result is not None and outcome.result.value == "said"
    assert [(s.task_id, s.next) for s in outcome.trace.steps] == [("A", "end")]


def test_a_reached_step_whose_source_names_no_task_fails_the_run() -> None:
    data = workflow_dict(steps=[{"source": "A", "target": "ghost"}, {"source": "ghost", "target": "__end"}])
    outcome = run(ScriptedProvider(["said"]), data, {"topic": "t"})
    assert isinstance(outcome.error, WorkflowRuntimeError) and "'ghost' names no task" in str(outcome.error)
    with pytest.raises(WorkflowValidationError, match=r"steps\[0\]\.target"):
        parse_workflow(data, strict=True)


# 3. unknown fields: ignored with a warning ----------------------------------------------------


def test_unknown_fields_are_ignored_and_the_run_is_unchanged() -> None:
    plain = run(ScriptedProvider(["same"]), workflow_dict(), {"topic": "t"})
    data = workflow_dict()
    data["tasks"][0]["inputs"][0]["value"]["required"] = True
    data["config"]["flavour"] = "mint"
    assert len(inspect_workflow(data).warnings) == 2
    odd = run(ScriptedProvider(["same"]), data, {"topic": "t"})
    assert plain.result is not None and odd.result is not None and odd.result.value == plain.result.value


# 4. an empty tool name fails only a tool-calling task ----------------------------------------


def _calling(tools: list[str], op: str = "function_calling") -> dict[str, Any]:
    return workflow_dict(
        config={"max_steps": 5, "max_time": 30, "tools": tools},
        tasks=[
            _task("F", "Fetch http://x/", [], [_out("write", "r")], op=op),
            _task("G", "fallback", [], [_out("write", "r")]),
            END,
        ],
        steps=[{"source": "F", "target": "__end", "fallback": "G"}, {"source": "G", "target": "__end"}],
        return_value={"input": {"type": "read", "key": "r"}},
    )


def test_an_empty_tool_name_is_accepted_until_a_tool_calling_task_runs() -> None:
    data = workflow_dict(config={"max_steps": 5, "max_time": 30, "tools": [""]})
    outcome = run(ScriptedProvider(["fine"]), data, {"topic": "t"})
    assert outcome.result is not None and outcome.result.value == "fine"
    calling = run(ScriptedProvider(["from the fallback"]), _calling([""]), tools=[PageTool()])
    assert calling.result is not None and calling.result.value == "from the fallback"
    failed = calling.trace.steps[0]
    assert failed.status == "failed" and "unknown tool(s) ''" in (failed.error or "")


# 5. schema forms ------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (json.dumps(SCHEMA), JsonSchema(SCHEMA)),
        (_b64(json.dumps(SCHEMA)), JsonSchema(SCHEMA)),
        (
            json.dumps({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}),
            JsonSchema(SCHEMA),
        ),
        (_b64(r'\{"a": "[a-z]+"\}'), TextConstraint(r'\{"a": "[a-z]+"\}')),
    ],
    ids=["raw", "base64", "gemini", "base64 regex"],
)
def test_schema_forms(given: str, expected: JsonSchema | TextConstraint) -> None:
    assert decode_schema(given) == expected


@pytest.mark.parametrize("bad", ["%%%", "{not json", _b64("   "), "bm90IHV0Zjj/"])
def test_a_schema_in_no_form_is_rejected(bad: str) -> None:
    with pytest.raises(SchemaError):
        decode_schema(bad)


def _nested(levels: int) -> str:
    return '{"type": "object", "properties": {"a": ' * levels + '{"type": "string"}' + "}}" * levels


@pytest.mark.parametrize("encode", [lambda s: s, _b64], ids=["raw", "base64"])
def test_a_schema_nested_too_deeply_is_refused_before_parsing(encode: Any) -> None:
    # the schema is a string inside the workflow, so the workflow's own depth check never saw it;
    # json.loads of 20,000 levels raised RecursionError, or, with py_ecc's raised recursion limit
    # (the node and the validator import it), overflowed the C stack and killed the process
    assert decode_schema(encode(_nested(15))) == JsonSchema(json.loads(_nested(15)))  # 31 brackets deep
    with pytest.raises(SchemaError, match="nested deeper than 32 levels"):
        decode_schema(encode(_nested(16)))  # 33
    with pytest.raises(SchemaError, match="nested deeper than 32 levels"):
        decode_schema(encode(_nested(20_000)))
    data = workflow_dict()
    data["tasks"][0]["schema"] = encode(_nested(20_000))
    with pytest.raises(WorkflowValidationError, match="nested deeper than 32 levels"):
        parse_workflow(data)


def test_raw_schema_reaches_the_provider_and_a_text_constraint_leads_the_chat() -> None:
    data = workflow_dict()
    data["tasks"][0]["schema"] = json.dumps(SCHEMA)
    provider = ScriptedProvider(['{"a": "x"}'])
    run(provider, data, {"topic": "t"})
    assert provider.options[0].json_schema == SCHEMA
    data["tasks"][0]["schema"] = _b64("REGEX")
    provider = ScriptedProvider(['{"a": "x"}'])
    run(provider, data, {"topic": "t"})
    assert provider.options[0].json_schema == {"type": "object"}
    assert provider.prompts == ["assistant: REGEX\nuser: Say something about t."]


# 6. function calling: no call fails the task; a call written as text runs -------------------


def test_no_tool_call_fails_the_task_so_the_fallback_runs() -> None:
    tool = PageTool()
    outcome = run(
        ScriptedProvider(["I would rather chat.", "fallback ran"]), _calling(["scraper"]), tools=[tool]
    )
    assert outcome.result is not None and outcome.result.value == "fallback ran"
    assert "holds no tool call" in (outcome.trace.steps[0].error or "") and tool.calls == []


@pytest.mark.parametrize(
    "reply",
    [
        '{"name": "scraper", "arguments": {"url": "http://x/"}}',
        '```json\n{"name": "scraper", "arguments": "{\\"url\\": \\"http://x/\\"}"}\n```',
        '<function=scraper>{"url": "http://x/"}</function>',
    ],
    ids=["json", "fenced, string arguments", "llama"],
)
def test_a_tool_call_written_in_the_reply_runs(reply: str) -> None:
    tool = PageTool()
    outcome = run(ScriptedProvider([reply]), _calling(["scraper"]), tools=[tool])
    assert outcome.result is not None and outcome.result.value == "page http://x/"
    assert tool.calls == [{"url": "http://x/"}]
    assert outcome.trace.steps[0].tool_calls == (ToolCall(name="scraper", arguments={"url": "http://x/"}),)


def test_raw_mode_returns_a_text_call_as_json_and_plain_text_as_is() -> None:
    call = '{"name": "scraper", "arguments": {"url": "u"}}'
    outcome = run(ScriptedProvider([call]), _calling(["scraper"], "function_calling_raw"), tools=[PageTool()])
    assert outcome.result is not None
    assert json.loads(outcome.result.value) == {"name": "scraper", "arguments": {"url": "u"}}
    outcome = run(
        ScriptedProvider(["no call"]), _calling(["scraper"], "function_calling_raw"), tools=[PageTool()]
    )
    assert outcome.result is not None and outcome.result.value == "no call"


def test_text_call_parsing_never_raises_on_garbage() -> None:
    for garbage in [
        "",
        "{",
        "[1, 2]",
        '{"name": 3}',
        '{"name": "x", "arguments": [1]}',
        "<function=x>{</function>",
    ]:
        assert parse_text_calls(garbage) == ()
    assert coerce_arguments('{"a": 1}') == {"a": 1} and coerce_arguments("") == {}
    with pytest.raises(ValueError, match="list, not an object"):
        coerce_arguments([1])


# 7. the original's tool names -----------------------------------------------------------------


def test_the_originals_tool_names_reach_synods_tools() -> None:
    tool = PageTool()
    reply = '{"name": "website_scraper", "arguments": {"url": "http://x/"}}'
    outcome = run(ScriptedProvider([reply]), _calling(["scraper"]), tools=[tool])
    assert outcome.result is not None and outcome.result.value == "page http://x/"
    jina = PageTool("jina")  # any configured scraper serves a scraper name
    assert resolve_call("browserless_web_scraper", {"jina": jina}) is jina
    assert resolve_call("ddg_searcher", {"jina": jina}) is None


def test_a_tool_not_available_here_is_named_clearly() -> None:
    reply = '{"name": "stock_scraper", "arguments": {"ticker": "AAPL"}}'
    data = _calling(["scraper"])
    data["steps"] = [{"source": "F", "target": "__end"}]
    outcome = run(ScriptedProvider([reply]), data, tools=[PageTool()])
    assert isinstance(outcome.error, ToolNotFoundError)
    assert "stock" in str(outcome.error) and "not available here" in str(outcome.error)


def test_toolset_builds_what_it_can_and_keeps_the_reasons() -> None:
    async def main() -> tuple[list[str], dict[str, str], bool]:
        async with Fetcher(ToolSettings().fetch_limits()) as fetcher:
            toolset = build_toolset(["scraper", "stock", "serper", ""], [], ToolSettings(), fetcher)
            return sorted(toolset.tools), toolset.unavailable, toolset.web_search is None

    names, unavailable, no_search = trio.run(main)
    assert names == ["scraper"] and no_search
    assert set(unavailable) == {"stock", "serper", ""}
    assert "serper_api_key" in unavailable["serper"] and "unknown tool ''" in unavailable[""]


def test_a_placeholder_custom_tool_loads_and_fails_only_when_called() -> None:
    data = _calling(["scraper"])
    data["config"]["custom_tool"] = {"name": "", "description": "", "url": "url", "method": "GET"}
    data["config"]["custom_tools"] = [{"name": "feed", "description": "d", "url": "url", "method": "GET"}]
    checked = inspect_workflow(data)
    assert [w.reason for w in checked.warnings] == [
        "custom tool 'feed': url 'url' is not http(s); a call to it fails",
        "a custom tool with an empty name is ignored",
    ]
    assert [t.name for t in checked.workflow.custom_templates()] == ["feed"]

    async def main() -> Any:
        from workflow.engine import Engine

        async with Fetcher(ToolSettings().fetch_limits()) as fetcher:
            toolset = build_toolset(["scraper"], checked.workflow.custom_templates(), ToolSettings(), fetcher)
            engine = Engine(
                ScriptedProvider(['{"name": "feed", "arguments": {}}', "fallback"]),
                tools=list(toolset.tools.values()),
            )
            return await engine.execute(checked.workflow, {})

    outcome = trio.run(main)
    assert outcome.result is not None and outcome.result.value == "fallback"
    assert "url" in (outcome.trace.steps[0].error or "")
