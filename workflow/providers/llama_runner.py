"""One llama.cpp model instance, and the only safe way to call into it from trio.

Why this exists (issue 12): a workflow cut off at ``max_time`` used to abandon its llama.cpp call
(``trio.to_thread.run_sync(..., abandon_on_cancel=True)``) and let the process exit while the worker
thread was still inside native code. Two failures followed:

- **segfault (exit 139)**: the interpreter finalized, and C++ static destructors of llama.cpp / ggml
  ran at ``exit()``, while the abandoned thread was still inside ``llama_decode`` or the model
  loader, touching memory that was being torn down;
- **silent exit 3**: when the cut-off hit during model loading, llama-cpp-python was still inside
  ``suppress_stdout_stderr`` (with ``verbose=False`` it ``dup2``\\ s ``/dev/null`` over file
  descriptors 1 and 2 *for the whole process* and swaps ``sys.stderr``), so the CLI's one error line
  went to ``/dev/null``.

The rule here: a native call is never abandoned. :func:`call_native` runs it with
``trio.to_thread.run_sync(..., abandon_on_cancel=False)``, so the caller returns only after the
thread has left native code. The call polls its :class:`StopFlag`, which also asks trio whether the
calling task has been cancelled or interrupted (``trio.from_thread.check_cancelled``): after every
token (llama-cpp-python's stopping criteria), between graph nodes inside ``llama_decode`` (llama.cpp's
abort callback, so a long prompt evaluation stops within milliseconds too) and while waiting for a
busy model. Once stopped, the thread re-raises trio's ``Cancelled`` (or ``KeyboardInterrupt``) and
the caller sees an ordinary cancellation. Model loading cannot be interrupted; it is waited for
(well under a second for Gemma 3 270M). Loads are serialised process-wide (:data:`_LOAD_LOCK`)
because the ``dup2`` dance of two concurrent loads can leave stderr pointing at ``/dev/null``.

This is the use trio documents for ``from_thread.check_cancelled`` ("poll to allow
``abandon_on_cancel=False`` threads to raise Cancelled at a suitable place").
"""

from __future__ import annotations

import ctypes
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from protocol.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# llama-cpp-python silences fds 1 and 2 process-wide while it loads a model (verbose=False); two loads at
# once could restore each other's /dev/null. One lock for the whole process is the only correct scope.
_LOAD_LOCK = threading.Lock()

# The ctypes callback llama.cpp logs through, kept alive for the life of the process (llama_log_set is
# process-wide native state, like the load lock above).
_NATIVE_LOG: list[Any] = []

LOCK_POLL_S = 0.05
"""How often a call waiting for a busy model checks whether it was cancelled meanwhile (seconds)."""


def route_native_logs() -> None:
    """Send llama.cpp's own log lines to the structured log (``llama_cpp_log``, debug level).

    llama-cpp-python prints llama.cpp's error-level lines straight to stderr, e.g.
    ``decode: removing memory module entries ...`` each time a prompt evaluation is aborted on
    purpose; the CLI promises one line on stderr per failure. Failures still surface as exceptions.
    """
    if _NATIVE_LOG:
        return
    import llama_cpp

    def forward(level: int, text: bytes, _user_data: Any) -> None:
        if log_native.isEnabledFor(logging.DEBUG):
            log.debug("llama_cpp_log", level=level, text=text.decode("utf-8", "replace").rstrip())

    log_native = logging.getLogger(__name__)
    callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _NATIVE_LOG.append(callback)


class StopFlag:
    """Whether the llama.cpp call in this worker thread should return early.

    :meth:`set` asks for a stop from anywhere; :meth:`requested` (worker thread only) is also true
    once the trio task waiting for the thread has been cancelled or interrupted, and keeps that
    exception for :meth:`reraise`.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._pending: BaseException | None = None
        self.after_prompt: Callable[[], None] | None = None
        """Called once, at the first :meth:`token_sampled` (the runner disarms the abort callback)."""

    def set(self) -> None:
        self._event.set()

    def token_sampled(self) -> bool:
        """:meth:`requested`, for llama-cpp-python's stopping criteria (called after every token)."""
        hook, self.after_prompt = self.after_prompt, None
        if hook is not None:
            hook()
        return self.requested()

    def requested(self) -> bool:
        if self._event.is_set():
            return True
        try:
            trio.from_thread.check_cancelled()
        except BaseException as exc:  # Cancelled or KeyboardInterrupt meant for the waiting task
            self._pending = exc
            self._event.set()
            return True
        return False

    def reraise(self) -> None:
        """Raise the cancellation / interrupt :meth:`requested` saw, if any (worker thread)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending


class GrammarError(ValueError):
    """A GBNF grammar (or the JSON schema it was built from) that llama.cpp cannot use."""


def grammar_from_schema(schema: dict[str, Any]) -> str:
    """GBNF text for a JSON schema (llama-cpp-python's converter); :class:`GrammarError` when the
    converter refuses it (it raises a zoo of types: assertion, key, regex, recursion errors)."""

    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # third-party converter: any failure means "not a schema we can use"
        raise GrammarError(f"unsupported JSON schema ({type(exc).__name__}: {exc})") from None


_GBNF_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|#[^\n]*')
_EMPTY_RULE = re.compile(r"^[ \t]*([\w-]+)[ \t]*::=\s*(?:\Z|[\w-]+[ \t]*::=)", re.MULTILINE)
"""A rule with no body: the next thing after ``::=`` (a body may start on the next line) is the end
or another rule."""
_NUL_ESCAPE = re.compile(r"\\(?:x00|u0000|U00000000)|\\.", re.DOTALL)


def _needs_nul(grammar: str) -> bool:
    """Whether a string literal or a positive character class of (parsed) GBNF names the NUL char."""
    for match in _GBNF_TOKEN.finditer(grammar):
        token = match.group()
        if token.startswith("#") or token.startswith("[^"):
            continue
        if any(len(esc.group()) > 2 for esc in _NUL_ESCAPE.finditer(token)):
            return True
    return False


def check_grammar(llama: Any, grammar: str, root: str = "root") -> None:
    """Raise :class:`GrammarError` unless llama.cpp can run ``grammar`` (call in the runner's thread).

    Two ways a grammar kills the whole process inside llama.cpp, both reachable from a JSON schema:

    - llama-cpp-python hands llama.cpp's grammar sampler to the sampling chain without checking
      it: a grammar llama.cpp cannot parse (the one built from ``{"enum": []}``) gives a NULL
      sampler and SIGSEGV at the first token. Here llama.cpp parses it once and the sampler is freed.
    - llama.cpp matches token pieces as C strings, so no token ever yields the NUL character; a
      grammar that requires one (built from ``{"const": "\\u0000"}``) reaches a state where every
      token is refused, and accepting the sampled one throws a C++ exception through the C API:
      SIGABRT. A literal or a positive class naming NUL (``\\x00``, ``\\u0000``, ``\\U00000000``)
      is refused; negated classes (``[^\\x00-\\x1F]`` in every JSON grammar) are fine.
    """
    import llama_cpp

    empty = _EMPTY_RULE.search(grammar)
    if empty:  # what the converter makes of {"enum": []}; caught here, llama.cpp would print a page
        raise GrammarError(f"the grammar's rule {empty.group(1)!r} matches nothing")
    sampler = llama_cpp.llama_sampler_init_grammar(
        llama._model.vocab, grammar.encode("utf-8"), root.encode("utf-8")
    )
    if not sampler:
        raise GrammarError(f"llama.cpp cannot parse the grammar: {grammar[:120]!r}")
    llama_cpp.llama_sampler_free(sampler)
    if _needs_nul(grammar):
        raise GrammarError("the grammar requires the NUL character, which no token can produce")


class GenerationStopped(Exception):
    """The call returned early because :meth:`StopFlag.set` was called (not a cancellation)."""


async def call_native(fn: Callable[[], T]) -> T:
    """Run ``fn()`` in a worker thread and return its result; never abandon the thread.

    ``fn`` must poll a :class:`StopFlag` and, once stopped, call :meth:`StopFlag.reraise` so the
    caller's cancellation propagates. Exceptions raised by ``fn`` propagate unchanged.
    """
    return await trio.to_thread.run_sync(fn, abandon_on_cancel=False)


class LlamaRunner:
    """A GGUF model loaded by llama.cpp (one ``Llama`` instance) behind a thread lock.

    ``path``: the GGUF file; ``n_ctx``: context size in tokens; ``n_threads``: llama.cpp threads.
    :meth:`load` raises ``ValueError`` / ``RuntimeError`` / ``OSError`` from llama-cpp-python when the
    file is not a loadable model. :meth:`run` executes ``fn(llama, stop)`` under the instance lock with
    the abort callback armed for ``stop``.
    """

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._lock = threading.Lock()
        self._llama: Any = None
        self._current: StopFlag | None = None
        self._abort_cb: Any = None  # keeps the ctypes callback alive as long as the context
        self._no_abort: Any = None

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    @property
    def llama(self) -> Any:
        """The ``llama_cpp.Llama`` instance (None before :meth:`load`); use it only inside :meth:`run`."""
        return self._llama

    def _aborting(self, _data: Any) -> bool:
        current = self._current
        return current is not None and current.requested()

    def _load_sync(self) -> None:
        """Load under the instance lock (caller holds it)."""
        if self._llama is not None:
            return
        import llama_cpp
        from llama_cpp import Llama

        started = time.monotonic()
        with _LOAD_LOCK:
            llama = Llama(
                model_path=str(self.path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                seed=0,
                verbose=False,
                # A window-sized cache for the sliding-window layers (Gemma 3): llama.cpp would otherwise
                # print a notice on stderr that verbose=False does not cover. Outputs are identical,
                # prompt-prefix reuse included (checked past the 512-token window).
                swa_full=False,
            )
        route_native_logs()
        self._abort_cb = llama_cpp.ggml_abort_callback(self._aborting)
        self._no_abort = llama_cpp.ggml_abort_callback()  # a NULL function pointer
        self._llama = llama
        log.info("local_model_loaded", path=str(self.path), load_s=round(time.monotonic() - started, 3))

    def _arm_abort(self, armed: bool) -> None:
        """Install the abort callback for the prompt's evaluation only: it runs Python (takes the
        GIL) at every graph node, and one-token steps are covered by the stopping criteria."""
        import llama_cpp

        callback = self._abort_cb if armed else self._no_abort
        llama_cpp.llama_set_abort_callback(self._llama.ctx, callback, None)

    def _acquire(self, stop: StopFlag) -> bool:
        """Take the instance lock, giving up (False) once a stop is requested."""
        while not self._lock.acquire(timeout=LOCK_POLL_S):
            if stop.requested():
                return False
        return True

    def _run_sync(self, fn: Callable[[Any, StopFlag], T], stop: StopFlag) -> T:
        if not self._acquire(stop):
            stop.reraise()
            raise GenerationStopped("stopped while waiting for the model")
        try:
            self._load_sync()
            if stop.requested():
                stop.reraise()
                raise GenerationStopped("stopped before the call started")
            self._current = stop
            stop.after_prompt = lambda: self._arm_abort(False)
            self._arm_abort(True)
            try:
                result = fn(self._llama, stop)
            except RuntimeError as exc:
                if not stop.requested():
                    raise
                stop.reraise()  # llama_decode returned 2: aborted through the callback
                raise GenerationStopped(str(exc)) from exc
            finally:
                self._arm_abort(False)
                self._current = None
                stop.after_prompt = None
            if stop.requested():
                stop.reraise()
                raise GenerationStopped("stopped by request")
            return result
        finally:
            self._lock.release()

    def _load_locked(self) -> None:
        with self._lock:
            self._load_sync()

    async def load(self) -> None:
        """Load the model now (waited for even if the caller is cancelled; see the module docstring).

        Raises what llama-cpp-python raises for a file that is not a loadable GGUF (``ValueError``).
        """
        await call_native(self._load_locked)
        await trio.lowlevel.checkpoint_if_cancelled()

    async def run(self, fn: Callable[[Any, StopFlag], T], stop: StopFlag | None = None) -> T:
        """``fn(llama, stop)`` in a worker thread, loading the model first if needed.

        ``fn`` must return soon after ``stop.requested()`` turns true: it is wired into llama.cpp's
        abort callback here for the prompt's evaluation; ``fn`` passes ``stop.token_sampled`` to the
        stopping criteria (which also disarms that callback after the prompt). Raises trio's
        ``Cancelled`` when the caller was cancelled meanwhile, :class:`GenerationStopped` when
        ``stop.set()`` ended the call, and whatever ``fn`` raises.
        """
        flag = stop or StopFlag()
        return await call_native(lambda: self._run_sync(fn, flag))

    def _close_sync(self) -> None:
        with self._lock:
            llama, self._llama = self._llama, None
            if llama is not None:
                llama.close()
            self._abort_cb = None

    async def aclose(self) -> None:
        """Free the model once no call is in flight (waits for one that is)."""
        await call_native(self._close_sync)
