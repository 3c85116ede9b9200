"""The completion-style chat format of base models: rendering, and tool-call parsing on fixed strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.providers.base import Message, ToolCall, ToolSpec
from workflow.providers.transcript import STOP_SEQUENCES, parse_tool_calls, render_prompt

pytestmark = pytest.mark.unit

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SEARCH = ToolSpec(name="search", description="Search the web.")
TOOLS = (WEATHER, SEARCH)


def test_render_plain_conversation() -> None:
    prompt = render_prompt(
        [
            Message(role="system", content="You are terse."),
            Message(role="user", content="Hi"),
            Message(role="assistant", content="Hello."),
            Message(role="user", content="Name a colour."),
        ]
    )
    assert prompt == "You are terse.\n\nUser: Hi\nAssistant: Hello.\nUser: Name a colour.\nAssistant:"
    assert "CALL" not in prompt


def test_render_with_tools_and_history_of_calls() -> None:
    prompt = render_prompt(
        [
            Message(role="user", content="Weather in Paris?"),
            Message(
                role="assistant", tool_calls=(ToolCall(name="get_weather", arguments={"city": "Paris"}),)
            ),
            Message(role="tool", name="get_weather", content="18C"),
            Message(role="user", content="And Rome?"),
        ],
        TOOLS,
    )
    assert prompt.startswith("You can call tools.")
    assert '- get_weather: Current weather of a city. Arguments: {"city": "string"}' in prompt
    assert "- search: Search the web. Arguments: {}" in prompt
    assert 'Assistant: CALL {"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt
    assert "Tool (get_weather): 18C" in prompt
    assert prompt.endswith("User: And Rome?\nAssistant:")
    assert "\nUser:" in STOP_SEQUENCES


@pytest.mark.parametrize(
    ("output", "text", "calls"),
    [
        (
            ' CALL {"name": "get_weather", "arguments": {"city": "Berlin"}}\n',
            "",
            [("get_weather", {"city": "Berlin"})],
        ),
        (
            'Let me check.\nCALL {"name": "search", "arguments": {"query": "owls"}} thanks',
            "Let me check.\nthanks",
            [("search", {"query": "owls"})],
        ),
        (
            'CALL {"name": "search", "arguments": {"query": "a"}}\n'
            'CALL {"name": "get_weather", "arguments": {}}',
            "",
            [("search", {"query": "a"}), ("get_weather", {})],
        ),
        ('{"name": "search", "arguments": {"query": "bare"}}', "", [("search", {"query": "bare"})]),
        (
            '```json\n{"name": "search", "arguments": "{\\"query\\": \\"s\\"}"}\n```',
            "",
            [("search", {"query": "s"})],
        ),
        ('CALL {"name": "search", "parameters": {"query": "p"}}', "", [("search", {"query": "p"})]),
    ],
)
def test_parse_tool_calls(output: str, text: str, calls: list[tuple[str, dict[str, object]]]) -> None:
    got_text, got_calls = parse_tool_calls(output, TOOLS)
    assert got_text == text
    assert [(c.name, c.arguments) for c in got_calls] == calls


@pytest.mark.parametrize(
    "output",
    [
        "It is sunny.",
        'CALL {"name": "unknown_tool", "arguments": {}}',
        'CALL {"name": "search", "arguments": ["not", "an", "object"]}',
        'CALL {"name": "search", "arguments": {"query": "unterminated"',
        "CALL CALL {{{{ ]]]",
        '{"name": "search", "arguments": {}} and then more text',
        "",
    ],
)
def test_garbage_is_plain_text(output: str) -> None:
    text, calls = parse_tool_calls(output, TOOLS)
    assert calls == ()
    assert text == output.strip()


def test_no_tools_means_no_parsing() -> None:
    assert parse_tool_calls('CALL {"name": "search", "arguments": {}}', ()) == (
        'CALL {"name": "search", "arguments": {}}',
        (),
    )


@given(st.text(max_size=300))
def test_parser_never_raises(output: str) -> None:
    text, calls = parse_tool_calls(output, TOOLS)
    assert isinstance(text, str)
    assert all(c.name in {"get_weather", "search"} for c in calls)
