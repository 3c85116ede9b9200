"""A small real web site on 127.0.0.1 for tests: pages, robots.txt, search APIs, slow and big pages.

Use it as a context manager (it serves from a thread on a free port)::

    with FixtureSite() as site:
        site.url("/owls/")          # -> "http://127.0.0.1:<port>/owls/"
        site.searxng_url            # -> "http://127.0.0.1:<port>"  (for ToolSettings.searxng_url)

or through the pytest fixture :func:`web_site` (module scope): ``from tests.webfixtures import
web_site`` in a test module, then take ``web_site`` as an argument.

The topic is made up: the glass owls of the (fictional) Vellmore Marshes.

URLs (relative to ``site.base_url``):

=============================  ==========================================================================
``/``                          home page: title "Vellmore Glass Owls", links to every page below
``/owls/``                     overview article (<main>), with nav/footer/script boilerplate around it
``/owls/habitat.html``         habitat article (mentions "reed towers" and "Lake Ombra")
``/owls/diet.html``            diet article (mentions "lantern moths")
``/owls/history.html``         discovery history (mentions "Ilse Marrow" and the year 1887)
``/private/notes.html``        an HTML page that robots.txt disallows (``Disallow: /private/``)
``/robots.txt``                ``User-agent: *`` / ``Disallow: /private/``
``/data/owl.png``              a non-HTML resource (``image/png``)
``/data/census.json``          JSON (``application/json``)
``/large.html``                3 MiB of HTML, streamed without Content-Length (over the default caps)
``/slow.html``                 sends headers, then one small chunk every 0.5 s for 15 s
``/redirect``                  302 to ``/owls/habitat.html``
``/redirect-loop``             302 to itself, forever
``/search?q=..&format=json``   SearXNG-compatible JSON API: ``results[].{url,title,content,engine,...}``
                               for fixture pages whose text contains every query word (403 unless
                               ``format=json``, as a SearXNG instance without the JSON format does)
``POST /serper/search``        Serper.dev-compatible API: JSON ``{"q", "num", ...}``, header
                               ``X-API-KEY`` must equal :data:`SERPER_KEY` (else 403);
                               answers ``{"searchParameters", "organic": [{title, link, snippet,
                               position}], "credits"}``
``/api/echo``                  any method: echoes ``{"method", "path", "query", "headers", "json"}``
``/api/status/<code>``         answers with that HTTP status and a JSON body
=============================  ==========================================================================

``site.requests`` records ``(method, path)`` of every request served, in order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

SERPER_KEY = "fixture-serper-key"

_NAV = """<nav class="site-nav"><a href="/">Home</a> <a href="/owls/">Owls</a>
<a href="/owls/habitat.html">Habitat</a> <a href="/owls/diet.html">Diet</a></nav>"""
_FOOTER = """<footer>Vellmore Naturalist Society - all rights reserved
<a href="https://example.org/elsewhere">elsewhere</a></footer>"""


def _page(title: str, body: str, *, wrap_main: bool = True) -> str:
    main = f"<main><article>{body}</article></main>" if wrap_main else body
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: serif; }}</style>
<script>var tracking = "SHOULD-NOT-APPEAR";</script></head>
<body>{_NAV}
<div class="cookie-banner">We use cookies. COOKIE-BANNER-TEXT</div>
{main}
{_FOOTER}</body></html>"""


PAGES: dict[str, tuple[str, str]] = {
    "/": (
        "Vellmore Glass Owls",
        """<h1>Vellmore Glass Owls</h1>
<p>The glass owl is a small nocturnal bird of the Vellmore Marshes,
named for its translucent wing feathers.</p>
<ul><li><a href="/owls/">Overview</a></li><li><a href="/owls/habitat.html">Habitat</a></li>
<li><a href="/owls/diet.html">Diet</a></li><li><a href="/owls/history.html">History</a></li>
<li><a href="/private/notes.html">Field notes</a></li><li><a href="/data/owl.png">Photo</a></li></ul>""",
    ),
    "/owls/": (
        "Glass owls: overview",
        """<h1>Glass owls</h1>
<p>Glass owls weigh about ninety grams and live for up to eleven years.</p>
<p>Their feathers scatter moonlight, which makes a hunting owl nearly invisible from below.</p>
<p>See also <a href="habitat.html">where they live</a>
and <a href="diet.html#moths">what they eat</a>.</p>""",
    ),
    "/owls/habitat.html": (
        "Glass owls: habitat",
        """<h1>Habitat</h1>
<p>Glass owls nest in reed towers on the northern shore of Lake Ombra.</p>
<p>A reed tower holds up to four nests and is rebuilt every spring.</p>
<p><a href="/owls/">Back to the overview</a></p>""",
    ),
    "/owls/diet.html": (
        "Glass owls: diet",
        """<h1 id="moths">Diet</h1>
<p>Glass owls feed almost only on lantern moths, which they catch over open water.</p>
<p>One owl eats about forty lantern moths a night.</p>""",
    ),
    "/owls/history.html": (
        "Glass owls: history",
        """<h1>History</h1>
<p>The naturalist Ilse Marrow first described the glass owl in 1887.</p>
<p>Her sketches are kept in the Vellmore museum.</p>""",
    ),
    "/private/notes.html": (
        "Private field notes",
        "<p>Private field notes: nest coordinates. ROBOTS-SHOULD-BLOCK-THIS.</p>",
    ),
}

ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
CENSUS = {"species": "glass owl", "count": 412, "year": 2024}
LARGE_BYTES = 3 * 1024 * 1024
SLOW_CHUNK_INTERVAL_S = 0.5
SLOW_CHUNKS = 30


def page_html(path: str) -> str:
    """The full HTML served at ``path`` (one of :data:`PAGES`)."""
    title, body = PAGES[path]
    return _page(title, body)


def _plain_text(html_body: str) -> str:
    import re

    return " ".join(re.sub(r"<[^>]+>", " ", html_body).split())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        self.server.requests.append((self.command, path))
        body = self._read_body()
        try:
            self._dispatch(path, query, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        if path in PAGES and self.command in ("GET", "HEAD"):
            self._send(200, page_html(path).encode(), "text/html; charset=utf-8")
        elif path == "/robots.txt":
            self._send(200, ROBOTS_TXT.encode(), "text/plain; charset=utf-8")
        elif path == "/data/owl.png":
            self._send(200, PNG_BYTES, "image/png")
        elif path == "/data/census.json":
            self._json(200, CENSUS)
        elif path == "/large.html":
            self._stream_large()
        elif path == "/slow.html":
            self._stream_slow()
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/owls/habitat.html"})
        elif path == "/redirect-loop":
            self._send(302, b"", "text/plain", {"Location": "/redirect-loop"})
        elif path == "/search":
            self._searxng(query)
        elif path == "/serper/search" and self.command == "POST":
            self._serper(body)
        elif path == "/api/echo":
            self._echo(path, query, body)
        elif path.startswith("/api/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._json(code, {"status": code})
        else:
            self._send(404, b"<html><body>not found</body></html>", "text/html; charset=utf-8")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _route

    def _stream_large(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b"<p>" + b"glass owl feather " * 3600 + b"</p>\n"
        sent = 0
        self.wfile.write(b"<html><body><main>")
        while sent < LARGE_BYTES and not self.server.stopping.is_set():
            self.wfile.write(chunk)
            sent += len(chunk)
        self.wfile.write(b"</main></body></html>")

    def _stream_slow(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(b"<html><body><main><p>slow")
        self.wfile.flush()
        for _ in range(SLOW_CHUNKS):
            if self.server.stopping.wait(SLOW_CHUNK_INTERVAL_S):
                return
            self.wfile.write(b" owl")
            self.wfile.flush()
        self.wfile.write(b"</p></main></body></html>")

    def _matches(self, q: str) -> list[tuple[str, str, str]]:
        words = [w.lower() for w in q.split() if w.strip()]
        hits = []
        for path, (title, body) in PAGES.items():
            if path.startswith("/private/"):
                continue
            text = _plain_text(body)
            if words and all(w in f"{title} {text}".lower() for w in words):
                hits.append((path, title, text[:160]))
        return hits

    def _searxng(self, query: dict[str, list[str]]) -> None:
        if query.get("format", [""])[0] != "json":
            self._send(403, b"<html><body>403 Forbidden</body></html>", "text/html; charset=utf-8")
            return
        q = query.get("q", [""])[0]
        base = self.server.base_url
        results = [
            {
                "url": base + path,
                "title": title,
                "content": snippet,
                "engine": "fixture",
                "engines": ["fixture"],
                "positions": [i + 1],
                "score": 1.0 / (i + 1),
                "category": "general",
                "parsed_url": ["http", base.split("//", 1)[1], path, "", "", ""],
            }
            for i, (path, title, snippet) in enumerate(self._matches(q))
        ]
        self._json(
            200,
            {
                "query": q,
                "number_of_results": len(results),
                "results": results,
                "answers": [],
                "corrections": [],
                "infoboxes": [],
                "suggestions": [],
                "unresponsive_engines": [],
            },
        )

    def _serper(self, body: bytes) -> None:
        if self.headers.get("X-API-KEY") != SERPER_KEY:
            self._json(403, {"message": "Unauthorized.", "statusCode": 403})
            return
        try:
            request = json.loads(body)
            q = str(request["q"])
        except (ValueError, KeyError, TypeError):
            self._json(400, {"message": "Missing query parameter", "statusCode": 400})
            return
        num = int(request.get("num", 10))
        base = self.server.base_url
        organic = [
            {"title": title, "link": base + path, "snippet": snippet, "position": i + 1}
            for i, (path, title, snippet) in enumerate(self._matches(q)[:num])
        ]
        params = {"q": q, "gl": request.get("gl", "us"), "hl": request.get("hl", "en"), "type": "search"}
        self._json(200, {"searchParameters": params, "organic": organic, "credits": 1})

    def _echo(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        try:
            decoded: Any = json.loads(body) if body else None
        except ValueError:
            decoded = body.decode("utf-8", errors="replace")
        self._json(
            200,
            {
                "method": self.command,
                "path": path,
                "query": {k: v[0] for k, v in query.items()},
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "json": decoded,
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    base_url: str
    requests: list[tuple[str, str]]
    stopping: threading.Event


class FixtureSite:
    """The fixture web site, served from a thread on 127.0.0.1 while the ``with`` block runs."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._server.base_url = self.base_url
        self._server.requests = []
        self._server.stopping = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, name="webfixture", daemon=True)

    @property
    def searxng_url(self) -> str:
        """The SearXNG-compatible instance root (``/search`` lives under it)."""
        return self.base_url

    @property
    def serper_url(self) -> str:
        """The Serper-compatible API root (``POST /search`` under it)."""
        return f"{self.base_url}/serper"

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self._server.requests

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> FixtureSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def fixture_site() -> Iterator[FixtureSite]:
    """The site as a context manager (the socket listens from construction, so it is ready at once)."""
    with FixtureSite() as site:
        yield site


@pytest.fixture(scope="module")
def web_site() -> Iterator[FixtureSite]:
    """The fixture site for a test module."""
    with fixture_site() as site:
        yield site
