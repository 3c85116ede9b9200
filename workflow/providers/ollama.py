"""The Ollama provider, through the official ``ollama`` Python client (``AsyncClient``).

The client is httpx-based and its async path runs on anyio, so it works under trio directly (the
test suite runs it under ``trio.run`` against a server on 127.0.0.1). Endpoints used:
``/api/tags`` (once, before the first call: the model must be listed, else
:class:`ModelNotFoundError`), ``/api/generate`` and ``/api/chat`` (with tools; tool calls come back
in ``message.tool_calls``). Token counts are Ollama's ``prompt_eval_count`` / ``eval_count``.

The server is ``settings.base_url``, else ``$OLLAMA_HOST``, else ``http://127.0.0.1:11434``.
Connection failures, 429 and 5xx answers are retried with exponential backoff; other 4xx are not.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import ollama
import pydantic

from protocol.log import get_logger
from workflow.errors import (
    ModelNotFoundError,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from workflow.providers._retry import Retryable, transport_errors, with_retries
from workflow.providers.base import (
    Completion,
    GenerationOptions,
    Message,
    ProviderKind,
    ProviderSettings,
    ToolCall,
    ToolSpec,
)

log = get_logger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"

T = TypeVar("T")


def resolve_host(settings: ProviderSettings) -> str:
    """``base_url`` if set, else ``$OLLAMA_HOST``, else the default local server."""
    host = settings.base_url or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
    if "://" not in host:
        host = f"http://{host}"
    return host.rstrip("/")


def _model_matches(wanted: str, listed: str) -> bool:
    if wanted == listed:
        return True
    if ":" not in wanted:
        return listed == f"{wanted}:latest"
    return False


def to_ollama_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages in the shape of Ollama's ``/api/chat`` ``messages``."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            item["tool_calls"] = [
                {"function": {"name": call.name, "arguments": dict(call.arguments)}}
                for call in message.tool_calls
            ]
        if message.role == "tool" and message.name:
            item["tool_name"] = message.name
        out.append(item)
    return out


def to_ollama_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tool specs in Ollama's (OpenAI-style) function format."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def to_ollama_options(options: GenerationOptions) -> dict[str, Any]:
    """Sampling options under Ollama's names (``num_predict`` is the token budget)."""
    out: dict[str, Any] = {
        "num_predict": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
    }
    if options.seed is not None:
        out["seed"] = options.seed
    if options.stop:
        out["stop"] = list(options.stop)
    return out


class OllamaProvider:
    """A model served by Ollama. ``stream=True`` reads NDJSON chunks instead of one JSON answer."""

    def __init__(self, settings: ProviderSettings, *, stream: bool = False) -> None:
        self._settings = settings
        self._host = resolve_host(settings)
        self._stream = stream
        timeout = httpx.Timeout(settings.timeout_s, connect=min(settings.timeout_s, 10.0))
        self._client = ollama.AsyncClient(host=self._host, timeout=timeout)
        self._checked = False

    @property
    def kind(self) -> ProviderKind:
        return "ollama"

    @property
    def model(self) -> str:
        return self._settings.model

    @property
    def endpoint(self) -> str:
        return self._host

    def _error(self, cls: type[ProviderError], message: str) -> ProviderError:
        return cls(message, endpoint=self.endpoint, model=self.model)

    async def _attempt(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One try of ``call``, with the provider's deadline and errors mapped to ours."""
        try:
            with transport_errors(what, self._settings.timeout_s, self._error):
                return await call()
        except ollama.ResponseError as exc:
            status = exc.status_code
            if status == 404 and what == "/api/tags":
                raise self._error(ProviderResponseError, f"{what}: HTTP 404 (not an Ollama server?)") from exc
            if status == 404:
                raise self._error(ModelNotFoundError, f"{what}: {exc.error}") from exc
            if status == 429 or status >= 500:
                raise Retryable(
                    self._error(ProviderUnavailableError, f"{what}: HTTP {status}: {exc.error}")
                ) from exc
            if status == -1:
                raise self._error(ProviderResponseError, f"{what}: error in stream: {exc.error}") from exc
            raise self._error(ProviderResponseError, f"{what}: HTTP {status}: {exc.error}") from exc
        except (pydantic.ValidationError, ValueError) as exc:
            raise self._error(ProviderResponseError, f"{what}: malformed answer: {exc}") from exc

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        result = await with_retries(
            lambda: self._attempt(what, call),
            max_retries=self._settings.max_retries,
            backoff_s=self._settings.backoff_s,
            what=f"{what} {self._host}",
        )
        log.debug(
            "llm_call",
            provider="ollama",
            endpoint=self._host,
            path=what,
            model=self.model,
            duration_s=round(time.monotonic() - started, 3),
        )
        return result

    async def check_model(self) -> None:
        """Ask ``/api/tags`` whether the model is there; raise :class:`ModelNotFoundError` if not."""
        listing = await self._call("/api/tags", self._client.list)
        names = [m.model or "" for m in listing.models]
        if not any(_model_matches(self.model, name) for name in names):
            raise self._error(ModelNotFoundError, f"model not pulled on the server (it has {sorted(names)})")
        self._checked = True

    async def _ensure_checked(self) -> None:
        if not self._checked:
            await self.check_model()

    async def generate(self, prompt: str, options: GenerationOptions) -> Completion:
        await self._ensure_checked()
        started = time.monotonic()

        async def once() -> tuple[str, tuple[ToolCall, ...], int, int]:
            fmt: Any = options.json_schema
            if not self._stream:
                resp = await self._client.generate(
                    model=self.model,
                    prompt=prompt,
                    options=to_ollama_options(options),
                    format=fmt,
                    stream=False,
                )
                return resp.response or "", (), resp.prompt_eval_count or 0, resp.eval_count or 0
            chunks = await self._client.generate(
                model=self.model, prompt=prompt, options=to_ollama_options(options), format=fmt, stream=True
            )
            return await _collect(chunks, lambda c: c.response or "")

        text, _, prompt_tokens, completion_tokens = await self._call("/api/generate", once)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            provider="ollama",
            duration_s=time.monotonic() - started,
        )

    async def chat(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        tools: Sequence[ToolSpec] = (),
    ) -> Completion:
        await self._ensure_checked()
        started = time.monotonic()
        payload_messages = to_ollama_messages(messages)
        payload_tools = to_ollama_tools(tools) if tools else None

        async def once() -> tuple[str, tuple[ToolCall, ...], int, int]:
            fmt: Any = options.json_schema
            if not self._stream:
                resp = await self._client.chat(
                    model=self.model,
                    messages=payload_messages,
                    tools=payload_tools,
                    options=to_ollama_options(options),
                    format=fmt,
                    stream=False,
                )
                return (
                    resp.message.content or "",
                    _calls(resp.message),
                    resp.prompt_eval_count or 0,
                    resp.eval_count or 0,
                )
            chunks = await self._client.chat(
                model=self.model,
                messages=payload_messages,
                tools=payload_tools,
                options=to_ollama_options(options),
                format=fmt,
                stream=True,
            )
            return await _collect(chunks, lambda c: c.message.content or "", lambda c: _calls(c.message))

        text, calls, prompt_tokens, completion_tokens = await self._call("/api/chat", once)
        return Completion(
            text=text,
            tool_calls=calls,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            provider="ollama",
            duration_s=time.monotonic() - started,
        )

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]


def _calls(message: ollama.Message) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(name=call.function.name, arguments=dict(call.function.arguments))
        for call in message.tool_calls or ()
    )


async def _collect(
    chunks: AsyncIterator[Any],
    text_of: Callable[[Any], str],
    calls_of: Callable[[Any], tuple[ToolCall, ...]] = lambda _: (),
) -> tuple[str, tuple[ToolCall, ...], int, int]:
    """Accumulate a streamed answer; the final (``done``) chunk carries the token counts."""
    parts: list[str] = []
    calls: list[ToolCall] = []
    prompt_tokens = completion_tokens = 0
    done = False
    async for chunk in chunks:
        parts.append(text_of(chunk))
        calls.extend(calls_of(chunk))
        if chunk.done:
            done = True
            prompt_tokens = chunk.prompt_eval_count or 0
            completion_tokens = chunk.eval_count or 0
    if not done:
        raise ValueError("stream ended without a final done chunk")
    return "".join(parts), tuple(calls), prompt_tokens, completion_tokens
