"""The node's CPU per computed row: ``python -m scripts.bench_node_rows [--rows N] [--concurrency C]``.

Runs N rows of ``scripts/workflows/one_generation.json`` through the node daemon's own per-row
path (what ``NodeDaemon._task`` / ``_store_outcome`` do: the workflow worker process
:class:`node.worker.WorkflowWorker`, then :class:`node.rows.RowWriter` storing each envelope in the
result store and the task in ``node.sqlite``; ``--per-row`` stores the old way, three transactions
per row), C rows at once, against the zero-latency scripted model server run as its own process
(``python -m devnet.scripted_model``, as in the devnet), and prints on stdout:

- ``node_row_cpu_ms``: CPU milliseconds (user + system) of this process plus its worker per row;
- ``node_row_cpu_ms_daemon`` / ``node_row_cpu_ms_worker``: the two parts;
- ``node_rows_per_s``: rows per wall second.

No chain and no p2p: those are the other roles' costs (``scripts.bench_devnet`` measures all).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from node.config import NodeRunSettings
from node.rows import RowWriter
from node.state import NodeState, TaskRecord
from node.worker import WorkerSetup, WorkflowWorker
from protocol.canonical import canonical_bytes, keccak256
from protocol.log import configure
from protocol.store import Store
from scripts.devnet import DEMO_MODEL, ROOT
from workflow.validate import parse_workflow_text

WORKFLOW = ROOT / "scripts" / "workflows" / "one_generation.json"


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(
    url: str, rows: int, concurrency: int, store_dir: Path, per_row: bool, log_level: str
) -> dict[str, float]:
    """The measured figures (see the module docstring)."""
    text = WORKFLOW.read_text(encoding="utf-8")
    workflow = parse_workflow_text(text)
    workflow_hash = keccak256(text.encode())
    settings = NodeRunSettings.model_validate(
        {
            "provider": {"kind": "ollama", "url": url, "models": {DEMO_MODEL: DEMO_MODEL}},
            "concurrency": concurrency,
        }
    )
    worker = WorkflowWorker(
        WorkerSetup(provider=settings.provider, models=(DEMO_MODEL,), log_level=log_level)
    )
    store = Store.open_sync(store_dir / "journal.sqlite")
    state = NodeState.open(store_dir)
    writer = RowWriter(store, state)
    bodies = [
        canonical_bytes({"document": f"passage {i}: the tide rises over the salt marsh."})
        for i in range(rows)
    ]
    slots = trio.CapacityLimiter(concurrency)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            # one warm-up row (imports, the model check, the first connection)
            await worker.execute(DEMO_MODEL, workflow, text, workflow_hash, bodies[0], 60.0)
            assert worker.pid is not None
            cpu0, wcpu0, t0 = self_cpu_s(), proc_cpu_s(worker.pid), time.perf_counter()

            async def one(i: int) -> None:
                async with slots:
                    outcome = await worker.execute(DEMO_MODEL, workflow, text, workflow_hash, bodies[i], 60.0)
                assert outcome.error is None, outcome.error
                if per_row:  # the pre-group path: three transactions, three thread hops
                    await store.put_result_bytes(outcome.data)
                    await trio.to_thread.run_sync(
                        state.put_task,
                        TaskRecord(
                            batch_id=1, row=i, digest=outcome.digest, error=None, seconds=outcome.seconds
                        ),
                    )
                    await trio.to_thread.run_sync(
                        state.record_speed, workflow_hash, outcome.seconds, settings.speed_alpha
                    )
                else:
                    await writer.store(1, i, outcome, workflow_hash, settings.speed_alpha)

            async with trio.open_nursery() as rows_nursery:
                for i in range(rows):
                    rows_nursery.start_soon(one, i)
            wall = time.perf_counter() - t0
            cpu, wcpu = self_cpu_s() - cpu0, proc_cpu_s(worker.pid) - wcpu0
            nursery.cancel_scope.cancel()
        assert len(state.tasks(1)) == rows
    finally:
        state.close()
        store.close()
    return {
        "node_row_cpu_ms": (cpu + wcpu) / rows * 1000,
        "node_row_cpu_ms_daemon": cpu / rows * 1000,
        "node_row_cpu_ms_worker": wcpu / rows * 1000,
        "node_rows_per_s": rows / wall,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print ``name=value`` lines."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_node_rows")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--log-level", default="INFO", help="the daemon's and worker's (INFO as in the devnet)"
    )
    parser.add_argument(
        "--per-row", action="store_true", help="store each row in its own transactions (the old path)"
    )
    args = parser.parse_args(argv)
    configure(args.log_level)
    with tempfile.TemporaryDirectory() as tmp:
        model_log = Path(tmp) / "model.log"
        with model_log.open("w") as sink:
            model = subprocess.Popen(
                [sys.executable, "-m", "devnet.scripted_model", "--port", "0", "--model", DEMO_MODEL],
                stderr=sink,
            )
        try:
            url = ""
            deadline = time.monotonic() + 60
            while not url and time.monotonic() < deadline and model.poll() is None:
                found = re.search(r'"url":\s*"([^"]+)"|url=(\S+)', model_log.read_text())
                if found:
                    url = found.group(1) or found.group(2)
                else:
                    time.sleep(0.1)  # polling the server's log for its address
            if not url:
                raise SystemExit("the scripted model server did not start")
            figures = trio.run(run, url, args.rows, args.concurrency, Path(tmp), args.per_row, args.log_level)
        finally:
            model.terminate()
            model.wait(10)
    for name, value in figures.items():
        print(f"{name}={value:.2f}")
    print(f"load={json.dumps(os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
