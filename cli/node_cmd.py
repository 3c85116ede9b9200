"""``synod node``: the compute node's operator commands (see :mod:`cli.operator_cmds`) and its daemon.

::

    synod node run [--config PATH] [--password-file FILE] [--log-level LEVEL]

``run`` is :func:`node.main.run_daemon` (start-up checks, then the daemon until SIGINT/SIGTERM).
``init`` is the shared operator command, followed by the node's default ``[run]`` table
(:func:`node.config.default_run_table`), so a fresh config runs as it is.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli import operator_cmds
from cli.run_table import append_run_table, config_path
from protocol.operator.config import OperatorRole

ROLE = OperatorRole.NODE


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``synod node`` subcommands."""
    sub = parser.add_subparsers(dest="role_command", metavar="SUBCOMMAND", required=True)
    operator_cmds.add_operator_commands(sub, ROLE)
    run = sub.add_parser("run", help="run the compute node daemon (take batches, run, commit, reveal, serve)")
    run.add_argument(
        "--config", type=Path, metavar="PATH", help="config file (default ~/.config/synod/node.toml)"
    )
    run.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="keystore password file (else $SYNOD_KEYSTORE_PASSWORD or account.password_file)",
    )
    run.add_argument(
        "--log-level",
        dest="run_log_level",
        metavar="LEVEL",
        help="daemon log level (default INFO; `synod --log-level` applies when given)",
    )


def _default_run_table(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The node's default ``[run]`` table for the config ``init`` just wrote: its models, and its
    p2p port taken from ``p2p_address`` (4001 when that has no tcp port)."""
    from node.config import default_run_table

    models = [str(m) for m in doc.get("models", [])]
    parts = str(doc.get("p2p_address", "")).split("/")
    port = 4001
    if "tcp" in parts and parts.index("tcp") + 1 < len(parts) and parts[parts.index("tcp") + 1].isdigit():
        port = int(parts[parts.index("tcp") + 1])
    return default_run_table(models, port)


def run(args: argparse.Namespace) -> int:
    """Dispatch a ``synod node`` subcommand; returns the exit code."""
    if args.role_command == "run":
        import logging

        from cli.daemon_exit import exit_daemon
        from cli.main import log_level
        from node.main import run_daemon
        from protocol.log import configure

        level = args.run_log_level or (args.log_level if args.log_level != "WARNING" else "INFO")
        configure(log_level(level))
        for noisy in ("httpx", "httpcore", "libp2p", "multiaddr", "urllib3", "web3"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))

        exit_daemon(run_daemon(config_path(args, ROLE), args.password_file))
    code = operator_cmds.run(args, ROLE, args.role_command)
    if args.role_command == "init" and code == operator_cmds.EXIT_OK:
        append_run_table(
            config_path(args, ROLE),
            "The node daemon's settings (synod node run); see docs/node.md.",
            _default_run_table,
        )
    return code
