"""Tool specs and the few-shot weather conversation the provider tests share."""

from __future__ import annotations

from workflow.providers.base import Message, ToolCall, ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SEARCH = ToolSpec(
    name="search",
    description="Search the web.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)

FEW_SHOT = [
    Message(role="user", content="What is the weather in Paris?"),
    Message(role="assistant", tool_calls=(ToolCall(name="get_weather", arguments={"city": "Paris"}),)),
    Message(role="tool", name="get_weather", content="18C, sunny"),
    Message(role="assistant", content="It is 18C and sunny in Paris."),
    Message(role="user", content="What is the weather in Rome?"),
    Message(role="assistant", tool_calls=(ToolCall(name="get_weather", arguments={"city": "Rome"}),)),
    Message(role="tool", name="get_weather", content="25C, clear"),
    Message(role="assistant", content="It is 25C and clear in Rome."),
    Message(role="user", content="What is the weather in Berlin?"),
]
"""Two worked tool calls, then a question that invites a third."""
