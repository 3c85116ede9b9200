"""``synod job``: the requester's commands.

::

    synod job post    --workflow F.json --rows rows.jsonl --bounty-per-task AMOUNT [--batch-size B]
                      [--k 3] [--m 3] [--threshold N] [--tolerance N] [--junk-floor N]
                      [--validator-share-bps N] [--durations C,R,SC,SR] [--model NAME] [--dry-run]
    synod job status  JOB [--watch] [--interval S]
    synod job export  JOB [JOB ...] --out data.jsonl
    synod job verify  data.jsonl [--job JOB ...]
    synod job cancel  JOB
    synod job list    [--all]

Every subcommand takes the connection flags ``--rpc-url``, ``--deployment``, ``--artifacts-dir``,
``--keystore``/``--password-file`` or ``--dev-key N`` (env: see :mod:`requester.connect`).
Amounts are in token units. Exit codes: 0 done (verify: the file proves out); 1 verify found
altered, added or dropped rows, or export could not fetch some results or found batches not settled
yet (the file holds what is settled and proven); 2 usage or bad input
(rows, workflow, funds: nothing sent); 3 chain (RPC down, unknown job, revert).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from requester.connect import RequesterChain

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_CHAIN = 3


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of :class:`requester.connect.RequesterSettings`."""
    group = parser.add_argument_group("connection (default: SYNOD_* environment, see `synod devnet status`)")
    group.add_argument(
        "--rpc-url", metavar="URL", help="JSON-RPC endpoint (SYNOD_RPC_URL; default 127.0.0.1:8545)"
    )
    group.add_argument("--deployment", type=Path, metavar="FILE", help="deployment JSON (SYNOD_DEPLOYMENT)")
    group.add_argument(
        "--artifacts-dir", type=Path, metavar="DIR", help="forge out/ for ABIs (SYNOD_ARTIFACTS_DIR)"
    )
    group.add_argument("--keystore", type=Path, metavar="FILE", help="requester keystore (SYNOD_KEYSTORE)")
    group.add_argument("--password-file", type=Path, metavar="FILE", help="keystore password file")
    group.add_argument(
        "--dev-key", type=int, metavar="N", help="Anvil dev account N (devnet only; SYNOD_DEV_KEY)"
    )


def job_id(text: str) -> int:
    """A job id argument: a whole number 0..2**64-1 (``uint64`` on chain). Raises
    ``argparse.ArgumentTypeError`` (argparse prints it as a usage error, exit 2)."""
    if not text.isdecimal() or int(text) >= 2**64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id: give the number `synod job list` shows")
    return int(text)


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="job_command", metavar="SUBCOMMAND", required=True)
    post = sub.add_parser("post", help="check the rows and the wallet, approve, post a job")
    post.add_argument("--workflow", type=Path, required=True, metavar="F.json")
    post.add_argument(
        "--rows", type=Path, required=True, metavar="rows.jsonl", help="one JSON object per line"
    )
    post.add_argument("--bounty-per-task", required=True, metavar="AMOUNT", help="token units per row")
    post.add_argument("--batch-size", type=int, default=16, metavar="B", help="rows per batch (default 16)")
    post.add_argument("--k", type=int, default=3, help="node seats per batch (default 3)")
    post.add_argument("--m", type=int, default=3, help="committee size (default 3)")
    post.add_argument(
        "--threshold", type=int, default=60, metavar="N", help="median score to accept (default 60)"
    )
    post.add_argument(
        "--tolerance", type=int, default=15, metavar="N", help="validator agreement (default 15)"
    )
    post.add_argument(
        "--junk-floor", type=int, default=20, metavar="N", help="junk slashing floor (default 20)"
    )
    post.add_argument(
        "--validator-share-bps", type=int, default=2000, metavar="N", help="default 2000 (20%%)"
    )
    post.add_argument(
        "--durations",
        default="600,600,600,600",
        metavar="C,R,SC,SR",
        help="seconds of commit, reveal, score-commit, score-reveal (default 600 each)",
    )
    post.add_argument(
        "--model", default="gemma3:270m", help="model the nodes must serve (default gemma3:270m)"
    )
    post.add_argument("--dry-run", action="store_true", help="check and print the plan; send nothing")
    status = sub.add_parser("status", help="progress of a job: batches and tasks per phase")
    status.add_argument("job", type=job_id, metavar="JOB")
    status.add_argument(
        "--watch", action="store_true", help="refresh until every batch is settled or refunded"
    )
    status.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="refresh period (default 1 s)"
    )
    export = sub.add_parser("export", help="write one verified row per accepted result")
    export.add_argument("jobs", type=job_id, nargs="+", metavar="JOB")
    export.add_argument("--out", type=Path, required=True, metavar="data.jsonl")
    export.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per-result fetch deadline")
    verify = sub.add_parser("verify", help="re-check an export against the chain")
    verify.add_argument("dataset", type=Path, metavar="data.jsonl")
    verify.add_argument(
        "--job",
        type=job_id,
        action="append",
        default=[],
        metavar="JOB",
        help="the job(s) the file must hold, all their accepted results and nothing else "
        "(default: the jobs its rows name)",
    )
    cancel = sub.add_parser("cancel", help="refund every batch of a job that has no commit yet")
    cancel.add_argument("job", type=job_id, metavar="JOB")
    listing = sub.add_parser("list", help="jobs posted by this requester (or all with --all)")
    listing.add_argument("--all", action="store_true", help="every job on the market")
    for p in (post, status, export, verify, cancel, listing):
        add_connection_flags(p)


def connect_from(args: argparse.Namespace) -> RequesterChain:
    """Settings from flags + environment, connected. Raises :class:`RequesterError`."""
    from requester.connect import RequesterSettings, connect

    flags = {
        "rpc_url": args.rpc_url,
        "deployment": args.deployment,
        "artifacts_dir": args.artifacts_dir,
        "keystore": args.keystore,
        "password_file": args.password_file,
        "dev_key": args.dev_key,
    }
    return connect(RequesterSettings.from_sources(flags))


def _fail(message: str, code: int) -> int:
    print(f"synod job: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from protocol.chain.errors import ChainError
    from protocol.operator.amounts import AmountError
    from requester.errors import FundsError, InputError, RequesterError, UnknownJob

    try:
        return _dispatch(args)
    except (InputError, FundsError, AmountError, ValueError) as exc:
        sent = " (nothing was sent)" if args.job_command in ("post", "cancel") else ""
        return _fail(f"{exc}{sent}", EXIT_USAGE)
    except UnknownJob as exc:
        return _fail(str(exc), EXIT_CHAIN)
    except (RequesterError, ChainError) as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_CHAIN)
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    command = args.job_command
    if command == "verify":
        return _verify(args, console)
    if command == "post":
        from requester.rows import load_dataset

        dataset = load_dataset(args.workflow, args.rows)  # before connecting: bad rows never wait on the RPC
        return _post(args, console, connect_from(args), dataset)
    rc = connect_from(args)
    if command == "status":
        return _status(args, console, rc)
    if command == "export":
        return _export(args, console, rc)
    if command == "cancel":
        return _cancel(args, console, rc)
    return _list(args, console, rc)


def _post(args: argparse.Namespace, console: Console, rc: RequesterChain, dataset: object) -> int:
    from protocol.chain.market import model_id
    from protocol.chain.models import JobParams
    from requester.post import plan_job, post_planned
    from requester.rows import Dataset

    assert isinstance(dataset, Dataset)
    try:
        durations = [int(x) for x in args.durations.split(",")]
    except ValueError:
        raise ValueError(
            f"--durations {args.durations!r}: four whole numbers of seconds, C,R,SC,SR"
        ) from None
    if len(durations) != 4 or min(durations) <= 0:
        raise ValueError(f"--durations {args.durations!r}: four positive numbers of seconds, C,R,SC,SR")
    try:
        params = JobParams(
            model=model_id(args.model),
            bounty_per_task=rc.units.parse(args.bounty_per_task, "--bounty-per-task"),
            batch_size=args.batch_size,
            k=args.k,
            m=args.m,
            threshold=args.threshold,
            tolerance=args.tolerance,
            junk_floor=args.junk_floor,
            validator_share_bps=args.validator_share_bps,
            commit_duration=durations[0],
            reveal_duration=durations[1],
            score_commit_duration=durations[2],
            score_reveal_duration=durations[3],
        )
    except Exception as exc:  # pydantic ValidationError: name the flag
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        first = exc.errors()[0]
        if first["loc"][0] == "bounty_per_task":
            most = rc.units.format(2**96 - 1)
            raise ValueError(f"--bounty-per-task {args.bounty_per_task}: at most {most} per task") from None
        raise ValueError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    sender = rc.sender()
    plan = plan_job(rc.chain, sender, params, dataset, rc.units)
    console.print(
        f"{len(dataset.rows)} rows -> {plan.batches} batches of up to {params.batch_size} "
        f"in {len(plan.posts)} "
        f"postJob transaction(s); escrow {rc.units.format(plan.escrow)} of {rc.units.format(plan.balance)}"
    )
    if args.dry_run:
        console.print("dry run: nothing sent")
        return EXIT_OK
    posted = post_planned(rc.chain, sender, plan)
    for receipt in posted.receipts:
        console.print(
            f"  {receipt.label:<16} {receipt.tx_hash}  block {receipt.block_number}  gas {receipt.gas_used:,}"
        )
    ids = " ".join(str(j) for j in posted.job_ids)
    console.print(
        f"job {ids}: {len(posted.batches)} batches, batch ids {posted.batch_ids[0]}..{posted.batch_ids[-1]}"
    )
    print(f"job_ids={','.join(str(j) for j in posted.job_ids)}")
    return EXIT_OK


def _status(args: argparse.Namespace, console: Console, rc: RequesterChain) -> int:
    import time

    from rich.live import Live

    from requester.render import render_status
    from requester.status import job_status

    status = job_status(rc.chain, args.job)
    if not args.watch:
        console.print(render_status(status))
        return EXIT_OK
    with Live(render_status(status), console=console, refresh_per_second=4) as live:
        while not status.terminal:
            time.sleep(args.interval)  # the refresh period the user asked for
            status = job_status(rc.chain, args.job)
            live.update(render_status(status))
    return EXIT_OK


def _export(args: argparse.Namespace, console: Console, rc: RequesterChain) -> int:
    import trio

    from requester.export import Export, export_rows, write_jsonl
    from requester.history import load_history, p2p_addresses

    block = rc.chain.head(0)
    histories = [load_history(rc.chain, j, block) for j in args.jobs]
    nodes = sorted({b.reveals[s].event.node for h in histories for b, s, _ in h.accepted()})
    addresses = p2p_addresses(rc.chain, nodes, block)
    signer = rc.signer()

    async def fetch_all() -> Export:
        return await export_rows(
            rc.chain.chain_id,
            rc.chain.market.address,
            histories,
            {str(k): v for k, v in addresses.items()},
            signer,
            args.timeout,
        )

    result = trio.run(fetch_all)
    write_jsonl(result.rows, args.out)
    console.print(f"wrote {len(result.rows)} rows to {args.out}")
    for failure in result.failures:
        console.print(
            f"[red]not exported[/]: batch {failure.batch_id} row {failure.row} seat {failure.node_seat} "
            f"(node {failure.node}): {failure.reason}"
        )
    open_batches = [(h.job_id, b.batch_id) for h in histories for b in h.batches.values() if not b.terminal]
    for job, batch in open_batches:
        console.print(
            f"[yellow]not settled yet[/]: batch {batch} of job {job}: its results are not in the file; "
            f"export again once `synod job status {job}` shows every batch settled or refunded"
        )
    return EXIT_FINDINGS if result.failures or open_batches else EXIT_OK


def _verify(args: argparse.Namespace, console: Console) -> int:
    from requester.verify import read_dataset, verify_dataset

    lines = read_dataset(args.dataset)
    rc = connect_from(args)
    report = verify_dataset(rc.chain, lines, set(args.job))
    for finding in report.findings:
        console.print(f"[red]{finding}[/]", highlight=False)
    jobs = ", ".join(map(str, report.jobs)) or "none"
    if report.valid:
        console.print(f"[green]verified[/]: {report.ok} rows of job(s) {jobs} match the chain")
        return EXIT_OK
    console.print(f"[red]{len(report.findings)} problem(s)[/] in {args.dataset}; {report.ok} rows verified")
    return EXIT_FINDINGS


def _cancel(args: argparse.Namespace, console: Console, rc: RequesterChain) -> int:
    from protocol.chain.market import Market
    from protocol.chain.models import Phase
    from requester.errors import InputError
    from requester.history import load_history

    history = load_history(rc.chain, args.job)
    sender = rc.sender()
    requester = history.job.event.requester
    if requester.lower() != sender.address.lower():
        raise InputError(
            f"job {args.job} was posted by {requester}, not by {sender.address}: only its requester can "
            "cancel it; give that account's --keystore"
        )
    market = Market(rc.chain)
    cancelled = 0
    for batch in history.batches.values():
        phase = market.phase(batch.batch_id, rc.chain.head(0)).phase
        if phase is Phase.COMMITTING and not batch.commits:
            refunded, receipt = market.cancel(sender, batch.batch_id)
            console.print(
                f"batch {batch.batch_id}: refunded {rc.units.format(refunded.amount)} ({receipt.tx_hash})"
            )
            cancelled += 1
        else:
            console.print(
                f"batch {batch.batch_id}: {phase.name.lower()}, {len(batch.commits)} commits: not cancellable"
            )
    console.print(f"{cancelled} batch(es) of job {args.job} cancelled")
    return EXIT_OK


def _list(args: argparse.Namespace, console: Console, rc: RequesterChain) -> int:
    from rich.table import Table

    from requester.status import list_jobs

    requester = None if args.all else rc.signer().address
    jobs = list_jobs(rc.chain, requester)
    table = Table(title=f"jobs{'' if requester is None else ' of ' + requester}")
    for col in ("job", "rows", "batches", "bounty/task", "block", "tx"):
        table.add_column(col)
    for job in jobs:
        e = job.event
        table.add_row(
            str(e.job_id),
            str(e.row_count),
            str(e.batch_count),
            rc.units.format(e.params.bounty_per_task),
            str(job.block),
            job.tx_hash,
        )
    console.print(table)
    return EXIT_OK
