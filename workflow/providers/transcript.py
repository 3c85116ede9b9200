"""The completion-style chat format used for base models (the embedded llama.cpp provider).

A base model has no chat template, so a conversation is rendered as a plain transcript that the
model continues after the final ``Assistant:``::

    <system messages, one paragraph each>

    You can call tools. To call one, answer with a single line:
    CALL {"name": "<tool name>", "arguments": {<JSON arguments>}}
    Otherwise answer in plain text.

    Tools:
    - search: Search the web. Arguments: {"query": "string"}

    User: What is the weather in Paris?
    Assistant: CALL {"name": "get_weather", "arguments": {"city": "Paris"}}
    Tool (get_weather): 18C, sunny
    Assistant: It is 18C and sunny in Paris.
    User: ...
    Assistant:

The tools block appears only when tools are given. Assistant messages carrying tool calls are
rendered as ``CALL`` lines, so earlier turns serve as few-shot examples of the format. Generation
stops at the next ``User:`` / ``Tool (`` / ``System:`` line.

:func:`parse_tool_calls` reads ``CALL {...}`` lines (and, leniently, a reply that is a bare
``{"name": ..., "arguments": {...}}`` object) naming one of the offered tools. Anything that does
not parse, or names an unknown tool, is left as plain text: garbage never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from workflow.providers.base import Message, ToolCall, ToolSpec

CALL_PREFIX = "CALL"
STOP_SEQUENCES: tuple[str, ...] = ("\nUser:", "\nTool (", "\nSystem:")

_CALL_RE = re.compile(r"\bCALL\s*(?=\{)")


def _argument_summary(spec: ToolSpec) -> str:
    properties = spec.parameters.get("properties", {})
    if not isinstance(properties, dict) or not properties:
        return "{}"
    summary: dict[str, str] = {}
    for name, schema in properties.items():
        kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
        summary[str(name)] = str(kind)
    return json.dumps(summary, ensure_ascii=False)


def render_tools(tools: Sequence[ToolSpec]) -> str:
    """The instructions and the tool list shown to the model."""
    lines = [
        "You can call tools. To call one, answer with a single line:",
        f'{CALL_PREFIX} {{"name": "<tool name>", "arguments": {{<JSON arguments>}}}}',
        "Otherwise answer in plain text.",
        "",
        "Tools:",
    ]
    for spec in tools:
        description = " ".join(spec.description.split()) or "no description"
        lines.append(f"- {spec.name}: {description} Arguments: {_argument_summary(spec)}")
    return "\n".join(lines)


def render_call(call: ToolCall) -> str:
    """One tool call as the model is asked to write it."""
    payload = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"{CALL_PREFIX} {payload}"


def _one_line(text: str) -> str:
    return text.strip()


def render_prompt(messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> str:
    """Render a conversation as a transcript ending in ``Assistant:`` for the model to continue."""
    head: list[str] = [m.content.strip() for m in messages if m.role == "system" and m.content.strip()]
    if tools:
        head.append(render_tools(tools))
    turns: list[str] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "user":
            turns.append(f"User: {_one_line(message.content)}")
        elif message.role == "assistant":
            parts = [message.content.strip()] if message.content.strip() else []
            parts.extend(render_call(call) for call in message.tool_calls)
            turns.append("Assistant: " + "\n".join(parts))
        else:
            turns.append(f"Tool ({message.name or 'tool'}): {_one_line(message.content)}")
    turns.append("Assistant:")
    sections = [*head, "\n".join(turns)]
    return "\n\n".join(sections)


def _decode_object(text: str, start: int) -> tuple[Any, int] | None:
    try:
        return json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None


def _as_call(value: Any, allowed: set[str]) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        decoded = _decode_object(arguments.strip(), 0) if arguments.strip() else ({}, 0)
        arguments = decoded[0] if decoded else None
    if not isinstance(name, str) or name not in allowed or not isinstance(arguments, dict):
        return None
    return ToolCall(name=name, arguments=arguments)


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> tuple[str, tuple[ToolCall, ...]]:
    """Split model output into (plain text, tool calls). Never raises on malformed output."""
    allowed = {spec.name for spec in tools}
    if not allowed:
        return text.strip(), ()
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    for match in _CALL_RE.finditer(text):
        decoded = _decode_object(text, match.end())
        if decoded is None:
            continue
        call = _as_call(decoded[0], allowed)
        if call is not None:
            calls.append(call)
            spans.append((match.start(), decoded[1]))
    if not calls:
        stripped = text.strip()
        fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, flags=re.DOTALL)
        candidate = fenced.group(1) if fenced else stripped
        if candidate.startswith("{"):
            decoded = _decode_object(candidate, 0)
            if decoded is not None and not candidate[decoded[1] :].strip():
                call = _as_call(decoded[0], allowed)
                if call is not None:
                    return "", (call,)
        return stripped, ()
    remaining: list[str] = []
    cursor = 0
    for start, end in spans:
        remaining.append(text[cursor:start])
        cursor = end
    remaining.append(text[cursor:])
    plain = "\n".join(part.strip() for part in remaining if part.strip())
    return plain, tuple(calls)
