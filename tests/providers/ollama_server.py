"""A test server on 127.0.0.1 speaking Ollama's HTTP API, answering from the real local model.

There is no Ollama here, so this stands in for it. It is not canned: every answer comes from Gemma
3 270M run by llama-cpp-python in the server thread (one model, calls serialised by a lock).

Endpoints, with Ollama's field names (docs/api.md of ollama/ollama):

- ``GET /api/tags`` -> ``{"models": [{"name", "model", "modified_at", "size", "digest",
  "details": {"format", "family", "families", "parameter_size", "quantization_level"}}]}``
- ``POST /api/generate`` ``{"model", "prompt", "stream", "options", "format"}`` -> ``{"model",
  "created_at", "response", "done", "done_reason", "total_duration", "load_duration",
  "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"}``
- ``POST /api/chat`` ``{"model", "messages", "tools", "stream", "options", "format"}`` ->
  the same counters and ``"message": {"role": "assistant", "content", "tool_calls": [{"function":
  {"name", "arguments": {...}}}]}``. The chat is rendered completion-style (Synod's transcript
  format) because the model is a base model; tool calls are parsed out of the output.
- ``"stream": true`` (Ollama's default) answers NDJSON: one object per generated piece with
  ``"done": false``, then a final object with ``"done": true``, ``done_reason`` and the counters.
- An unknown model answers 404 ``{"error": "model \\"x\\" not found, try pulling it first"}``; a
  malformed request answers 400 ``{"error": ...}``.
- ``options.num_ctx`` is the context window, as Ollama's: a longer prompt is cut silently (the
  first :data:`NUM_KEEP` tokens and the last ones kept) and ``prompt_eval_count`` reports what was
  evaluated. Without it, Ollama's old default of 2048.

:class:`Behaviour` makes the server misbehave the ways real servers do, per test: a slow but steady
stream (``chunk_delay_s`` between chunks), a stream that stalls after its first chunk
(``stall_s``), tool-call ``arguments`` sent as a JSON string or as a non-object (as some models
and servers do), and a model that disappears after the provider checked ``/api/tags``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from workflow.providers.base import Message, ToolCall, ToolSpec
from workflow.providers.local import default_model_path
from workflow.providers.transcript import STOP_SEQUENCES, parse_tool_calls, render_prompt

MODEL_TAG = "gemma3-270m:latest"
DEFAULT_NUM_CTX = 2048
"""Ollama's default context window before 0.6 (the model here is loaded with this n_ctx)."""
NUM_KEEP = 4
"""Tokens kept from the start of a prompt that is cut (Ollama keeps ``num_keep`` of them)."""


@dataclass
class Behaviour:
    """How the server misbehaves; a test sets fields and resets them (``reset()``) afterwards."""

    chunk_delay_s: float = 0.0
    """Sleep before every streamed chunk: a slow but steady stream."""
    stall_s: float = 0.0
    """Sleep this long after the first streamed chunk: a stall."""
    arguments_as: str = "object"
    """Tool-call ``arguments`` as ``object`` (Ollama), ``string`` (a JSON string) or ``list`` (garbage)."""
    forget_model: bool = False
    """The model is gone: not listed, and generation answers 404 naming it."""

    def reset(self) -> None:
        self.chunk_delay_s = self.stall_s = 0.0
        self.arguments_as = "object"
        self.forget_model = False


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Model:
    """The real model, shared by the request threads under a lock."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama

        self.path = path
        self.lock = threading.Lock()
        self.llama: Any = Llama(model_path=str(path), n_ctx=2048, n_threads=2, seed=0, verbose=False)
        self.llama.create_completion("Hello", max_tokens=1, temperature=0.0)  # warm up before serving

    def stream(
        self, prompt: str | list[int], options: dict[str, Any], stop: list[str], evaluated: list[int]
    ) -> Generator[tuple[str, str | None]]:
        """Yield (text piece, finish reason or None) as llama.cpp generates; at the end append the
        number of tokens generated (llama.cpp's context size minus the prompt) to ``evaluated``."""
        with self.lock:
            if isinstance(prompt, str):
                prompt_tokens = len(self.llama.tokenize(prompt.encode(), add_bos=True))
            else:
                prompt_tokens = len(prompt)
            for chunk in self.llama.create_completion(
                prompt,
                max_tokens=int(options.get("num_predict", 128)),
                temperature=float(options.get("temperature", 0.8)),
                top_p=float(options.get("top_p", 0.9)),
                seed=options.get("seed"),
                stop=stop,
                stream=True,
            ):
                choice: dict[str, Any] = chunk["choices"][0]
                yield str(choice["text"]), choice.get("finish_reason")
            evaluated.append(int(self.llama.n_tokens) - prompt_tokens)

    def tokens(self, text: str) -> list[int]:
        with self.lock:
            return list(self.llama.tokenize(text.encode(), add_bos=True))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        if self.path == "/api/tags" and self.server.behaviour.forget_model:
            self._json(200, {"models": []})
        elif self.path == "/api/tags":
            size = self.server.model.path.stat().st_size
            self._json(
                200,
                {
                    "models": [
                        {
                            "name": MODEL_TAG,
                            "model": MODEL_TAG,
                            "modified_at": _now(),
                            "size": size,
                            "digest": "0" * 64,
                            "details": {
                                "parent_model": "",
                                "format": "gguf",
                                "family": "gemma3",
                                "families": ["gemma3"],
                                "parameter_size": "268.10M",
                                "quantization_level": "Q4_K_M",
                            },
                        }
                    ]
                },
            )
        elif self.path == "/api/version":
            self._json(200, {"version": "0.0.0-synod-test"})
        else:
            self._json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("request body is not an object")
        except ValueError as exc:
            self._json(400, {"error": f"invalid request: {exc}"})
            return
        if self.path not in ("/api/generate", "/api/chat"):
            self._json(404, {"error": "404 page not found"})
            return
        self.server.bodies.append(request)
        model = request.get("model")
        if not isinstance(model, str) or not model:
            self._json(400, {"error": "model is required"})
            return
        if model not in (MODEL_TAG, MODEL_TAG.removesuffix(":latest")) or self.server.behaviour.forget_model:
            self._json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        try:
            if self.path == "/api/generate":
                prompt, stop, tools = self._generate_prompt(request)
            else:
                prompt, stop, tools = self._chat_prompt(request)
        except (KeyError, TypeError, ValueError) as exc:
            self._json(400, {"error": str(exc)})
            return
        self._answer(request, prompt, stop, tools, chat=self.path == "/api/chat")

    @staticmethod
    def _generate_prompt(request: dict[str, Any]) -> tuple[str, list[str], list[ToolSpec]]:
        prompt = request.get("prompt")
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string")
        system = request.get("system")
        if isinstance(system, str) and system:
            prompt = f"{system}\n\n{prompt}"
        return prompt, list(request.get("options", {}).get("stop", [])), []

    @staticmethod
    def _chat_prompt(request: dict[str, Any]) -> tuple[str, list[str], list[ToolSpec]]:
        messages = []
        for raw in request["messages"]:
            calls = tuple(
                ToolCall(name=c["function"]["name"], arguments=c["function"].get("arguments", {}))
                for c in raw.get("tool_calls") or ()
            )
            messages.append(
                Message(
                    role=raw["role"],
                    content=raw.get("content") or "",
                    tool_calls=calls,
                    name=raw.get("tool_name"),
                )
            )
        tools = [
            ToolSpec(
                name=t["function"]["name"],
                description=t["function"].get("description", ""),
                parameters=t["function"].get("parameters") or {"type": "object", "properties": {}},
            )
            for t in request.get("tools") or ()
        ]
        stop = [*STOP_SEQUENCES, *request.get("options", {}).get("stop", [])]
        return render_prompt(messages, tools), stop, tools

    def _answer(
        self, request: dict[str, Any], prompt: str, stop: list[str], tools: list[ToolSpec], chat: bool
    ) -> None:
        options = request.get("options") or {}
        stream = request.get("stream", True) is not False
        started = time.monotonic_ns()
        tokens = self.server.model.tokens(prompt)
        num_ctx = int(options.get("num_ctx") or DEFAULT_NUM_CTX)
        fed: str | list[int] = prompt
        if len(tokens) > num_ctx:  # cut silently, as Ollama does
            fed = tokens[:NUM_KEEP] + tokens[len(tokens) - (num_ctx - NUM_KEEP) :]
        prompt_tokens = len(fed) if isinstance(fed, list) else len(tokens)

        def final(text: str, reason: str | None, count: int, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
            elapsed = time.monotonic_ns() - started
            out: dict[str, Any] = {"model": request["model"], "created_at": _now()}
            if chat:
                message: dict[str, Any] = {"role": "assistant", "content": text}
                if calls:
                    message["tool_calls"] = [
                        {"function": {"name": c.name, "arguments": self._arguments(c.arguments)}}
                        for c in calls
                    ]
                out["message"] = message
            else:
                out["response"] = text
            out.update(
                done=True,
                done_reason="length" if reason == "length" else "stop",
                total_duration=elapsed,
                load_duration=0,
                prompt_eval_count=prompt_tokens,
                prompt_eval_duration=elapsed // 2,
                eval_count=count,
                eval_duration=elapsed // 2,
            )
            return out

        evaluated: list[int] = []
        pieces = self.server.model.stream(fed, options, stop, evaluated)
        try:
            self._send_answer(pieces, evaluated, final, stream, chat, tools, request)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            pieces.close()  # releases the model lock even when the client went away

    def _arguments(self, arguments: dict[str, Any]) -> Any:
        kind = self.server.behaviour.arguments_as
        if kind == "string":
            return json.dumps(arguments)
        if kind == "list":
            return list(arguments.values())
        return arguments

    def _send_answer(
        self,
        pieces: Iterator[tuple[str, str | None]],
        evaluated: list[int],
        final: Any,
        stream: bool,
        chat: bool,
        tools: list[ToolSpec],
        request: dict[str, Any],
    ) -> None:
        if not stream or tools:
            # Ollama buffers the answer when it parses tool calls; collect everything first.
            text, reason = "", None
            for piece, finish in pieces:
                text, reason = text + piece, finish or reason
            count = evaluated[0]
            calls: tuple[ToolCall, ...] = ()
            if tools:
                text, calls = parse_tool_calls(text, tools)
            else:
                text = text.strip() if chat else text
            if not stream:
                self._json(200, final(text, reason, count, calls))
                return
            self._start_stream()
            self._line(final(text, reason, count, calls))
            self._end_stream()
            return
        # Like Ollama, the headers go out with the first chunk (after the prompt is read).
        reason = None
        behaviour = self.server.behaviour
        sent = 0
        for piece, finish in pieces:
            reason = finish or reason
            if not piece:
                continue
            if behaviour.chunk_delay_s:
                time.sleep(behaviour.chunk_delay_s)
            if sent == 1 and behaviour.stall_s:
                time.sleep(behaviour.stall_s)
            if sent == 0:
                self._start_stream()
            sent += 1
            chunk: dict[str, Any] = {"model": request["model"], "created_at": _now(), "done": False}
            if chat:
                chunk["message"] = {"role": "assistant", "content": piece}
            else:
                chunk["response"] = piece
            self._line(chunk)
        if sent == 0:
            self._start_stream()
        self._line(final("", reason, evaluated[0], ()))
        self._end_stream()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _line(self, value: dict[str, Any]) -> None:
        data = json.dumps(value).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    model: _Model
    requests: list[tuple[str, str]]
    bodies: list[dict[str, Any]]
    behaviour: Behaviour


class OllamaTestServer:
    """The Ollama-compatible server above, on a free port, for the ``with`` block."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.model = _Model(model_path or default_model_path())
        self._server.requests = []
        self._server.bodies = []
        self._server.behaviour = Behaviour()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="ollama-test", daemon=True)

    @property
    def requests(self) -> list[tuple[str, str]]:
        return list(self._server.requests)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the generation requests, in order."""
        return list(self._server.bodies)

    @property
    def behaviour(self) -> Behaviour:
        """Set its fields to make the server misbehave (reset it afterwards)."""
        return self._server.behaviour

    def __enter__(self) -> OllamaTestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._server.model.llama.close()
