"""The model behind ``synod model serve``: parallel slots, a bounded FIFO queue, deadlines, stop on cancel.

A :class:`ModelPool` holds ``parallel`` slots, each one llama.cpp instance
(:class:`workflow.providers.llama_runner.LlamaRunner`) with ``threads // parallel`` threads. A
request waits in FIFO order for a free slot (trio wakes waiters in arrival order); at most
``max_queue`` requests wait, the next one gets :class:`QueueFullError`. Generation runs in the
slot's worker thread and streams text pieces back to trio through a memory channel. When the caller
goes away (a deadline, a disconnected client), the slot's stop flag is set: llama.cpp stops at the
next token or graph node, the slot is released in a clean state and serves the next request.

The token loop is ours (on top of ``Llama.generate``) so that streamed and non-streamed answers
report the same exact counts: ``prompt_tokens`` is the tokenized prompt (BOS included),
``completion_tokens`` the tokens generated (an end-of-generation token is not counted; the token that
completed a stop sequence is), as llama-cpp-python's ``usage`` does.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import trio
from pydantic import BaseModel, ConfigDict, Field

from protocol.log import get_logger
from workflow.providers.llama_runner import GenerationStopped, LlamaRunner, StopFlag, check_grammar

log = get_logger(__name__)

FinishReason = Literal["stop", "length"]
_SHUTTING_DOWN = "the model server is shutting down; retry after it restarts or on another server"


class PoolError(Exception):
    """Root of the pool's errors; ``status`` is the HTTP status an API answers with."""

    status = 500


class QueueFullError(PoolError):
    """``max_queue`` requests are already waiting for a slot."""

    status = 503


class DeadlineError(PoolError):
    """The request ran past its deadline (queue wait included)."""

    status = 504


class BadRequestError(PoolError):
    """The request cannot run on this model (too long for the context, bad grammar, ...)."""

    status = 400


class ShuttingDownError(PoolError):
    """The server is stopping (:meth:`ModelPool.shut`): running and queued generations end with it,
    so a streaming client gets a last ``{"error": ...}`` line instead of a cut stream."""

    status = 503


class Sampling(BaseModel):
    """What to generate: the prompt and llama.cpp sampling parameters (Ollama's defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str
    max_tokens: int | None = Field(default=None, ge=1)
    """None: until the context is full."""
    temperature: float = Field(default=0.8, ge=0.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    top_k: int = Field(default=40, ge=0)
    min_p: float = Field(default=0.0, ge=0.0, le=1.0)
    repeat_penalty: float = Field(default=1.0, ge=0.0)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    grammar: str | None = None
    """GBNF text constraining the output (built from a JSON schema by the API layer)."""
    n_ctx: int | None = Field(default=None, ge=1)
    """A context window for this request smaller than the pool's (Ollama's ``num_ctx``): the
    prompt and the generated tokens must fit in it. None: the pool's ``n_ctx``."""


@dataclass(frozen=True)
class Generation:
    """The outcome of one request. Durations in nanoseconds (Ollama's unit)."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    queue_ns: int
    prompt_eval_ns: int
    eval_ns: int
    total_ns: int


@dataclass
class _Progress:
    """Written by the worker thread, read after it returns."""

    text: str = ""
    finish: FinishReason = "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_ns: int = 0
    started_ns: int = 0
    ended_ns: int = 0


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could still begin a stop sequence (not safe to emit yet)."""
    keep = 0
    for stop in stops:
        if len(stop) < 2:
            continue
        tail = text[-(len(stop) - 1) :]
        # the longest suffix of ``tail`` that begins ``stop`` starts at the leftmost stop[0] that fits:
        # a few C-level finds per stop and token, not a Python loop over every length (a request with
        # many long stop sequences made each token cost a second of CPU)
        start = tail.find(stop[0])
        while start >= 0:
            if stop.startswith(tail[start:]):
                keep = max(keep, len(tail) - start)
                break
            start = tail.find(stop[0], start + 1)
    return keep


class ModelPool:
    """``parallel`` llama.cpp slots over one GGUF file, with a FIFO queue of at most ``max_queue``.

    ``threads``: llama.cpp threads in total, split evenly among the slots (at least one each);
    ``n_ctx``: context size of each slot in tokens. Use :meth:`load` before serving and
    :meth:`aclose` after.
    """

    def __init__(self, path: Path, *, parallel: int, threads: int, n_ctx: int, max_queue: int) -> None:
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {parallel}")
        self.path = path
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.max_queue = max_queue
        per_slot = max(1, threads // parallel)
        self._slots = [LlamaRunner(path, n_ctx=n_ctx, n_threads=per_slot) for _ in range(parallel)]
        self._free_send, self._free_recv = trio.open_memory_channel[LlamaRunner](parallel)
        for slot in self._slots:
            self._free_send.send_nowait(slot)
        self._waiting = 0
        self.busy = 0
        self.metadata: dict[str, str] = {}
        self._shut = False
        self._scopes: set[trio.CancelScope] = set()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot right now."""
        return self._waiting

    async def load(self) -> None:
        """Load every slot (sequentially: loads are serialised process-wide anyway)."""
        for slot in self._slots:
            await slot.load()
        self.metadata = dict(await self._slots[0].run(lambda llama, _stop: dict(llama.metadata)))

    async def _acquire(self) -> LlamaRunner:
        if self._waiting >= self.max_queue and self.busy >= self.parallel:
            raise QueueFullError(
                f"{self._waiting} requests already queued (--max-queue {self.max_queue}); try again later"
            )
        self._waiting += 1
        try:
            slot = await self._free_recv.receive()
        finally:
            self._waiting -= 1
        self.busy += 1
        return slot

    def _release(self, slot: LlamaRunner) -> None:
        self.busy -= 1
        self._free_send.send_nowait(slot)

    async def generate(
        self,
        sampling: Sampling,
        on_piece: Callable[[str], Awaitable[None]] | None = None,
        *,
        deadline_s: float,
    ) -> Generation:
        """Run ``sampling`` on the next free slot; ``on_piece`` receives the text as it is generated.

        Raises :class:`QueueFullError`, :class:`DeadlineError` after ``deadline_s`` seconds (queue
        wait included), :class:`BadRequestError` when the prompt does not fit the context or the
        grammar is invalid, :class:`ShuttingDownError` once :meth:`shut` was called (also for a
        generation that was running or queued then). Cancellation (a disconnected client) stops the
        generation at the next token and propagates.
        """
        received = time.monotonic_ns()
        if self._shut:
            raise ShuttingDownError(_SHUTTING_DOWN)
        scope = trio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope, trio.fail_after(deadline_s):
                slot = await self._acquire()
                try:
                    progress = await self._run(slot, sampling, on_piece)
                finally:
                    self._release(slot)
        except trio.TooSlowError as exc:
            raise DeadlineError(f"no complete answer within the deadline of {deadline_s}s") from exc
        finally:
            self._scopes.discard(scope)
        if scope.cancelled_caught:
            raise ShuttingDownError(_SHUTTING_DOWN)
        ended = time.monotonic_ns()
        first = progress.first_token_ns or progress.ended_ns
        return Generation(
            text=progress.text,
            finish_reason=progress.finish,
            prompt_tokens=progress.prompt_tokens,
            completion_tokens=progress.completion_tokens,
            queue_ns=progress.started_ns - received,
            prompt_eval_ns=max(0, first - progress.started_ns),
            eval_ns=max(0, progress.ended_ns - first),
            total_ns=ended - received,
        )

    async def _run(
        self, slot: LlamaRunner, sampling: Sampling, on_piece: Callable[[str], Awaitable[None]] | None
    ) -> _Progress:
        progress = _Progress(started_ns=time.monotonic_ns())
        failures: list[BaseException] = []

        def emit(flag: StopFlag, piece: str) -> None:
            """In the worker thread: hand a piece to ``on_piece`` in the trio task (waits for it)."""
            if failures:
                return
            try:
                assert on_piece is not None
                trio.from_thread.run(on_piece, piece)
            except BaseException as exc:  # the client went away (Cancelled) or the send failed
                failures.append(exc)
                flag.set()

        try:
            await slot.run(
                lambda llama, flag: self._generate_sync(
                    llama, flag, sampling, progress, (lambda piece: emit(flag, piece)) if on_piece else None
                )
            )
        except GenerationStopped:
            await trio.lowlevel.checkpoint_if_cancelled()  # a disconnected client: its cancellation
            if failures:
                raise failures[0] from None
            raise
        return progress

    def _generate_sync(
        self,
        llama: Any,
        flag: StopFlag,
        sampling: Sampling,
        progress: _Progress,
        emit: Callable[[str], None] | None,
    ) -> None:
        """The token loop, in the slot's worker thread (holding the slot's lock)."""
        import llama_cpp
        from llama_cpp import StoppingCriteriaList

        progress.started_ns = time.monotonic_ns()
        tokens: list[int] = llama.tokenize(sampling.prompt.encode("utf-8"), add_bos=True, special=True)
        progress.prompt_tokens = len(tokens)
        window = self.n_ctx if sampling.n_ctx is None else min(self.n_ctx, sampling.n_ctx)
        room = window - len(tokens)
        if room < 1:
            hint = "(start the server with a larger --ctx)" if window == self.n_ctx else "(raise num_ctx)"
            raise BadRequestError(f"the prompt is {len(tokens)} tokens; the context holds {window} {hint}")
        if sampling.max_tokens is not None and sampling.max_tokens > room:
            raise BadRequestError(
                f"{len(tokens)} prompt tokens + {sampling.max_tokens} to generate exceed the context "
                f"of {window} tokens"
            )
        budget = sampling.max_tokens or room
        grammar = None
        if sampling.grammar is not None:
            from llama_cpp.llama_grammar import LlamaGrammar

            try:
                check_grammar(llama, sampling.grammar)  # one llama.cpp cannot run would kill the process
                grammar = LlamaGrammar.from_string(sampling.grammar, verbose=False)
            except ValueError as exc:  # GrammarError included
                raise BadRequestError(f"invalid grammar: {exc}") from exc
        llama.set_seed(sampling.seed if sampling.seed is not None else int(time.time_ns() % (2**31)))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = llama._model.vocab
        stops = [s for s in sampling.stop if s]
        text = ""
        emitted = 0
        count = 0
        finish: FinishReason = "length"
        for token in llama.generate(
            tokens,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            stopping_criteria=StoppingCriteriaList([lambda _ids, _logits: flag.token_sampled()]),
            grammar=grammar,
        ):
            if not progress.first_token_ns:
                progress.first_token_ns = time.monotonic_ns()
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            count += 1
            text += decoder.decode(llama.detokenize([token], special=False))
            hit = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if hit >= 0:
                text = text[:hit]
                finish = "stop"
                break
            if emit is not None:
                safe = len(text) - _held_back(text, stops)
                if safe > emitted:
                    emit(text[emitted:safe])
                    emitted = safe
            if count >= budget:
                break
        if flag.requested():
            return  # the runner re-raises the cancellation, or GenerationStopped
        text += decoder.decode(b"", final=True)
        if emit is not None and len(text) > emitted:
            emit(text[emitted:])
        progress.text = text
        progress.finish = finish
        progress.completion_tokens = count
        progress.ended_ns = time.monotonic_ns()

    def shut(self) -> None:
        """Refuse new generations and stop the running and queued ones (each stops at its next
        token and raises :class:`ShuttingDownError`). Idempotent; call it before the HTTP server's
        graceful stop so every open request is answered with an error, not cut off."""
        self._shut = True
        for scope in self._scopes:
            scope.cancel()

    async def aclose(self) -> None:
        """Free every slot's model (waits for calls still in flight)."""
        for slot in self._slots:
            await slot.aclose()
