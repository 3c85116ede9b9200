"""The fault suite's harness: a real node daemon (``synod node run``) as an OS process on a real
Anvil with the real v2 contracts, its log lines read as they come, and the pieces that break its
surroundings on cue.

* :class:`LogReader` parses the daemon's stderr (JSON lines of :mod:`protocol.log`, or its
  ``time level logger event k=v`` text lines) in a thread and lets a test wait for an event with
  a deadline (a condition variable, never a blind sleep).
* :class:`NodeProcess` spawns ``python -m cli.main node run --config PATH`` with this worktree's
  packages, the keystore password and ``SYNOD_HALT_AT``; kill -9, SIGTERM, exit codes.
* :class:`RpcCut` runs :class:`tests.chain.proxy.HostileProxy` (real sockets, real HTTP) in a
  thread between the node and Anvil: ``cut()`` refuses connections, ``restore()`` listens again.
* :class:`DropProxy` is a TCP proxy in front of the Ollama-API test server that, when armed, drops
  the connection in the middle of a generation's answer (the server dying mid-stream).
* :class:`FaultNet` is one deployed devnet (short minimum phase) with the scripted participants of
  :func:`scripts.devnet.fund_and_register`; it registers the daemon's account, posts jobs, plays
  the other node seats and the committee with the Python facade, and reads the chain back.

Ideas from ``tests/operator/fixtures.py`` (subprocess CLI environment, keystores) and
``scripts/devnet.py`` (the scripted lifecycle), reused rather than redefined.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import tomlkit
import trio
from eth_utils.abi import function_abi_to_4byte_selector
from libp2p.peer.id import ID
from pydantic import SecretStr
from web3.types import RPCEndpoint

from protocol.canonical import digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import JobParams, Market, PostedJob, Settlement, model_id
from protocol.chain.models import CommitteeDrawn, MisconductSlashed, Phase, Role
from protocol.chain.registry import Registry
from protocol.chain.sender import TxSender
from protocol.chain.signer import Signer, anvil_dev_signer
from protocol.commitments import encode_scores, new_salt
from protocol.operator.keys import write_keystore
from protocol.p2p.host import P2pSettings, open_p2p_host
from protocol.p2p.identity import load_or_create_identity
from protocol.types import Address
from scripts.devnet import (
    DEMO_MODEL,
    ROOT,
    Actors,
    Devnet,
    advance_past,
    dev_private_key_hex,
    free_port,
    fund_and_register,
    local_devnet,
    mine_to,
)
from scripts.export_abi import export_abis
from tests.chain.proxy import HostileProxy
from tests.node.helpers import one_generation_workflow

PASSWORD = "fault suite password"
FAST_SCRYPT_N = 2**4
"""Throwaway test keys only (real keys use eth-account's 2**18)."""
MIN_PHASE_S = 5
"""The fault devnet's ``minPhaseDuration`` (real deployments: 30 s); each case picks its windows."""
NODE_INDEX = 8
"""Anvil dev account of the daemon under test (``fund_and_register`` uses 1..7)."""
SECOND_NODE_INDEX = 9


class HarnessError(AssertionError):
    """A wait ran out, or the daemon died when it should not have (with its log tail)."""


# ---------------------------------------------------------------------- log lines

_TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d[ T][\d:,.]+\s+(?P<level>[A-Z]+)\s+(?P<logger>\S+)\s+(?P<event>\S+)(?P<rest>.*)$"
)
_KEY = re.compile(r"\s*([A-Za-z_][\w.]*)=")


@dataclass(frozen=True)
class LogLine:
    """One structured log line: its event name, fields, level and the raw text."""

    event: str
    fields: Mapping[str, Any]
    level: str
    raw: str

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def _text_fields(rest: str) -> dict[str, Any]:
    """``k=v`` pairs of :mod:`protocol.log`'s text format; JSON-rendered values are decoded."""
    fields: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(rest):
        match = _KEY.match(rest, pos)
        if match is None:
            break
        key, pos = match.group(1), match.end()
        if pos < len(rest) and rest[pos] in '"[{':
            try:
                value, pos = decoder.raw_decode(rest, pos)
            except json.JSONDecodeError:
                end = rest.find(" ", pos)
                end = len(rest) if end < 0 else end
                value, pos = rest[pos:end], end
        else:
            end = rest.find(" ", pos)
            end = len(rest) if end < 0 else end
            text = rest[pos:end]
            try:
                value = json.loads(text) if text in ("true", "false", "null") or text.isdigit() else text
            except json.JSONDecodeError:
                value = text
            pos = end
        fields[key] = value
    return fields


def parse_log_line(text: str) -> LogLine | None:
    """A daemon log line as :class:`LogLine`; ``None`` for lines that are not structured logs
    (a traceback's lines, a library's print).

    JSON lines need an ``event`` (or ``msg``/``message``) key; the other keys are the fields.
    """
    text = text.rstrip("\n")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        name = value.get("event") or value.get("msg") or value.get("message")
        if not isinstance(name, str):
            return None
        level = str(value.get("level") or value.get("levelname") or "INFO").upper()
        fields = {k: v for k, v in value.items() if k not in ("event", "msg", "message")}
        return LogLine(event=name.split(" ", 1)[0], fields=fields, level=level, raw=text)
    match = _TEXT_LINE.match(text)
    if match is None:
        return None
    return LogLine(match["event"], _text_fields(match["rest"]), match["level"], text)


class LogReader:
    """Reads a stream of log lines in a daemon thread; :meth:`wait` blocks on a condition."""

    def __init__(self, stream: IO[bytes], is_alive: Callable[[], bool] = lambda: True) -> None:
        self.lines: list[LogLine] = []
        self.raw: list[str] = []
        self._closed = False
        self._cond = threading.Condition()
        self._is_alive = is_alive
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True, name="log-reader")
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        try:
            for data in iter(stream.readline, b""):
                text = data.decode("utf-8", errors="replace")
                parsed = parse_log_line(text)
                with self._cond:
                    self.raw.append(text.rstrip("\n"))
                    if parsed is not None:
                        self.lines.append(parsed)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """The stream ended (the process exited and its stderr was drained)."""
        with self._cond:
            return self._closed

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    def events(self, event: str, where: Callable[[LogLine], bool] | None = None) -> list[LogLine]:
        """Every line so far with this event name (and matching ``where``)."""
        with self._cond:
            return [ln for ln in self.lines if ln.event == event and (where is None or where(ln))]

    def tail(self, count: int = 40) -> str:
        with self._cond:
            return "\n".join(self.raw[-count:])

    def wait(
        self,
        event: str | tuple[str, ...],
        where: Callable[[LogLine], bool] | None = None,
        timeout: float = 60.0,
        after: int = 0,
    ) -> LogLine:
        """The first line (from index ``after`` of :attr:`lines`) with this event (or any of these)
        and matching ``where``; raises :class:`HarnessError` with the log tail at the deadline, or
        as soon as the stream ended without it."""
        names = (event,) if isinstance(event, str) else event
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if line.event in names and (where is None or where(line)):
                        return line
                tail = "\n".join(self.raw[-40:])
                if self._closed:
                    raise HarnessError(f"log ended without {event!r}:\n{tail}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HarnessError(f"no {event!r} within {timeout}s:\n{tail}")
                self._cond.wait(min(left, 0.5))

    def mark(self) -> int:
        """The number of parsed lines so far (``after=`` for a later :meth:`wait`)."""
        with self._cond:
            return len(self.lines)


# ---------------------------------------------------------------------- the daemon process


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment of a daemon subprocess: this worktree's packages first, a private HOME and config
    dir, the keystore password, no ``SYNOD_*`` leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")}
    env.update(
        PYTHONPATH=str(ROOT),
        HOME=str(home / "home"),
        XDG_CONFIG_HOME=str(home / "xdg"),
        SYNOD_KEYSTORE_PASSWORD=PASSWORD,
        **extra,
    )
    return env


class NodeProcess:
    """``synod node run --config PATH`` as a child process; stderr parsed by a :class:`LogReader`."""

    def __init__(
        self, config: Path, home: Path, halt_at: str | None = None, argv: Sequence[str] | None = None
    ) -> None:
        extra = {"SYNOD_HALT_AT": halt_at} if halt_at else {}
        cmd = list(argv) if argv is not None else [sys.executable, "-m", "cli.main", "node", "run"]
        cmd += ["--config", str(config)]
        self.config = config
        self.process = subprocess.Popen(
            cmd,
            cwd=home,
            env=cli_env(home, **extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        self.log = LogReader(self.process.stderr, lambda: self.process.poll() is None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(
        self,
        event: str | tuple[str, ...],
        where: Callable[[LogLine], bool] | None = None,
        timeout: float = 60.0,
        after: int = 0,
    ) -> LogLine:
        """See :meth:`LogReader.wait`."""
        return self.log.wait(event, where, timeout, after)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """The exit code (negative: killed by that signal); :class:`HarnessError` if still running."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"pid {self.pid} still running after {timeout}s:\n{self.log.tail()}") from None
        self.log.join()
        return code

    def kill9(self) -> int:
        """SIGKILL now; returns the exit code (-9)."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        return self.wait_exit()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: a clean shutdown exits 0."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def close(self) -> None:
        """Make sure the process is gone (SIGKILL if a test left it running)."""
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        finally:
            if self.process.stderr is not None:
                self.log.join(2)
                self.process.stderr.close()


# ---------------------------------------------------------------------- broken surroundings


class RpcCut:
    """:class:`HostileProxy` between the daemon and Anvil, run by trio in a thread of its own.

    ``with RpcCut(anvil_url) as cut:`` gives :attr:`url` for the daemon's config; :meth:`cut`
    refuses every connection (and drops open ones), :meth:`restore` listens on the same port again.
    """

    def __init__(self, upstream: str) -> None:
        self.proxy = HostileProxy(upstream)
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="rpc-cut")

    def _main(self) -> None:
        async def serve() -> None:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self._token = trio.lowlevel.current_trio_token()
                await nursery.start(self.proxy.run)
                self._ready.set()

        try:
            trio.run(serve)
        except BaseException as exc:  # reported to the test thread by __enter__
            self._error = exc
            self._ready.set()

    @property
    def url(self) -> str:
        return self.proxy.url

    def __enter__(self) -> RpcCut:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise HarnessError(f"the RPC proxy did not start: {self._error!r}")
        return self

    def _set(self, *modes: str) -> None:
        assert self._token is not None
        trio.from_thread.run(self.proxy.set_mode, *modes, trio_token=self._token)

    def cut(self, timeout: float = 10.0) -> None:
        """The endpoint goes down: returns once a new connection is refused (the listener closes
        in the proxy's own task, a moment after the mode changes); open ones are dropped."""
        self._set("refuse")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=1.0):
                    pass
            except ConnectionRefusedError:
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"the RPC proxy still accepts connections {timeout}s after the cut")
            time.sleep(0.01)  # polling interval while the listener closes

    def restore(self) -> None:
        """The endpoint comes back on the same URL."""
        self._set("pass")

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._scope is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)


_GENERATION = re.compile(rb"^POST /api/(generate|chat) ", re.MULTILINE)


@dataclass
class DropProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (an Ollama-API server).

    While :attr:`drops` > 0, the answer to the next generation request (``POST /api/generate`` or
    ``/api/chat``) is cut after its headers and :attr:`keep_body_bytes` bytes of body: both sockets
    are closed, as when the model server dies in the middle of a generation. Everything else is
    forwarded byte for byte. :attr:`dropped` counts the cuts, :attr:`generations` the requests.
    """

    upstream_port: int
    drops: int = 0
    keep_body_bytes: int = 16
    dropped: int = 0
    generations: int = 0
    port: int = 0
    _server: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _closing: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, drops: int = 1) -> None:
        with self._lock:
            self.drops = drops

    def __enter__(self) -> DropProxy:
        server = socket.create_server(("127.0.0.1", 0))
        self._server = server
        self.port = server.getsockname()[1]
        thread = threading.Thread(target=self._accept, daemon=True, name="drop-proxy")
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=600)
        except OSError:
            client.close()
            return
        state = {"armed": False}

        def close_both() -> None:
            for sock in (client, upstream):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

        def requests() -> None:
            try:
                while data := client.recv(65536):
                    if _GENERATION.search(data):
                        with self._lock:
                            self.generations += 1
                            if self.drops > 0:
                                self.drops -= 1
                                state["armed"] = True
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                close_both()

        reader = threading.Thread(target=requests, daemon=True)
        reader.start()
        pending = b""
        try:
            while data := upstream.recv(65536):
                if not state["armed"]:
                    client.sendall(data)
                    continue
                pending += data
                head_end = pending.find(b"\r\n\r\n")
                if head_end >= 0 and len(pending) >= head_end + 4 + self.keep_body_bytes:
                    client.sendall(pending[: head_end + 4 + self.keep_body_bytes])
                    with self._lock:
                        self.dropped += 1
                    break
        except OSError:
            pass
        finally:
            close_both()
            reader.join(5)


# ---------------------------------------------------------------------- the chain


def rpc(chain: SynodContracts, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call (Anvil cheat codes); raises on an error reply."""
    reply = chain.w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in reply:
        raise HarnessError(f"{method}: {reply['error']}")
    return reply["result"]


def tiny_workflow(max_tokens: int = 8) -> dict[str, Any]:
    """One generation then the end: a cheap real-model task (the row is the prompt's topic)."""
    return one_generation_workflow("fault_suite", max_tokens=max_tokens, max_time=60)


def node_run_table(
    model_url: str, store: Path, identity: Path, p2p_port: int, provider_model: str = DEMO_MODEL
) -> dict[str, Any]:
    """The fault suite's ``[run]`` table (see ``node/config.py``): the Ollama provider at
    ``model_url`` serving :data:`DEMO_MODEL` under the server's name ``provider_model``, with no
    retries (a dropped generation must fail, not be retried away), short polls and margins, no
    claims, no metrics endpoint, no work split."""
    return {
        "store_dir": str(store),
        "concurrency": 2,
        "claim_interval_s": 0.0,
        "deadline_margin_s": 3.0,
        "default_task_seconds": 5.0,
        "poll_interval_s": 0.2,
        # a lone daemon among registered nodes that do not run: without this it owns a batch only
        # by the split's draw, else it waits as a backup for half the commit window (as tests/node)
        "split": {"enabled": False},
        "p2p": {"listen_host": "127.0.0.1", "listen_port": p2p_port, "identity_file": str(identity)},
        "provider": {
            "kind": "ollama",
            "url": model_url,
            "models": {DEMO_MODEL: provider_model},
            "timeout_s": 60.0,
            "stall_timeout_s": 20.0,
            "max_retries": 0,
        },
        "metrics": {"host": "127.0.0.1", "port": -1},
    }


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class NodeSetup:
    """What the daemon under test needs on disk and on chain."""

    index: int
    address: Address
    keystore: Path
    identity: Path
    store: Path
    multiaddr: str
    config: Path
    home: Path


@dataclass
class FaultNet:
    """A deployed devnet plus the scripted participants (nodes 1..3, validators 4..6, requester 7)."""

    devnet: Devnet
    chain: SynodContracts
    actors: Actors

    @property
    def market(self) -> Market:
        return Market(self.chain)

    def head(self) -> int:
        return int(self.chain.w3.eth.block_number)

    def fresh(self) -> FaultNet:
        """The same devnet with new senders for the scripted actors (a :class:`TxSender` caches
        its nonce, which an ``evm_revert`` or a reorg makes stale)."""

        def sender(address: str) -> TxSender:
            for index in range(1, 8):
                if anvil_dev_signer(index, self.chain.chain_id).address == address:
                    return self.sender(index)
            raise HarnessError(f"{address} is not a scripted actor")

        actors = Actors(
            requester=sender(self.actors.requester.address),
            nodes=tuple(sender(n.address) for n in self.actors.nodes),
            validators=tuple(sender(v.address) for v in self.actors.validators),
        )
        return FaultNet(devnet=self.devnet, chain=self.chain, actors=actors)

    def nonce(self, address: str, block: str = "latest") -> int:
        """``eth_getTransactionCount`` at ``block`` (``latest`` or ``pending``)."""
        return int(rpc(self.chain, "eth_getTransactionCount", [address, block]), 16)

    def sender(self, index: int) -> TxSender:
        return self.chain.sender(anvil_dev_signer(index, self.chain.chain_id))

    # ------------------------------------------------------------ the daemon's account

    def setup_node(
        self,
        home: Path,
        model_url: str,
        run: Mapping[str, Any] | None = None,
        index: int = NODE_INDEX,
        rpc_url: str | None = None,
        models: Sequence[str] = (DEMO_MODEL,),
        provider_model: str = DEMO_MODEL,
    ) -> NodeSetup:
        """Keystore, p2p identity and config (``node.toml``) for dev account ``index`` under ``home``,
        and the account registered as a node serving ``models`` at its ``/p2p/`` multiaddr (stake
        minted), or its multiaddr updated when it is registered already.

        The ``[run]`` table (``node/config.py``) is :func:`node_run_table` for ``model_url`` (an
        Ollama-API server) merged with ``run`` (nested tables merge key by key).
        """
        home.mkdir(parents=True, exist_ok=True)
        signer = anvil_dev_signer(index, self.chain.chain_id)
        keystore = home / "keys" / f"{index}.json"
        if not keystore.exists():
            key = bytes.fromhex(dev_private_key_hex(index)[2:])
            write_keystore(keystore, SecretStr(PASSWORD), key, scrypt_n=FAST_SCRYPT_N)
        identity = home / "p2p.key"
        peer = load_or_create_identity(identity)
        peer_id = ID.from_pubkey(peer.public_key).to_base58()
        port = free_port()
        multiaddr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id}"
        store = home / "store"
        table = _merge(node_run_table(model_url, store, identity, port, provider_model), run or {})
        document = {
            "role": "node",
            "p2p_address": multiaddr,
            "models": list(models),
            "chain": {
                "rpc_url": rpc_url or self.devnet.rpc_url,
                "deployment": str(self.devnet.deployments_file),
                "confirmations": 0,
                "rpc_timeout": 5.0,
                "receipt_timeout": 30.0,
            },
            "account": {"keystore": str(keystore)},
            "run": table,
        }
        config = home / "node.toml"
        config.write_text(tomlkit.dumps(document), encoding="utf-8")
        registry = Registry(self.chain)
        sender = self.chain.sender(signer)
        if registry.participant(signer.address, self.chain.head(0)).role is Role.NONE:
            stake = registry.min_stake(Role.NODE, self.chain.head(0))
            registry.mint(sender, sender.address, 10 * stake)
            registry.register(sender, Role.NODE, stake, [model_id(m) for m in models], multiaddr.encode())
        else:
            sender.transact(self.chain.registry.functions.setP2pAddress(multiaddr.encode()), label="setP2p")
        return NodeSetup(index, signer.address, keystore, identity, store, multiaddr, config, home)

    # ------------------------------------------------------------ jobs

    def params(self, k: int = 1, m: int = 1, batch_size: int = 2, **durations: int) -> JobParams:
        """Job parameters on :data:`DEMO_MODEL`; durations in seconds (default 60 each)."""
        return JobParams(
            model=model_id(DEMO_MODEL),
            bounty_per_task=10**18,
            batch_size=batch_size,
            k=k,
            m=m,
            threshold=50,
            tolerance=10,
            junk_floor=0,
            validator_share_bps=2000,
            commit_duration=durations.get("commit", 60),
            reveal_duration=durations.get("reveal", 60),
            score_commit_duration=durations.get("score_commit", 60),
            score_reveal_duration=durations.get("score_reveal", 60),
        )

    def post(self, params: JobParams, rows: Sequence[Any], workflow: Any | None = None) -> PostedJob:
        """The requester posts one job (``workflow`` defaults to :func:`tiny_workflow`)."""
        return self.market.post_job(self.actors.requester, params, workflow or tiny_workflow(), rows)

    def post_raw(self, params: JobParams, workflow: bytes, rows: Sequence[bytes]) -> Any:
        """``postJob`` with arbitrary bytes (a malformed workflow or row the facade would refuse)."""
        fn = self.chain.market.functions.postJob(params.to_abi(), workflow, list(rows))
        return self.actors.requester.transact(fn, label="postJob")

    def phase(self, batch_id: int) -> Phase:
        return self.market.phase(batch_id, self.chain.head(0)).phase

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll the chain until ``check()``; :class:`HarnessError` naming ``what`` at the deadline."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise HarnessError(f"{what}: not within {timeout}s")
            time.sleep(0.1)  # polling interval of a chain read

    def pass_deadline(self, batch_id: int, expected: Phase) -> None:
        """Time-travel just past the batch's deadline if it is still in phase ``expected``."""
        now = self.market.phase(batch_id, self.chain.head(0))
        if now.phase is expected:
            advance_past(self.chain, now.deadline)

    def commit_other(
        self, sender: TxSender, batch_id: int, results: Sequence[Any]
    ) -> tuple[int, list[bytes], bytes]:
        """A scripted node takes a seat committing to ``results``; (seat, digests, salt)."""
        digests: list[bytes] = [bytes(digest(r)) for r in results]
        salt = bytes(new_salt())
        seat, _ = self.market.commit_result(sender, batch_id, digests, salt)
        return seat, digests, salt

    def draw(self, batch_id: int) -> CommitteeDrawn:
        """Arm then draw the committee of a batch in Drawing (the requester calls)."""
        while True:
            view = self.market.batch(batch_id, self.chain.head(0))
            if view.seed_block != 0:
                mine_to(self.chain, view.seed_block + 1)
            drawn, _ = self.market.draw_committee(self.actors.requester, batch_id)
            if drawn is not None:
                return drawn

    def score_and_settle(self, batch_id: int, drawn: CommitteeDrawn, score: int = 100) -> Settlement:
        """The drawn validators all give ``score`` to every revealed result, reveal, then settle."""
        view = self.market.batch(batch_id, self.chain.head(0))
        by_address = {v.address: v for v in self.actors.validators}
        seated = [by_address[a] for a in drawn.validators]
        vector = encode_scores([[score] * view.rows for _ in range(view.commit_count)], view.rows)
        salts = [new_salt() for _ in seated]
        for seat, validator in enumerate(seated):
            self.market.commit_scores(validator, batch_id, seat, vector, salts[seat])
        revealed: dict[int, bytes] = {}
        for seat, validator in enumerate(seated):
            self.market.reveal_scores(validator, batch_id, seat, vector, salts[seat])
            revealed[seat] = vector
        ordered = self.market.settle_vectors(batch_id, revealed, self.chain.head(0))
        return self.market.settle(self.actors.requester, batch_id, ordered)

    def validator_signer(self, address: str) -> Signer:
        for index in (4, 5, 6):
            signer = anvil_dev_signer(index, self.chain.chain_id)
            if signer.address == address:
                return signer
        raise HarnessError(f"{address} is not a scripted validator")

    # ------------------------------------------------------------ reading the chain back

    def txs_from(self, address: str, first_block: int) -> list[dict[str, Any]]:
        """Every transaction ``address`` sent in blocks ``first_block``..head, in chain order, each
        with ``input``, ``nonce`` and its receipt's ``status``."""
        found: list[dict[str, Any]] = []
        for number in range(first_block, self.head() + 1):
            block = rpc(self.chain, "eth_getBlockByNumber", [hex(number), True])
            for tx in block["transactions"]:
                if tx["from"].lower() == address.lower():
                    receipt = rpc(self.chain, "eth_getTransactionReceipt", [tx["hash"]])
                    found.append({**tx, "status": int(receipt["status"], 16)})
        return found

    def selector(self, name: str) -> str:
        """The 4-byte selector (``0x...``) of a TaskMarket function."""
        for entry in self.chain.market.abi:
            if entry.get("type") == "function" and entry.get("name") == name:
                return "0x" + function_abi_to_4byte_selector(entry).hex()
        raise HarnessError(f"TaskMarket has no function {name}")

    def slashes(self, account: str, first_block: int) -> list[MisconductSlashed]:
        """``MisconductSlashed`` events naming ``account`` since ``first_block``."""
        logs = self.chain.market.events.MisconductSlashed().get_logs(from_block=first_block)
        found = []
        for entry in logs:
            if entry["args"]["account"].lower() == account.lower():
                found.append(entry)
        return found

    def revealed_digests(self, batch_id: int, seat: int) -> list[bytes]:
        """The digests node ``seat`` revealed for ``batch_id`` (from its ``ResultRevealed`` event)."""
        logs = self.chain.market.events.ResultRevealed().get_logs(
            from_block=0, argument_filters={"batchId": batch_id}
        )
        for entry in logs:
            if int(entry["args"]["seat"]) == seat:
                return [bytes(d) for d in entry["args"]["digests"]]
        raise HarnessError(f"batch {batch_id} seat {seat}: no ResultRevealed")

    def seat_of(self, batch_id: int, address: str) -> int:
        """The node seat ``address`` holds in ``batch_id``."""
        view = self.market.batch(batch_id, self.chain.head(0))
        for seat in range(view.commit_count):
            if self.market.node_seat(batch_id, seat, self.chain.head(0)).node.lower() == address.lower():
                return seat
        raise HarnessError(f"{address} holds no seat of batch {batch_id}")


@contextmanager
def fault_devnet() -> Iterator[FaultNet]:
    """Build, deploy with a :data:`MIN_PHASE_S` minimum phase, export the ABIs, fund and register
    the scripted participants; Anvil stops at the end."""
    with local_devnet(ROOT, params={"SYNOD_MIN_PHASE_DURATION": str(MIN_PHASE_S)}) as net:
        export_abis(ROOT)
        chain = SynodContracts.connect(net.settings, ROOT)
        actors, _ = fund_and_register(chain)
        yield FaultNet(devnet=net, chain=chain, actors=actors)


def fetch_results(multiaddr: str, digests: Sequence[bytes], signer: Signer, home: Path) -> list[bytes]:
    """Fetch every digest from the node at ``multiaddr`` over ``/synod/result/1.0.0`` as a
    committee member signing with ``signer`` (a real libp2p host of our own)."""

    async def run() -> list[bytes]:
        settings = P2pSettings(identity_file=home / "fetcher.key", fetch_timeout=20.0)
        out: list[bytes] = []
        async with open_p2p_host(settings) as host:
            for d in digests:
                out.append(await host.fetch(multiaddr, d, signer=signer))
        return out

    return trio.run(run)
