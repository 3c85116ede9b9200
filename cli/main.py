"""Entry point of the ``synod`` command.

Each subcommand lives in its own module and is imported only when used, so ``synod workflow``
never loads web3 and ``synod node`` never loads llama.cpp.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, help). Each module defines ``register(subparsers)`` and ``run(args) -> int``.
_COMMANDS: dict[str, tuple[str, str]] = {
    "workflow": ("cli.workflow_cmd", "validate and run LLM workflows locally"),
    "model": ("cli.model_cmd", "serve the local model to every process of this machine"),
}


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
    parser = argparse.ArgumentParser(prog="synod", description="Synod: decentralized LLM work.")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
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
