"""Real servers on 127.0.0.1 for the provider tests.

- :class:`LlamaCppServer`: ``python -m llama_cpp.server`` as a subprocess serving the packaged
  Gemma 3 270M GGUF (an OpenAI-compatible API), polled on ``/v1/models`` until ready.
- :class:`FaultyProxy`: a reverse proxy that answers the first ``fail_first`` requests with an
  error status (or holds them for ``delay_s``) and forwards the rest to a real server; it records
  when each request arrived, so backoff can be measured.
- :func:`free_port` and :func:`closed_port_url` (a URL nothing listens on).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from workflow.providers.local import default_model_path

MODEL_ALIAS = "gemma3-270m"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


class LlamaCppServer:
    """llama.cpp's OpenAI-compatible server on a free port, for the ``with`` block."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        chat_format: str | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.model_path = model_path or default_model_path()
        self._extra = ["--chat_format", chat_format] if chat_format else []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log = Path(os.environ.get("TMPDIR", "/tmp")) / f"synod-llama-server-{self.port}.log"

    def __enter__(self) -> LlamaCppServer:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            MODEL_ALIAS,
            "--n_threads",
            "2",
            "--n_ctx",
            "2048",
            "--seed",
            "0",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self._extra,
            "--verbose",
            "False",
        ]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self._process.returncode}: {self._tail()}")
            try:
                response = httpx.get(f"{self.base_url}/v1/models", timeout=2.0)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"llama_cpp.server not ready in {self._startup_timeout_s}s: {self._tail()}")

    def _tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-2000:]
        except OSError:
            return "<no log>"

    def _stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None
        self._log.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self._stop()


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        try:
            self._proxy()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout test)

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            index = len(self.server.arrivals)
            self.server.arrivals.append(time.monotonic())
            self.server.paths.append((self.command, self.path))
        delayed = self.server.delay_s and index < self.server.delay_first
        if delayed and self.server.stopping.wait(self.server.delay_s):
            self.close_connection = True
            return
        if index < self.server.fail_first:
            payload = b'{"error": "injected failure"}'
            self.send_response(self.server.fail_status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        target = urlsplit(self.server.target)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            upstream = conn.getresponse()
            data = upstream.read()
            self.send_response(upstream.status)
            for key, value in upstream.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_POST = _handle


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    target: str
    fail_first: int
    fail_status: int
    delay_first: int
    delay_s: float
    arrivals: list[float]
    paths: list[tuple[str, str]]
    lock: threading.Lock
    stopping: threading.Event


class FaultyProxy:
    """Fails (or delays) the first requests, then forwards to ``target``. Use as ``with``."""

    def __init__(
        self,
        target: str,
        *,
        fail_first: int = 0,
        fail_status: int = 503,
        delay_first: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        settings: Mapping[str, Any] = {
            "target": target.rstrip("/"),
            "fail_first": fail_first,
            "fail_status": fail_status,
            "delay_first": delay_first,
            "delay_s": delay_s,
            "arrivals": [],
            "paths": [],
            "lock": threading.Lock(),
            "stopping": threading.Event(),
        }
        for key, value in settings.items():
            setattr(self._server, key, value)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def arrivals(self) -> list[float]:
        return list(self._server.arrivals)

    @property
    def paths(self) -> list[tuple[str, str]]:
        return list(self._server.paths)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
