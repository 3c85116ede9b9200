"""A Prometheus endpoint for each daemon: its own registry, served from its own trio nursery.

Each service builds one registry with :func:`new_registry` (never prometheus_client's global
default registry, so two services in one process, or a test, never share counters), registers
its metrics on it, and runs :func:`serve_metrics` in its nursery::

    registry = new_registry("node")
    fetched = Counter("synod_p2p_fetches", "results fetched", registry=registry)
    endpoint = await nursery.start(serve_metrics, registry, MetricsSettings(port=9101))

The HTTP side is a minimal HTTP/1.1 server on :func:`trio.serve_listeners` with ``h11`` for the
parsing (the sans-IO parser httpx's stack is built on): ``GET /metrics`` returns
``generate_latest(registry)``; anything else is 404/405; every connection has a deadline and
carries one request.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Info, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from protocol.log import get_logger

log = get_logger(__name__)

MAX_REQUEST_BYTES = 16 * 1024
"""A scrape request larger than this (headers included) is refused with 431."""


class MetricsSettings(BaseModel):
    """Where the endpoint listens: 127.0.0.1 by default; port 0 picks a free port."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    request_timeout: float = Field(default=5.0, gt=0, le=60)
    """Seconds a client has to send its request and read the answer."""


@dataclass(frozen=True)
class MetricsEndpoint:
    """A running endpoint: ``url`` is ``http://host:port/metrics``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"


def new_registry(service: str) -> CollectorRegistry:
    """A fresh registry for one service, with ``synod_service_info{service=...}`` registered."""
    registry = CollectorRegistry(auto_describe=True)
    Info("synod_service", "which Synod service exports these metrics", registry=registry).info(
        {"service": service}
    )
    return registry


def _response(status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> list[h11.Event]:
    headers = [
        ("content-type", content_type),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    return [h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()]


async def _read_request(stream: trio.SocketStream, conn: h11.Connection) -> h11.Request | None:
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            return event
        if event is h11.NEED_DATA:
            data = await stream.receive_some(4096)
            if not data:
                return None
            conn.receive_data(data)
        elif isinstance(event, h11.ConnectionClosed):
            return None


def _answer(registry: CollectorRegistry, request: h11.Request) -> list[h11.Event]:
    target = request.target.split(b"?", 1)[0]
    if request.method != b"GET":
        return _response(405, b"405 method not allowed: GET /metrics\n")
    if target != b"/metrics":
        return _response(404, b"404 not found: try /metrics\n")
    return _response(200, generate_latest(registry), CONTENT_TYPE_LATEST)


async def _handle(registry: CollectorRegistry, settings: MetricsSettings, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    try:
        with trio.fail_after(settings.request_timeout):
            try:
                request = await _read_request(stream, conn)
            except h11.RemoteProtocolError as exc:
                # h11 lets a server answer a request it could not parse (their_state is ERROR).
                log.warning("metrics_bad_request", reason=str(exc))
                events = _response(exc.error_status_hint, b"bad request\n")
            else:
                if request is None:
                    return
                events = _answer(registry, request)
            for event in events:
                data = conn.send(event)
                if data:
                    await stream.send_all(data)
    except trio.TooSlowError:
        log.warning("metrics_client_timeout", timeout=settings.request_timeout)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError) as exc:
        log.debug("metrics_connection_lost", reason=str(exc))
    finally:
        await trio.aclose_forcefully(stream)


async def serve_metrics(
    registry: CollectorRegistry,
    settings: MetricsSettings | None = None,
    *,
    task_status: trio.TaskStatus[MetricsEndpoint] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``registry`` until cancelled; ``await nursery.start(serve_metrics, ...)`` returns the
    :class:`MetricsEndpoint` once the port is bound. Raises ``OSError`` if the port is taken."""
    settings = settings or MetricsSettings()
    listeners = await trio.open_tcp_listeners(settings.port, host=settings.host)
    port = int(listeners[0].socket.getsockname()[1])
    endpoint = MetricsEndpoint(host=settings.host, port=port)
    log.info("metrics_listening", url=endpoint.url)
    task_status.started(endpoint)

    async def handler(stream: trio.SocketStream) -> None:
        await _handle(registry, settings, stream)

    await trio.serve_listeners(handler, listeners)
