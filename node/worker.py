"""The workflow worker: the node's workflows run in a child process, off the daemon's event loop.

A workflow's CPU parts (fastText language id, text functions, JSON and template work, the engine's
own bookkeeping) are pure Python under the GIL: run on the daemon's trio loop, they stalled the
libp2p server and the chain watcher for as long as a step computed, and the validators' fetches
timed out while the node was busy (README, devnet figures). ``trio.to_thread`` would not help (the
GIL). So ``synod node run`` starts one worker process (``python -m node.worker``) that owns the
model providers and the engines and runs every row; the daemon keeps the journal, the chain and
p2p, and only waits on a pipe.

The pipe protocol: JSON lines, each checked with pydantic on both sides.

* daemon -> worker, stdin: first a :class:`WorkerSetup` (the ``[run.provider]`` table and the
  served model names: the worker builds each provider with :func:`provider_settings`, reading an API key from
  the environment variable named by ``run.provider.api_key_env``, so no secret crosses the pipe);
  then :class:`TaskRequest` and :class:`CancelRequest` lines.
* worker -> daemon, stdout: one :class:`WorkerReady`, then one :class:`TaskReply` per request not
  cancelled: the envelope's canonical bytes (hex) and the run's seconds. The daemon re-parses the
  bytes (:meth:`protocol.envelope.ResultEnvelope.from_bytes`) and hashes them itself.

The worker runs the requests concurrently on its own trio loop (the daemon's ``run.concurrency``
limits how many are in flight) with :func:`node.work.run_task`, so failure envelopes, deadlines and
the envelope cap behave exactly as in-process. Its stdout is kept for the protocol (fd 1 is
pointed at stderr, so a library's stray print cannot corrupt it); it logs to stderr like the
daemon; it ignores SIGINT and SIGTERM (a terminal's Ctrl-C or a service manager's SIGTERM reaches
the whole process group: were the worker to die first, the daemon would store its rows in flight
as failures) and exits at the end of its stdin or when the daemon SIGKILLs it on shutdown, so a
daemon killed with SIGKILL leaves no worker behind.
:class:`WorkflowWorker` (daemon side) restarts a worker that died and runs the rows that were in
flight once more there (within their deadline); a row whose second worker dies too fails with
the reason (an explicit failure envelope, as for an engine crash).

Crash safety is unchanged: the daemon stores each envelope by digest before the batch moves on; a
row whose worker died is a failure envelope like any other failed row.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Literal

import trio
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from node.provider import NodeProviderSettings
from node.work import TaskOutcome, run_task
from protocol.canonical import keccak256
from protocol.envelope import EnvelopeError, ResultEnvelope, failure
from protocol.errors import SynodError
from protocol.log import configure, get_logger
from workflow.model import Workflow
from workflow.providers.base import ProviderSettings

log = get_logger(__name__)

GRACE_S = 15.0
"""The daemon waits this much longer than a task's deadline for its reply (the worker enforces
the deadline itself; this only covers a worker that hangs)."""
RESTART_DELAY_S = 1.0
MAX_LINE_BYTES = 4 * 1024 * 1024
"""A reply line is at most the envelope cap (256 KiB) in hex plus a little; longer is a broken worker."""
WORKFLOW_CACHE = 64


class WorkerFailed(SynodError):
    """The first worker process exited before it was ready (a broken install or provider)."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkerSetup(_Message):
    """The first line to a worker: the node's ``[run.provider]`` table and the served models."""

    kind: Literal["setup"] = "setup"
    provider: NodeProviderSettings
    models: tuple[str, ...]
    log_level: str = "INFO"
    """The daemon's log level (the worker logs to the same stderr)."""


class TaskRequest(_Message):
    """Run ``row`` (hex bytes) through ``workflow`` (the job's workflow text, its keccak
    ``workflow_hash`` in hex) on ``model`` under ``deadline_s`` seconds."""

    kind: Literal["task"] = "task"
    id: int = Field(ge=0)
    model: str
    workflow: str
    workflow_hash: str
    row: str
    deadline_s: float


class CancelRequest(_Message):
    """Stop task ``id`` (its batch stopped); no reply follows."""

    kind: Literal["cancel"] = "cancel"
    id: int = Field(ge=0)


class WorkerReady(_Message):
    """The worker built its engines and takes requests."""

    kind: Literal["ready"] = "ready"
    pid: int


class TaskReply(_Message):
    """Task ``id``'s envelope bytes (hex) and the seconds its run took."""

    kind: Literal["reply"] = "reply"
    id: int = Field(ge=0)
    data: str
    seconds: float = Field(ge=0)


Request = Annotated[WorkerSetup | TaskRequest | CancelRequest, Field(discriminator="kind")]
Reply = Annotated[WorkerReady | TaskReply, Field(discriminator="kind")]
REQUEST: TypeAdapter[WorkerSetup | TaskRequest | CancelRequest] = TypeAdapter(Request)
REPLY: TypeAdapter[WorkerReady | TaskReply] = TypeAdapter(Reply)


def provider_settings(provider: NodeProviderSettings, chain_model: str) -> ProviderSettings:
    """The :class:`ProviderSettings` serving ``chain_model`` under ``run.provider`` (an API key is
    read from the environment variable ``run.provider.api_key_env`` names)."""
    fields: dict[str, object] = {
        "kind": provider.kind,
        "timeout_s": provider.timeout_s,
        "stall_timeout_s": provider.stall_timeout_s,
        "max_retries": provider.max_retries,
        "n_threads": provider.n_threads,
        "n_ctx": provider.n_ctx,
    }
    if provider.kind == "local":
        fields["model"] = chain_model
        path = provider.models.get(chain_model)
        if path:
            fields["model_path"] = path
    else:
        fields["model"] = provider.provider_model(chain_model)
        if provider.url:
            fields["base_url"] = provider.url
        if provider.api_key_env and os.environ.get(provider.api_key_env):
            fields["api_key"] = os.environ[provider.api_key_env]
    return ProviderSettings.model_validate(fields)


class LineReader:
    """Newline-framed lines from a trio receive stream (each at most :data:`MAX_LINE_BYTES`)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def line(self) -> bytes | None:
        """The next line without its newline; None at the end of the stream. Raises
        :class:`ValueError` for a line over the cap."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ValueError(f"a line over {MAX_LINE_BYTES} bytes")
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                return None
            self._buffer += chunk


class LineWriter:
    """Newline-framed lines to a trio send stream, written by one task (:meth:`pump`) and
    coalesced: the lines queued while a write is in progress go out together in the next one (one
    ``write`` and one wake-up of the reader for all the rows that finished, or were sent, in the
    same scheduler batch, where each line had its own).

    :meth:`line` returns once its line was written; it raises ``trio.BrokenResourceError`` when
    the stream broke or the pump stopped (the other side is gone). Cancelling a caller does not
    unqueue its line (the pump writes whole lines only, so a cancelled caller never leaves half a
    line in the pipe, as a cancelled ``send_all`` could)."""

    def __init__(self) -> None:
        self._queue: list[tuple[bytes, _Sent]] = []
        self._wake = trio.Event()
        self._stopped = ""

    async def line(self, data: bytes) -> None:
        """Queue ``data`` (one line, no newline) and wait until it is written."""
        if self._stopped:
            raise trio.BrokenResourceError(self._stopped)
        sent = _Sent()
        self._queue.append((data, sent))
        self._wake.set()
        await sent.done.wait()
        if sent.error:
            raise trio.BrokenResourceError(sent.error)

    async def pump(self, stream: trio.abc.SendStream) -> None:
        """Write the queued lines to ``stream`` until cancelled or the stream breaks (then every
        waiting and later line fails)."""
        group: list[tuple[bytes, _Sent]] = []
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                group, self._queue = self._queue, []
                if group:
                    await stream.send_all(b"".join(data + b"\n" for data, _ in group))
                for _, sent in group:
                    sent.done.set()
                group = []
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._stop(group, f"the pipe broke: {exc!r}")
        except BaseException:
            self._stop(group, "the pipe's writer stopped")
            raise

    def _stop(self, group: list[tuple[bytes, _Sent]], reason: str) -> None:
        self._stopped = reason
        for _, sent in (*group, *self._queue):
            sent.error = reason
            sent.done.set()
        self._queue = []


@dataclass
class _Sent:
    done: trio.Event = field(default_factory=trio.Event)
    error: str = ""


# ---------------------------------------------------------------------- the daemon's side


async def _kill(process: trio.Process) -> None:
    """Stop a worker when the daemon stops: SIGKILL (it holds nothing to save, and it ignores
    SIGTERM so that a signal to the whole process group cannot end it before the daemon)."""
    process.kill()


async def _pump(writer: LineWriter, stream: trio.abc.SendStream, scope: trio.CancelScope) -> None:
    with scope:
        await writer.pump(stream)


@dataclass
class _Pending:
    done: trio.Event = field(default_factory=trio.Event)
    reply: TaskReply | None = None
    lost: str = ""


class WorkflowWorker:
    """The daemon's handle on its worker process: :meth:`run` (in the daemon's nursery) starts it,
    restarts it when it dies, and stops it on cancellation; :meth:`execute` runs one row there.
    ``command`` defaults to ``python -m node.worker`` with this interpreter."""

    def __init__(self, setup: WorkerSetup, command: Sequence[str] | None = None) -> None:
        self._setup = setup
        self._command = list(command or [sys.executable, "-m", "node.worker"])
        self._ids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._stdin: LineWriter | None = None
        self._ready = trio.Event()
        self.restarts = 0
        self.pid: int | None = None

    @property
    def models(self) -> tuple[str, ...]:
        """The on-chain model names the worker serves."""
        return self._setup.models

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a worker running until cancelled; reports started once the first one is ready.
        Raises :class:`WorkerFailed` if the first one exits before it is ready."""
        first = True
        while True:
            code = await self._one_worker(task_status if first else None)
            if first and self.pid is None:
                raise WorkerFailed(f"the workflow worker exited at start-up (code {code}): see its log above")
            first = False
            self._stdin = None
            self._ready = trio.Event()
            for pending in self._pending.values():
                pending.lost = f"the workflow worker exited (code {code})"
                pending.done.set()
            self.restarts += 1
            log.warning("node_worker_exited", code=code, restart_in_s=RESTART_DELAY_S)
            await trio.sleep(RESTART_DELAY_S)

    async def _one_worker(self, task_status: trio.TaskStatus[None] | None) -> int | None:
        async with trio.open_nursery() as nursery:
            start = partial(
                trio.run_process,
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                check=False,
                deliver_cancel=_kill,
            )
            process: trio.Process = await nursery.start(start)
            assert process.stdin is not None and process.stdout is not None
            with trio.fail_after(60):
                await process.stdin.send_all(self._setup.model_dump_json().encode() + b"\n")
            writer = LineWriter()
            pumping = trio.CancelScope()
            nursery.start_soon(_pump, writer, process.stdin, pumping)
            reader = LineReader(process.stdout)
            while True:
                try:
                    line = await reader.line()
                except ValueError as exc:
                    log.error("node_worker_broken", error=str(exc))
                    process.kill()
                    line = None
                if line is None:
                    break
                try:
                    message = REPLY.validate_json(line)
                except ValidationError as exc:
                    log.error("node_worker_bad_reply", error=str(exc)[:300])
                    process.kill()
                    break
                if isinstance(message, WorkerReady):
                    self.pid = message.pid
                    self._stdin = writer
                    self._ready.set()
                    log.info("node_worker_ready", pid=message.pid)
                    if task_status is not None:
                        task_status.started()
                        task_status = None
                    continue
                pending = self._pending.get(message.id)
                if pending is not None:
                    pending.reply = message
                    pending.done.set()
            pumping.cancel()  # the worker is gone: its queued requests fail
        return process.returncode

    async def _send(self, message: TaskRequest | CancelRequest) -> None:
        stdin = self._stdin
        if stdin is None:
            raise trio.BrokenResourceError("no worker")
        await stdin.line(message.model_dump_json().encode())

    async def execute(
        self,
        model: str,
        workflow: Workflow,
        workflow_text: str,
        workflow_hash: bytes,
        row: bytes,
        deadline_s: float,
    ) -> TaskOutcome:
        """Run one row in the worker (see :func:`node.work.run_task`: never raises for the task's
        own failures). A row whose worker died runs once more in the restarted worker within what
        is left of ``deadline_s`` (in-process, a crash of the node left the row unstored and the
        restarted node ran it again; a worker's crash must not turn it into a stored failure
        instead); a second death, or a worker that hangs past ``deadline_s`` + :data:`GRACE_S`,
        gives a failure envelope naming it. Cancelling this call cancels the row in the worker.
        The parsed ``workflow`` is not sent (the worker parses ``workflow_text`` once per workflow)."""
        started = time.perf_counter()

        def failed(reason: str) -> TaskOutcome:
            envelope = failure(workflow_hash=workflow_hash, row=row, model=model, reason=reason)
            data = envelope.to_bytes()
            return TaskOutcome(envelope, data, keccak256(data), envelope.error, time.perf_counter() - started)

        reply, reason, died = await self._attempt(model, workflow_text, workflow_hash, row, deadline_s)
        left = deadline_s - (time.perf_counter() - started)
        if reply is None and died and left > 0:
            log.warning("node_worker_row_retried", reason=reason, deadline_s=round(left, 1))
            reply, reason, died = await self._attempt(model, workflow_text, workflow_hash, row, left)
        if reply is None:
            return failed(reason)
        data = bytes.fromhex(reply.data)
        try:
            envelope = ResultEnvelope.from_bytes(data)
        except EnvelopeError as exc:
            return failed(f"the workflow worker sent an invalid envelope: {exc}")
        return TaskOutcome(envelope, data, keccak256(data), envelope.error, reply.seconds)

    async def _attempt(
        self, model: str, workflow_text: str, workflow_hash: bytes, row: bytes, deadline_s: float
    ) -> tuple[TaskReply | None, str, bool]:
        """Send the row once: ``(reply, "", False)``, or ``(None, reason, died)`` where ``died``
        says the worker exited with the row in flight (or before it was sent)."""
        task_id = next(self._ids)
        pending = _Pending()
        self._pending[task_id] = pending
        sent = False
        try:
            with trio.move_on_after(max(deadline_s, 0.0) + GRACE_S):
                while self._stdin is None:
                    await self._ready.wait()
                request = TaskRequest(
                    id=task_id,
                    model=model,
                    workflow=workflow_text,
                    workflow_hash=workflow_hash.hex(),
                    row=row.hex(),
                    deadline_s=deadline_s,
                )
                try:
                    await self._send(request)
                    sent = True
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None, "the workflow worker exited before the task was sent", True
                await pending.done.wait()
            if pending.reply is None:
                if pending.lost:
                    return None, pending.lost, True
                return None, f"the workflow worker gave no answer in {deadline_s + GRACE_S:.0f}s", False
            return pending.reply, "", False
        finally:
            del self._pending[task_id]
            if sent and not pending.done.is_set():
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(2.0),
                    suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                ):
                    await self._send(CancelRequest(id=task_id))


# ---------------------------------------------------------------------- the worker's side


async def _serve(out_fd: int) -> None:
    from workflow.engine import Engine
    from workflow.errors import WorkflowError
    from workflow.providers.factory import build_provider
    from workflow.validate import parse_workflow_text

    stdin = trio.lowlevel.FdStream(os.dup(0))
    stdout = trio.lowlevel.FdStream(out_fd)
    reader = LineReader(stdin)
    first = await reader.line()
    if first is None:
        return
    setup = REQUEST.validate_json(first)
    if not isinstance(setup, WorkerSetup):
        raise SystemExit("node.worker: the first line must be the setup")
    configure(setup.log_level)
    for noisy in ("httpx", "httpcore", "urllib3"):  # as ``synod node run`` does
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    providers = [build_provider(provider_settings(setup.provider, name)) for name in setup.models]
    engines = {name: Engine(p) for name, p in zip(setup.models, providers, strict=True)}
    workflows: dict[str, Workflow] = {}
    scopes: dict[int, trio.CancelScope] = {}
    replies = LineWriter()

    async def reply(message: WorkerReady | TaskReply) -> None:
        await replies.line(message.model_dump_json().encode())

    async def one(request: TaskRequest, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            scopes[request.id] = scope
            task_status.started()
            workflow_hash = bytes.fromhex(request.workflow_hash)
            row = bytes.fromhex(request.row)
            workflow = workflows.get(request.workflow_hash)
            engine = engines.get(request.model)
            reason = "" if engine is not None else f"model {request.model!r} is not served here"
            if workflow is None and not reason:
                try:
                    workflow = parse_workflow_text(request.workflow)
                except WorkflowError as exc:
                    reason = f"malformed workflow: {exc}"
                else:
                    if len(workflows) >= WORKFLOW_CACHE:
                        workflows.clear()
                    workflows[request.workflow_hash] = workflow
            if workflow is None or engine is None:
                envelope = failure(workflow_hash=workflow_hash, row=row, model=request.model, reason=reason)
                await reply(TaskReply(id=request.id, data=envelope.to_bytes().hex(), seconds=0.0))
                return
            outcome = await run_task(engine, workflow, workflow_hash, row, request.model, request.deadline_s)
            await reply(TaskReply(id=request.id, data=outcome.data.hex(), seconds=outcome.seconds))
        scopes.pop(request.id, None)  # (a cancelled task was popped by its CancelRequest)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(replies.pump, stdout)
            await reply(WorkerReady(pid=os.getpid()))
            while True:
                line = await reader.line()
                if line is None:  # the daemon is gone: stop everything
                    nursery.cancel_scope.cancel()
                    break
                message = REQUEST.validate_json(line)
                if isinstance(message, TaskRequest):
                    await nursery.start(one, message)
                elif isinstance(message, CancelRequest):
                    scope = scopes.pop(message.id, None)
                    if scope is not None:
                        scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for provider in providers:
                await provider.aclose()


def main() -> int:
    """``python -m node.worker``: serve the pipe protocol until stdin ends (module docstring)."""
    # a terminal's Ctrl-C or a service manager's SIGTERM reaches the whole process group: the
    # worker must not die first (the daemon would store its rows in flight as failures); the
    # daemon stops it (SIGKILL), and it exits by itself at the end of its stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    configure("WARNING")  # until the setup gives the daemon's level
    trio.run(_serve, out_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
