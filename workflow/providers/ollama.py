"""The Ollama provider: Ollama's HTTP API (``docs/api.md`` of ollama/ollama) over httpx, under trio.

Endpoints: ``/api/tags`` (once, before the first call: the model must be listed, else
:class:`ModelNotFoundError` naming the model, the endpoint and what the server has),
``/api/generate`` and ``/api/chat`` (with tools; tool calls come back in ``message.tool_calls``).
Answers are streamed (NDJSON, Ollama's default) unless ``stream=False``. Token counts are
Ollama's ``prompt_eval_count`` / ``eval_count``.

What real servers do, and what this provider does about it:

- **Context window.** Ollama silently cuts a prompt longer than ``num_ctx`` (its default is small).
  The provider sends ``num_ctx`` from :attr:`ProviderSettings.n_ctx` with every request, and when
  the server reports fewer prompt tokens evaluated than the prompt has words (a lower bound of its
  tokens: tokenizers do not merge words), at least half the window (see :func:`prompt_was_cut`),
  it raises :class:`ContextWindowError` instead of returning an answer to a prompt the model never
  saw whole.
- **Missing model.** Not listed by ``/api/tags``, or a 404 / ``"error"`` naming it later:
  :class:`ModelNotFoundError` with the model and the endpoint; never an empty success.
- **Tool-call arguments** as an object or as a JSON string holding one (both occur); anything else
  is a :class:`ProviderResponseError` (the task fails, its ``fallback`` runs).
- **Stalls.** While streaming, no byte for :attr:`ProviderSettings.stall_timeout_s` abandons the
  answer (:class:`ProviderTimeoutError`); a slow but steady stream runs on to the overall deadline,
  :attr:`ProviderSettings.timeout_s` per attempt.

The server is ``settings.base_url``, else ``$OLLAMA_HOST``, else ``http://127.0.0.1:11434``.
Connection failures, 429 and 5xx answers are retried with exponential backoff; other 4xx, stalls
and timeouts are not.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from protocol.log import get_logger
from workflow.calls import coerce_arguments
from workflow.errors import (
    ContextWindowError,
    ModelNotFoundError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
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


def to_ollama_options(options: GenerationOptions, num_ctx: int | None = None) -> dict[str, Any]:
    """Sampling options under Ollama's names (``num_predict`` is the token budget)."""
    out: dict[str, Any] = {
        "num_predict": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
    }
    if num_ctx is not None:
        out["num_ctx"] = num_ctx
    if options.seed is not None:
        out["seed"] = options.seed
    if options.stop:
        out["stop"] = list(options.stop)
    return out


def prompt_word_count(texts: Sequence[str]) -> int:
    """Whitespace-separated words in ``texts``: a lower bound of the tokens they take."""
    return sum(len(text.split()) for text in texts)


def prompt_was_cut(evaluated: int | None, words: int, num_ctx: int) -> bool:
    """Whether the server cut the prompt: it evaluated fewer tokens than the prompt has words, and
    at least half the window (a cut prompt fills it; a count that small instead comes from Ollama's
    prompt cache, which some versions leave out of ``prompt_eval_count``)."""
    if evaluated is None or evaluated <= 0:
        return False
    return evaluated < words and evaluated >= num_ctx // 2


@dataclass
class _Answer:
    """An answer being read: text, tool calls, counters."""

    text: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    done: bool = False


class OllamaProvider:
    """A model served by Ollama. ``stream=False`` asks for one JSON answer instead of NDJSON chunks
    (then only the overall deadline applies: there is nothing to watch for a stall)."""

    def __init__(self, settings: ProviderSettings, *, stream: bool = True) -> None:
        self._settings = settings
        self._host = resolve_host(settings)
        self._stream = stream
        timeout = httpx.Timeout(settings.timeout_s, connect=min(settings.timeout_s, 10.0))
        self._client = httpx.AsyncClient(base_url=self._host, timeout=timeout)
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

    def _status_error(self, what: str, status: int, detail: str) -> Exception:
        if status == 404 and what == "/api/tags":
            return self._error(ProviderResponseError, f"{what}: HTTP 404 (not an Ollama server?)")
        if status == 404:
            return self._error(ModelNotFoundError, f"{what}: model {self.model!r} not found: {detail}")
        if status == 429 or status >= 500:
            return Retryable(self._error(ProviderUnavailableError, f"{what}: HTTP {status}: {detail}"))
        return self._error(ProviderResponseError, f"{what}: HTTP {status}: {detail}")

    def _stream_error(self, what: str, detail: str) -> ProviderError:
        if "not found" in detail and self.model.split(":")[0] in detail:
            return self._error(ModelNotFoundError, f"{what}: model {self.model!r} not found: {detail}")
        return self._error(ProviderResponseError, f"{what}: error in stream: {detail}")

    @staticmethod
    def _detail(body: bytes) -> str:
        try:
            value = json.loads(body)
        except ValueError:
            return body[:200].decode("utf-8", "replace")
        error = value.get("error") if isinstance(value, dict) else None
        if isinstance(error, str):
            return error
        return body[:200].decode("utf-8", "replace")

    async def _attempt_json(self, what: str, method: str, body: dict[str, Any] | None) -> Any:
        """One non-streamed request: the decoded JSON answer."""
        with transport_errors(what, self._settings.timeout_s, self._error):
            response = await self._client.request(method, what, json=body)
            payload = await response.aread()
        if response.status_code != 200:
            raise self._status_error(what, response.status_code, self._detail(payload))
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise self._error(ProviderResponseError, f"{what}: malformed answer: not JSON") from exc

    async def _attempt_answer(self, what: str, body: dict[str, Any], chat: bool) -> _Answer:
        """One generation request, streamed or not, read into an :class:`_Answer`."""
        answer = _Answer()
        chunks = 0
        with transport_errors(what, self._settings.timeout_s, self._error):
            async with self._client.stream("POST", what, json=body) as response:
                if response.status_code != 200:
                    raise self._status_error(what, response.status_code, self._detail(await response.aread()))
                lines = response.aiter_lines().__aiter__()
                stall = self._settings.stall_timeout_s if self._stream else self._settings.timeout_s
                while True:
                    # The stall clock starts once the headers are in (loading the model and
                    # reading the prompt come before them, under the overall deadline only).
                    with trio.move_on_after(stall) as waiting:
                        try:
                            line = await lines.__anext__()
                        except StopAsyncIteration:
                            break
                    if waiting.cancelled_caught:
                        raise self._error(
                            ProviderTimeoutError,
                            f"{what}: the stream stalled: nothing for {stall}s after {chunks} chunk(s)",
                        )
                    if line.strip():
                        chunks += 1
                        self._take(what, line, answer, chat)
        if not answer.done:
            raise self._error(ProviderResponseError, f"{what}: the answer ended without a final done object")
        return answer

    def _take(self, what: str, line: str, answer: _Answer, chat: bool) -> None:
        try:
            chunk = json.loads(line)
        except ValueError as exc:
            raise self._error(ProviderResponseError, f"{what}: malformed answer: a line is not JSON") from exc
        if not isinstance(chunk, dict):
            raise self._error(ProviderResponseError, f"{what}: malformed answer: a chunk is not an object")
        if isinstance(chunk.get("error"), str):
            raise self._stream_error(what, chunk["error"])
        if chat:
            message = chunk.get("message") or {}
            if not isinstance(message, dict):
                raise self._error(
                    ProviderResponseError, f"{what}: malformed answer: message is not an object"
                )
            answer.text.append(str(message.get("content") or ""))
            answer.calls.extend(self._calls(what, message.get("tool_calls")))
        else:
            answer.text.append(str(chunk.get("response") or ""))
        if chunk.get("done") is True:
            answer.done = True
            count = chunk.get("prompt_eval_count")
            answer.prompt_tokens = count if isinstance(count, int) else None
            evals = chunk.get("eval_count")
            answer.completion_tokens = evals if isinstance(evals, int) else 0

    def _calls(self, what: str, raw: Any) -> list[ToolCall]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self._error(ProviderResponseError, f"{what}: malformed answer: tool_calls is not a list")
        calls: list[ToolCall] = []
        for item in raw:
            function = item.get("function") if isinstance(item, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(function, dict) or not isinstance(name, str) or not name:
                raise self._error(ProviderResponseError, f"{what}: malformed tool call: {str(item)[:120]}")
            try:
                arguments = coerce_arguments(function.get("arguments"))
            except ValueError as exc:
                raise self._error(ProviderResponseError, f"{what}: tool call {name!r}: {exc}") from exc
            calls.append(ToolCall(name=name, arguments=arguments))
        return calls

    async def _retrying(self, what: str, attempt: Any) -> Any:
        started = time.monotonic()
        result = await with_retries(
            attempt,
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
        listing = await self._retrying("/api/tags", lambda: self._attempt_json("/api/tags", "GET", None))
        models = listing.get("models") if isinstance(listing, dict) else None
        if not isinstance(models, list):
            raise self._error(ProviderResponseError, "/api/tags: malformed answer: no models list")
        names = [str(m.get("model") or m.get("name") or "") for m in models if isinstance(m, dict)]
        if not any(_model_matches(self.model, name) for name in names):
            raise self._error(
                ModelNotFoundError,
                f"model {self.model!r} is not pulled on the server (it has {sorted(names)})",
            )
        self._checked = True

    async def _complete(self, what: str, body: dict[str, Any], sent: Sequence[str], chat: bool) -> Completion:
        if not self._checked:
            await self.check_model()
        started = time.monotonic()
        body = {"model": self.model, "stream": self._stream, **body}
        answer: _Answer = await self._retrying(what, lambda: self._attempt_answer(what, body, chat))
        words = prompt_word_count(sent)
        if prompt_was_cut(answer.prompt_tokens, words, self._settings.n_ctx):
            raise self._error(
                ContextWindowError,
                f"{what}: the prompt was cut: the server evaluated {answer.prompt_tokens} prompt tokens, "
                f"but the prompt has {words} words (num_ctx {self._settings.n_ctx}; raise it with --num-ctx "
                "or shorten the prompt)",
            )
        return Completion(
            text="".join(answer.text),
            tool_calls=tuple(answer.calls),
            prompt_tokens=answer.prompt_tokens or 0,
            completion_tokens=answer.completion_tokens,
            model=self.model,
            provider="ollama",
            duration_s=time.monotonic() - started,
        )

    def _options(self, options: GenerationOptions) -> dict[str, Any]:
        body: dict[str, Any] = {"options": to_ollama_options(options, self._settings.n_ctx)}
        if options.json_schema is not None:
            body["format"] = options.json_schema
        return body

    async def generate(self, prompt: str, options: GenerationOptions) -> Completion:
        """Complete ``prompt`` with ``/api/generate``."""
        body = {"prompt": prompt, **self._options(options)}
        return await self._complete("/api/generate", body, [prompt], chat=False)

    async def chat(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        tools: Sequence[ToolSpec] = (),
    ) -> Completion:
        """Answer ``messages`` with ``/api/chat``, offering ``tools`` (native tool calls)."""
        body: dict[str, Any] = {"messages": to_ollama_messages(messages), **self._options(options)}
        if tools:
            body["tools"] = to_ollama_tools(tools)
        return await self._complete("/api/chat", body, [m.content for m in messages], chat=True)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
