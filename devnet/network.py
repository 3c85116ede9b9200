"""The whole network on one machine, as OS processes under one state directory.

``up`` starts, in one new process group (so ``down`` reaches every process and its children):

1. Anvil (``--accounts`` enough for everyone), then forge build + ``scripts/Deploy.s.sol``;
   and a ticker (:mod:`devnet.ticker`) mining an empty block every second;
2. one model server shared by every node: the zero-latency scripted one
   (:mod:`devnet.scripted_model`, ``model="scripted"``) or ``synod model serve`` on the local
   Gemma 3 270M (``model="local"``), both speaking Ollama's HTTP API;
3. per operator (``node1..N``, ``validator1..M``): an encrypted keystore of its Anvil dev key, a
   libp2p identity, a config file with its ``[run]`` table, minted tokens and an on-chain
   registration at the minimum stake, then ``synod node run`` / ``synod oracle run`` with its own
   store (journal) and libp2p port; ready when it logs ``node_started`` / ``oracle_started``.

The state directory holds ``devnet.json`` (:class:`DevnetState`: pids, process group, URLs,
accounts), ``deployment.json``, ``password`` (0600; the devnet's keystores are Anvil keys,
public anyway), one directory per operator and ``logs/<name>.log`` per process. ``down``
sends SIGTERM to the group, waits, then SIGKILL; nothing of the devnet survives it. Accounts:
deployer = Anvil key 0, requester = key 1 (``SYNOD_DEV_KEY=1``), nodes from key 2, validators after.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import httpx
import tomlkit
from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field

from devnet.chain import ROOT, DevnetError, deploy, dev_private_key_hex, forge_build, free_port
from devnet.netns import Namespace, create, delete, pick_block
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, model_id
from protocol.chain.models import Role
from protocol.chain.registry import Registry
from protocol.chain.signer import Signer, write_keystore
from protocol.log import get_logger
from protocol.operator.config import OperatorRole, new_config, render_config
from protocol.settings import ChainSettings

log = get_logger(__name__)

STATE_FILE = "devnet.json"
NETNS_FILE = "netns"
"""Namespaces created so far, one name a line (``down`` deletes them, also mid-``up``)."""
PGID_FILE = "pgid"
"""The process group, written as soon as the first process starts (``down`` works mid-``up``)."""
REQUESTER_KEY = 1
FIRST_OPERATOR_KEY = 2
DEVNET_MODEL = "gemma3:270m"
PASSWORD = "synod-devnet"
"""The keystores' password: they hold Anvil's public dev keys, so it protects nothing."""

ModelKind = Literal["scripted", "local"]
ProcRole = Literal["anvil", "model", "node", "validator"]


class DevnetSpec(BaseModel):
    """What ``up`` builds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_dir: Path
    nodes: int = Field(default=4, ge=1, le=40)
    validators: int = Field(default=3, ge=1, le=40)
    model: ModelKind = "scripted"
    funds: int = Field(default=10**24, gt=0)
    """Tokens (base units) minted to every account."""
    min_phase_duration: int = Field(default=30, ge=1)
    node_concurrency: int = Field(default=2, ge=1, le=64)
    node_task_seconds: float | None = Field(default=None, gt=0, le=3600)
    """The nodes' ``run.default_task_seconds`` (their estimate of one task's time before they have
    measured one, which decides whether a batch fits its commit window); ``None``: the node's own
    default (30 s, a local model's pace). The protocol-only bench sets it for the zero-latency
    scripted model, where 30 s per row made every node skip a 64-row batch (``deadline``)."""
    node_split: dict[str, float] = Field(default_factory=dict)
    """The nodes' ``[run.split]`` table (node/split.py: backup_delay, safety), default if empty."""
    model_parallel: int = Field(default=2, ge=1, le=16)
    """``synod model serve --parallel`` (local model only)."""
    ready_timeout: float = Field(default=600.0, gt=0)
    """Seconds each process has to become ready (a loaded 2-core machine needs minutes for 8)."""
    build: bool = True
    netns: bool = False
    """Run each node in its own network namespace behind a veth pair (root only; :mod:`devnet.netns`)."""
    fetch_timeout: float = Field(default=20.0, gt=0, le=600)
    """The validators' ``run.p2p.fetch_timeout``: seconds per result fetch (raised by tests on a
    loaded machine, where a node can take longer than the default to answer)."""


class Proc(BaseModel):
    """One process of the devnet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    pid: int
    log: Path
    role: ProcRole
    address: str = ""
    config: Path | None = None
    p2p: str = ""


class DevnetState(BaseModel):
    """``devnet.json``: everything ``status``, ``down`` and the requester need."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_dir: Path
    pgid: int
    rpc_url: str
    deployment: Path
    model_url: str
    model: ModelKind
    requester: str
    procs: tuple[Proc, ...]
    started_at: float

    def requester_env(self) -> dict[str, str]:
        """The environment ``synod job ...`` reads to act as the devnet's requester."""
        return {
            "SYNOD_RPC_URL": self.rpc_url,
            "SYNOD_DEPLOYMENT": str(self.deployment),
            "SYNOD_ARTIFACTS_DIR": str(ROOT / "out"),
            "SYNOD_DEV_KEY": str(REQUESTER_KEY),
        }

    def operators(self, role: Literal["node", "validator"]) -> list[Proc]:
        return [p for p in self.procs if p.role == role]


def load_state(state_dir: Path) -> DevnetState | None:
    """The recorded devnet of ``state_dir``, or ``None``."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    return DevnetState.model_validate_json(path.read_text(encoding="utf-8"))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def group_members(pgid: int) -> list[int]:
    """Live pids of process group ``pgid`` (from /proc)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


class _Launcher:
    """Starts the processes in one new process group, logs to files, remembers them.

    ``os.posix_spawnp`` rather than ``subprocess.Popen``: the processes outlive this object (``up``
    returns while they run), which a ``Popen`` reports as a leak when it is collected."""

    def __init__(self, state_dir: Path, env: Mapping[str, str]) -> None:
        self.state_dir = state_dir
        self.env = dict(env)
        self.pgid = 0
        self.procs: list[Proc] = []
        self._status: dict[int, int] = {}
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, name: str, role: ProcRole, argv: list[str], **extra: str | Path) -> Proc:
        log_path = self.state_dir / "logs" / f"{name}.log"
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        # setpgroup 0: a new group led by the first process; then every other process joins it
        pid = os.posix_spawnp(argv[0], argv, self.env, file_actions=actions, setpgroup=self.pgid)
        if self.pgid == 0:
            self.pgid = pid
            (self.state_dir / PGID_FILE).write_text(str(pid), encoding="utf-8")
        proc = Proc.model_validate({"name": name, "pid": pid, "log": log_path, "role": role, **extra})
        self.procs.append(proc)
        log.info("devnet_process_started", name=name, pid=pid)
        return proc

    def exited(self, proc: Proc) -> int | None:
        """The exit status of a process that ended (reaped here), else ``None``."""
        if proc.pid not in self._status:
            done, status = os.waitpid(proc.pid, os.WNOHANG)
            if done == 0:
                return None
            self._status[proc.pid] = os.waitstatus_to_exitcode(status)
        return self._status[proc.pid]


def _wait_for(what: str, check: Callable[[], bool], timeout: float, failed: Callable[[], str | None]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        problem = failed()
        if problem is not None:
            raise DevnetError(f"{what}: {problem}")
        time.sleep(0.1)  # polling interval
    raise DevnetError(f"{what}: not ready within {timeout:.0f}s")


def _log_has(path: Path, marker: str) -> bool:
    try:
        return marker in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _marker_seen(path: Path, marker: str) -> Callable[[], bool]:
    return lambda: _log_has(path, marker)


def _rpc_ready(url: str) -> bool:
    try:
        reply = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1.0
        )
        return reply.status_code == 200 and "result" in reply.json()
    except (httpx.HTTPError, ValueError):
        return False


def _http_ready(url: str) -> bool:
    try:
        return httpx.get(url + "/api/tags", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _peer_id(identity: Path) -> str:
    from libp2p.peer.id import ID

    from protocol.p2p.identity import load_or_create_identity

    return str(ID.from_pubkey(load_or_create_identity(identity).public_key))


def _synod(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "--log-level", "INFO", *args]


def _write_operator(
    spec: DevnetSpec,
    role: OperatorRole,
    name: str,
    key_index: int,
    rpc_url: str,
    deployment: Path,
    model_url: str,
    listen_host: str = "127.0.0.1",
) -> tuple[Path, str, str]:
    """Keystore, identity, config with its [run] table; returns (config, address, p2p multiaddr)."""
    home = spec.state_dir / name
    home.mkdir(parents=True, exist_ok=True)
    keystore = home / "keystore.json"
    keystore.unlink(missing_ok=True)
    address = write_keystore(keystore, bytes.fromhex(dev_private_key_hex(key_index)[2:]), PASSWORD)
    port = free_port()
    p2p = f"/ip4/{listen_host}/tcp/{port}/p2p/{_peer_id(home / 'p2p.key')}"
    chain = {
        "rpc_url": rpc_url,
        "chain_id": 31337,
        "deployment": str(deployment),
        "artifacts_dir": str(ROOT / "out"),
        "confirmations": 0,
        "receipt_timeout": 60.0,
    }
    models = [DEVNET_MODEL] if role is OperatorRole.NODE else []
    config = new_config(role, keystore, p2p, models, chain, spec.state_dir / "password")
    doc = tomlkit.parse(render_config(config))
    run = tomlkit.table()
    run.add("store_dir", "store")
    p2p_table = tomlkit.table()
    p2p_table.add("listen_host", listen_host)
    p2p_table.add("listen_port", port)
    p2p_table.add("identity_file", "p2p.key")
    if role is OperatorRole.NODE:
        run.add("concurrency", spec.node_concurrency)
        if spec.node_task_seconds is not None:
            run.add("default_task_seconds", spec.node_task_seconds)
        run.add("claim_interval_s", 5.0)
        run.add("deadline_margin_s", 5.0)
        run.add("poll_interval_s", 0.2)
        run.add("p2p", p2p_table)
        provider = tomlkit.table()
        provider.add("kind", "ollama")
        provider.add("url", model_url)
        provider.add("timeout_s", 300.0)
        provider.add("models", {DEVNET_MODEL: DEVNET_MODEL})
        run.add("provider", provider)
        run.add("metrics", {"port": -1})
        if spec.node_split:
            run.add("split", dict(spec.node_split))
    else:
        run.add("poll_interval", 0.2)
        p2p_table.add("fetch_timeout", spec.fetch_timeout)
        run.add("p2p", p2p_table)
        run.add("scoring", {"judge": "off"})
        run.add("schedule", {"claim_interval": 5.0})
        run.add("metrics", {"port": 0})
    doc.add("run", run)
    path = home / f"{role.value}.toml"
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return path, str(address), p2p


_RUN_DIR = re.compile(r"(node|validator)\d+")


def clear_previous_run(state_dir: Path) -> list[str]:
    """Delete what an earlier (stopped) devnet left in ``state_dir``: the operator homes
    (``node<N>``, ``validator<N>``: keystores, journals, node state, p2p keys), ``logs`` and
    ``deployment.json``; anything else in the directory is left alone. Every ``up`` starts a new
    chain, and a journal of the old one would make its daemon wait for blocks that never come and
    then see a reorg deeper than its window. Returns the names deleted, sorted."""
    gone: list[str] = []
    for entry in sorted(state_dir.iterdir()) if state_dir.is_dir() else []:
        if (
            entry.is_dir()
            and not entry.is_symlink()
            and (_RUN_DIR.fullmatch(entry.name) or entry.name == "logs")
        ):
            shutil.rmtree(entry)
            gone.append(entry.name)
        elif entry.name == "deployment.json" and entry.is_file():
            entry.unlink()
            gone.append(entry.name)
    return gone


def up(spec: DevnetSpec, env: Mapping[str, str] | None = None) -> DevnetState:
    """Start the devnet (see the module docstring); returns its state, also written to
    ``devnet.json``. On any failure every process started so far is stopped before
    :class:`DevnetError` is raised. Refuses a state dir whose devnet still runs."""
    state_dir = spec.state_dir.resolve()
    spec = spec.model_copy(update={"state_dir": state_dir})
    previous = load_state(state_dir)
    if previous is not None and group_members(previous.pgid):
        raise DevnetError(
            f"a devnet already runs from {state_dir} (pgid {previous.pgid}): run `synod devnet down` first"
        )
    interrupted = interrupted_group(state_dir)
    if previous is None and interrupted:
        raise DevnetError(
            f"an interrupted `synod devnet up` left processes running in {state_dir} (pgid {interrupted}): "
            "run `synod devnet down` first"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    (state_dir / PGID_FILE).unlink(missing_ok=True)
    _delete_namespaces(state_dir)
    clear_previous_run(state_dir)
    password = state_dir / "password"
    password.unlink(missing_ok=True)
    password.touch(mode=0o600)
    password.write_text(PASSWORD, encoding="utf-8")
    base_env = {
        k: v for k, v in (env if env is not None else os.environ).items() if not k.startswith("SYNOD_")
    }
    base_env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + base_env["PYTHONPATH"] if base_env.get("PYTHONPATH") else ""
    )
    if spec.build:
        forge_build(ROOT)
    launcher = _Launcher(state_dir, base_env)
    try:
        return _start(spec, launcher)
    except BaseException:
        stop_group(launcher.pgid)
        _delete_namespaces(state_dir)
        raise


def _start(spec: DevnetSpec, launcher: _Launcher) -> DevnetState:
    state_dir = spec.state_dir
    accounts = FIRST_OPERATOR_KEY + spec.nodes + spec.validators
    rpc_port = free_port()
    rpc_url = f"http://127.0.0.1:{rpc_port}"
    bind = "0.0.0.0" if spec.netns else "127.0.0.1"  # namespaced nodes reach anvil over their veth link
    anvil = launcher.start(
        "anvil",
        "anvil",
        [
            str(ROOT / "node_modules" / ".bin" / "anvil"),
            "--host",
            bind,
            "--port",
            str(rpc_port),
            "--chain-id",
            "31337",
            "--accounts",
            str(max(10, accounts)),
        ],
    )

    def gone(proc: Proc) -> Callable[[], str | None]:
        def check() -> str | None:
            code = launcher.exited(proc)
            return None if code is None else f"{proc.name} exited with {code}:\n{_tail(proc.log)}"

        return check

    _wait_for("anvil", lambda: _rpc_ready(rpc_url), 60, gone(anvil))
    launcher.start("ticker", "anvil", [sys.executable, "-m", "devnet.ticker", "--rpc-url", rpc_url])
    staging = ROOT / "deployments" / f".devnet-{os.getpid()}-{secrets.token_hex(4)}.json"
    try:
        deploy(ROOT, rpc_url, staging, {"SYNOD_MIN_PHASE_DURATION": str(spec.min_phase_duration)})
        deployment = state_dir / "deployment.json"
        shutil.copyfile(staging, deployment)
    finally:
        staging.unlink(missing_ok=True)
    model_port = free_port()
    model_url = f"http://127.0.0.1:{model_port}"
    if spec.model == "scripted":
        argv = [
            sys.executable,
            "-m",
            "devnet.scripted_model",
            "--host",
            bind,
            "--port",
            str(model_port),
            "--model",
            DEVNET_MODEL,
        ]
    else:
        argv = _synod(
            "model",
            "serve",
            "--host",
            bind,
            "--port",
            str(model_port),
            "--model",
            DEVNET_MODEL,
            "--parallel",
            str(spec.model_parallel),
        )
    model = launcher.start("model", "model", argv)
    settings = ChainSettings(rpc_url=rpc_url, deployments_file=deployment, receipt_timeout=60.0)
    chain = SynodContracts.connect(settings, ROOT)
    registry = Registry(chain)
    block = chain.head(0)
    stakes = {
        Role.NODE: registry.min_stake(Role.NODE, block),
        Role.VALIDATOR: registry.min_stake(Role.VALIDATOR, block),
    }
    requester = chain.sender(_dev_signer(REQUESTER_KEY))
    registry.mint(requester, requester.address, spec.funds)
    Market(chain).open_account(requester, requester.address)
    planned: list[tuple[str, OperatorRole, int]] = [
        (f"node{i + 1}", OperatorRole.NODE, FIRST_OPERATOR_KEY + i) for i in range(spec.nodes)
    ] + [
        (f"validator{i + 1}", OperatorRole.VALIDATOR, FIRST_OPERATOR_KEY + spec.nodes + i)
        for i in range(spec.validators)
    ]
    operators: list[tuple[str, OperatorRole, Path, str, str]] = []
    spaces: dict[str, Namespace] = {}
    block_octet = pick_block() if spec.netns else 0
    prefix = f"sy{launcher.pgid % 10000}"
    for name, role, key in planned:
        if spec.netns and role is OperatorRole.NODE:
            index = len(spaces) + 1
            with (state_dir / NETNS_FILE).open("a", encoding="utf-8") as names:
                names.write(f"{prefix}n{index}\n")
            space = spaces[name] = create(prefix, index, block_octet)
            config, address, p2p = _write_operator(
                spec,
                role,
                name,
                key,
                rpc_url.replace("127.0.0.1", space.host_ip),
                deployment,
                model_url.replace("127.0.0.1", space.host_ip),
                space.inner_ip,
            )
        else:
            config, address, p2p = _write_operator(spec, role, name, key, rpc_url, deployment, model_url)
        sender = chain.sender(_dev_signer(key))
        registry.mint(sender, sender.address, spec.funds)
        chain_role = Role.NODE if role is OperatorRole.NODE else Role.VALIDATOR
        models = [model_id(DEVNET_MODEL)] if role is OperatorRole.NODE else []
        registry.register(sender, chain_role, stakes[chain_role], models, p2p.encode())
        operators.append((name, role, config, address, p2p))
    _wait_for("model server", lambda: _http_ready(model_url), spec.ready_timeout, gone(model))
    started: list[Proc] = []
    for name, role, config, address, p2p in operators:
        command = "node" if role is OperatorRole.NODE else "oracle"
        kind: ProcRole = "node" if role is OperatorRole.NODE else "validator"
        argv = _synod(command, "run", "--config", str(config), "--password-file", str(state_dir / "password"))
        if name in spaces:
            argv = spaces[name].exec_prefix() + argv
        started.append(launcher.start(name, kind, argv, address=address, config=config, p2p=p2p))
    for proc in started:
        marker = "node_started" if proc.role == "node" else "oracle_started"
        _wait_for(proc.name, _marker_seen(proc.log, marker), spec.ready_timeout, gone(proc))
    state = DevnetState(
        state_dir=state_dir,
        pgid=launcher.pgid,
        rpc_url=rpc_url,
        deployment=deployment,
        model_url=model_url,
        model=spec.model,
        requester=requester.address,
        procs=tuple(launcher.procs),
        started_at=time.time(),
    )
    (state_dir / STATE_FILE).write_text(state.model_dump_json(indent=2), encoding="utf-8")
    log.info("devnet_up", rpc_url=rpc_url, nodes=spec.nodes, validators=spec.validators, model=spec.model)
    return state


def _dev_signer(index: int) -> Signer:
    """Anvil dev key ``index`` (any index: Anvil funds ``--accounts`` of them)."""
    return Signer(Account.from_key(dev_private_key_hex(index)))


def _reap(pgid: int) -> None:
    """Collect the exit status of this process's children in group ``pgid`` (no zombies left)."""
    while True:
        try:
            done, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if done == 0:
            return


def stop_group(pgid: int, grace: float = 20.0) -> list[int]:
    """SIGTERM every process of group ``pgid``, SIGKILL what is left after ``grace`` seconds;
    returns the pids that needed SIGKILL. A no-op for 0 or an empty group."""
    if pgid <= 0:
        return []
    _reap(pgid)
    if not group_members(pgid):
        return []
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return []
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pgid)
        if not group_members(pgid):
            return []
        time.sleep(0.1)  # polling interval
    stubborn = group_members(pgid)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return []
    deadline = time.monotonic() + 5
    while group_members(pgid) and time.monotonic() < deadline:
        _reap(pgid)
        time.sleep(0.05)
    _reap(pgid)
    log.warning("devnet_killed", pids=stubborn)
    return stubborn


def interrupted_group(state_dir: Path) -> int:
    """The process group of an ``up`` that stopped before writing ``devnet.json`` (killed, crashed)
    and still has live processes, else 0."""
    try:
        pgid = int((state_dir / PGID_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return 0
    return pgid if pgid > 0 and group_members(pgid) else 0


def down(state_dir: Path, grace: float = 20.0) -> DevnetState | None:
    """Stop the devnet of ``state_dir`` (see :func:`stop_group`); ``None`` when none was recorded
    (the processes of an interrupted ``up`` are stopped all the same, see :func:`interrupted_group`)."""
    state = load_state(state_dir.resolve())
    pgid_file = state_dir.resolve() / PGID_FILE
    if state is None:
        if pgid_file.exists():  # stopped in the middle of `up`
            stop_group(int(pgid_file.read_text(encoding="utf-8")), grace)
            pgid_file.unlink()
        _delete_namespaces(state_dir.resolve())
        return None
    stop_group(state.pgid, grace)
    _delete_namespaces(state_dir.resolve())
    log.info("devnet_down", state_dir=str(state_dir))
    return state


def _delete_namespaces(state_dir: Path) -> None:
    path = state_dir / NETNS_FILE
    if path.exists():
        for name in path.read_text(encoding="utf-8").split():
            delete(name)
        path.unlink()


def status(state: DevnetState) -> list[tuple[Proc, bool]]:
    """Each process and whether it still runs."""
    return [(p, alive(p.pid)) for p in state.procs]


def render_env(state: DevnetState) -> str:
    """``export`` lines for the requester's environment."""
    return "\n".join(f"export {k}={json.dumps(v)}" for k, v in state.requester_env().items())
