"""Break-it review of the JSON-RPC client: an endpoint that answers, but one byte at a time."""

from __future__ import annotations

import pytest
import trio

from protocol.chain.aio import DEADLINE_MARGIN, AsyncRpc
from protocol.chain.errors import RpcTimeout

pytestmark = pytest.mark.integration

BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x10"}' + b" " * 200


class TricklingServer:
    """Answers every request with a valid reply, one byte every ``gap`` seconds (a slowloris
    endpoint: each read completes well within httpx's per-read timeout)."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.port = 0

    async def run(self, task_status: trio.TaskStatus[TricklingServer] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(BODY)}\r\n\r\n"
            await stream.send_all(head.encode())
            for i in range(len(BODY)):
                await stream.send_all(BODY[i : i + 1])
                await trio.sleep(self.gap)


def test_a_trickling_endpoint_times_out_at_the_request_timeout() -> None:
    # httpx's timeout bounds each read, not the request: one byte every 0.3 s kept a call with a
    # 1 s request timeout (and the watcher, which relies on it) waiting for minutes.
    async def scenario() -> float:
        async with trio.open_nursery() as nursery:
            server: TricklingServer = await nursery.start(TricklingServer(0.3).run)
            async with AsyncRpc.open(f"http://127.0.0.1:{server.port}", request_timeout=1.0) as rpc:
                start = trio.current_time()
                with pytest.raises(RpcTimeout, match=r"within 1\.0s"), trio.fail_after(20):
                    await rpc.block_number()
                elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
        return elapsed

    assert trio.run(scenario) < 1.0 + DEADLINE_MARGIN + 0.5
