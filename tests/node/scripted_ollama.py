"""A scripted model server on 127.0.0.1 speaking Ollama's HTTP API, with zero model latency.

For the node daemon's tests and benchmark: everything but the model is real (HTTP, NDJSON
streaming, the Ollama provider's parsing). Answers come from ``answer(prompt)`` (default: a short
deterministic text derived from the prompt). Endpoints follow Ollama's docs/api.md field names:
``GET /api/tags``, ``POST /api/generate`` and ``POST /api/chat`` (``stream`` true: NDJSON chunks
then a ``done`` object; false: one object). An unknown model answers 404 as Ollama does.

``drop_next`` makes the next N generations send their first chunk and then close the connection
(a model server dying mid-answer). ``requests`` counts generations served.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def default_answer(prompt: str) -> str:
    """A short answer that depends on the whole prompt (different rows give different results)."""
    return "answer " + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/api/tags":
            self._json(404, {"error": "not found"})
            return
        models = [
            {"name": m, "model": m, "modified_at": "2026-01-01T00:00:00Z", "size": 1, "digest": "0" * 64}
            for m in self.server.models
        ]
        self._json(200, {"models": models})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            self._json(400, {"error": "bad json"})
            return
        if self.path not in ("/api/generate", "/api/chat"):
            self._json(404, {"error": "not found"})
            return
        model = str(request.get("model", ""))
        if model not in self.server.models:
            self._json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        chat = self.path == "/api/chat"
        if chat:
            prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
        else:
            prompt = str(request.get("prompt", ""))
        text = self.server.answer(prompt)
        with self.server.lock:
            self.server.requests += 1
            drop = self.server.drop_next > 0
            if drop:
                self.server.drop_next -= 1
        counters = {"prompt_eval_count": 2 * len(prompt.split()) + 8, "eval_count": len(text.split())}

        def piece(part: str, done: bool) -> dict[str, Any]:
            base: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": done}
            if chat:
                base["message"] = {"role": "assistant", "content": part}
            else:
                base["response"] = part
            if done:
                base.update(counters, done_reason="stop")
            return base

        if request.get("stream", True) is False and not drop:
            self._json(200, piece(text, True))
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        words = text.split(" ")
        for i, word in enumerate(words):
            self._chunk(json.dumps(piece(word if i == 0 else " " + word, False)) + "\n")
            if drop:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
        self._chunk(json.dumps(piece("", True)) + "\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    models: tuple[str, ...]
    answer: Callable[[str], str]
    lock: threading.Lock
    requests: int
    drop_next: int


class ScriptedOllama:
    """``with ScriptedOllama(["gemma3:270m"]) as server: server.url``; serves until the block ends."""

    def __init__(self, models: Sequence[str], answer: Callable[[str], str] = default_answer) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.models = tuple(models)
        self._server.answer = answer
        self._server.lock = threading.Lock()
        self._server.requests = 0
        self._server.drop_next = 0
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="scripted-ollama"
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> int:
        return self._server.requests

    def drop(self, count: int = 1) -> None:
        """Drop the connection in the middle of the next ``count`` generations."""
        with self._server.lock:
            self._server.drop_next = count

    def __enter__(self) -> ScriptedOllama:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
