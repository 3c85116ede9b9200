"""``synod task show BATCH:ROW``: one task from chain data: its input row, each node seat's
digest and median, the committee's scores, and whether the result was accepted.

Takes the connection flags of ``synod job``. Exit codes: 0 shown; 2 bad task id; 3 chain.
"""

from __future__ import annotations

import argparse
import json
import sys

from cli.job_cmd import EXIT_CHAIN, EXIT_OK, EXIT_USAGE, add_connection_flags, connect_from


def parse_task(text: str) -> tuple[int, int]:
    """``"12:3"`` -> (batch 12, row 3). Raises ``argparse.ArgumentTypeError``."""
    batch, sep, row = text.partition(":")
    if not sep or not batch.isdigit() or not row.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a task id: write BATCH:ROW, e.g. 12:3")
    return int(batch), int(row)


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="task_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser("show", help="one task: input, results, scores, acceptance")
    show.add_argument("task", type=parse_task, metavar="BATCH:ROW")
    add_connection_flags(show)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from protocol.chain.errors import ChainError
    from protocol.chain.market import Market
    from requester.errors import RequesterError
    from requester.history import load_history

    batch_id, row = args.task
    console = Console()
    try:
        rc = connect_from(args)
        block = rc.chain.head(0)
        market = Market(rc.chain)
        if not 1 <= batch_id <= market.batch_count(block):
            print(
                f"synod task: batch {batch_id} does not exist (batches: {market.batch_count(block)})",
                file=sys.stderr,
            )
            return EXIT_CHAIN
        view = market.batch(batch_id, block)
        history = load_history(rc.chain, view.job_id, block)
    except (RequesterError, ChainError) as exc:
        print(f"synod task: {exc}", file=sys.stderr)
        return EXIT_CHAIN
    batch = history.batches[batch_id]
    if not 0 <= row < batch.rows:
        print(f"synod task: batch {batch_id} has rows 0..{batch.rows - 1}, not {row}", file=sys.stderr)
        return EXIT_USAGE
    phase = market.phase(batch_id, block)
    console.print(f"task {batch_id}:{row} of job {view.job_id}, phase {phase.phase.name.lower()}")
    console.print(json.dumps(json.loads(bytes(batch.posted.event.rows[row])), ensure_ascii=False)[:500])
    table = Table(title="results")
    for col in ("seat", "node", "digest", "median", "scores", "accepted"):
        table.add_column(col)
    for seat, commit in sorted(batch.commits.items()):
        reveal = batch.reveals.get(seat)
        digest = "0x" + bytes(reveal.event.digests[row]).hex()[:16] + "…" if reveal else "not revealed"
        median = batch.median(seat, row)
        scores = " ".join(str(s) for _, _, s in batch.validator_scores(seat, row)) if reveal else ""
        ok = batch.accepted(seat, row, history.threshold)
        table.add_row(
            str(seat),
            commit.event.node,
            digest,
            "-" if median is None else str(median),
            scores,
            "[green]yes[/]" if ok else ("-" if not batch.terminal else "[red]no[/]"),
        )
    console.print(table)
    return EXIT_OK
