"""``synod oracle``: the validator's operator commands (see :mod:`cli.operator_cmds`), the daemon,
``explain`` and offline ``score``.

::

    synod oracle run      [--config PATH] [--password-file FILE]
    synod oracle explain  BATCH [--config PATH] [--json]
    synod oracle score    FILE.json [...]

``init`` is the shared operator command, followed by the validator's default ``[run]`` table
(:mod:`oracle.daemon.config`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli import operator_cmds
from cli.oracle_score_cmd import register_score, run_score
from cli.run_table import append_run_table, config_path
from protocol.operator.config import OperatorRole

if TYPE_CHECKING:
    from oracle.daemon.explain import Explanation

ROLE = OperatorRole.VALIDATOR


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``synod oracle`` subcommands."""
    sub = parser.add_subparsers(dest="role_command", metavar="SUBCOMMAND", required=True)
    operator_cmds.add_operator_commands(sub, ROLE)
    register_score(sub)
    run = sub.add_parser("run", help="run the validator daemon (fetch, score, commit, reveal, settle, claim)")
    run.add_argument(
        "--config", type=Path, metavar="PATH", help="config file (default ~/.config/synod/validator.toml)"
    )
    run.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="keystore password file (else $SYNOD_KEYSTORE_PASSWORD, account.password_file)",
    )
    explain = sub.add_parser(
        "explain", help="every score of a batch: committee, vectors, medians, components"
    )
    explain.add_argument("batch", type=int, metavar="BATCH", help="batch id")
    explain.add_argument(
        "--config", type=Path, metavar="PATH", help="config file (default ~/.config/synod/validator.toml)"
    )
    explain.add_argument("--json", action="store_true", help="print JSON")


def _default_run_table(_doc: Mapping[str, Any]) -> Mapping[str, Any]:
    from oracle.daemon.config import default_run_table

    return default_run_table()


def _print_explanation(report: Explanation) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 160))
    console.print(
        f"batch {report.batch}: {report.rows} rows, phase {report.phase}, threshold {report.threshold}, "
        f"tolerance {report.tolerance}",
        highlight=False,
    )
    for rnd in report.rounds:
        table = Table(
            title=f"round {rnd.round}: score vectors (cell = node seat x row)", title_justify="left"
        )
        for col in ("seat", "validator", "weight", "scores", "within tolerance"):
            table.add_column(col, overflow="fold")
        for v in rnd.voters:
            mark = "" if v.validator != report.mine else " (me)"
            table.add_row(
                str(v.seat),
                v.validator + mark,
                str(v.weight),
                "-" if v.scores is None else str(v.scores),
                "-" if v.within_tolerance is None else ("yes" if v.within_tolerance else "no"),
            )
        table.add_row("", "stake-weighted median", "", "-" if rnd.medians is None else str(rnd.medians), "")
        console.print(table)
    if report.settled_medians is not None:
        console.print(f"settled medians: {report.settled_medians} (recomputed match: {report.medians_match})")
    if report.my_cells:
        table = Table(title="my scores: every component (from my journal)", title_justify="left")
        for col in ("seat", "row", "score", "reason / components"):
            table.add_column(col, overflow="fold")
        for cell in report.my_cells:
            comps = cell.get("components")
            detail = cell.get("reason") or (
                ", ".join(f"{k}={v}" for k, v in comps.items() if v not in (None, (), [])) if comps else ""
            )
            if cell.get("schema_digest"):  # the output schema applied (workflow's and/or row's)
                detail += f"; schema {cell['schema_digest']}"
            table.add_row(str(cell["seat"]), str(cell["row"]), str(cell["score"]), detail)
        console.print(table)


def _explain(args: argparse.Namespace) -> int:
    from oracle.daemon.config import load_run_settings
    from oracle.daemon.explain import explain
    from oracle.daemon.journal import OracleJournal
    from protocol.errors import ConfigError, SynodError
    from protocol.operator.connect import connect
    from protocol.operator.keys import keystore_address
    from protocol.store.binding import check_binding
    from protocol.store.errors import StoreError

    prog = "synod oracle explain"
    path = config_path(args, ROLE)
    try:
        config = operator_cmds._load(args, ROLE)
        settings = load_run_settings(config.run, path)
        me = keystore_address(config.account.keystore)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return operator_cmds.EXIT_USAGE
    try:
        op = connect(config)
        check_binding(settings.store_dir, op.binding)  # not another chain's journal
        try:
            journal: OracleJournal | None = OracleJournal.open(settings.store_dir, read_only=True)
        except FileNotFoundError:
            journal = None
        try:
            report = explain(op.chain, args.batch, journal, me)
        finally:
            if journal is not None:
                journal.close()
    except StoreError as exc:  # the journal was written for another chain, or is unreadable
        print(f"{prog}: {exc}", file=sys.stderr)
        return operator_cmds.EXIT_USAGE
    except SynodError as exc:  # chain errors, a refused start
        print(f"{prog}: {exc}", file=sys.stderr)
        return operator_cmds.EXIT_CHAIN
    if args.json:
        print(json.dumps(report.model_dump(mode="json")))
    else:
        _print_explanation(report)
    return operator_cmds.EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Dispatch a ``synod oracle`` subcommand; returns the exit code."""
    if args.role_command == "score":
        return run_score(args)
    if args.role_command == "run":
        from cli.daemon_exit import exit_daemon
        from oracle.daemon.main import run_daemon

        exit_daemon(run_daemon(config_path(args, ROLE), args.password_file))
    if args.role_command == "explain":
        return _explain(args)
    code = operator_cmds.run(args, ROLE, args.role_command)
    if args.role_command == "init" and code == operator_cmds.EXIT_OK:
        append_run_table(
            config_path(args, ROLE),
            "The validator daemon's settings (synod oracle run); see docs/validator.md.",
            _default_run_table,
        )
    return code
