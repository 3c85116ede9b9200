"""The OpenAI-compatible API over a :class:`workflow.serve.pool.ModelPool`.

- ``GET /v1/models`` -> ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``
- ``POST /v1/completions`` ``{"model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop",
  "stream"}`` -> ``text_completion`` with ``choices[0].text`` and ``usage``
- ``POST /v1/chat/completions`` ``{"model", "messages", "tools", "tool_choice", "max_tokens" |
  "max_completion_tokens", "response_format", "stream", ...}`` -> ``chat.completion`` with
  ``choices[0].message`` (``tool_calls`` with JSON-string ``arguments`` and ``finish_reason``
  ``tool_calls`` when the model called a tool) and ``usage``

``"stream": true`` answers Server-Sent Events: ``data: {chunk}`` lines, then ``data: [DONE]``; a chat
stream's first delta carries ``"role": "assistant"``, and ``usage`` comes only when the request asks
for it with ``"stream_options": {"include_usage": true}``, as a last chunk with empty ``choices``
(as OpenAI does). Default ``max_tokens``: 16 for ``/v1/completions`` (OpenAI's legacy default),
"until the context is full" for chat; ``n`` must be 1. Errors follow OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``: 400 ``invalid_request_error``, 404
``model_not_found``, 503 / 504. The chat is rendered with Synod's transcript format (the default
model is a base model), as :mod:`workflow.serve.ollama_api` does.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from workflow.providers.base import Message, ToolCall, ToolSpec
from workflow.providers.transcript import STOP_SEQUENCES, parse_tool_calls, render_prompt
from workflow.serve.http import Answer, Endpoint, HttpError, read_json
from workflow.serve.ollama_api import grammar_for
from workflow.serve.pool import Generation, PoolError, Sampling
from workflow.serve.state import ServeState


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Lenient):
    include_usage: bool = False


COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""``/v1/completions`` without ``max_tokens`` generates at most this many tokens (OpenAI's default)."""


class _Sampling(_Lenient):
    model: str = Field(min_length=1)
    max_tokens: int | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)


class CompletionRequest(_Sampling):
    prompt: str | list[str] = ""


class FunctionCall(_Lenient):
    name: str
    arguments: str | dict[str, Any] = "{}"


class WireToolCall(_Lenient):
    id: str | None = None
    type: str = "function"
    function: FunctionCall


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class FunctionSpec(_Lenient):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] | None = None


class WireTool(_Lenient):
    type: str = "function"
    function: FunctionSpec


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[WireTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_completion_tokens: int | None = None
    response_format: dict[str, Any] | None = None


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


def _arguments(raw: str | dict[str, Any], name: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except ValueError as exc:
        raise HttpError(400, f"tool call {name!r}: arguments are not JSON ({raw[:60]!r})") from exc
    if not isinstance(value, dict):
        raise HttpError(400, f"tool call {name!r}: arguments must be a JSON object")
    return value


def to_messages(wire: list[ChatMessage]) -> list[Message]:
    """OpenAI messages -> ours; a ``tool`` message is named after the call its ``tool_call_id`` answers."""
    names: dict[str, str] = {}
    out: list[Message] = []
    for raw in wire:
        role = "system" if raw.role == "developer" else raw.role
        calls = []
        for call in raw.tool_calls or ():
            calls.append(
                ToolCall(
                    name=call.function.name, arguments=_arguments(call.function.arguments, call.function.name)
                )
            )
            if call.id:
                names[call.id] = call.function.name
        name = raw.name or (names.get(raw.tool_call_id) if raw.tool_call_id else None)
        out.append(Message(role=role, content=_text(raw.content), tool_calls=tuple(calls), name=name))
    return out


class _OpenAIEndpoint(Endpoint):
    def __init__(self, state: ServeState) -> None:
        self.state = state

    def error_body(self, status: int, message: str) -> Any:
        kind = "invalid_request_error" if status < 500 else "server_error"
        code = "model_not_found" if status == 404 else None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    async def stream_error(self, answer: Answer, message: str) -> None:
        await answer.chunk(f"data: {json.dumps(self.error_body(500, message))}\n\n".encode())

    def check(self, body: _Sampling) -> None:
        if not self.state.model.matches(body.model):
            raise HttpError(404, f"The model `{body.model}` does not exist")
        if body.n != 1:
            raise HttpError(400, f"n: only 1 choice is supported, got {body.n}")

    def sampling(
        self, body: _Sampling, prompt: str, max_tokens: int | None, stop: tuple[str, ...], grammar: str | None
    ) -> Sampling:
        n_ctx = self.state.pool.n_ctx
        if max_tokens is not None and not 1 <= max_tokens <= n_ctx:
            raise HttpError(400, f"max_tokens {max_tokens} must be 1..{n_ctx} (the context size)")
        extra = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        return Sampling(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            top_k=0,
            seed=body.seed,
            stop=(*stop, *extra),
            grammar=grammar,
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
        )

    async def generate(self, answer: Answer, sampling: Sampling, stream: bool, chunk_of: Any) -> Generation:
        async def on_piece(piece: str) -> None:
            if not answer.started:
                await answer.start("text/event-stream")
            await answer.chunk(f"data: {json.dumps(chunk_of(piece), ensure_ascii=False)}\n\n".encode())

        try:
            return await self.state.pool.generate(
                sampling, on_piece if stream else None, deadline_s=self.state.settings.request_timeout_s
            )
        except PoolError as exc:
            raise HttpError(exc.status, str(exc)) from exc

    async def finish_stream(
        self, answer: Answer, body: _Sampling, last: dict[str, Any], generation: Generation
    ) -> None:
        """The final chunk (``finish_reason``), the usage chunk if the request asked for it, ``[DONE]``."""
        if not answer.started:
            await answer.start("text/event-stream")
        await answer.chunk(f"data: {json.dumps(last, ensure_ascii=False)}\n\n".encode())
        if body.stream_options is not None and body.stream_options.include_usage:
            usage = {**last, "choices": [], "usage": _usage(generation)}
            await answer.chunk(f"data: {json.dumps(usage, ensure_ascii=False)}\n\n".encode())
        await answer.chunk(b"data: [DONE]\n\n")
        await answer.end()


def _usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }


class CompletionsEndpoint(_OpenAIEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        body: CompletionRequest = await read_json(request, CompletionRequest)
        self.check(body)
        if isinstance(body.prompt, list):
            if len(body.prompt) != 1:
                raise HttpError(400, f"prompt: one prompt per request is supported, got {len(body.prompt)}")
            prompt = body.prompt[0]
        else:
            prompt = body.prompt
        max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS if body.max_tokens is None else body.max_tokens
        sampling = self.sampling(body, prompt, max_tokens, (), None)
        ident = f"cmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "text_completion",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            }

        generation = await self.generate(answer, sampling, body.stream, chunk)
        if body.stream:
            await self.finish_stream(answer, body, chunk("", generation.finish_reason), generation)
            return
        whole = chunk(generation.text, generation.finish_reason)
        whole["usage"] = _usage(generation)
        await answer.json(200, whole)


class ChatCompletionsEndpoint(_OpenAIEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        body: ChatRequest = await read_json(request, ChatRequest)
        self.check(body)
        tools = [
            ToolSpec(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters or {"type": "object", "properties": {}},
            )
            for t in body.tools or ()
        ]
        if body.tool_choice == "none":
            tools = []
        grammar = None
        if body.response_format and body.response_format.get("type") == "json_schema":
            schema = (body.response_format.get("json_schema") or {}).get("schema")
            grammar = grammar_for(schema if isinstance(schema, dict) else "json")
        elif body.response_format and body.response_format.get("type") == "json_object":
            grammar = grammar_for("json")
        prompt = render_prompt(to_messages(body.messages), tools)
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        sampling = self.sampling(body, prompt, max_tokens, STOP_SEQUENCES, grammar)
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        live = body.stream and not tools

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        role_sent = False

        def first_with_role(delta: dict[str, Any]) -> dict[str, Any]:
            nonlocal role_sent
            if role_sent:
                return delta
            role_sent = True
            return {"role": "assistant", **delta}

        generation = await self.generate(
            answer, sampling, live, lambda piece: chunk(first_with_role({"content": piece}))
        )
        text, calls = parse_tool_calls(generation.text, tools) if tools else (generation.text.strip(), ())
        finish = "tool_calls" if calls else generation.finish_reason
        wire_calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
            }
            for c in calls
        ]
        if body.stream:
            if not live:  # buffered for tool parsing: the whole message in one delta
                delta: dict[str, Any] = first_with_role({"content": text or None})
                if wire_calls:
                    delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(wire_calls)]
                await answer.start("text/event-stream")
                await answer.chunk(f"data: {json.dumps(chunk(delta), ensure_ascii=False)}\n\n".encode())
            await self.finish_stream(answer, body, chunk(first_with_role({}), finish), generation)
            return
        message: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
        if wire_calls:
            message["tool_calls"] = wire_calls
        await answer.json(
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": _usage(generation),
            },
        )


class ModelsEndpoint(_OpenAIEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        model = self.state.model
        created = int(model.path.stat().st_mtime)
        entries = [
            {"id": name, "object": "model", "created": created, "owned_by": "synod"}
            for name in dict.fromkeys((model.tag.removesuffix(":latest"), model.tag))
        ]
        await answer.json(200, {"object": "list", "data": entries})
