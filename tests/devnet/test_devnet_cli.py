"""``synod devnet`` when ``up`` dies half-way: real processes, real SIGKILL.

``up`` writes ``pgid`` as soon as Anvil starts and ``devnet.json`` only at the end. Before the fix,
an ``up`` killed in between left Anvil and the ticker running, and ``down`` answered "no devnet
recorded" (exit 3) without stopping them; a second ``up`` started a second chain beside them.
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
from devnet.network import PGID_FILE, group_members

pytestmark = pytest.mark.integration


def _synod(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "devnet", *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=state.parent,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_down_stops_what_a_killed_up_left_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")} | {"PYTHONPATH": str(ROOT)}
    up = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "devnet", "up", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    pgid = 0
    try:
        deadline = time.monotonic() + 300  # forge build (a no-op when built) runs first, under a shared lock
        ticker_log = state / "logs" / "ticker.log"
        while time.monotonic() < deadline and not ticker_log.exists():
            assert up.poll() is None, "devnet up ended before starting anvil"
            time.sleep(0.2)  # polling interval
        assert ticker_log.exists(), "anvil and the ticker did not start"
        pgid = int((state / PGID_FILE).read_text(encoding="utf-8"))
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=30)
        assert len(group_members(pgid)) >= 2  # anvil and the ticker outlive the killed `up`
        assert not (state / "devnet.json").exists()

        status = _synod(state, "status")
        assert status.returncode == 3
        assert (
            f"an interrupted `synod devnet up` left processes running in {state} (pgid {pgid})"
            in status.stderr
        )
        again = _synod(state, "up")
        assert again.returncode == 3 and "run `synod devnet down` first" in again.stderr
        assert len(group_members(pgid)) >= 2  # the refused `up` touched nothing

        down = _synod(state, "down")
        assert down.returncode == 0, down.stderr
        assert f"stopped the processes an interrupted `up` left (pgid {pgid})" in down.stdout
        assert group_members(pgid) == []
        second = _synod(state, "down")
        assert second.returncode == 3 and "no devnet recorded" in second.stderr
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=30)
        if pgid and group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)
