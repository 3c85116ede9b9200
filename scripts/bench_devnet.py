"""Devnet throughput: tasks settled per minute through the whole network.

``python -m scripts.bench_devnet [--model scripted|local] [--tasks N] [--batch-size B]`` starts a
devnet (4 nodes, 3 validators as OS processes, one Anvil), posts ``N`` rows of the bundled
passages (cycled) with ``examples/workflows/qa_pairs.json``, and measures from the post to the
moment every batch is settled or refunded. Prints ``devnet_tasks_per_min=`` (scripted: the
zero-latency model, so protocol only) or ``devnet_tasks_per_min_local_model=``: the tasks of the
SETTLED batches per minute (a refunded batch ends early and proves nothing), the accepted results
(k per task) per minute, the settled/refunded/accepted counts, the wall time and the range of the 1-minute
load average seen during the run; the devnet's start-up is not counted. ``--keep DIR`` keeps the
devnet's state directory (every process's structured log) and prints a per-stage timeline.
"""

from __future__ import annotations

import argparse
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
from devnet.network import DevnetSpec, down, up
from protocol.canonical import canonical_bytes
from protocol.chain.models import Phase
from protocol.log import configure
from requester.connect import RequesterSettings, connect
from requester.post import plan_job, post_planned
from requester.rows import Dataset, load_dataset
from requester.status import job_status

_LINE = re.compile(r"^(\S+ \S+) \S+ \S+ (\S+) .*?\bbatch=(\d+)\b")
STAGES = (
    ("node_batch_taken", 1),
    ("node_committed", 3),
    ("node_revealed", 3),
    ("batch_scored", 3),
    ("batch_settle_sent", 1),
)
"""The timeline's marks per batch: the n-th occurrence of each event (k = m = 3 in the bench)."""


def timeline(logs: Path) -> dict[str, float]:
    """Median seconds per stage over the batches, from the daemons' logs in ``logs``: taken ->
    3rd commit mined (compute + commit), -> 3rd reveal, -> 3rd score record (draw, fetch, score),
    -> settle sent (score commits and reveals). Batches missing a mark are left out of a stage."""
    seen: dict[tuple[str, int], list[datetime]] = {}
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _LINE.match(line)
            if match and any(match[2] == name for name, _ in STAGES):
                when = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
                seen.setdefault((match[2], int(match[3])), []).append(when)
    batches = {b for _, b in seen}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_devnet")
    parser.add_argument("--model", choices=("scripted", "local"), default="scripted")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--phase-seconds", type=int, default=900)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the state dir (logs) here",
    )
    args = parser.parse_args(argv)
    configure("WARNING")
    full = load_dataset(
        ROOT / "examples" / "workflows" / "qa_pairs.json", ROOT / "examples" / "data" / "passages.jsonl"
    )
    picks = [i % len(full.rows) for i in range(args.tasks)]
    # distinct rows (a counter field): identical rows would be identical tasks
    rows = tuple({**full.rows[i], "n": n} for n, i in enumerate(picks))
    dataset = Dataset(full.workflow, full.spec, rows, tuple(len(canonical_bytes(r)) for r in rows))
    with tempfile.TemporaryDirectory(prefix="synod-bench-") as tmp:
        state_dir = args.keep if args.keep is not None else Path(tmp) / "devnet"
        try:
            state = up(DevnetSpec(state_dir=state_dir, model=args.model))
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
            plan = plan_job(rc.chain, sender, params, dataset, rc.units)
            started = time.monotonic()
            posted = post_planned(rc.chain, sender, plan)
            load_min = load_max = os.getloadavg()[0]
            while True:
                statuses = [job_status(rc.chain, j) for j in posted.job_ids]
                if all(s.terminal for s in statuses):
                    break
                time.sleep(1.0)  # polling interval
                load_min, load_max = min(load_min, os.getloadavg()[0]), max(load_max, os.getloadavg()[0])
            loads = (load_min, load_max)
            minutes = (time.monotonic() - started) / 60
        finally:
            down(state_dir)
    if args.keep is not None:
        for stage, seconds in timeline(args.keep / "logs").items():
            print(f"devnet_{args.model}_median_s {stage}={seconds:.1f}")
    name = "devnet_tasks_per_min" if args.model == "scripted" else "devnet_tasks_per_min_local_model"
    batches = [b for s in statuses for b in s.batches]
    settled = sum(b.rows for b in batches if b.phase is Phase.SETTLED)
    accepted = sum(s.accepted for s in statuses)
    # a refunded batch ends fast and proves nothing: only settled tasks count
    print(f"{name}={settled / minutes:.1f}")
    print(f"devnet_{args.model}_accepted_results_per_min={accepted / minutes:.1f}")  # k per task
    print(
        f"devnet_{args.model}_settled={settled} refunded={args.tasks - settled} "
        f"accepted_results={accepted} "
        f"tasks={args.tasks} "
        f"wall_s={minutes * 60:.0f} load_average={loads[0]:.1f}..{loads[1]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
