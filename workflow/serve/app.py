"""``synod model serve``: the local model behind Ollama's and OpenAI's HTTP APIs, on trio.

The ASGI app is Starlette (routing, requests), served by Hypercorn's trio worker
(``hypercorn.trio.serve``): one trio loop, no asyncio beside it. :func:`serve` loads the model into
its slots first (so a bad GGUF fails before the port is bound), binds the socket itself (so a port
in use is a clear error, and port 0 picks a free one), then serves until ``shutdown`` is set or the
task is cancelled; the model is freed after the last request.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from protocol.log import get_logger
from workflow.serve import ollama_api, openai_api
from workflow.serve.pool import ModelPool
from workflow.serve.state import ServedModel, ServeSettings, ServeState, file_digest

log = get_logger(__name__)

VERSION = "0.1.0"


class ServeError(Exception):
    """The server cannot start: the model does not load, the address cannot be bound."""


def build_app(state: ServeState) -> Starlette:
    """The ASGI app: Ollama's ``/api/*`` and OpenAI's ``/v1/*`` over ``state.pool``."""

    async def root(_request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def not_found(request: Request, _exc: Exception) -> Response:
        return JSONResponse({"error": f"{request.method} {request.url.path}: not found"}, status_code=404)

    async def not_allowed(request: Request, _exc: Exception) -> Response:
        return JSONResponse(
            {"error": f"{request.method} {request.url.path}: method not allowed"}, status_code=405
        )

    routes = [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/version", ollama_api.VersionEndpoint(state), methods=["GET"]),
        Route("/api/tags", ollama_api.TagsEndpoint(state), methods=["GET"]),
        Route("/api/ps", ollama_api.PsEndpoint(state), methods=["GET"]),
        Route("/api/show", ollama_api.ShowEndpoint(state), methods=["POST"]),
        Route("/api/generate", ollama_api.GenerateEndpoint(state), methods=["POST"]),
        Route("/api/chat", ollama_api.ChatEndpoint(state), methods=["POST"]),
        Route("/v1/models", openai_api.ModelsEndpoint(state), methods=["GET"]),
        Route("/v1/completions", openai_api.CompletionsEndpoint(state), methods=["POST"]),
        Route("/v1/chat/completions", openai_api.ChatCompletionsEndpoint(state), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); :class:`ServeError` naming the address if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"{host}:{port} is already in use (another server? pick one with --port)"
            ) from exc
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def load_model(settings: ServeSettings) -> tuple[ModelPool, ServedModel]:
    """Assemble / check the GGUF and load every slot; :class:`ServeError` naming the file on failure."""
    path = settings.gguf
    if path is None:
        from workflow.providers.local import default_model_path

        try:
            path = await trio.to_thread.run_sync(default_model_path)
        except (OSError, ValueError) as exc:
            raise ServeError(f"cannot assemble the packaged GGUF: {exc}") from exc
    if not path.is_file():
        raise ServeError(f"GGUF file {path} does not exist")
    pool = ModelPool(
        path,
        parallel=settings.parallel,
        threads=settings.threads,
        n_ctx=settings.ctx,
        max_queue=settings.max_queue,
    )
    try:
        await pool.load()
    except (ValueError, RuntimeError, OSError) as exc:
        await pool.aclose()
        raise ServeError(f"llama.cpp cannot load {path}: {exc} (is it a complete GGUF model file?)") from exc
    digest = await trio.to_thread.run_sync(file_digest, path)
    return pool, ServedModel.describe(settings.tag, Path(path), pool.metadata, digest)


async def serve(
    settings: ServeSettings,
    *,
    shutdown: trio.Event | None = None,
    on_ready: Callable[[str], Awaitable[None] | None] | None = None,
) -> None:
    """Load the model, bind, and serve until ``shutdown`` is set (or the task is cancelled).

    ``on_ready(url)`` is called once the socket listens (the URL has the real port when ``port`` is 0).
    Raises :class:`ServeError` when the model does not load or the address cannot be bound.
    """
    pool, model = await load_model(settings)
    try:
        sock = bind(settings.host, settings.port)
        port = sock.getsockname()[1]
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        url = f"http://{host}:{port}"
        state = ServeState(settings=settings, model=model, pool=pool, version=VERSION)
        config = Config()
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 5.0
        config.keep_alive_timeout = 30.0
        log.info(
            "model_serving",
            url=url,
            model=model.tag,
            path=str(model.path),
            parallel=settings.parallel,
            ctx=settings.ctx,
        )
        stop = shutdown if shutdown is not None else trio.Event()

        async def stopping() -> None:
            # end every open generation with an error first: hypercorn's graceful stop then finds
            # them answered (a streaming client gets a last {"error": ...} line, not a cut stream)
            await stop.wait()
            pool.shut()

        async with trio.open_nursery() as nursery:

            async def run_server() -> None:
                # hypercorn.trio.serve() binds from config.bind; worker_serve() takes our bound socket.
                asgi: Any = build_app(state)  # Starlette's ASGI types are structurally Hypercorn's
                app = wrap_app(asgi, config.wsgi_max_body_size, "asgi")
                sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
                await worker_serve(app, config, sockets=sockets, shutdown_trigger=stopping)
                nursery.cancel_scope.cancel()

            nursery.start_soon(run_server)
            if on_ready is not None:
                ready = on_ready(url)
                if ready is not None:
                    await ready
    finally:
        with trio.CancelScope(shield=True):
            await pool.aclose()
