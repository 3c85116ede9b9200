"""Ctrl-C in the middle of ``make demo`` leaves no devnet process.

The real demo (``python -m devnet.demo --model scripted``) runs as its own process; once its devnet
has started node processes, it gets SIGINT (what a terminal's Ctrl-C sends). It must exit 130,
and no process of the devnet's process group, nor any process whose command line names its state
directory, may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devnet.chain import ROOT
from devnet.network import group_members

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]


def _cmdlines_naming(text: str) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            line = raw.replace(b"\0", b" ").decode(errors="replace")
            if text in line:
                found.append((int(entry), line))
    return found


def test_sigint_mid_demo_leaves_no_devnet_process(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")}
    env["PYTHONPATH"] = str(ROOT)
    demo = subprocess.Popen(
        [sys.executable, "-m", "devnet.demo", "--model", "scripted", "--out", str(out), "--rows", "4"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    state = out / "devnet"
    try:
        deadline = time.monotonic() + 600
        while not (state / "logs" / "node1.log").exists():  # node processes are being started
            assert demo.poll() is None, demo.stdout.read().decode() if demo.stdout else ""
            assert time.monotonic() < deadline, "the demo never started its node processes"
            time.sleep(0.2)  # polling interval
        pgid = int((state / "pgid").read_text())
        assert group_members(pgid), "the devnet's process group is empty before the interrupt"
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=180)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, output.decode(errors="replace")[-2000:]
    assert "interrupted" in output.decode(errors="replace")
    assert group_members(pgid) == []
    assert _cmdlines_naming(str(state)) == []
