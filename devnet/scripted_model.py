"""A zero-latency scripted model server speaking Ollama's HTTP API: a tester feature.

It answers at once, deterministically, so a devnet run measures the protocol (chain, p2p,
daemons) and not the model: ``synod devnet up --model scripted`` and the protocol-only bench use
it. It is a real HTTP server on 127.0.0.1 that node daemons reach through their ordinary
``ollama`` provider; nothing about it is hidden from them.

Endpoints (Ollama's field names, docs/api.md of ollama/ollama): ``GET /`` ("Ollama is running"),
``GET /api/version``, ``GET /api/tags`` (the served model names), ``POST /api/show``,
``POST /api/generate`` and ``POST /api/chat``, streamed (NDJSON, Ollama's default) or not. An
unknown model answers 404 ``{"error": "model \\"x\\" not found, try pulling it first"}``.

The script (:func:`scripted_reply`) reads the prompt (the last message of a chat) and answers:

- a few-shot question prompt ending ``Question:`` -> a question about the last ``Sentence:`` line,
  made of its first words (so it is grounded in, and in the language of, the sentence);
- an answer prompt ending ``Answer:`` -> the last words of that sentence (a span of it);
- anything else -> the first sentence of the prompt's last paragraph (at most 40 words).

That is enough for ``examples/workflows/qa_pairs.json`` to produce real, checkable Q&A pairs.
Tests pass another script as ``answer`` (e.g. :func:`hashed_reply`, a different text per prompt) and
use :meth:`ScriptedModelServer.drop` to play a model server that dies in the middle of an answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from protocol.log import configure, get_logger

log = get_logger(__name__)

DEFAULT_MODELS = ("gemma3:270m",)
_SENTENCE = re.compile(r"^Sentence:\s*(.+)$", re.MULTILINE)
_WORD_LIMIT = 40


def _words(text: str) -> list[str]:
    return text.strip().rstrip(".!?").split()


def scripted_reply(prompt: str) -> str:
    """The scripted model's answer to ``prompt`` (see the module docstring). Pure."""
    tail = prompt.rstrip()
    sentences = _SENTENCE.findall(prompt)
    if sentences and tail.endswith("Question:"):
        words = _words(sentences[-1])
        return " What about " + " ".join(words[: max(1, min(4, len(words) // 2))]) + "?"
    if sentences and tail.endswith("Answer:"):
        words = _words(sentences[-1])
        return " " + " ".join(words[-min(4, max(1, len(words) // 2)) :])
    paragraph = [p for p in re.split(r"\n\s*\n", prompt.strip()) if p.strip()]
    last = paragraph[-1] if paragraph else ""
    first = re.split(r"(?<=[.!?])\s", last.strip(), maxsplit=1)[0]
    return " ".join(first.split()[:_WORD_LIMIT])


def hashed_reply(prompt: str) -> str:
    """``"answer <12 hex digits of sha256(prompt)>"``: a short answer that differs for every prompt. Pure."""
    return "answer " + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ScriptedModelServer:
    """The server; ``with ScriptedModelServer(port=0) as s: s.url`` runs it on a thread.

    ``answer(prompt) -> text`` is the script (default :func:`scripted_reply`); ``calls`` (also
    ``requests``) counts the generations served, dropped ones included.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = DEFAULT_MODELS,
        answer: Callable[[str], str] = scripted_reply,
    ) -> None:
        self.models = tuple(models)
        self.calls = 0
        self._answer = answer
        self._drop_next = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, value: Any) -> None:
                self._send(status, json.dumps(value).encode())

            def do_GET(self) -> None:
                if self.path == "/":
                    self._send(200, b"Ollama is running", "text/plain")
                elif self.path == "/api/version":
                    self._json(200, {"version": "0.0.0-synod-scripted"})
                elif self.path == "/api/tags":
                    self._json(200, {"models": [server._tag(m) for m in server.models]})
                else:
                    self._json(404, {"error": f"no endpoint {self.path}"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    self._json(400, {"error": f"invalid JSON body: {exc}"})
                    return
                model = body.get("model") or body.get("name")
                if self.path not in ("/api/generate", "/api/chat", "/api/show"):
                    self._json(404, {"error": f"no endpoint {self.path}"})
                    return
                if model not in server.models:
                    self._json(404, {"error": f'model "{model}" not found, try pulling it first'})
                    return
                if self.path == "/api/show":
                    self._json(200, {"details": server._tag(str(model))["details"], "model_info": {}})
                    return
                chat = self.path == "/api/chat"
                if chat:
                    messages = body.get("messages") or []
                    prompt = str(messages[-1].get("content") or "") if messages else ""
                else:
                    prompt = str(body.get("prompt") or "")
                text = server._answer(prompt)
                with server._lock:
                    server.calls += 1
                    drop = server._drop_next > 0
                    if drop:
                        server._drop_next -= 1
                piece: dict[str, Any] = (
                    {"message": {"role": "assistant", "content": text}} if chat else {"response": text}
                )
                final = {
                    "model": model,
                    "created_at": _now(),
                    "done": True,
                    "done_reason": "stop",
                    "total_duration": 0,
                    "load_duration": 0,
                    "prompt_eval_count": len(prompt.split()),
                    "prompt_eval_duration": 0,
                    "eval_count": len(text.split()),
                    "eval_duration": 0,
                }
                if body.get("stream", True):
                    empty = {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
                    lines = [
                        {"model": model, "created_at": _now(), "done": False, **piece},
                        {**final, **empty},
                    ]
                    encoded = [json.dumps(line).encode() + b"\n" for line in lines]
                    if drop:
                        # announce the whole body, send the first chunk, then cut the connection
                        self.send_response(200)
                        self.send_header("Content-Type", "application/x-ndjson")
                        self.send_header("Content-Length", str(sum(map(len, encoded))))
                        self.end_headers()
                        self.wfile.write(encoded[0])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self._send(200, b"".join(encoded), "application/x-ndjson")
                else:
                    self._json(200, {**final, **piece})

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _tag(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": _now(),
            "size": 0,
            "digest": "0" * 64,
            "details": {
                "format": "scripted",
                "family": "scripted",
                "families": ["scripted"],
                "parameter_size": "0",
                "quantization_level": "none",
            },
        }

    @property
    def requests(self) -> int:
        """Generations served so far (the same as ``calls``)."""
        return self.calls

    def drop(self, count: int = 1) -> None:
        """Cut the connection in the middle of each of the next ``count`` streamed generations."""
        with self._lock:
            self._drop_next = count

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_forever(self) -> None:
        """Serve on the calling thread until :meth:`shutdown`."""
        self._http.serve_forever(poll_interval=0.2)

    def __enter__(self) -> ScriptedModelServer:
        self._thread = threading.Thread(target=self.serve_forever, name="scripted-model", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devnet.scripted_model [--host H] [--port P] [--model NAME ...]``: serve until
    SIGINT/SIGTERM (exit 0). Logs ``scripted_model_listening url=...`` on stderr."""
    parser = argparse.ArgumentParser(prog="python -m devnet.scripted_model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", action="append", default=[], help="a served model name (repeatable)")
    args = parser.parse_args(argv)
    configure("INFO")
    server = ScriptedModelServer(args.host, args.port, args.model or DEFAULT_MODELS)

    def stop(signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scripted_model_listening", url=server.url, models=list(server.models))
    server.serve_forever()
    log.info("scripted_model_stopped", calls=server.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
