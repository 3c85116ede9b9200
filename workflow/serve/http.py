"""ASGI plumbing shared by the Ollama and OpenAI endpoints: reading a JSON body, answering, and
running a generation while watching for the client going away.

An endpoint is an :class:`Endpoint` (a raw ASGI app, so Starlette routes to it without wrapping).
Its ``handle(request, answer)`` runs inside a nursery next to a task that waits for the ASGI
``http.disconnect`` message; when the client disconnects, the handler is cancelled, which stops the
model at its next token (see :mod:`workflow.serve.pool`). The pattern is Starlette's own
``StreamingResponse`` disconnect listener, applied to the whole request instead of the body only.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from protocol.log import get_logger

log = get_logger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024


class HttpError(Exception):
    """An error answered to the client with ``status``; ``message`` names the value that failed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def validation_message(exc: ValidationError) -> str:
    """One line naming each failing field and the value received."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        value = error.get("input")
        shown = json.dumps(value)[:80] if not isinstance(value, dict) else "{...}"
        parts.append(f"{where}: {error['msg']} (got {shown})")
    return "; ".join(parts)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


async def read_json(request: Request, model: type[BaseModel]) -> Any:
    """The request body parsed into ``model``; :class:`HttpError` 400 naming what is wrong
    (strict JSON: ``NaN`` / ``Infinity`` and nesting deeper than the parser's stack are refused)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HttpError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise HttpError(400, "missing request body")
    try:
        raw = json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:
        raise HttpError(400, f"invalid JSON body: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack: not a request of ours
        raise HttpError(400, "invalid JSON body: nested too deeply") from exc
    if not isinstance(raw, dict):
        raise HttpError(400, f"the request body must be a JSON object, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise HttpError(400, validation_message(exc)) from exc


class Answer:
    """Writes the response: either :meth:`json` once, or :meth:`start` then :meth:`chunk` repeatedly."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.finished = False

    async def json(self, status: int, value: Any) -> None:
        body = json.dumps(value, ensure_ascii=False).encode()
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        self.started = True
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
        self.finished = True

    async def start(self, media_type: str) -> None:
        await self._send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")],
            }
        )
        self.started = True

    async def chunk(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        self.finished = True


class Endpoint:
    """A raw ASGI endpoint; subclasses implement :meth:`handle` and :meth:`error_body`."""

    async def handle(self, request: Request, answer: Answer) -> None:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """The JSON an error is answered with (Ollama: ``{"error": ...}``)."""
        return {"error": message}

    async def stream_error(self, answer: Answer, message: str) -> None:
        """Report an error after the stream has started (Ollama: one more NDJSON line)."""
        await answer.chunk(json.dumps({"error": message}).encode() + b"\n")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_done = trio.Event()

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done.set()
            return message

        request = Request(scope, tracked_receive)
        answer = Answer(send)
        disconnected = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal disconnected
                await body_done.wait()  # the handler reads the body first; then only a disconnect can come
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        disconnected = True
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(watch)
            try:
                await self.handle(request, answer)
            except HttpError as exc:
                await self._report(answer, exc.status, exc.message)
            nursery.cancel_scope.cancel()
        if disconnected and not answer.finished:
            log.info("client_disconnected", path=scope.get("path"))

    async def _report(self, answer: Answer, status: int, message: str) -> None:
        log.info("request_failed", status=status, error=message)
        if not answer.started:
            await answer.json(status, self.error_body(status, message))
        elif not answer.finished:
            await self.stream_error(answer, message)
            await answer.end()
