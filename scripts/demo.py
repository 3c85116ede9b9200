"""``make demo``: one job through Synod's whole on-chain lifecycle (protocol v2) on a throwaway Anvil chain.

Starts Anvil on a free port, builds and deploys the contracts, funds and registers three nodes
(Anvil accounts 1..3) and three validators (4..6), lets the requester (7) post a job of three rows
(a real workflow spec and input rows, as canonical JSON) as one batch, and plays every participant
from a script: each node commits once for the whole batch (one digest per row); nodes 1 and 2
reveal, node 3 never reveals (and is slashed); the committee is drawn from a future block's hash;
each member commits and reveals one score vector; one validator scores far from the others (and
goes unpaid); anyone settles; everyone claims. Prints the outcome per row and the gas of every
transaction, then stops Anvil, also on Ctrl-C or a failure.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from protocol.canonical import canonical_bytes, digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, PostedJob, model_id
from protocol.chain.models import JobParams
from protocol.commitments import rows_hash
from protocol.errors import SynodError
from protocol.log import configure
from scripts.devnet import DEMO_MODEL, ROOT, BatchReport, Step, fund_and_register, local_devnet, run_batch
from workflow.validate import parse_workflow

TOKEN = 10**18

WORKFLOW: dict[str, Any] = {
    "name": "haiku",
    "description": "Write one haiku about the given topic.",
    "config": {"max_steps": 5, "max_time": 60, "tools": [], "max_tokens": 64, "temperature": 0, "seed": 7},
    "tasks": [
        {
            "id": "write",
            "name": "Write",
            "description": "Write the haiku",
            "prompt": "Write a haiku about {{topic}}. Answer with the haiku only.",
            "inputs": [{"name": "topic", "value": {"type": "input", "key": "topic"}, "required": True}],
            "operator": "generation",
            "outputs": [{"type": "write", "key": "haiku", "value": "__result"}],
        },
        {"id": "__end", "operator": "end"},
    ],
    "steps": [{"source": "write", "target": "__end"}],
    "return_value": {"input": {"type": "read", "key": "haiku"}},
}
INPUT_ROWS: list[dict[str, Any]] = [
    {"topic": "autumn rain on a tin roof"},
    {"topic": "a lighthouse in fog"},
    {"topic": "bread rising overnight"},
]

RESULTS: list[list[Any]] = [
    [
        {"haiku": "Tin roof drums softly\nautumn rain counts the hours\nthe kettle answers"},
        {"haiku": "Fog swallows the coast\none slow eye turns in the grey\nships listen for it"},
        {"haiku": "Dough breathes in the dark\nthe kitchen keeps its promise\nmorning smells of warmth"},
    ],
    [
        {"haiku": "Rain on the tin roof\nautumn taps a patient beat\nleaves drift to the ground"},
        {"haiku": "Grey fog, a white beam\nsweeping nothing, sweeping all\nthe keeper stays up"},
        {"haiku": "bread"},
    ],
    [{"haiku": f"(node 3 commits to this for row {r}, then never reveals it)"} for r in range(3)],
]
WITHHOLD = frozenset({2})  # node 3 does not reveal


def score(round_: int, seat: int, by_seat: Sequence[Sequence[Any] | None]) -> list[list[int]]:
    """Committee seats 0 and 1 score by length (a one-word haiku fails); seat 2 scores everything 5."""
    matrix = []
    for results in by_seat:
        if results is None:
            matrix.append([0] * len(INPUT_ROWS))
        elif seat == 2:
            matrix.append([5] * len(results))
        else:
            matrix.append(
                [min(100, 20 + len(r["haiku"]) + seat) if len(r["haiku"]) > 10 else 10 for r in results]
            )
    return matrix


PARAMS = JobParams(
    model=model_id(DEMO_MODEL),
    bounty_per_task=100 * TOKEN,
    batch_size=3,
    k=3,
    m=3,
    threshold=60,
    tolerance=15,
    junk_floor=20,
    validator_share_bps=2000,
    commit_duration=600,
    reveal_duration=600,
    score_commit_duration=600,
    score_reveal_duration=600,
)


def _tokens(amount: int) -> str:
    return f"{amount / TOKEN:,.4f}".rstrip("0").rstrip(".")


def _mark(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


def render(console: Console, chain: SynodContracts, report: BatchReport, posted: PostedJob) -> None:
    """Print what happened to the batch, from the chain's events and views."""
    market = Market(chain)
    block = chain.head(0)
    stored = market.batch(report.batch_id, block)
    job = market.job(stored.job_id, block)
    header = Table(
        title=f"Batch {report.batch_id} (job {stored.job_id}, {stored.rows} rows)", show_header=False
    )
    header.add_column("what", no_wrap=True)
    header.add_column("value", overflow="fold")
    header.add_row("workflow hash (on chain)", "0x" + job.workflow_hash.hex())
    header.add_row("digest(workflow) (Python)", "0x" + digest(WORKFLOW).hex())
    header.add_row("rows hash (on chain)", "0x" + stored.rows_hash.hex())
    header.add_row(
        "rows_hash(rows) (Python)", "0x" + rows_hash([canonical_bytes(r) for r in INPUT_ROWS]).hex()
    )
    header.add_row("final phase", market.phase(report.batch_id, block).phase.name)
    console.print(header)

    settled = report.settled
    medians = settled.medians if settled else b""
    results = Table(title="Results per row (node seat x row): digest, median score, accepted")
    for col in ("row", "topic", *report.seats):
        results.add_column(col)
    for r, row in enumerate(INPUT_ROWS):
        cells = []
        for seat, _node in enumerate(report.seats):
            if seat not in report.revealed:
                cells.append("[red]not revealed[/]")
                continue
            median = medians[seat * stored.rows + r] if medians else 0
            ok = median >= PARAMS.threshold
            cells.append(f"0x{report.digests[seat][r].hex()[:10]}… {median} {_mark(ok)}")
        results.add_row(str(r), row["topic"], *cells)
    console.print(results)

    committee = Table(title="Committee (drawn by stake from a future block's hash)")
    for col in ("seat", "validator", "weight", "score vector", "agreed", "reward"):
        committee.add_column(col)
    agreed = settled.agreed_mask if settled else 0
    for seat, validator in enumerate(report.committees[-1] if report.committees else ()):
        ok = bool(agreed >> seat & 1)
        vector = report.vectors[-1].get(seat)
        shown = "-" if vector is None else str(list(vector))
        reward = _tokens(settled.validator_reward) if ok and settled else "0"
        committee.add_row(str(seat), validator, _tokens(report.weights[-1][seat]), shown, _mark(ok), reward)
    console.print(committee)

    money = Table(title="Money")
    money.add_column("what")
    money.add_column("who")
    money.add_column("tokens", justify="right")
    money.add_row("bounty escrowed", "requester", _tokens(PARAMS.bounty_per_task * len(INPUT_ROWS)))
    if report.refunded:
        money.add_row("refund (whole bounty)", "requester", _tokens(report.refunded.amount))
    elif settled:
        for seat, node in enumerate(report.seats):
            money.add_row("credited (accepted rows)", node, _tokens(settled.node_paid[seat]))
        money.add_row("refund (rejected rows, dust)", "requester", _tokens(settled.refund))
    for who, reason, amount in report.slashed:
        money.add_row(f"[red]slashed[/] ({reason.name.lower()}) -> treasury", who, _tokens(amount))
    for who, amount in report.claims:
        money.add_row("claimed", who, _tokens(amount))
    console.print(money)

    gas = Table(title="Gas of every transaction of the lifecycle")
    for col in ("#", "transaction", "sender", "gas used"):
        gas.add_column(col, justify="right" if col == "gas used" else "left")
    posts = [Step("requester", r) for r in posted.receipts if r.label.startswith("postJob")]
    steps = [*posts, *report.steps]
    for i, step in enumerate(steps, 1):
        gas.add_row(str(i), step.receipt.label, step.actor, f"{step.receipt.gas_used:,}")
    total = sum(step.receipt.gas_used for step in steps)
    gas.add_row("", "[bold]total[/]", "", f"[bold]{total:,}[/]")
    gas.add_row("", "[bold]per task[/]", "", f"[bold]{total // len(INPUT_ROWS):,}[/]")
    console.print(gas)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the devnet's finally: Anvil is stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    configure("WARNING")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    console = Console()
    try:
        with console.status("starting anvil, building and deploying…"), local_devnet(ROOT) as net:
            chain = SynodContracts.connect(net.settings, ROOT)
            console.print(f"[bold]Synod devnet[/] at {net.rpc_url}, chain {chain.chain_id}")
            parse_workflow(WORKFLOW)  # the spec is a valid Synod workflow before anyone pays for it
            actors, _setup = fund_and_register(chain)
            posted = Market(chain).post_job(actors.requester, PARAMS, WORKFLOW, INPUT_ROWS)
            (batch,) = posted.batches
            report = run_batch(chain, actors, batch.batch_id, RESULTS, score, withhold=WITHHOLD)
            render(console, chain, report, posted)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: anvil stopped[/]")
        return 130
    except SynodError as exc:
        console.print(f"[red]demo failed:[/] {type(exc).__name__}: {exc}")
        return 1
    console.print("[green]done: anvil stopped[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
