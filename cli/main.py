"""Entry point of the ``synod`` command.

Each subcommand lives in its own module and is imported only when used, so ``synod workflow``
never loads web3 and ``synod node`` never loads llama.cpp. A usage error (an unknown option, a
bad ``--log-level``) is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

# subcommand -> (module, help). Each module defines ``register(subparsers)`` and ``run(args) -> int``.
_COMMANDS: dict[str, tuple[str, str]] = {
    "workflow": ("cli.workflow_cmd", "validate and run LLM workflows locally"),
    "keys": ("cli.keys_cmd", "create, import and show encrypted keystores"),
    "node": ("cli.node_cmd", "compute node: init, register, status, unbond, withdraw, claim, rewards"),
    "oracle": ("cli.oracle_cmd", "validator: init, register, status, unbond, withdraw, claim, rewards"),
    "model": ("cli.model_cmd", "serve the local model to every process of this machine"),
    "job": ("cli.job_cmd", "requester: post a dataset as a job, watch, export and verify results"),
    "task": ("cli.task_cmd", "requester: show one task from chain data"),
    "devnet": ("cli.devnet_cmd", "tester: the whole network on this machine (up, down, status, logs)"),
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (subparsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def log_level(text: str) -> str:
    """``--log-level``: a logging level name, any case. Raises ``argparse.ArgumentTypeError``."""
    level = text.upper()
    if level not in LOG_LEVELS or not isinstance(logging.getLevelName(level), int):
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return level


def _first_positional(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="synod", description="Synod: decentralized LLM work.")
    parser.add_argument(
        "--log-level",
        type=log_level,
        default="WARNING",
        metavar="LEVEL",
        help="logging level (default WARNING)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only import the module of the subcommand being run; list the rest by name.
    wanted = _first_positional(argv)
    for name, (module, help_text) in _COMMANDS.items():
        if name == wanted:
            importlib.import_module(module).register(sub.add_parser(name, help=help_text))
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    from protocol.log import configure

    configure(args.log_level)
    module = importlib.import_module(_COMMANDS[args.command][0])
    code: int = module.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
