"""Ollama's HTTP API over a :class:`workflow.serve.pool.ModelPool` (field names of ollama/ollama docs/api.md).

- ``GET /`` -> ``Ollama is running``; ``GET /api/version`` -> ``{"version"}``
- ``GET /api/tags`` -> ``{"models": [{"name", "model", "modified_at", "size", "digest", "details"}]}``
- ``GET /api/ps`` -> the loaded model with ``expires_at`` and ``size_vram`` 0
- ``POST /api/show`` ``{"model"}`` -> ``details``, ``model_info`` (GGUF metadata), ``capabilities``
- ``POST /api/generate`` ``{"model", "prompt", "system", "stream", "format", "options"}`` and
  ``POST /api/chat`` ``{"model", "messages", "tools", "stream", "format", "options"}``: streamed
  NDJSON by default (``"done": false`` pieces, then a final object), one JSON object with
  ``"stream": false``. The final object carries ``done_reason`` (``stop`` / ``length``),
  ``total_duration``, ``load_duration`` (time waiting for a slot: the model is always loaded),
  ``prompt_eval_count``, ``prompt_eval_duration``, ``eval_count``, ``eval_duration`` (nanoseconds).
  An empty ``prompt`` answers ``done_reason: "load"`` at once, as Ollama does.

Chat is rendered completion-style with :mod:`workflow.providers.transcript` (the default model is a
base model) and tool calls are parsed out of the output; with ``tools`` the answer is buffered (as
Ollama does when it parses tool calls). Options: ``num_predict`` (-1 / -2: until the context is
full; otherwise 1..context), ``num_ctx`` (at most the server's ``--ctx``; a smaller one is the
request's window: prompt and answer must fit in it), ``temperature``,
``top_p``, ``top_k``, ``min_p``, ``seed``, ``stop``, ``repeat_penalty``, ``presence_penalty``,
``frequency_penalty``; others are accepted and ignored. ``format``: ``"json"`` or a JSON schema
(a llama.cpp grammar). Errors: ``{"error": ...}`` with 400 (bad request, naming the value), 404
(``model "x" not found, try pulling it first``), 503 (queue full), 504 (deadline); an error after a
stream started is one more line ``{"error": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from workflow.providers.base import Message, ToolCall, ToolSpec
from workflow.providers.llama_runner import GrammarError, grammar_from_schema
from workflow.providers.transcript import STOP_SEQUENCES, parse_tool_calls, render_prompt
from workflow.serve.http import Answer, Endpoint, HttpError, read_json
from workflow.serve.pool import Generation, PoolError, Sampling
from workflow.serve.state import ServeState


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Lenient(BaseModel):
    """Unknown fields are ignored (clients send keep_alive, think, images, ...)."""

    model_config = ConfigDict(extra="ignore")


class Options(_Lenient):
    num_predict: int | None = None
    num_ctx: int | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=100.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | str | None = None
    repeat_penalty: float | None = Field(default=None, ge=0.0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


class GenerateRequest(_Lenient):
    model: str = Field(min_length=1)
    prompt: str = ""
    system: str | None = None
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: Options | None = None


class FunctionCall(_Lenient):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class WireToolCall(_Lenient):
    function: FunctionCall


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = ""
    tool_calls: list[WireToolCall] | None = None
    tool_name: str | None = None
    name: str | None = None


class FunctionSpec(_Lenient):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] | None = None


class WireTool(_Lenient):
    type: str = "function"
    function: FunctionSpec


class ChatRequest(_Lenient):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(default_factory=list)
    tools: list[WireTool] | None = None
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: Options | None = None


class ShowRequest(_Lenient):
    model: str | None = None
    name: str | None = None  # the older field name


def grammar_for(fmt: str | dict[str, Any] | None) -> str | None:
    """GBNF for Ollama's ``format``: ``"json"`` (any JSON object) or a JSON schema; 400 otherwise."""
    from llama_cpp.llama_grammar import JSON_GBNF

    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return str(JSON_GBNF)
    if isinstance(fmt, dict):
        try:
            return grammar_from_schema(fmt)
        except GrammarError as exc:  # the converter's assertion / regex / key errors were a 500
            raise HttpError(400, f"format: {exc}") from exc
    raise HttpError(400, f'format: expected "json" or a JSON schema, got {json.dumps(fmt)[:60]}')


def sampling_for(
    state: ServeState, prompt: str, options: Options | None, fmt: str | dict[str, Any] | None, stop: list[str]
) -> Sampling:
    """Ollama options -> :class:`Sampling`, rejecting absurd values with the value in the message."""
    opts = options or Options()
    n_ctx = state.pool.n_ctx
    if opts.num_ctx is not None and not 1 <= opts.num_ctx <= n_ctx:
        raise HttpError(
            400,
            f"options.num_ctx {opts.num_ctx} is outside 1..{n_ctx}, the context this server runs with "
            f"(restart synod model serve with --ctx to change it)",
        )
    max_tokens: int | None
    if opts.num_predict is None or opts.num_predict in (-1, -2):
        max_tokens = None
    elif 1 <= opts.num_predict <= n_ctx:
        max_tokens = opts.num_predict
    else:
        raise HttpError(
            400, f"options.num_predict {opts.num_predict} must be -1, -2 or 1..{n_ctx} (the context size)"
        )
    extra_stop = [opts.stop] if isinstance(opts.stop, str) else list(opts.stop or [])
    fields: dict[str, Any] = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stop": (*stop, *extra_stop),
        "grammar": grammar_for(fmt),
        "seed": opts.seed,
        "n_ctx": opts.num_ctx,
    }
    for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty"):
        value = getattr(opts, name)
        if value is not None:
            fields[name] = value
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(opts, name)
        if value is not None:
            fields[name] = value
    if fields.get("top_p") == 0.0:
        fields["top_p"] = 1e-6
    return Sampling(**fields)


def counters(generation: Generation) -> dict[str, Any]:
    """Ollama's final-object fields for ``generation``."""
    return {
        "done": True,
        "done_reason": generation.finish_reason,
        "total_duration": generation.total_ns,
        "load_duration": generation.queue_ns,
        "prompt_eval_count": generation.prompt_tokens,
        "prompt_eval_duration": generation.prompt_eval_ns,
        "eval_count": generation.completion_tokens,
        "eval_duration": generation.eval_ns,
    }


def to_messages(wire: list[ChatMessage]) -> list[Message]:
    out = []
    for raw in wire:
        calls = tuple(
            ToolCall(name=c.function.name, arguments=c.function.arguments) for c in raw.tool_calls or ()
        )
        out.append(
            Message(
                role=raw.role, content=raw.content or "", tool_calls=calls, name=raw.tool_name or raw.name
            )
        )
    return out


def to_specs(tools: list[WireTool] | None) -> list[ToolSpec]:
    return [
        ToolSpec(
            name=t.function.name,
            description=t.function.description,
            parameters=t.function.parameters or {"type": "object", "properties": {}},
        )
        for t in tools or ()
    ]


class _OllamaEndpoint(Endpoint):
    def __init__(self, state: ServeState) -> None:
        self.state = state

    def check_model(self, name: str) -> None:
        if not self.state.model.matches(name):
            raise HttpError(404, f'model "{name}" not found, try pulling it first')

    async def run(
        self,
        answer: Answer,
        sampling: Sampling,
        *,
        stream: bool,
        head: dict[str, Any],
        piece_body: Callable[[str], dict[str, Any]],
        final_body: Callable[[Generation], Awaitable[dict[str, Any]]],
        buffer: bool,
    ) -> None:
        """Generate, streaming NDJSON pieces (unless ``buffer`` or not ``stream``), then the final object."""

        async def on_piece(piece: str) -> None:
            if not answer.started:
                await answer.start("application/x-ndjson")
            line = {**head, "created_at": now_rfc3339(), **piece_body(piece), "done": False}
            await answer.chunk(json.dumps(line, ensure_ascii=False).encode() + b"\n")

        live = stream and not buffer
        try:
            generation = await self.state.pool.generate(
                sampling, on_piece if live else None, deadline_s=self.state.settings.request_timeout_s
            )
        except PoolError as exc:
            raise HttpError(exc.status, str(exc)) from exc
        final = {
            **head,
            "created_at": now_rfc3339(),
            **(await final_body(generation)),
            **counters(generation),
        }
        if not stream:
            await answer.json(200, final)
            return
        if not answer.started:
            await answer.start("application/x-ndjson")
        await answer.chunk(json.dumps(final, ensure_ascii=False).encode() + b"\n")
        await answer.end()


class GenerateEndpoint(_OllamaEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        body: GenerateRequest = await read_json(request, GenerateRequest)
        self.check_model(body.model)
        head = {"model": body.model}
        if not body.prompt and not body.system:
            await answer.json(
                200,
                {**head, "created_at": now_rfc3339(), "response": "", "done": True, "done_reason": "load"},
            )
            return
        prompt = f"{body.system}\n\n{body.prompt}" if body.system else body.prompt
        sampling = sampling_for(self.state, prompt, body.options, body.format, [])

        async def final(generation: Generation) -> dict[str, Any]:
            return {"response": "" if body.stream else generation.text}

        await self.run(
            answer,
            sampling,
            stream=body.stream,
            head=head,
            piece_body=lambda piece: {"response": piece},
            final_body=final,
            buffer=False,
        )


class ChatEndpoint(_OllamaEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        body: ChatRequest = await read_json(request, ChatRequest)
        self.check_model(body.model)
        head = {"model": body.model}
        if not body.messages:
            await answer.json(
                200,
                {
                    **head,
                    "created_at": now_rfc3339(),
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "load",
                },
            )
            return
        tools = to_specs(body.tools)
        prompt = render_prompt(to_messages(body.messages), tools)
        sampling = sampling_for(self.state, prompt, body.options, body.format, list(STOP_SEQUENCES))
        buffer = bool(tools) or not body.stream

        async def final(generation: Generation) -> dict[str, Any]:
            if not buffer:
                return {"message": {"role": "assistant", "content": ""}}
            text, calls = parse_tool_calls(generation.text, tools) if tools else (generation.text.strip(), ())
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = [
                    {"function": {"name": c.name, "arguments": c.arguments}} for c in calls
                ]
            return {"message": message}

        await self.run(
            answer,
            sampling,
            stream=body.stream,
            head=head,
            piece_body=lambda piece: {"message": {"role": "assistant", "content": piece}},
            final_body=final,
            buffer=buffer,
        )


class TagsEndpoint(_OllamaEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        await answer.json(200, {"models": [self.state.model.tag_entry()]})


class PsEndpoint(_OllamaEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        entry = self.state.model.tag_entry()
        entry.pop("modified_at", None)
        expires = (datetime.now(UTC) + timedelta(days=365)).isoformat().replace("+00:00", "Z")
        entry.update(expires_at=expires, size_vram=0)
        await answer.json(200, {"models": [entry]})


class VersionEndpoint(_OllamaEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        await answer.json(200, {"version": self.state.version})


class ShowEndpoint(_OllamaEndpoint):
    async def handle(self, request: Request, answer: Answer) -> None:
        body: ShowRequest = await read_json(request, ShowRequest)
        name = body.model or body.name
        if not name:
            raise HttpError(400, "model is required")
        self.check_model(name)
        await answer.json(200, self.state.model.show_entry())
