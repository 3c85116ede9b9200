"""``make demo``: one task through Synod's whole on-chain lifecycle on a throwaway Anvil chain.

Starts Anvil on a free port, builds and deploys the contracts, funds and registers three nodes
(Anvil accounts 1..3) and three validators (4..6), lets the requester (7) post one task (a real
workflow spec and input row, as canonical JSON), and plays every participant from a script:
nodes 1 and 2 reveal their results, node 3 commits but never reveals (and is slashed); the
committee scores, one validator far from the others (and goes unpaid). Prints the outcome and the
gas of every transaction, then stops Anvil, also on Ctrl-C or a failure.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from protocol.canonical import digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import JobParams, Market, PostedJob, model_id
from protocol.errors import SynodError
from protocol.log import configure
from scripts.devnet import DEMO_MODEL, ROOT, LifecycleReport, Step, fund_and_register, local_devnet, run_task
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
INPUT_ROW: dict[str, Any] = {"topic": "autumn rain on a tin roof"}

RESULTS: list[Any] = [
    {"haiku": "Tin roof drums softly\nautumn rain counts the hours\nthe kettle answers"},
    {"haiku": "Rain on the tin roof\nautumn taps a patient beat\nleaves drift to the ground"},
    {"haiku": "(node 3 commits to this, then never reveals it)"},
]
WITHHOLD = frozenset({2})  # node 3 does not reveal


def score(seat: int, revealed: Sequence[Any]) -> list[int]:
    """Validators 0 and 1 score honestly; seat 2 scores everything 5 (far from the medians)."""
    if seat == 2:
        return [5 for _ in revealed]
    return [88 - 4 * i + 2 * seat for i in range(len(revealed))]


PARAMS = JobParams(
    model=model_id(DEMO_MODEL),
    bounty_per_task=100 * TOKEN,
    k=3,
    m=3,
    threshold=60,
    tolerance=15,
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


def render(console: Console, chain: SynodContracts, report: LifecycleReport, posted: PostedJob) -> None:
    """Print what happened to the task, from the chain's events and views."""
    market = Market(chain)
    block = chain.head(0)
    stored = market.task(report.task_id, block)
    job = market.job(stored.jobId, block)
    header = Table(title=f"Task {report.task_id} (job {posted.job_id})", show_header=False)
    header.add_column("what", no_wrap=True)
    header.add_column("value", overflow="fold")
    header.add_row("workflow hash (on chain)", "0x" + bytes(job.workflowHash).hex())
    header.add_row("digest(workflow) (Python)", "0x" + digest(WORKFLOW).hex())
    header.add_row("input hash (on chain)", "0x" + bytes(stored.inputHash).hex())
    header.add_row("digest(input) (Python)", "0x" + digest(INPUT_ROW).hex())
    header.add_row("final phase", market.phase(report.task_id, block)[0].name)
    console.print(header)

    fin = report.finalized or {}
    medians = list(fin.get("medians", []))
    accepted, agreed = int(fin.get("acceptedMask", 0)), int(fin.get("agreedMask", 0))
    results = Table(title="Revealed results (reveal order)")
    for col in ("#", "node", "result digest", "median", "accepted", "reward"):
        results.add_column(col)
    for i, (node, result_digest) in enumerate(report.revealed):
        ok = bool(accepted >> i & 1)
        median = str(medians[i]) if i < len(medians) else "-"
        reward = _tokens(int(fin.get("nodeReward", 0))) if ok else "0"
        results.add_row(str(i), node, "0x" + result_digest.hex()[:16] + "…", median, _mark(ok), reward)
    console.print(results)

    committee = Table(title="Committee (stake-weighted draw)")
    for col in ("seat", "validator", "scores", "agreed", "reward"):
        committee.add_column(col)
    for seat, (validator, scores) in enumerate(report.scores):
        ok = bool(agreed >> seat & 1)
        reward = _tokens(int(fin.get("validatorReward", 0))) if ok else "0"
        committee.add_row(str(seat), validator, str(list(scores)), _mark(ok), reward)
    console.print(committee)

    money = Table(title="Money")
    money.add_column("what")
    money.add_column("who")
    money.add_column("tokens", justify="right")
    money.add_row("bounty escrowed", "requester", _tokens(PARAMS.bounty_per_task))
    if report.refunded:
        money.add_row("refund (whole bounty)", "requester", _tokens(int(report.refunded["amount"])))
    elif fin:
        money.add_row("refund (rest)", "requester", _tokens(int(fin["refund"])))
    for who, amount in report.slashed:
        money.add_row("[red]slashed[/] (no reveal) -> treasury", who, _tokens(amount))
    for who, amount in report.claims:
        money.add_row("claimed", who, _tokens(amount))
    console.print(money)

    gas = Table(title="Gas of every transaction of the lifecycle")
    for col in ("#", "transaction", "sender", "gas used"):
        gas.add_column(col, justify="right" if col == "gas used" else "left")
    steps = [Step("requester", posted.receipts[-1]), *report.steps]
    for i, step in enumerate(steps, 1):
        gas.add_row(str(i), step.receipt.label, step.actor, f"{step.receipt.gas_used:,}")
    total = sum(step.receipt.gas_used for step in steps)
    gas.add_row("", "[bold]total[/]", "", f"[bold]{total:,}[/]")
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
            posted = Market(chain).post_task(actors.requester, PARAMS, WORKFLOW, INPUT_ROW)
            report = run_task(chain, actors, posted.task_ids[0], RESULTS, score, withhold=WITHHOLD)
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
