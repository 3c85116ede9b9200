"""Real validator daemons for the adversary suite: ``synod oracle run`` as separate OS processes.

Each daemon gets its own directory (keystore of an Anvil dev key, ``validator.toml`` with a ``[run]``
table, journal, p2p identity, log file). :func:`oracle_daemons` starts them all, waits until each
logs ``oracle_started``, and on exit stops them with SIGTERM and checks they exit 0 (a daemon still
alive after the grace period is killed and reported).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from protocol.operator.config import OperatorRole, new_config, render_config
from scripts.devnet import ROOT, Devnet
from tests.operator.fixtures import PASSWORD, cli_env, dev_keystore

RUN_TABLE = """
[run]
store_dir = "state"
poll_interval = 0.3

[run.p2p]
listen_port = 0
fetch_timeout = 10.0

[run.schedule]
claim_interval = 1.0
"""
"""Poll often (the suite drives time with Anvil); fetch deadline 10 s; claim every second (the suite
never sends from a daemon's account, so two senders never share a nonce)."""

START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


class DaemonFailed(AssertionError):
    """A daemon exited early, never started, or did not stop cleanly (its log tail attached)."""


@dataclass
class OracleProcess:
    """One ``synod oracle run`` process playing Anvil dev account ``index``."""

    index: int
    home: Path
    process: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.home / "daemon.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        """Raise :class:`DaemonFailed` if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise DaemonFailed(f"validator daemon {self.index} exited ({code}):\n{self.log()[-3000:]}")


def _start(devnet: Devnet, index: int, home: Path) -> OracleProcess:
    home.mkdir(parents=True, exist_ok=True)
    keystore = dev_keystore(home, index, "validator")
    chain = {
        "rpc_url": devnet.rpc_url,
        "deployment": devnet.deployments_file,
        "artifacts_dir": ROOT / "out",
        "confirmations": 0,
    }
    config = new_config(OperatorRole.VALIDATOR, keystore=keystore, chain=chain)
    path = home / "validator.toml"
    path.write_text(render_config(config) + RUN_TABLE, encoding="utf-8")
    env = cli_env(home, SYNOD_KEYSTORE_PASSWORD=PASSWORD)
    cmd = [sys.executable, "-m", "cli.main", "--log-level", "INFO", "oracle", "run", "--config", str(path)]
    with (home / "daemon.log").open("wb") as out:
        process = subprocess.Popen(cmd, cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return OracleProcess(index=index, home=home, process=process)


def _wait_started(daemons: Sequence[OracleProcess]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(daemons)
    while waiting:
        for daemon in list(waiting):
            daemon.check_alive()
            if "oracle_started" in daemon.log():
                waiting.remove(daemon)
        if time.monotonic() > deadline:
            names = [d.index for d in waiting]
            raise DaemonFailed(f"validator daemons {names} did not start within {START_TIMEOUT}s")
        time.sleep(0.2)  # polling the log files for the start line


def _stop(daemons: Sequence[OracleProcess]) -> list[str]:
    """SIGTERM every daemon, wait; returns a complaint per daemon that did not exit 0 in time."""
    problems: list[str] = []
    for daemon in daemons:
        if daemon.process.poll() is None:
            daemon.process.send_signal(signal.SIGTERM)
    for daemon in daemons:
        try:
            code = daemon.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait(10)
            problems.append(f"daemon {daemon.index} ignored SIGTERM for {STOP_TIMEOUT}s")
            continue
        if code != 0:
            problems.append(f"daemon {daemon.index} exited {code}:\n{daemon.log()[-2000:]}")
    return problems


@contextmanager
def oracle_daemons(devnet: Devnet, indices: Sequence[int], root: Path) -> Iterator[list[OracleProcess]]:
    """Start one daemon per Anvil dev account in ``indices`` (under ``root``), yield them once every
    one has started, stop them all on exit. Raises :class:`DaemonFailed` (after stopping the others)
    when one fails to start or to stop cleanly."""
    daemons: list[OracleProcess] = []
    stopped = False
    try:
        for index in indices:
            daemons.append(_start(devnet, index, root / f"oracle-{index}"))
        _wait_started(daemons)
        yield daemons
        stopped = True
        problems = _stop(daemons)
        if problems:
            raise DaemonFailed("; ".join(problems))
    finally:
        if not stopped:
            _stop(daemons)
