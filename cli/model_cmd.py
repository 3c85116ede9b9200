"""``synod model``: one local model served to every process of the machine.

::

    synod model serve [--model NAME] [--gguf PATH] [--host 127.0.0.1] [--port 11434]
                      [--parallel N] [--threads N] [--ctx N] [--max-queue N] [--request-timeout S]

Serves the packaged Gemma 3 270M (or ``--gguf PATH``) over Ollama's HTTP API (``/api/*``) and the
OpenAI-compatible API (``/v1/*``); see docs/model-serve.md. When it listens it prints one line on
stdout, ``synod model serve: listening on http://HOST:PORT ...`` (``--port 0`` picks a free port and
the line has it). SIGINT / SIGTERM stop it gracefully: running and queued generations end with an
error (a started stream with a last ``{"error": ...}`` line), other requests get a few seconds.
Errors (a GGUF that does not load, a port in use) are one line on stderr; exit code 3 (2 for bad
arguments).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_RUNTIME = 3


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``serve`` to ``synod model``."""
    sub = parser.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    serve = sub.add_parser("serve", help="serve the local model over Ollama's and OpenAI's HTTP APIs")
    serve.add_argument(
        "--model", default=None, help="served model name (default: gemma3-270m, or the GGUF's stem)"
    )
    serve.add_argument(
        "--gguf", type=Path, default=None, help="a GGUF model file (default: the packaged Gemma 3 270M)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument(
        "--port", type=int, default=11434, help="port (default 11434, Ollama's; 0 picks a free one)"
    )
    serve.add_argument(
        "--parallel", type=int, default=1, help="requests generated at once, one model copy each (1)"
    )
    serve.add_argument(
        "--threads", type=int, default=2, help="llama.cpp threads in total, split among slots (2)"
    )
    serve.add_argument("--ctx", type=int, default=4096, help="context size per slot, in tokens (4096)")
    serve.add_argument("--max-queue", type=int, default=64, help="requests allowed to wait for a slot (64)")
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="deadline of one request in seconds, queue included (300)",
    )


def _fail(message: str, code: int) -> int:
    print(f"synod model serve: {message}", file=sys.stderr, flush=True)
    return code


def _serve(args: argparse.Namespace) -> int:
    import pydantic
    import trio

    from workflow.serve.app import ServeError, serve
    from workflow.serve.http import validation_message
    from workflow.serve.state import ServeSettings

    name = args.model or (args.gguf.stem if args.gguf is not None else "gemma3-270m")
    try:
        settings = ServeSettings(
            name=name,
            gguf=args.gguf,
            host=args.host,
            port=args.port,
            parallel=args.parallel,
            threads=args.threads,
            ctx=args.ctx,
            max_queue=args.max_queue,
            request_timeout_s=args.request_timeout,
        )
    except pydantic.ValidationError as exc:
        return _fail(validation_message(exc).replace("request_timeout_s", "request-timeout"), EXIT_USAGE)

    async def main() -> str | None:
        """Serve until a signal; the error message if the server cannot start."""
        shutdown = trio.Event()

        def ready(url: str) -> None:
            slots = f"{settings.parallel} slot{'s' if settings.parallel > 1 else ''}"
            print(
                f"synod model serve: listening on {url} ({settings.tag}, {slots}, ctx {settings.ctx})",
                flush=True,
            )

        failure: str | None = None
        async with trio.open_nursery() as nursery:

            async def on_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        shutdown.set()
                        return

            nursery.start_soon(on_signals)
            try:
                await serve(settings, shutdown=shutdown, on_ready=ready)
            except ServeError as exc:  # caught here: out of the nursery it would come in a group
                failure = str(exc)
            nursery.cancel_scope.cancel()
        return failure

    failure = trio.run(main)
    if failure is not None:
        return _fail(failure, EXIT_RUNTIME)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Entry point called by :mod:`cli.main`."""
    if args.model_command == "serve":
        return _serve(args)
    return _fail(f"unknown subcommand {args.model_command!r}", EXIT_USAGE)
