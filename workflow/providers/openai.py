"""Any OpenAI-compatible server (vLLM, llama.cpp's server, LM Studio, OpenAI itself) through httpx.

Endpoints: ``GET /v1/models`` (once, before the first call: the model id must be listed, else
:class:`ModelNotFoundError`), ``POST /v1/completions`` for ``generate`` and
``POST /v1/chat/completions`` (with ``tools``) for ``chat``. ``settings.base_url`` is the server
root, with or without the trailing ``/v1``; ``settings.api_key`` (a SecretStr) is sent as a Bearer
token. ``json_schema`` is sent as ``response_format`` ``json_schema`` on chat; ``/v1/completions``
has no standard way to constrain output, so there it is ignored.

Connection failures, 429 and 5xx answers are retried with exponential backoff; other 4xx are not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

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


def api_root(base_url: str) -> str:
    """The ``.../v1`` root for a server URL given with or without ``/v1``."""
    root = base_url.rstrip("/")
    return root if root.endswith("/v1") else f"{root}/v1"


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages as chat-completions messages; tool calls get ids ``call_<turn>_<n>``.

    A ``tool`` message answers the earliest unanswered call with the same name (``Message.name``),
    else the latest call.
    """
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (call id, tool name) not yet answered
    for turn, message in enumerate(messages):
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.tool_calls:
            item["tool_calls"] = []
            for n, call in enumerate(message.tool_calls):
                call_id = f"call_{turn}_{n}"
                pending.append((call_id, call.name))
                item["tool_calls"].append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                )
        elif message.role == "tool":
            match = next((p for p in pending if p[1] == message.name), pending[-1] if pending else None)
            if match is not None:
                pending.remove(match)
                item["tool_call_id"] = match[0]
            else:
                item["tool_call_id"] = f"call_{turn}_0"
            if message.name:
                item["name"] = message.name
        out.append(item)
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def _sampling(options: GenerationOptions) -> dict[str, Any]:
    out: dict[str, Any] = {
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
    }
    if options.seed is not None:
        out["seed"] = options.seed
    if options.stop:
        out["stop"] = list(options.stop)
    return out


class OpenAIProvider:
    """A model behind an OpenAI-compatible HTTP API. See the module docstring."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        tool_choice: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``tool_choice``: ``"auto"``, ``"none"``, ``"required"``, or a tool name to force that tool."""
        if not settings.base_url:
            raise ProviderError(
                "the openai provider needs base_url", endpoint="<unset>", model=settings.model
            )
        self._settings = settings
        self._root = api_root(settings.base_url)
        headers = {"Accept": "application/json"}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=self._root,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=min(settings.timeout_s, 10.0)),
            transport=transport,
        )
        self._checked = False
        self._tool_choice = tool_choice

    @property
    def kind(self) -> ProviderKind:
        return "openai"

    @property
    def model(self) -> str:
        return self._settings.model

    @property
    def endpoint(self) -> str:
        return self._root

    def _error(self, cls: type[ProviderError], message: str) -> ProviderError:
        return cls(message, endpoint=self.endpoint, model=self.model)

    async def _attempt(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        what = f"{method} {path}"
        with transport_errors(what, self._settings.timeout_s, self._error):
            response = await self._client.request(method, path, json=body)
        status = response.status_code
        if status == 429 or status >= 500:
            raise Retryable(
                self._error(ProviderUnavailableError, f"{what}: HTTP {status}: {response.text[:300]}")
            )
        if status == 404 and body is not None and "model" in response.text.lower():
            raise self._error(ModelNotFoundError, f"{what}: HTTP 404: {response.text[:300]}")
        if status >= 400:
            raise self._error(ProviderResponseError, f"{what}: HTTP {status}: {response.text[:300]}")
        try:
            data = response.json()
        except ValueError as exc:
            raise self._error(
                ProviderResponseError, f"{what}: answer is not JSON: {response.text[:200]!r}"
            ) from exc
        if not isinstance(data, dict):
            raise self._error(ProviderResponseError, f"{what}: answer is not a JSON object: {data!r}")
        return data

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        started = time.monotonic()
        data = await with_retries(
            lambda: self._attempt(method, path, body),
            max_retries=self._settings.max_retries,
            backoff_s=self._settings.backoff_s,
            what=f"{method} {self._root}{path}",
        )
        log.debug(
            "llm_call",
            provider="openai",
            endpoint=self._root,
            path=path,
            model=self.model,
            duration_s=round(time.monotonic() - started, 3),
        )
        return data

    async def check_model(self) -> None:
        """Ask ``/v1/models`` whether the model is served; raise :class:`ModelNotFoundError` if not."""
        data = await self._request("GET", "/models")
        entries = data.get("data")
        if not isinstance(entries, list):
            raise self._error(ProviderResponseError, f"GET /models: no data list in {data!r}")
        ids = [str(e.get("id")) for e in entries if isinstance(e, dict)]
        if self.model not in ids:
            raise self._error(ModelNotFoundError, f"model not served (the server has {sorted(ids)})")
        self._checked = True

    async def _ensure_checked(self) -> None:
        if not self._checked:
            await self.check_model()

    @staticmethod
    def _usage(data: dict[str, Any]) -> tuple[int, int]:
        usage = data.get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

    async def generate(self, prompt: str, options: GenerationOptions) -> Completion:
        await self._ensure_checked()
        started = time.monotonic()
        data = await self._request(
            "POST", "/completions", {"model": self.model, "prompt": prompt, **_sampling(options)}
        )
        try:
            text = str(data["choices"][0]["text"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise self._error(
                ProviderResponseError, f"POST /completions: no choices[0].text in {data!r}"
            ) from exc
        prompt_tokens, completion_tokens = self._usage(data)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            provider="openai",
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
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages),
            **_sampling(options),
        }
        if tools:
            body["tools"] = to_openai_tools(tools)
            if self._tool_choice in ("auto", "none", "required"):
                body["tool_choice"] = self._tool_choice
            elif self._tool_choice is not None:
                body["tool_choice"] = {"type": "function", "function": {"name": self._tool_choice}}
        if options.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": options.json_schema},
            }
        data = await self._request("POST", "/chat/completions", body)
        try:
            message = data["choices"][0]["message"]
            text = str(message.get("content") or "")
            calls = tuple(_parse_call(raw) for raw in message.get("tool_calls") or ())
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise self._error(
                ProviderResponseError,
                f"POST /chat/completions: malformed choices[0].message in {data!r}: {exc}",
            ) from exc
        prompt_tokens, completion_tokens = self._usage(data)
        return Completion(
            text=text,
            tool_calls=calls,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            provider="openai",
            duration_s=time.monotonic() - started,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _parse_call(raw: Any) -> ToolCall:
    """A chat-completions tool call; ``function.arguments`` is a JSON string (or, leniently, an object)."""
    function = raw["function"]
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        arguments = json.loads(arguments) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        raise ValueError(f"tool call arguments are not an object: {arguments!r}")
    return ToolCall(name=str(function["name"]), arguments=arguments)
