"""Shared by the node daemon's tests: a deployed devnet with short phases, the daemon's account
(Anvil dev key 8) registered as a node, its config, and the daemon as a real OS process whose
structured log lines are read as they come (waits poll a condition, never sleep blindly)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import SecretStr

from protocol.chain.contracts import SynodContracts
from protocol.chain.market import JobParams, model_id
from protocol.chain.models import Role
from protocol.chain.registry import Registry
from protocol.chain.signer import anvil_dev_signer
from protocol.operator.keys import write_keystore
from scripts.devnet import DEMO_MODEL, ROOT, Actors, Devnet, dev_private_key_hex, free_port

NODE_INDEX = 8
PASSWORD = "node test password"
FAST_SCRYPT_N = 2**4
"""Throwaway test keys only (real keys use eth-account's 2**18)."""
MIN_PHASE_S = 5


def one_generation_workflow(
    name: str = "node_test", max_tokens: int = 16, max_time: int = 30
) -> dict[str, Any]:
    """One generation then the end (the row's ``topic`` is the prompt's subject): the cheapest real
    workflow, for the node's tests, its fault suite and its bench."""
    return {
        "name": name,
        "description": "one generation per row",
        "config": {
            "max_steps": 5,
            "max_time": max_time,
            "tools": [],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        },
        "tasks": [
            {
                "id": "A",
                "name": "gen",
                "description": "generate",
                "prompt": "One word about {{topic}}:",
                "inputs": [{"name": "topic", "value": {"type": "input", "key": "topic"}, "required": True}],
                "operator": "generation",
                "outputs": [{"type": "write", "key": "out", "value": "__result"}],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        "steps": [{"source": "A", "target": "__end"}],
        "return_value": {"input": {"type": "read", "key": "out"}},
    }


WORKFLOW: dict[str, Any] = one_generation_workflow()

_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+) (?P<event>\S+)(?P<rest>.*)$")


def params(k: int = 1, batch_size: int = 3, bounty: int = 10**18, **durations: int) -> JobParams:
    """Job parameters on the demo model; durations in seconds (default 60)."""
    return JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=bounty,
        batch_size=batch_size,
        k=k,
        m=1,
        threshold=50,
        tolerance=10,
        junk_floor=0,
        validator_share_bps=2000,
        commit_duration=durations.get("commit", 60),
        reveal_duration=durations.get("reveal", 60),
        score_commit_duration=durations.get("score_commit", 60),
        score_reveal_duration=durations.get("score_reveal", 60),
    )


@dataclass(frozen=True)
class NodeHome:
    """The daemon's files and identity."""

    config: Path
    store: Path
    address: str
    home: Path


def register_node(chain: SynodContracts, index: int = NODE_INDEX) -> str:
    """Mint stake to dev account ``index`` and register it as a node serving the demo model."""
    signer = anvil_dev_signer(index, chain.chain_id)
    registry = Registry(chain)
    sender = chain.sender(signer)
    if registry.participant(signer.address, chain.head(0)).role is Role.NONE:
        stake = registry.min_stake(Role.NODE, chain.head(0))
        registry.mint(sender, sender.address, 10 * stake)
        registry.register(sender, Role.NODE, stake, [model_id(DEMO_MODEL)], b"/ip4/127.0.0.1/tcp/1")
    return signer.address


def node_home(home: Path, devnet: Devnet, run: Mapping[str, Any], index: int = NODE_INDEX) -> NodeHome:
    """Keystore and config (``[run]`` = ``run`` plus a store, identity and free p2p port)."""
    home.mkdir(parents=True, exist_ok=True)
    keystore = home / "keys" / f"{index}.json"
    if not keystore.exists():
        write_keystore(
            keystore,
            SecretStr(PASSWORD),
            bytes.fromhex(dev_private_key_hex(index)[2:]),
            scrypt_n=FAST_SCRYPT_N,
        )
    table: dict[str, Any] = {
        "store_dir": "store",
        "poll_interval_s": 0.2,
        "deadline_margin_s": 2.0,
        "default_task_seconds": 1.0,
        # a lone daemon among the scripted nodes 1-3 (registered, not running): no backup waits
        "split": {"enabled": False},
        "p2p": {"listen_host": "127.0.0.1", "listen_port": free_port(), "identity_file": "p2p.key"},
        "metrics": {"port": 0},
    }
    for key, value in run.items():
        if isinstance(value, dict) and isinstance(table.get(key), dict):
            table[key] = {**table[key], **value}
        else:
            table[key] = value
    document = {
        "role": "node",
        "p2p_address": "/ip4/127.0.0.1/tcp/1",
        "models": [DEMO_MODEL],
        "chain": {
            "rpc_url": devnet.rpc_url,
            "deployment": str(devnet.deployments_file),
            "confirmations": 0,
            "rpc_timeout": 5.0,
            "receipt_timeout": 30.0,
        },
        "account": {"keystore": str(keystore)},
        "run": table,
    }
    config = home / "node.toml"
    config.write_text(tomlkit.dumps(document), encoding="utf-8")
    address = anvil_dev_signer(index, 31337).address
    return NodeHome(config=config, store=home / "store", address=address, home=home)


def node_env(home: Path, **extra: str) -> dict[str, str]:
    """This worktree's packages first, a private HOME, the keystore password, no other SYNOD_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")}
    env.update({"PYTHONPATH": str(ROOT), "HOME": str(home), "SYNOD_KEYSTORE_PASSWORD": PASSWORD, **extra})
    return env


@dataclass(frozen=True)
class Line:
    """A parsed ``time level logger event k=v`` line."""

    event: str
    level: str
    text: str


class NodeProcess:
    """``python -m cli.main node run --config PATH`` with its stderr read in a thread."""

    def __init__(self, node: NodeHome, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "node", "run", "--config", str(node.config)],
            cwd=node.home,
            env=node_env(node.home, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.lines: list[Line] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for data in self.process.stderr:
            text = data.decode("utf-8", "replace").rstrip("\n")
            match = _LINE.match(text)
            with self._cond:
                self.raw.append(text)
                if match:
                    self.lines.append(Line(match["event"], match["level"], text))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def events(self, event: str) -> list[Line]:
        with self._cond:
            return [line for line in self.lines if line.event == event]

    def wait(self, event: str, timeout: float = 60.0, contains: str = "") -> Line:
        """The first line of ``event`` (containing ``contains``); fails with the log tail."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if line.event == event and contains in line.text:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._thread.is_alive()):
                    tail = "\n".join(self.raw[-40:])
                    raise AssertionError(f"no {event} {contains!r} within {timeout}s:\n{tail}")
                self._cond.wait(min(left, 0.5))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout)
        self._thread.join(5)
        self.close()
        return code

    def close(self) -> None:
        """Kill the process if it still runs and close its pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._thread.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()


@contextmanager
def running(node: NodeHome, **env: str) -> Iterator[NodeProcess]:
    """A daemon process, killed at the end if still alive."""
    process = NodeProcess(node, **env)
    try:
        yield process
    finally:
        process.close()


def seated_validators(actors: Actors, addresses: list[str]) -> list[Any]:
    by_address: dict[str, Any] = {v.address: v for v in actors.validators}
    return [by_address[a] for a in addresses]
