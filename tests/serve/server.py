"""``synod model serve`` as a real subprocess on 127.0.0.1, for the ``with`` block.

It is started with ``--port 0``; the URL comes from its "listening on" line on stdout (no port race).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"listening on (http://\S+)")


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "model", "serve", *args]


def serve_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


class ServeProcess:
    """``synod model serve --port 0 ARGS`` until the ``with`` block ends (then SIGTERM, exit code kept)."""

    def __init__(self, *args: str, startup_timeout_s: float = 120.0) -> None:
        self.args = ("--port", "0", *args)
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.returncode: int | None = None
        self.stderr = ""

    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(
            serve_command(*self.args),
            cwd=ROOT,
            env=serve_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + self.startup_timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=0.2):
                    line = self.process.stdout.readline()
                    match = READY.search(line)
                    if match:
                        self.url = match.group(1)
                        return self
                if self.process.poll() is not None:
                    break
        self.stop()
        raise RuntimeError(
            f"synod model serve did not start: rc={self.returncode} stderr={self.stderr[-2000:]}"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate(timeout=10)
        self.returncode = self.process.returncode
        self.process = None

    def __exit__(self, *exc: object) -> None:
        self.stop()
