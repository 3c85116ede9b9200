"""The synchronous web3 connection asks the chain's id once or twice, not before every call."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from protocol.chain.rpc import make_web3
from protocol.settings import ChainSettings

pytestmark = pytest.mark.unit


@pytest.fixture
def rpc() -> Iterator[tuple[str, Counter[str]]]:
    """A JSON-RPC endpoint on 127.0.0.1 that counts the methods asked (chain 31337; every
    eth_call answers one 32-byte word)."""
    seen: Counter[str] = Counter()
    answers: dict[str, Any] = {"eth_chainId": "0x7a69", "eth_call": "0x" + "00" * 31 + "2a"}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen[body["method"]] += 1
            reply = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": answers[body["method"]]})
            data = reply.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_eth_calls_ask_the_chain_id_once(rpc: tuple[str, Counter[str]]) -> None:
    url, seen = rpc
    w3 = make_web3(ChainSettings(rpc_url=url))
    to = "0x" + "11" * 20
    for _ in range(5):
        assert w3.eth.call({"to": to, "data": b""}) == bytes.fromhex("00" * 31 + "2a")
    assert seen["eth_call"] == 5
    # web3's validation middleware asked eth_chainId before each of them (5 more requests); now
    # it is asked when first needed (and once more by web3's cache set-up), then never again
    asked = seen["eth_chainId"]
    assert asked <= 2
    for _ in range(5):
        w3.eth.call({"to": to, "data": b""})
    assert w3.eth.chain_id == 31337
    assert seen["eth_call"] == 10 and seen["eth_chainId"] == asked
