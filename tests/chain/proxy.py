"""A hostile JSON-RPC proxy on 127.0.0.1 for the chain tests: real sockets, real HTTP (h11).

It forwards to a real Anvil and, depending on :attr:`HostileProxy.mode`, misbehaves the way a bad
endpoint does:

* ``pass``      forward everything unchanged
* ``refuse``    stop listening: connections are refused (ECONNREFUSED), open ones are dropped
* ``hang``      accept and read the request, never answer
* ``lag``       behave like a node ``lag`` blocks behind: a lower head, no blocks above it,
                ``eth_getLogs`` clipped to it
* ``lie``       claim a head ``lie`` blocks ahead of the real one (blocks it cannot serve)
* ``shuffle``   return ``eth_getLogs`` results in reverse order
* ``limit``     refuse ``eth_getLogs`` spanning more than ``limit`` blocks (Infura's -32005 error)
* ``removed``   mark every log of the next ``eth_getLogs`` reply ``removed: true`` (once)
* ``swallow``   forward the next ``eth_sendRawTransaction`` to the chain, then never answer (once):
                the transaction is in, the sender cannot know it

Modes combine with a set (``proxy.modes = {"shuffle", "limit"}``). Counters record what it did.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import h11
import httpx
import trio


class HostileProxy:
    """Serve on ``127.0.0.1:port`` (a free port chosen at :meth:`start`), forwarding to ``upstream``."""

    def __init__(self, upstream: str, lag: int = 5, lie: int = 1000, limit: int = 10) -> None:
        self.upstream = upstream
        self.modes: set[str] = {"pass"}
        self.lag = lag
        self.lie = lie
        self.limit = limit
        self.port = 0
        self.counts: Counter[str] = Counter()
        self._client: httpx.AsyncClient | None = None
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        return ",".join(sorted(self.modes))

    async def run(self, task_status: trio.TaskStatus[HostileProxy] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled (start it with ``await nursery.start(proxy.run)``)."""
        async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
            self._client = client
            self._nursery = nursery
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            self._serve(listeners)
            task_status.started(self)
            await trio.sleep_forever()

    def _serve(self, listeners: list[trio.SocketListener]) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        self._scope = scope

        async def serve() -> None:
            try:
                with scope:
                    await trio.serve_listeners(self._handle, listeners)
            finally:
                for listener in listeners:
                    await listener.aclose()

        self._nursery.start_soon(serve)

    async def set_mode(self, *modes: str) -> None:
        """Switch behaviour; ``refuse`` closes the listening socket, leaving it re-opens it."""
        new = set(modes) or {"pass"}
        if "refuse" in new and "refuse" not in self.modes:
            assert self._scope is not None
            self._scope.cancel()  # closes the listener and every open connection
            await trio.lowlevel.checkpoint()
        elif "refuse" in self.modes and "refuse" not in new:
            listeners = await self._rebind()
            self._serve(listeners)
        self.modes = new

    async def _rebind(self) -> list[trio.SocketListener]:
        """Listen on our port again (SO_REUSEADDR is set by trio); retried briefly in case the
        kernel still holds it."""
        for attempt in range(50):
            try:
                return await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            except OSError:
                if attempt == 49:
                    raise
                await trio.sleep(0.1)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                body = b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                        continue
                    if isinstance(event, h11.Data):
                        body += bytes(event.data)
                    if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
                if isinstance(event, h11.ConnectionClosed):
                    return
                if "hang" in self.modes:
                    self.counts["hung"] += 1
                    await trio.sleep_forever()
                reply = await self._answer(body)
                headers = [("content-type", "application/json"), ("content-length", str(len(reply)))]
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
                await stream.send_all(conn.send(h11.Data(data=reply)) or b"")
                await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await stream.aclose()

    # ------------------------------------------------------------------ JSON-RPC

    async def _real_head(self) -> int:
        reply = await self._forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})
        return int(reply["result"], 16)

    async def _forward(self, body: Any) -> Any:
        assert self._client is not None
        response = await self._client.post(self.upstream, json=body)
        return response.json()

    async def _answer(self, raw: bytes) -> bytes:
        request = json.loads(raw)
        if isinstance(request, list):
            replies = [await self._one(call) for call in request]
            return json.dumps(replies).encode()
        return json.dumps(await self._one(request)).encode()

    async def _one(self, call: dict[str, Any]) -> Any:
        method = call.get("method")
        if method == "eth_sendRawTransaction" and "swallow" in self.modes:
            self.modes.discard("swallow")
            await self._forward(call)
            self.counts["swallowed"] += 1
            await trio.sleep_forever()
        params = call.get("params", [])
        ident = call.get("id")

        def result(value: Any) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": ident, "result": value}

        if "lag" in self.modes or "lie" in self.modes:
            real = await self._real_head()
            shown = real - self.lag if "lag" in self.modes else real + self.lie
            if method == "eth_blockNumber":
                self.counts[f"head_{'lag' if 'lag' in self.modes else 'lie'}"] += 1
                return result(hex(max(shown, 0)))
            if method == "eth_getBlockByNumber" and "lag" in self.modes:
                wanted = params[0]
                number = shown if wanted in ("latest", "pending", "safe", "finalized") else int(wanted, 16)
                if number > shown:
                    self.counts["lag_null_block"] += 1
                    return result(None)
                call = {**call, "params": [hex(number), *params[1:]]}
            if method == "eth_getLogs" and "lag" in self.modes:
                query = dict(params[0])
                if int(query["toBlock"], 16) > shown:
                    query["toBlock"] = hex(max(shown, 0))
                    self.counts["lag_clipped_logs"] += 1
                if int(query["fromBlock"], 16) > int(query["toBlock"], 16):
                    return result([])
                call = {**call, "params": [query]}
        if method == "eth_getLogs" and "limit" in self.modes:
            query = params[0]
            span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
            if span > self.limit:
                self.counts["limit_refused"] += 1
                message = f"query exceeds max block range {self.limit}"
                return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32005, "message": message}}
        reply = await self._forward(call)
        if method == "eth_getLogs" and isinstance(reply.get("result"), list):
            logs: list[dict[str, Any]] = reply["result"]
            if "shuffle" in self.modes and len(logs) > 1:
                self.counts["shuffled"] += 1
                reply = {**reply, "result": list(reversed(logs))}
            if "removed" in self.modes and logs:
                self.counts["removed"] += 1
                self.modes.discard("removed")
                reply = {**reply, "result": [{**entry, "removed": True} for entry in logs]}
        return reply


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def run(self, task_status: trio.TaskStatus[SilentServer] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        async with stream:
            while await stream.receive_some(65536):
                pass
