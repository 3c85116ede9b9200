"""The workflow worker process (node/worker.py): a real ``python -m node.worker`` child and a
scripted Ollama-API server on 127.0.0.1. Its envelopes are byte for byte the in-process ones; a
cancelled row stops in the worker and the worker goes on; a killed worker is restarted and its
row in flight runs again there (a second kill fails it with the reason); and the daemon's event
loop keeps ticking while the worker computes, where running the same rows in-process stalls it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from devnet.scripted_model import ScriptedModelServer, hashed_reply, scripted_reply
from node.config import NodeRunSettings
from node.work import InlineRunner, TaskOutcome
from node.worker import WorkerSetup, WorkflowWorker, provider_settings
from protocol.canonical import canonical_bytes, keccak256
from scripts.devnet import DEMO_MODEL, ROOT
from tests.node.helpers import WORKFLOW
from workflow.engine import Engine
from workflow.providers.base import ProviderSettings
from workflow.providers.ollama import OllamaProvider
from workflow.validate import parse_workflow_text

pytestmark = pytest.mark.integration

TEXT = json.dumps(WORKFLOW)
HASH = keccak256(TEXT.encode())
QA_PAIRS = (ROOT / "examples" / "workflows" / "qa_pairs.json").read_text(encoding="utf-8")
PASSAGES = [
    line for line in (ROOT / "examples" / "data" / "passages.jsonl").read_text().splitlines() if line.strip()
]


@pytest.fixture(autouse=True)
def _worktree_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the worker imports this checkout's node/


def _settings(url: str) -> NodeRunSettings:
    return NodeRunSettings.model_validate(
        {"provider": {"kind": "ollama", "url": url, "models": {DEMO_MODEL: DEMO_MODEL}, "max_retries": 0}}
    )


async def _with_worker(url: str, body: Callable[[WorkflowWorker], object]) -> object:
    worker = WorkflowWorker(WorkerSetup(provider=_settings(url).provider, models=(DEMO_MODEL,)))
    async with trio.open_nursery() as nursery:
        with trio.fail_after(120):
            await nursery.start(worker.run)
        result = await body(worker)  # type: ignore[misc]
        nursery.cancel_scope.cancel()
    return result


def test_the_worker_gives_the_in_process_envelopes_and_survives_cancels_and_crashes() -> None:
    workflow = parse_workflow_text(TEXT)
    rows = [canonical_bytes({"topic": t}) for t in ("tide", "moss", "salt")]
    slow_topic = canonical_bytes({"topic": "slow"})

    def answer(prompt: str) -> str:
        if "slow" in prompt:
            time.sleep(3.0)  # a model call still running when the row is cancelled
        return hashed_reply(prompt)

    with ScriptedModelServer(models=[DEMO_MODEL], answer=answer) as server:

        async def inline() -> list[TaskOutcome]:
            provider = OllamaProvider(_settings_provider(server.url))
            try:
                runner = InlineRunner({DEMO_MODEL: Engine(provider)})
                return [
                    await runner.execute(DEMO_MODEL, workflow, TEXT, HASH, r, 10.0)
                    for r in [*rows, slow_topic]
                ]
            finally:
                await provider.aclose()

        expected = trio.run(inline)

        async def body(worker: WorkflowWorker) -> None:
            got = [await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, r, 10.0) for r in rows]
            assert [o.data for o in got] == [o.data for o in expected[:3]]
            assert [o.digest for o in got] == [keccak256(o.data) for o in expected[:3]]
            assert all(o.error is None for o in got)
            # a malformed row and an unserved model: failure envelopes with the reason
            bad = await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, b"[1]", 10.0)
            assert bad.error == "malformed row: a JSON list, not an object"
            other = await worker.execute("other:1b", workflow, TEXT, HASH, rows[0], 10.0)
            assert other.error == "model 'other:1b' is not served here"
            # cancelled mid-call: the worker drops the row and serves the next one
            with trio.move_on_after(1.0) as scope:
                await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, slow_topic, 10.0)
            assert scope.cancelled_caught
            again = await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, rows[1], 10.0)
            assert again.data == expected[1].data
            # killed while a row runs (review rev5: an OOM kill of the worker made the row a stored
            # failure, where a crashed in-process node recomputed it): the row runs again in the
            # restarted worker and gives the in-process envelope
            pid = worker.pid
            assert pid is not None

            async def kill_soon(old: int) -> None:
                while worker.pid in (None, old):  # noqa: ASYNC110 -- polls for the (re)started worker
                    await trio.sleep(0.05)
                await trio.sleep(0.5)  # the row is in its 3 s model call
                os.kill(worker.pid, signal.SIGKILL)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_soon, -1)
                again_slow = await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, slow_topic, 120.0)
            assert again_slow.error is None and again_slow.data == expected[3].data
            assert worker.restarts == 1 and worker.pid != pid
            # killed again in its second worker: the row fails naming the exit
            first = worker.pid
            assert first is not None

            async def kill_twice() -> None:
                await kill_soon(-1)
                await kill_soon(first)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_twice)
                lost = await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, slow_topic, 120.0)
            assert lost.error == "the workflow worker exited (code -9)"
            assert not lost.envelope.ok
            after = await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, rows[2], 120.0)  # a new boot
            assert after.data == expected[2].data
            assert worker.restarts == 3 and worker.pid not in (pid, first)
            # a SIGTERM to the process group (a service manager stopping the node) does not end the
            # worker before the daemon: it ignores it, the row completes
            assert worker.pid is not None
            os.kill(worker.pid, signal.SIGTERM)
            survived = await worker.execute(DEMO_MODEL, workflow, TEXT, HASH, rows[0], 60.0)
            assert survived.data == expected[0].data and worker.restarts == 3

        trio.run(_with_worker, server.url, body)


def _settings_provider(url: str) -> ProviderSettings:
    return provider_settings(_settings(url).provider, DEMO_MODEL)


def _max_loop_gap(run_rows: Callable[[], object]) -> tuple[float, float]:
    """(max gap between 5 ms ticks of the trio loop, seconds) while ``run_rows`` runs."""

    async def measure() -> tuple[float, float]:
        gaps: list[float] = []
        started = time.perf_counter()

        async def ticker(cancel: trio.CancelScope) -> None:
            last = time.perf_counter()
            with cancel:
                while True:
                    await trio.sleep(0.005)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

        cancel = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker, cancel)
            await run_rows()  # type: ignore[misc]
            cancel.cancel()
        return max(gaps), time.perf_counter() - started

    return trio.run(measure)


@pytest.mark.slow
def test_the_event_loop_keeps_ticking_while_the_worker_computes(tmp_path: Path) -> None:
    """qa_pairs on the scripted model (the bench's CPU-bound case), 2 rows at a time: the daemon
    loop's longest stall in-process vs with the worker (printed; the worker's must be far lower)."""
    workflow = parse_workflow_text(QA_PAIRS)
    qa_hash = keccak256(QA_PAIRS.encode())
    rows = [p.encode() for p in PASSAGES[:8]]
    with ScriptedModelServer(models=[DEMO_MODEL], answer=scripted_reply) as server:
        settings = _settings(server.url)

        async def inline_rows() -> None:
            provider = OllamaProvider(_settings_provider(server.url))
            runner = InlineRunner({DEMO_MODEL: Engine(provider)})
            limit = trio.CapacityLimiter(2)

            async def one(row: bytes) -> None:
                async with limit:
                    outcome = await runner.execute(DEMO_MODEL, workflow, QA_PAIRS, qa_hash, row, 120.0)
                    assert outcome.error is None, outcome.error

            try:
                async with trio.open_nursery() as nursery:
                    for row in rows:
                        nursery.start_soon(one, row)
            finally:
                await provider.aclose()

        async def worker_rows() -> None:
            worker = WorkflowWorker(WorkerSetup(provider=settings.provider, models=(DEMO_MODEL,)))
            async with trio.open_nursery() as outer:
                await outer.start(worker.run)
                limit = trio.CapacityLimiter(2)

                async def one(row: bytes) -> None:
                    async with limit:
                        outcome = await worker.execute(DEMO_MODEL, workflow, QA_PAIRS, qa_hash, row, 120.0)
                        assert outcome.error is None, outcome.error

                async with trio.open_nursery() as nursery:
                    for row in rows:
                        nursery.start_soon(one, row)
                outer.cancel_scope.cancel()

        inline_gap, inline_s = _max_loop_gap(inline_rows)
        worker_gap, worker_s = _max_loop_gap(worker_rows)
    print(
        f"loop_max_stall_inline_ms={inline_gap * 1000:.0f} ({inline_s:.1f} s) "
        f"loop_max_stall_worker_ms={worker_gap * 1000:.0f} ({worker_s:.1f} s)"
    )
    assert worker_gap < inline_gap / 2


def test_a_worker_that_cannot_start_fails_the_start_up_with_its_exit_code() -> None:
    from node.worker import WorkerFailed

    setup = WorkerSetup(provider=_settings("http://127.0.0.1:9").provider, models=(DEMO_MODEL,))
    worker = WorkflowWorker(setup, command=[sys.executable, "-c", "import sys; sys.exit(4)"])

    async def start() -> str:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(60):
                    await nursery.start(worker.run)
            except WorkerFailed as exc:  # raised by start() itself, as node/main.py catches it
                return str(exc)
        return "started"

    assert trio.run(start) == "the workflow worker exited at start-up (code 4): see its log above"
    assert worker.restarts == 0


_DAEMON_STAND_IN = """
import sys, trio
from node.config import NodeRunSettings
from node.worker import WorkerSetup, WorkflowWorker
from protocol.canonical import canonical_bytes, keccak256
from workflow.validate import parse_workflow_text

url, model, text = sys.argv[1], sys.argv[2], sys.argv[3]
settings = NodeRunSettings.model_validate(
    {"provider": {"kind": "ollama", "url": url, "models": {model: model}, "max_retries": 0}}
)

async def main() -> None:
    worker = WorkflowWorker(WorkerSetup(provider=settings.provider, models=(model,)))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        print(f"worker {worker.pid}", flush=True)
        row = canonical_bytes({"topic": "endless"})
        await worker.execute(model, parse_workflow_text(text), text, keccak256(text.encode()), row, 600.0)

trio.run(main)
"""


def test_a_sigkilled_daemon_leaves_no_worker_even_mid_generation() -> None:
    """Review (rev5): the daemon (here a stand-in driving the real WorkflowWorker) is SIGKILLed
    while its worker waits on a model call that would last a minute: the worker, which ignores
    SIGINT and SIGTERM, must see its stdin end and exit at once, not outlive the daemon."""
    calls = threading.Event()
    finished = threading.Event()

    def answer(prompt: str) -> str:
        calls.set()
        finished.wait(60.0)  # a generation still running when the daemon dies
        return hashed_reply(prompt)

    with ScriptedModelServer(models=[DEMO_MODEL], answer=answer) as server:
        daemon = subprocess.Popen(
            [sys.executable, "-c", _DAEMON_STAND_IN, server.url, DEMO_MODEL, TEXT],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        worker_pid = 0
        try:
            assert daemon.stdout is not None
            line = daemon.stdout.readline()  # blocks until the worker is ready (or the child died)
            assert line.startswith("worker "), f"the stand-in exited: {daemon.poll()}"
            worker_pid = int(line.split()[1])
            assert calls.wait(120), "the row never reached the model"
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
            deadline = time.monotonic() + 20
            while _alive(worker_pid):
                assert time.monotonic() < deadline, f"worker {worker_pid} outlived its SIGKILLed daemon"
                time.sleep(0.1)
        finally:
            finished.set()
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=30)
            if daemon.stdout is not None:
                daemon.stdout.close()
            if worker_pid and _alive(worker_pid):  # the test failed: leave no process behind
                os.kill(worker_pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
