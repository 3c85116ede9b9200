"""``synod oracle score FILE.json``: offline scoring (the logic is :mod:`oracle.scoring.cli`).

:mod:`cli.oracle_cmd` adds it next to the operator commands and dispatches ``score`` here.
"""

from __future__ import annotations

import argparse
from typing import Any


def register_score(subparsers: Any) -> None:
    """Add the ``score`` subcommand to ``synod oracle``'s subparsers (an argparse action)."""
    from oracle.scoring.cli import add_arguments

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "score", help="score a task's results offline (JSON file in, JSON list out)"
    )
    add_arguments(parser)


def run_score(args: argparse.Namespace) -> int:
    """Run ``synod oracle score``; returns the exit code (0, or 2 for a bad file)."""
    from oracle.scoring.cli import run

    return run(args)
