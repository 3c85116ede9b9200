"""Tool calls written in a model's reply text, and tool-call arguments in either wire form.

The original engine's Ollama path does function calling in the prompt: the model is told the
tools and answers with a JSON object ``{"name": ..., "arguments": {...}}``, possibly inside a
```` ```json ```` fence (ollama-rs's ``OpenAIFunctionCall`` parser), or, for Llama 3.1 models,
``<function=NAME>{...}</function>`` (its ``LlamaFunctionCall`` parser). Synod asks the provider
for native tool calls first and reads these text forms when the reply holds none.

Arguments arrive as a JSON object (Ollama's ``tool_calls``) or as a string holding one (OpenAI's
``function.arguments``, and some Ollama models): :func:`coerce_arguments` takes both and raises
:class:`ValueError` for anything else.
"""

from __future__ import annotations

import json
import re
from typing import Any

from workflow.providers.base import ToolCall

_FENCE = re.compile(r"^```(?:json|JSON)?\s*(.*?)\s*```$", re.DOTALL)
_LLAMA_CALL = re.compile(r"<function=([\w.-]+)>(.*?)</function>", re.DOTALL)


def coerce_arguments(value: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict: an object as is, a JSON string decoded (empty -> ``{}``).

    Raises :class:`ValueError` naming what arrived when it is neither.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            decoded = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"tool-call arguments are a string that is not JSON: {value[:80]!r}") from exc
        if isinstance(decoded, dict):
            return decoded
        raise ValueError(f"tool-call arguments are a JSON string of {type(decoded).__name__}, not an object")
    raise ValueError(f"tool-call arguments are {type(value).__name__}, not an object or a JSON string")


def _one(item: Any) -> ToolCall | None:
    if not isinstance(item, dict):
        return None
    name = item.get("name", item.get("function"))
    if isinstance(name, dict):  # the OpenAI wire shape {"function": {"name", "arguments"}}
        return _one(name)
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        arguments = coerce_arguments(item.get("arguments", item.get("parameters")))
    except ValueError:
        return None
    return ToolCall(name=name.strip(), arguments=arguments)


def parse_text_calls(text: str) -> tuple[ToolCall, ...]:
    """The tool calls a reply writes as text; ``()`` if it holds none (garbage never raises).

    Accepted: the whole reply (fences and surrounding blanks stripped) being one call object or a
    list of them; else every ``<function=NAME>{args}</function>``.
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    body = fenced.group(1) if fenced else stripped
    if body[:1] in ("{", "["):
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            value = None
        items = value if isinstance(value, list) else [value]
        calls = [call for call in (_one(item) for item in items) if call is not None]
        if calls and len(calls) == len(items):
            return tuple(calls)
    found: list[ToolCall] = []
    for match in _LLAMA_CALL.finditer(stripped):
        try:
            arguments = coerce_arguments(match.group(2).strip() or "{}")
        except ValueError:
            continue
        found.append(ToolCall(name=match.group(1), arguments=arguments))
    return tuple(found)
