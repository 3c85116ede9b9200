"""Chain access from trio: an async JSON-RPC client with real deadlines, and the web3 adapter.

Two ways in, both with separate capacity for reads and writes:

* :class:`AsyncRpc` speaks JSON-RPC over httpx, which runs on trio natively, so a
  ``trio.fail_after(t)`` around any call really cancels it (the socket is closed) and control
  returns within ``t`` + :data:`DEADLINE_MARGIN`. There is no retry inside it: retries belong to
  the caller (the watcher, the writer), bounded and logged. Daemons use this client (with
  :class:`~protocol.chain.writer.TxWriter` for transactions and
  :class:`~protocol.chain.watcher.Watcher` for events).
* :class:`TrioChain` runs the synchronous web3 facade (:class:`SynodContracts`) in worker threads:
  reads are abandoned on cancel (the orphaned thread ends within the HTTP timeout, web3's own
  retries being off), transactions are never abandoned (a nonce must not be left unknown). Kept
  for the typed helpers of ``market.py``/``registry.py`` until they are ported to the async client.

Why httpx rather than web3's async provider: web3's ``AsyncHTTPProvider`` is built on aiohttp,
which needs an asyncio loop; Synod runs one trio loop (py-libp2p), and httpx's trio backend gives
real cancellation without a thread per request.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import httpx
import orjson
import trio
from pydantic import ValidationError
from web3.contract.contract import ContractFunction

from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import (
    JsonRpcError,
    NonceTooLow,
    RangeTooLarge,
    RevertCatalog,
    RpcError,
    RpcTimeout,
)
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import Receipt, TxSender
from protocol.chain.wire import BlockHeader, RawLog, WireReceipt, hex_data, hex_quantity
from protocol.settings import ChainSettings
from protocol.types import Address

T = TypeVar("T")

DEADLINE_MARGIN = 0.05
"""Seconds by which an :class:`AsyncRpc` call may overrun the caller's ``trio.fail_after``: the
time trio needs to deliver the cancellation and httpx to close the socket (measured well under
10 ms on loopback; the tests allow this margin plus scheduler noise)."""

BlockSpec = BlockRef | int | str
"""Where a read runs: a :class:`BlockRef` (pinned by hash, EIP-1898), a block number, or a tag
(``"latest"``, ``"pending"``): only the writer uses tags, for simulation and nonces."""

_RANGE_WORDS = ("range", "too many", "limit", "more than", "too large", "response size", "exceed")


def block_param(block: BlockSpec) -> Any:
    """The JSON-RPC block parameter for ``block``: ``{"blockHash": ..., "requireCanonical": true}``
    for a :class:`BlockRef` (EIP-1898: the node answers for that exact block or fails), hex for a
    number, the tag itself otherwise."""
    if isinstance(block, BlockRef):
        return {"blockHash": hex_data(block.hash), "requireCanonical": True}
    if isinstance(block, int):
        return hex_quantity(block)
    return block


def _rpc_error(method: str, error: Any) -> JsonRpcError:
    if not isinstance(error, Mapping):
        return JsonRpcError(method, -1, f"malformed error object {error!r:.200}")
    code = error.get("code", -1)
    message = str(error.get("message", ""))
    data = error.get("data")
    code = code if isinstance(code, int) else -1
    lowered = message.lower()
    if "nonce too low" in lowered or "nonce is too low" in lowered:
        return NonceTooLow(method, code, message, data)
    if method == "eth_getLogs" and (code == -32005 or any(w in lowered for w in _RANGE_WORDS)):
        return RangeTooLarge(method, code, message, data)
    return JsonRpcError(method, code, message, data)


def revert_payload(error: JsonRpcError) -> bytes | None:
    """The revert data of an ``execution reverted`` error, if it carries any."""
    data = error.data
    if isinstance(data, Mapping):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


MAX_REPLY_BYTES = 64 * 1024 * 1024
"""The largest JSON-RPC reply read (bytes): a hostile or broken endpoint cannot exhaust memory."""

REPLY_TOO_LARGE_CODE = -32005
"""The error code given to an over-cap ``eth_getLogs`` reply (the code nodes use for "limit exceeded")."""


class AsyncRpc:
    """A JSON-RPC client on httpx for trio: typed replies, named errors, separate read capacity.

    Every method raises :class:`RpcTimeout` when the endpoint does not answer within
    ``timeout`` seconds, :class:`RpcError` when it cannot be reached or answers garbage,
    :class:`JsonRpcError` (or its :class:`NonceTooLow` / :class:`RangeTooLarge`) for an error
    object, and a decoded :class:`ContractRevert` for an ``eth_call`` that reverts with data.
    Cancellation (``trio.fail_after``) interrupts any call at once (see :data:`DEADLINE_MARGIN`).

    Reads (``write=False``, the default) share ``read_concurrency`` slots; writes skip that
    limiter, so a writer never waits behind reads and reads never wait behind a writer's receipt.
    A reply over ``max_reply_bytes`` is refused unread (an ``eth_getLogs`` one as
    :class:`RangeTooLarge`, so the watcher asks for fewer blocks).
    Build it with :meth:`open` (owns the HTTP client) at an entry point and pass it down.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        catalog: RevertCatalog | None = None,
        read_concurrency: int = 4,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._client = client
        self.url = url
        self.catalog = catalog or RevertCatalog({})
        self.max_reply_bytes = max_reply_bytes
        self._reads = trio.CapacityLimiter(read_concurrency)
        self._ids = itertools.count(1)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        request_timeout: float,
        catalog: RevertCatalog | None = None,
        read_concurrency: int = 4,
    ) -> AsyncIterator[AsyncRpc]:
        """An :class:`AsyncRpc` on its own connection pool (``read_concurrency`` + 4 connections,
        the extra ones for writers), closed on exit. ``request_timeout`` is seconds per request
        (connect, write, read and pool wait each)."""
        limits = httpx.Limits(
            max_connections=read_concurrency + 4, max_keepalive_connections=read_concurrency + 4
        )
        async with httpx.AsyncClient(timeout=httpx.Timeout(request_timeout), limits=limits) as client:
            yield cls(client, url, catalog, read_concurrency)

    @classmethod
    def from_settings(
        cls, settings: ChainSettings, catalog: RevertCatalog | None = None
    ) -> AbstractAsyncContextManager[AsyncRpc]:
        """:meth:`open` with the URL, timeout and read concurrency of ``settings``."""
        return cls.open(settings.rpc_url, settings.rpc_timeout, catalog, settings.rpc_concurrency)

    @property
    def read_limiter(self) -> trio.CapacityLimiter:
        """The capacity reads share (writes never take it)."""
        return self._reads

    # ------------------------------------------------------------------ transport

    def _total_timeout(self) -> float | None:
        parts = self._client.timeout.as_dict().values()
        limits = [p for p in parts if p is not None]
        return max(limits) if limits else None

    async def _post(self, body: Any, what: str) -> Any:
        # httpx's timeout bounds each network operation, not the request: an endpoint sending one
        # byte per few seconds would never time out. The request timeout bounds the whole call.
        total = self._total_timeout()
        try:
            with trio.fail_after(total if total is not None else math.inf):
                status, content = await self._read_reply(body, what)
        except trio.TooSlowError:
            raise RpcTimeout(f"{what}: no complete reply from {self.url} within {total}s") from None
        except httpx.TimeoutException as exc:
            raise RpcTimeout(f"{what}: no reply from {self.url} ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise RpcError(f"{what}: {self.url} unreachable: {type(exc).__name__}: {exc}") from None
        if status != 200:
            raise RpcError(f"{what}: HTTP {status} from {self.url}: {content[:200]!r}")
        try:
            return orjson.loads(content)  # several times faster than json on big getLogs replies
        except orjson.JSONDecodeError:
            raise RpcError(f"{what}: malformed JSON from {self.url}: {content[:200]!r}") from None

    async def _read_reply(self, body: Any, what: str) -> tuple[int, bytes]:
        """POST ``body``; the status and at most :attr:`max_reply_bytes` of reply. A longer reply
        raises :class:`RangeTooLarge` for ``eth_getLogs`` (the watcher halves its range) and
        :class:`RpcError` otherwise, without reading the rest."""
        async with self._client.stream("POST", self.url, json=body) as reply:
            declared = reply.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_reply_bytes:
                raise self._too_large(what, f"declares {int(declared)} bytes")
            parts: list[bytes] = []
            size = 0
            async for part in reply.aiter_bytes():
                size += len(part)
                if size > self.max_reply_bytes:
                    raise self._too_large(what, f"sent over {size} bytes")
                parts.append(part)
            return reply.status_code, b"".join(parts)

    def _too_large(self, what: str, detail: str) -> RpcError:
        message = f"reply from {self.url} {detail}, over the {self.max_reply_bytes}-byte cap"
        if what == "eth_getLogs":
            return RangeTooLarge(what, REPLY_TOO_LARGE_CODE, message)
        return RpcError(f"{what}: {message}")

    async def _limited(self, body: Any, what: str, write: bool) -> Any:
        if write:
            return await self._post(body, what)
        async with self._reads:
            return await self._post(body, what)

    def _result(self, method: str, reply: Any) -> Any:
        if not isinstance(reply, Mapping):
            raise RpcError(f"{method}: malformed reply {reply!r:.200}")
        if reply.get("error") is not None:
            raise _rpc_error(method, reply["error"])
        if "result" not in reply:
            raise RpcError(f"{method}: reply without result {reply!r:.200}")
        return reply["result"]

    async def request(self, method: str, params: Sequence[Any] = (), *, write: bool = False) -> Any:
        """One JSON-RPC call; returns its raw ``result``."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        return self._result(method, await self._limited(body, method, write))

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, write: bool = False
    ) -> list[Any | JsonRpcError]:
        """Several calls in one HTTP request (a JSON-RPC batch); results in call order, each
        either the raw ``result`` or the :class:`JsonRpcError` that call got. Replies are matched
        by id, so an endpoint that reorders them is fine; one that drops or invents ids is not."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        what = f"batch of {len(calls)} ({calls[0][0]}...)"
        replies = await self._limited(body, what, write)
        if not isinstance(replies, list):
            # a node may answer a whole batch with one error object (e.g. batch too large)
            if isinstance(replies, Mapping) and replies.get("error") is not None:
                raise _rpc_error(calls[0][0], replies["error"])
            raise RpcError(f"{what}: malformed batch reply {replies!r:.200}")
        by_id = {r.get("id"): r for r in replies if isinstance(r, Mapping)}
        out: list[Any | JsonRpcError] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            if i not in by_id:
                raise RpcError(f"{what}: reply {i} ({method}) missing from the batch")
            try:
                out.append(self._result(method, by_id[i]))
            except JsonRpcError as exc:
                out.append(exc)
        return out

    async def batch_results(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, write: bool = False
    ) -> list[Any]:
        """:meth:`batch`, raising the first call's :class:`JsonRpcError` if any call failed."""
        replies = await self.batch(calls, write=write)
        for reply in replies:
            if isinstance(reply, JsonRpcError):
                raise reply
        return replies

    # ------------------------------------------------------------------ typed reads

    async def chain_id(self) -> int:
        """``eth_chainId``."""
        return _int(await self.request("eth_chainId"), "eth_chainId")

    async def block_number(self) -> int:
        """``eth_blockNumber``: the node's head (unconfirmed)."""
        return _int(await self.request("eth_blockNumber"), "eth_blockNumber")

    async def block(self, number: int | str) -> BlockHeader | None:
        """The header of block ``number`` (or a tag); ``None`` if the node does not have it."""
        raw = await self.request("eth_getBlockByNumber", [block_param(number), False])
        return parse_header(raw, "eth_getBlockByNumber")

    async def confirmed_head(self, confirmations: int) -> BlockRef:
        """The block ``confirmations`` behind the head (never below 0), as number, hash and
        timestamp: one request at depth 0 (``latest``), two otherwise."""
        if confirmations == 0:
            header = await self.block("latest")
            if header is None:
                raise RpcError("the latest block is missing")
            return BlockRef(number=header.number, hash=header.hash, timestamp=header.timestamp)
        head = await self.block_number()
        header = await self.block(max(head - confirmations, 0))
        if header is None:
            raise RpcError(f"block {max(head - confirmations, 0)} missing although the head is {head}")
        return BlockRef(number=header.number, hash=header.hash, timestamp=header.timestamp)

    async def call(
        self,
        to: Address,
        data: bytes,
        block: BlockSpec,
        sender: Address | None = None,
        value: int = 0,
        gas: int | None = None,
        what: str = "eth_call",
        *,
        write: bool = False,
    ) -> bytes:
        """``eth_call`` at ``block``; returns the return data; a revert with data raises the
        decoded :class:`ContractRevert` (``what`` names the function in its message)."""
        tx: dict[str, Any] = {"to": to, "data": hex_data(data)}
        if sender is not None:
            tx["from"] = sender
        if value:
            tx["value"] = hex_quantity(value)
        if gas is not None:
            tx["gas"] = hex_quantity(gas)
        try:
            raw = await self.request("eth_call", [tx, block_param(block)], write=write)
        except JsonRpcError as exc:
            payload = revert_payload(exc)
            if payload is not None:
                raise self.catalog.decode(payload, what) from None
            raise
        return _bytes(raw, "eth_call")

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[Address] = (),
        topics: Sequence[Sequence[bytes] | None] = (),
    ) -> list[RawLog]:
        """``eth_getLogs`` over ``[from_block, to_block]`` for ``addresses`` and ``topics``
        (position i: any of the given words, ``None`` = any). Raises :class:`RangeTooLarge` when
        the node refuses the size."""
        query: dict[str, Any] = {"fromBlock": hex_quantity(from_block), "toBlock": hex_quantity(to_block)}
        if addresses:
            query["address"] = list(addresses)
        if topics:
            query["topics"] = [None if t is None else [hex_data(w) for w in t] for t in topics]
        return parse_logs(await self.request("eth_getLogs", [query]))

    async def transaction_count(
        self, address: Address, block: BlockSpec = "latest", *, write: bool = False
    ) -> int:
        """``eth_getTransactionCount``: the account's next nonce at ``block``."""
        raw = await self.request("eth_getTransactionCount", [address, block_param(block)], write=write)
        return _int(raw, "eth_getTransactionCount")

    async def receipt(self, tx_hash: bytes, *, write: bool = False) -> WireReceipt | None:
        """The receipt of ``tx_hash``, ``None`` while it is not mined."""
        raw = await self.request("eth_getTransactionReceipt", [hex_data(tx_hash)], write=write)
        return parse_receipt(raw)

    async def send_raw_transaction(self, raw: bytes) -> bytes:
        """``eth_sendRawTransaction`` (a write); returns the hash the node reports."""
        result = await self.request("eth_sendRawTransaction", [hex_data(raw)], write=True)
        return _bytes(result, "eth_sendRawTransaction")


def parse_header(raw: Any, what: str) -> BlockHeader | None:
    """A block header from a raw JSON-RPC result (``None`` stays ``None``)."""
    if raw is None:
        return None
    try:
        return BlockHeader.model_validate(raw)
    except ValidationError as exc:
        raise RpcError(f"{what}: malformed block: {exc.errors(include_input=False)[:1]}") from None


def parse_logs(raw: Any) -> list[RawLog]:
    """The logs of a raw ``eth_getLogs`` result (in the order received)."""
    if not isinstance(raw, list):
        raise RpcError(f"eth_getLogs: expected a list, got {raw!r:.200}")
    try:
        return [RawLog.from_rpc(entry) for entry in raw]
    except ValueError as exc:
        raise RpcError(f"eth_getLogs: malformed log: {exc}") from None


def parse_receipt(raw: Any) -> WireReceipt | None:
    """A receipt from a raw JSON-RPC result (``None`` stays ``None``)."""
    if raw is None:
        return None
    try:
        return WireReceipt.model_validate(raw)
    except ValidationError as exc:
        raise RpcError(f"malformed receipt: {exc.errors(include_input=False)[:1]}") from None


def _int(raw: Any, what: str) -> int:
    if isinstance(raw, str) and raw.startswith("0x"):
        try:
            return int(raw, 16)
        except ValueError:
            pass
    raise RpcError(f"{what}: expected a hex quantity, got {raw!r:.100}")


def _bytes(raw: Any, what: str) -> bytes:
    if isinstance(raw, str) and raw.startswith("0x"):
        try:
            return bytes.fromhex(raw[2:])
        except ValueError:
            pass
    raise RpcError(f"{what}: expected hex data, got {raw!r:.100}")


class TrioChain:
    """The async face of the synchronous :class:`SynodContracts` for trio callers.

    Reads run under their own limiter and are abandoned on cancel: the caller gets control back
    at its deadline while the orphaned thread finishes within ``settings.rpc_timeout`` (web3's
    retries are disabled in :func:`~protocol.chain.rpc.make_web3`). Transactions run under a
    separate limiter and are never abandoned (cancelling waits for the send to finish). New
    daemon code should prefer :class:`AsyncRpc` and :class:`~protocol.chain.writer.TxWriter`.
    """

    def __init__(
        self,
        chain: SynodContracts,
        limiter: trio.CapacityLimiter | None = None,
        write_limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self.chain = chain
        self.limiter = limiter or trio.CapacityLimiter(chain.settings.rpc_concurrency)
        self.write_limiter = write_limiter or trio.CapacityLimiter(1)
        self._head_lock = trio.Lock()
        self._last_head: tuple[float, BlockRef] | None = None
        """(trio time its read started, the head) of the newest shared head read."""

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous READ in a worker thread under the read limiter (abandoned on cancel)."""
        return await trio.to_thread.run_sync(
            partial(fn, *args, **kwargs), limiter=self.limiter, abandon_on_cancel=True
        )

    async def head(self, max_age: float = 0.0) -> BlockRef:
        """The confirmed head (``settings.confirmations`` deep).

        ``max_age`` > 0 shares head reads between callers: a head whose read STARTED at most
        ``max_age`` seconds before this call is returned as is, and callers arriving while a
        shared read is under way wait for it rather than sending their own (one request for a
        burst of typed reads). The head returned is then at most ``max_age`` seconds older than
        the call: use it only where a read that old is as good as a fresh one (the chain
        re-checks every transaction). ``max_age`` 0 always reads anew."""
        if max_age <= 0:
            return await self.run(self.chain.head)
        arrived = trio.current_time()
        async with self._head_lock:
            last = self._last_head
            if last is not None and last[0] >= arrived - max_age:
                return last[1]
            started = trio.current_time()
            ref = await self.run(self.chain.head)
            self._last_head = (started, ref)
            return ref

    async def read(self, fn: ContractFunction, block: BlockRef) -> Any:
        """A view call pinned to ``block``."""
        return await self.run(self.chain.read, fn, block)

    async def transact(
        self, sender: TxSender, fn: ContractFunction, value: int = 0, label: str | None = None
    ) -> Receipt:
        """Send through the synchronous ``sender`` under the write limiter (never abandoned)."""
        return await trio.to_thread.run_sync(
            partial(sender.transact, fn, value, label), limiter=self.write_limiter
        )


__all__ = [
    "DEADLINE_MARGIN",
    "AsyncRpc",
    "BlockSpec",
    "TrioChain",
    "block_param",
    "parse_header",
    "parse_logs",
    "parse_receipt",
    "revert_payload",
]
