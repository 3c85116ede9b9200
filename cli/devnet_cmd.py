"""``synod devnet``: the whole network on this machine, for testers.

::

    synod devnet up     [--state-dir DIR] [--nodes 4] [--validators 3] [--model scripted|local] [--netns]
                        [--foreground]
    synod devnet down   [--state-dir DIR]
    synod devnet status [--state-dir DIR]
    synod devnet logs   [--state-dir DIR] [NAME] [--lines N]

``up`` returns once every process is ready and prints the requester's environment (``export``
lines for ``synod job ...``); with ``--foreground`` it stays until Ctrl-C / SIGTERM and then stops
everything. The state dir defaults to ``./devnet-state``. Exit codes: 0 done; 2 usage; 3 the
devnet failed to start (the failing process's log tail is printed) or is not running.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

DEFAULT_STATE_DIR = Path("devnet-state")
EXIT_OK = 0
EXIT_FAILED = 3


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="devnet_command", metavar="SUBCOMMAND", required=True)
    up = sub.add_parser("up", help="start anvil, deploy, fund, model server, nodes and validators")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--validators", type=int, default=3)
    up.add_argument(
        "--model",
        choices=("scripted", "local"),
        default="scripted",
        help="scripted: zero-latency Ollama-API server; local: synod model serve (Gemma 3 270M)",
    )
    up.add_argument("--netns", action="store_true", help="each node in its own network namespace (root)")
    up.add_argument("--foreground", action="store_true", help="stay until Ctrl-C, then stop everything")
    down = sub.add_parser("down", help="stop every process of the devnet")
    status = sub.add_parser("status", help="processes, chain head, requester environment")
    logs = sub.add_parser("logs", help="the log of one process (or the list of logs)")
    logs.add_argument("name", nargs="?", help="anvil, model, node1, validator1, ...")
    logs.add_argument("--lines", type=int, default=40)
    for p in (up, down, status, logs):
        p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR")


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from devnet.chain import DevnetError
    from devnet.network import DevnetSpec, down, interrupted_group, load_state, render_env, status, up
    from protocol.errors import SynodError

    command = args.devnet_command
    if command == "up":
        signal.signal(signal.SIGTERM, _raise_interrupt)
        spec = DevnetSpec(
            state_dir=args.state_dir, nodes=args.nodes, validators=args.validators, model=args.model
        )
        try:
            state = up(spec)
        except (DevnetError, SynodError) as exc:
            print(f"synod devnet: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            down(args.state_dir)
            return 130
        print(
            f"devnet up: {len(state.operators('node'))} nodes, "
            f"{len(state.operators('validator'))} validators, "
            f"{state.model} model at {state.model_url}, chain {state.rpc_url}"
        )
        print(render_env(state))
        if args.foreground:
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
            finally:
                down(args.state_dir)
                print("devnet down")
        return EXIT_OK
    recorded = load_state(args.state_dir.resolve())
    if recorded is None:
        interrupted = interrupted_group(args.state_dir.resolve())
        if interrupted and command == "down":
            down(args.state_dir)
            print(f"devnet down: stopped the processes an interrupted `up` left (pgid {interrupted})")
            return EXIT_OK
        if interrupted:
            print(
                f"synod devnet: an interrupted `synod devnet up` left processes running in {args.state_dir} "
                f"(pgid {interrupted}): run `synod devnet down`",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"synod devnet: no devnet recorded in {args.state_dir}: run `synod devnet up`", file=sys.stderr)
        return EXIT_FAILED
    state = recorded
    if command == "down":
        down(args.state_dir)
        print("devnet down")
        return EXIT_OK
    if command == "status":
        for proc, running in status(state):
            extra = f" {proc.address} {proc.p2p}" if proc.address else ""
            print(f"{proc.name:<12} pid {proc.pid:<8} {'running' if running else 'stopped'}{extra}")
        print(render_env(state))
        return EXIT_OK
    if args.name is None:
        for proc in state.procs:
            print(f"{proc.name:<12} {proc.log}")
        return EXIT_OK
    match = [p for p in state.procs if p.name == args.name]
    if not match:
        print(
            f"synod devnet: no process {args.name!r}: one of {', '.join(p.name for p in state.procs)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    lines = match[0].log.read_text(encoding="utf-8", errors="replace").splitlines()[-args.lines :]
    print("\n".join(lines))
    return EXIT_OK
