"""``synod oracle``: the validator's operator commands (see :mod:`cli.operator_cmds`).

The daemon (``synod oracle run``) is added here by its own issue: a subparser next to the operator
ones and a branch in :func:`run`; the operator commands stay in :mod:`cli.operator_cmds`.
"""

from __future__ import annotations

import argparse

from cli import operator_cmds
from cli.oracle_score_cmd import register_score, run_score
from protocol.operator.config import OperatorRole

ROLE = OperatorRole.VALIDATOR


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``synod oracle`` subcommands."""
    sub = parser.add_subparsers(dest="role_command", metavar="SUBCOMMAND", required=True)
    operator_cmds.add_operator_commands(sub, ROLE)
    register_score(sub)


def run(args: argparse.Namespace) -> int:
    """Dispatch a ``synod oracle`` subcommand; returns the exit code."""
    if args.role_command == "score":
        return run_score(args)
    return operator_cmds.run(args, ROLE, args.role_command)
