"""The fault harness's own pieces, checked against real parts: the log reader on a real child
process (both log formats, deadlines, kill -9), the RPC cut on a real Anvil, the connection
dropper on the real Ollama-API test server."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.devnet import ROOT, anvil
from tests.node_faults.harness import (
    DropProxy,
    HarnessError,
    LogReader,
    NodeProcess,
    RpcCut,
    parse_log_line,
)
from tests.providers.ollama_server import MODEL_TAG, OllamaTestServer

pytestmark = pytest.mark.fault

# A stand-in daemon: logs through protocol.log, honours SYNOD_HALT_AT as the daemon contract says.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from protocol.log import configure, get_logger
    configure()
    log = get_logger("child")
    log.info("node_started", config=sys.argv[-1], pid=os.getpid(), models=["a", "b c"], note="two words")
    for point in ("after_workflows", "after_commit_sent"):
        log.info("stage", point=point)
        if os.environ.get("SYNOD_HALT_AT") == point:
            log.info("halt_point", point=point)
            os.kill(os.getpid(), signal.SIGKILL)
    print('{"event": "json_line", "level": "warning", "batch": 7}', file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(0.05)
    """
)


def child(tmp_path: Path, halt_at: str | None = None) -> NodeProcess:
    return NodeProcess(tmp_path / "node.toml", tmp_path, halt_at, argv=[sys.executable, "-c", CHILD])


def test_text_and_json_lines_parse() -> None:
    text = parse_log_line(
        '2026-11-30 12:00:01,123 INFO node.daemon batch_skipped batch=12 reason="bad workflow: x" '
        "ok=true rows=[1, 2] peer=/ip4/127.0.0.1/tcp/1"
    )
    assert text is not None
    assert (text.event, text.level) == ("batch_skipped", "INFO")
    assert dict(text.fields) == {
        "batch": 12,
        "reason": "bad workflow: x",
        "ok": True,
        "rows": [1, 2],
        "peer": "/ip4/127.0.0.1/tcp/1",
    }
    js = parse_log_line('{"event": "halt_point", "level": "info", "point": "after_fetch"}')
    assert js is not None and (js.event, js.level, js.get("point")) == ("halt_point", "INFO", "after_fetch")
    assert parse_log_line("Traceback (most recent call last):") is None
    assert parse_log_line('{"no_event": 1}') is None


def test_reader_waits_for_events_and_sees_a_halt_kill(tmp_path: Path) -> None:
    proc = child(tmp_path, halt_at="after_commit_sent")
    try:
        started = proc.wait("node_started", timeout=30)
        assert started.get("models") == ["a", "b c"] and started.get("note") == "two words"
        assert started.get("pid") == proc.pid
        halt = proc.wait("halt_point", timeout=30)
        assert halt.get("point") == "after_commit_sent"
        assert proc.wait_exit(30) == -9
        # the stream ended without it: the wait fails at once, not at its deadline
        began = time.monotonic()
        with pytest.raises(HarnessError, match="log ended without 'json_line'"):
            proc.wait("json_line", timeout=30)
        assert time.monotonic() - began < 5
        assert [ln.get("point") for ln in proc.log.events("stage")] == [
            "after_workflows",
            "after_commit_sent",
        ]
    finally:
        proc.close()


def test_reader_deadline_and_sigterm(tmp_path: Path) -> None:
    proc = child(tmp_path)
    try:
        line = proc.wait("json_line", timeout=30)
        assert (line.level, line.get("batch")) == ("WARNING", 7)
        assert proc.log.events("halt_point") == []
        began = time.monotonic()
        with pytest.raises(HarnessError, match=r"no 'never' within 0\.5s"):
            proc.wait("never", timeout=0.5)
        assert 0.5 <= time.monotonic() - began < 3
        assert proc.alive()
        assert proc.stop() == 0
    finally:
        proc.close()


def test_reader_on_a_pipe_that_closes(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"2026-11-30 12:00:00,000 INFO x a n=1\nnoise\n2026-11-30 12:00:00,001 INFO x b n=2\n")
    with path.open("rb") as stream:
        reader = LogReader(stream)
        assert reader.wait("b").get("n") == 2
        reader.join()
    assert reader.closed and [ln.event for ln in reader.lines] == ["a", "b"]
    assert reader.raw[1] == "noise"


def _block_number(client: httpx.Client, url: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    return int(client.post(url, json=body).json()["result"], 16)


def test_rpc_cut_refuses_then_serves_on_the_same_url() -> None:
    with anvil(ROOT) as url, RpcCut(url) as cut, httpx.Client(timeout=5) as client:
        assert _block_number(client, cut.url) == 0
        proxied = cut.url
        cut.cut()
        with pytest.raises(httpx.ConnectError):
            _block_number(client, proxied)
        cut.restore()
        assert cut.url == proxied
        assert _block_number(client, proxied) == 0


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


@pytest.mark.model
def test_drop_proxy_cuts_one_generation_mid_answer(ollama_server: OllamaTestServer) -> None:
    port = int(ollama_server.base_url.rsplit(":", 1)[1])
    body = {
        "model": MODEL_TAG,
        "prompt": "One word about rain:",
        "options": {"num_predict": 8, "temperature": 0},
    }
    with DropProxy(upstream_port=port) as proxy, httpx.Client(base_url=proxy.url, timeout=60) as client:
        assert client.get("/api/tags").json()["models"][0]["name"] == MODEL_TAG
        proxy.arm(1)
        # a truncated chunked stream
        with pytest.raises(httpx.HTTPError), client.stream("POST", "/api/generate", json=body) as reply:
            assert reply.status_code == 200
            for _ in reply.iter_lines():
                pass
        assert (proxy.dropped, proxy.generations) == (1, 1)
        reply = client.post("/api/generate", json={**body, "stream": False})
        assert reply.json()["done"] is True
        assert (proxy.dropped, proxy.generations, proxy.drops) == (1, 2, 0)
