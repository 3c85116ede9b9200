"""``make demo``: a devnet turns bundled documents into a verified Q&A dataset, then stops.

``python -m devnet.demo [--model local|scripted] [--out demo-out] [--rows N] [--batch-size B]``

1. ``devnet.network.up``: Anvil, contracts, 4 nodes and 3 validators as separate processes, one
   model server (the local Gemma 3 270M by default);
2. the requester checks and posts ``examples/data/passages.jsonl`` (one passage per row) with
   ``examples/workflows/qa_pairs.json`` in batches, shows live progress until every batch is settled
   or refunded;
3. exports the accepted results over signed p2p fetches to ``<out>/dataset.jsonl``, verifies the
   file against the chain, and prints a summary: accepted and rejected results, payouts per node and
   validator, slashes, gas per task, wall time;
4. stops every devnet process, also on Ctrl-C (SIGINT) or SIGTERM at any point.

Exit status: 0 when the dataset verifies; 1 when it does not, 2 on bad input, 3 when the devnet
failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from devnet.chain import ROOT, DevnetError
from devnet.network import DevnetSpec, DevnetState, down, up
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import model_id
from protocol.chain.models import JobParams
from protocol.errors import SynodError
from protocol.log import configure
from protocol.operator.amounts import TokenUnits
from requester.connect import RequesterChain, RequesterSettings, connect
from requester.export import export_rows, write_jsonl
from requester.history import JobHistory, load_history, p2p_addresses
from requester.post import plan_job, post_planned
from requester.render import render_status
from requester.rows import load_dataset
from requester.status import status_of
from requester.verify import read_dataset, verify_dataset

WORKFLOW = ROOT / "examples" / "workflows" / "qa_pairs.json"
PASSAGES = ROOT / "examples" / "data" / "passages.jsonl"


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _job_gas(chain: SynodContracts, first_block: int, last_block: int) -> int:
    """gasUsed of every transaction to the market in ``first_block..last_block`` (the devnet runs
    one job at a time, so this is the job's whole lifecycle, claims included)."""
    market = chain.market.address.lower()
    total = 0
    for number in range(first_block, last_block + 1):
        for tx_hash in chain.w3.eth.get_block(number)["transactions"]:
            receipt = chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            if str(receipt["to"] or "").lower() == market:
                total += int(receipt["gasUsed"])
    return total


def summary(rc: RequesterChain, history: JobHistory, state: DevnetState, gas: int, wall: float) -> Table:
    """Accepted and rejected results, payouts per node and validator, slashes, gas per task."""
    units: TokenUnits = rc.units
    names = {p.address.lower(): p.name for p in state.procs if p.address}
    names[state.requester.lower()] = "requester"
    paid: dict[str, int] = defaultdict(int)
    slashed: dict[str, int] = defaultdict(int)
    accepted = rejected = refunded = 0
    for batch in history.batches.values():
        for seat in batch.reveals:
            for row in range(batch.rows):
                if batch.accepted(seat, row, history.threshold):
                    accepted += 1
                else:
                    rejected += 1
        if batch.refunded is not None:
            refunded += 1
        if batch.settled is not None:
            settled = batch.settled.event
            for seat, amount in enumerate(settled.node_paid):
                if seat in batch.commits:
                    paid[batch.commits[seat].event.node.lower()] += amount
            if batch.draw is not None:
                for seat, validator in enumerate(batch.draw.event.validators):
                    if settled.agreed_mask >> seat & 1:
                        paid[validator.lower()] += settled.validator_reward
        for slash in batch.slashed:
            slashed[slash.event.account.lower()] += slash.event.amount
    table = Table(title=f"job {history.job_id}: {history.job.event.row_count} tasks")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("accepted results", str(accepted))
    table.add_row("rejected results", str(rejected))
    table.add_row("refunded batches", str(refunded))
    for account in sorted(set(paid) | set(slashed), key=lambda a: names.get(a, a)):
        who = names.get(account, account)
        table.add_row(f"paid to {who}", units.format(paid.get(account, 0)))
        if slashed.get(account):
            table.add_row(f"[red]slashed[/] {who}", units.format(slashed[account]))
    if not slashed:
        table.add_row("slashes", "none")
    tasks = max(1, history.job.event.row_count)
    table.add_row("gas (whole lifecycle, claims included)", f"{gas:,}")
    table.add_row("gas per task", f"{gas // tasks:,}")
    table.add_row("wall time", f"{wall:.0f} s")
    return table


def demo_job_params(bounty_per_task: int, batch_size: int, phase_seconds: int) -> JobParams:
    """The demo's (and the devnet bench's) job: Gemma 3 270M, k = m = 3, threshold 60, tolerance 20,
    junk floor 20, 20 % to validators, every phase ``phase_seconds`` long; bounty in base units."""
    return JobParams(
        model=model_id("gemma3:270m"),
        bounty_per_task=bounty_per_task,
        batch_size=batch_size,
        k=3,
        m=3,
        threshold=60,
        tolerance=20,
        junk_floor=20,
        validator_share_bps=2000,
        commit_duration=phase_seconds,
        reveal_duration=phase_seconds,
        score_commit_duration=phase_seconds,
        score_reveal_duration=phase_seconds,
    )


def run(args: argparse.Namespace, console: Console) -> int:
    started = time.monotonic()
    out: Path = args.out
    state_dir = out / "devnet"
    spec = DevnetSpec(
        state_dir=state_dir,
        nodes=args.nodes,
        validators=args.validators,
        model=args.model,
        # one shared local model: one workflow per node at a time keeps each under its max_time
        node_concurrency=1 if args.model == "local" else 2,
        # one shared local model: a backup node adds no model capacity, only contention, so the
        # work split's backups wait most of the commit window (node/split.py; docs/node.md)
        node_split={"backup_delay": 0.8, "safety": 1.2} if args.model == "local" else {},
    )
    dataset = load_dataset(WORKFLOW, PASSAGES)
    if args.rows:
        from requester.rows import Dataset

        dataset = Dataset(
            dataset.workflow, dataset.spec, dataset.rows[: args.rows], dataset.sizes[: args.rows]
        )
    try:
        with console.status(
            f"devnet up: anvil, contracts, {args.nodes} nodes, {args.validators} validators, "
            f"{args.model} model…"
        ):
            state = up(spec)
        console.print(
            f"devnet up in {time.monotonic() - started:.0f} s: chain {state.rpc_url}, "
            f"logs in {state_dir}/logs"
        )
        rc = connect(
            RequesterSettings.model_validate(
                {
                    "rpc_url": state.rpc_url,
                    "deployment": state.deployment,
                    "artifacts_dir": ROOT / "out",
                    "dev_key": 1,
                }
            )
        )
        chain = rc.chain
        sender = rc.sender()

        params = demo_job_params(rc.units.parse(args.bounty), args.batch_size, args.phase_seconds)
        plan = plan_job(chain, sender, params, dataset, rc.units)
        posted = post_planned(chain, sender, plan)
        job_ids = posted.job_ids
        console.print(
            f"posted job {', '.join(map(str, job_ids))}: {len(dataset.rows)} passages in "
            f"{len(posted.batches)} batches; escrow {rc.units.format(plan.escrow)}"
        )
        first_block = min(r.block_number for r in posted.receipts)
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                block = chain.head(0)
                statuses = [status_of(chain, load_history(chain, j, block), block) for j in job_ids]
                live.update(render_status(statuses[0]) if len(statuses) == 1 else Table.grid())
                if all(s.terminal for s in statuses):
                    break
                time.sleep(1.0)  # refresh period of the progress display
        block = chain.head(0)
        histories = [load_history(chain, j, block) for j in job_ids]
        nodes = sorted({b.reveals[s].event.node for h in histories for b, s, _ in h.accepted()})
        addresses = {str(k): v for k, v in p2p_addresses(chain, nodes, block).items()}
        signer = rc.signer()

        async def fetch() -> object:
            return await export_rows(chain.chain_id, chain.market.address, histories, addresses, signer)

        exported = trio.run(fetch)
        from requester.export import Export

        assert isinstance(exported, Export)
        dataset_path = out / "dataset.jsonl"
        write_jsonl(exported.rows, dataset_path)
        for failure in exported.failures:
            console.print(
                f"[red]not exported[/]: batch {failure.batch_id} row {failure.row}: {failure.reason}"
            )
        report = verify_dataset(chain, read_dataset(dataset_path), set(job_ids))
        for finding in report.findings:
            console.print(f"[red]{finding}[/]")
        gas = _job_gas(chain, first_block, chain.head(0).number)
        for history in histories:
            console.print(summary(rc, history, state, gas, time.monotonic() - started))
        verdict = "[green]verified[/]" if report.valid else "[red]NOT verified[/]"
        console.print(f"{len(exported.rows)} rows in {dataset_path}: {verdict} against the chain")
        if not exported.rows:
            console.print(
                "[red]no result was accepted: the dataset is empty[/] (see the node logs in "
                f"{state_dir}/logs)"
            )
        return 0 if report.valid and exported.rows and not exported.failures else 1
    finally:
        with console.status("devnet down…"):
            down(state_dir)
        console.print(f"devnet stopped; wall time {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("local", "scripted"), default="local")
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--validators", type=int, default=3)
    parser.add_argument(
        "--rows", type=int, default=12, help="post the first N passages (default 12; 0: all 16)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=2,
        help="rows per batch (default 2: 6 batches, so validators score early batches while nodes compute)",
    )
    parser.add_argument("--bounty", default="10", help="token units per task (default 10)")
    parser.add_argument(
        "--phase-seconds", type=int, default=0, help="each phase's duration (default 900 local, 300 scripted)"
    )
    args = parser.parse_args(argv)
    if args.phase_seconds <= 0:
        args.phase_seconds = 900 if args.model == "local" else 300
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (a shell's background job
    # inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler of its own).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    configure("WARNING")
    console = Console()
    try:
        return run(args, console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: every devnet process was stopped[/]")
        return 130
    except DevnetError as exc:
        console.print(f"[red]devnet failed:[/] {exc}")
        return 3
    except SynodError as exc:
        console.print(f"[red]demo failed:[/] {type(exc).__name__}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
