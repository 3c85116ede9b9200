"""Mine an empty block on Anvil every ``--interval`` seconds: a tester's clock for the devnet.

Anvil auto-mines one block per transaction and none otherwise, but the committee seed waits for a
block after ``seedBlock`` (docs/contracts.md, ``SEED_DELAY``): on a quiet devnet nothing would ever
mine it. This process keeps the head moving like a real chain does, without slowing transactions
(auto-mining stays on). ``python -m devnet.ticker --rpc-url URL [--interval 1.0]``; stops on
SIGINT/SIGTERM (exit 0); an RPC that stops answering for 30 s ends it (exit 1).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence

import httpx


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.ticker")
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    body = {"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}
    last_ok = time.monotonic()
    with httpx.Client(timeout=5.0) as client:
        while not stop.wait(args.interval):
            try:
                client.post(args.rpc_url, json=body).raise_for_status()
                last_ok = time.monotonic()
            except httpx.HTTPError:
                if time.monotonic() - last_ok > 30:
                    print(f"ticker: {args.rpc_url} has not answered for 30 s", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
