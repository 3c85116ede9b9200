"""Devnet throughput: tasks settled per minute through the whole network.

``python -m scripts.bench_devnet [--model scripted|local] [--tasks N] [--batch-size B]
[--workflow one_generation|qa_pairs ...] [--keep DIR]`` starts a devnet (4 nodes, 3 validators as
OS processes, one Anvil), posts ``N`` rows of the bundled passages (cycled, each made distinct by a
counter field) with each workflow in turn (one job each, on the same devnet, one after the other),
and measures from the post to the moment every batch of that job is settled or refunded.

The workflows:

* ``one_generation`` (``scripts/workflows/one_generation.json``, the default): a row in, one
  generation out (a one-sentence summary of the passage). On the zero-latency scripted model a
  node's own work per task is one HTTP round trip, so this measures the protocol (chain, p2p,
  validators' fetch and scoring, the nodes' envelopes, hashing, journal and transactions), not a
  workflow's CPU. Its figure is ``devnet_tasks_per_min=`` (issue 10 section 4, "protocol only").
* ``qa_pairs`` (``examples/workflows/qa_pairs.json``): the demo's workflow, about 55 engine steps
  and ~90 ms of node CPU per row even on the scripted model; printed as
  ``devnet_tasks_per_min_qa_pairs_scripted=`` (``_local_model`` with ``--model local``), so the
  workflow-bound figure stays visible.

``--model local`` with the default workflow list runs ``qa_pairs`` only and prints
``devnet_tasks_per_min_local_model=``.

With the scripted model the nodes run ``--node-concurrency`` rows at once (default 16: a row waits
on an HTTP round trip, not on a model) and start from a 1 s task estimate (``run.default_task_seconds``;
the node default of 30 s, a local model's pace, made every node skip a 64-row batch as too long for
its commit window). ``--model local`` keeps the devnet's defaults (2 rows at once, 30 s).

A requester with 1,000 rows picks the largest batch the contract allows that still spreads the
work over the nodes: ``--batch-size`` defaults to 128 (the contract's maximum is 256). A larger
batch means fewer transactions per task (one commit, reveal, score commit and score reveal per
seat per batch, not per row) and fewer libp2p streams (one pipelined stream per node and
validator per batch); a smaller one means more batches in flight to spread over the 4 nodes.

Figures per job: the tasks of the SETTLED batches per minute (a refunded batch ends early and
proves nothing), the accepted results (k per task) per minute, the settled/refunded/accepted
counts, the wall time and the range of the 1-minute load average seen during the run; the
devnet's start-up is not counted. ``--keep DIR`` keeps the devnet's state directory (every
process's structured log) and prints a per-stage timeline per job.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from devnet.chain import ROOT
from devnet.demo import demo_job_params
from devnet.network import DevnetSpec, DevnetState, down, group_members, up
from protocol.canonical import canonical_bytes
from protocol.chain.market import Market
from protocol.chain.models import Phase
from protocol.log import configure
from requester.connect import RequesterSettings, connect
from requester.post import plan_job, post_planned
from requester.rows import Dataset, load_dataset
from requester.status import TERMINAL, job_status

_LINE = re.compile(r"^(\S+ \S+) \S+ \S+ (\S+) .*?\bbatch=(\d+)\b")
STAGES = (
    ("node_batch_taken", 1),
    ("node_committed", 3),
    ("node_revealed", 3),
    ("batch_scored", 3),
    ("batch_settle_sent", 1),
)
"""The timeline's marks per batch: the n-th occurrence of each event (k = m = 3 in the bench)."""


WORKFLOWS = {
    "one_generation": ROOT / "scripts" / "workflows" / "one_generation.json",
    "qa_pairs": ROOT / "examples" / "workflows" / "qa_pairs.json",
}
PASSAGES = ROOT / "examples" / "data" / "passages.jsonl"


def figure_name(model: str, workflow: str) -> str:
    """The printed name of a job's tasks-per-minute figure: ``devnet_tasks_per_min`` only for the
    protocol-only pair (scripted model, ``one_generation``)."""
    if model == "scripted":
        return (
            "devnet_tasks_per_min"
            if workflow == "one_generation"
            else f"devnet_tasks_per_min_{workflow}_scripted"
        )
    return (
        "devnet_tasks_per_min_local_model"
        if workflow == "qa_pairs"
        else f"devnet_tasks_per_min_{workflow}_local_model"
    )


def bench_rows(workflow: Path, tasks: int) -> Dataset:
    """``tasks`` rows of the bundled passages, cycled, checked against ``workflow``; each made
    distinct by a counter field ``n`` (identical rows would be identical tasks)."""
    full = load_dataset(workflow, PASSAGES)
    rows = tuple({**full.rows[n % len(full.rows)], "n": n} for n in range(tasks))
    return Dataset(full.workflow, full.spec, rows, tuple(len(canonical_bytes(r)) for r in rows))


def timeline(logs: Path, only: set[int] | None = None) -> dict[str, float]:
    """Median seconds per stage over the batches (those in ``only`` when given), from the daemons'
    logs in ``logs``: taken -> 3rd commit mined (compute + commit), -> 3rd reveal, -> 3rd score
    record (draw, fetch, score), -> settle sent (score commits and reveals). Batches missing a mark
    are left out of a stage."""
    seen: dict[tuple[str, int], list[datetime]] = {}
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _LINE.match(line)
            if match and any(match[2] == name for name, _ in STAGES):
                when = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
                seen.setdefault((match[2], int(match[3])), []).append(when)
    batches = {b for _, b in seen if only is None or b in only}
    out: dict[str, float] = {}
    for (first, n1), (second, n2) in itertools.pairwise(STAGES):
        spans = []
        for batch in batches:
            a, b = sorted(seen.get((first, batch), [])), sorted(seen.get((second, batch), []))
            if len(a) >= n1 and len(b) >= n2:
                spans.append((b[n2 - 1] - a[n1 - 1]).total_seconds())
        if spans:
            out[f"{first}->{second}"] = statistics.median(spans)
    return out


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds: user + system) of ``pid`` from ``/proc/PID/stat`` (proc(5): fields
    4, 14 and 15, in clock ticks), or ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_role(state: DevnetState) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the devnet's live processes, summed per role
    (``node`` counts its workflow worker processes: a process counts for its nearest ancestor
    among the devnet's recorded ones; ``bench`` is this process: posting and polling)."""
    role = {p.pid: str(p.role) for p in state.procs}
    stats = {pid: st for pid in group_members(state.pgid) if (st := _stat(pid)) is not None}
    out: dict[str, float] = collections.defaultdict(float)
    for pid, (_, seconds) in stats.items():
        owner = pid
        while owner not in role and owner in stats:
            owner = stats[owner][0]
        out[role.get(owner, "other")] += seconds
    me = os.times()
    out["bench"] = me.user + me.system
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_devnet")
    parser.add_argument("--model", choices=("scripted", "local"), default="scripted")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--phase-seconds", type=int, default=900)
    parser.add_argument(
        "--node-concurrency",
        type=int,
        default=16,
        help="rows a node runs at once (scripted model only; the local model keeps the devnet's 2)",
    )
    parser.add_argument(
        "--fetch-timeout",
        type=float,
        default=20.0,
        help="the validators' run.p2p.fetch_timeout (s); their one-stream prefetch of a node gets 3x this",
    )
    parser.add_argument(
        "--workflow",
        action="append",
        choices=sorted(WORKFLOWS),
        default=None,
        help="a job per workflow, in turn (repeatable; default one_generation, qa_pairs with --model local)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the state dir (logs) here",
    )
    args = parser.parse_args(argv)
    configure("WARNING")
    workflows: list[str] = args.workflow or (["one_generation"] if args.model == "scripted" else ["qa_pairs"])
    datasets = {name: bench_rows(WORKFLOWS[name], args.tasks) for name in workflows}
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="synod-bench-") as tmp:
        state_dir = args.keep if args.keep is not None else Path(tmp) / "devnet"
        try:
            spec = DevnetSpec(state_dir=state_dir, model=args.model, fetch_timeout=args.fetch_timeout)
            if args.model == "scripted":
                # the zero-latency model: a node's rows wait on HTTP round trips, not a model
                spec = spec.model_copy(
                    update={"node_concurrency": args.node_concurrency, "node_task_seconds": 1.0}
                )
            state = up(spec)
            env = state.requester_env()
            rc = connect(
                RequesterSettings(
                    rpc_url=env["SYNOD_RPC_URL"],
                    deployment=Path(env["SYNOD_DEPLOYMENT"]),
                    artifacts_dir=ROOT / "out",
                    dev_key=1,
                )
            )
            params = demo_job_params(10**18, args.batch_size, args.phase_seconds)
            sender = rc.sender()
            for name in workflows:
                plan = plan_job(rc.chain, sender, params, datasets[name], rc.units)
                started = time.monotonic()
                posted = post_planned(rc.chain, sender, plan)
                load_min = load_max = os.getloadavg()[0]
                cpu_before = cpu_by_role(state)
                # poll only the batches' phases (one eth_call each, the terminal ones dropped): the
                # full job status (every event of every job) cost the bench ~50 CPU-s per 1,000
                # tasks on the same 2 cores as the devnet
                market = Market(rc.chain)
                pending = set(posted.batch_ids)
                while pending:
                    head = rc.chain.head(0)
                    pending = {b for b in pending if market.phase(b, head).phase not in TERMINAL}
                    if pending:
                        time.sleep(1.0)  # polling interval
                    load_min, load_max = min(load_min, os.getloadavg()[0]), max(load_max, os.getloadavg()[0])
                minutes = (time.monotonic() - started) / 60
                cpu_after = cpu_by_role(state)
                statuses = [job_status(rc.chain, j) for j in posted.job_ids]
                batches = [b for s in statuses for b in s.batches]
                if args.keep is not None:
                    ids = {b.batch_id for b in batches}
                    for stage, seconds in timeline(args.keep / "logs", ids).items():
                        lines.append(f"devnet_{args.model}_{name}_median_s {stage}={seconds:.1f}")
                settled = sum(b.rows for b in batches if b.phase is Phase.SETTLED)
                accepted = sum(s.accepted for s in statuses)
                # a refunded batch ends fast and proves nothing: only settled tasks count
                lines.append(f"{figure_name(args.model, name)}={settled / minutes:.1f}")
                lines.append(f"devnet_{args.model}_{name}_accepted_results_per_min={accepted / minutes:.1f}")
                lines.append(
                    f"devnet_{args.model}_{name}_settled={settled} refunded={args.tasks - settled} "
                    f"accepted_results={accepted} tasks={args.tasks} batch_size={args.batch_size} "
                    f"wall_s={minutes * 60:.0f} load_average={load_min:.1f}..{load_max:.1f}"
                )
                cpu = {r: cpu_after[r] - cpu_before.get(r, 0.0) for r in sorted(cpu_after)}
                lines.append(
                    f"devnet_{args.model}_{name}_cpu_s "
                    + " ".join(f"{r}={v:.1f}" for r, v in cpu.items())
                    + f" total={sum(cpu.values()):.1f}"
                )
                print("\n".join(lines[-4:]), flush=True)
        finally:
            down(state_dir)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
