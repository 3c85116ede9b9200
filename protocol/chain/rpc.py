"""The web3 connection, block pinning and the translation of web3 failures into Synod errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from pydantic import ValidationError
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import RPCEndpoint

from protocol.chain.errors import ContractRevert, JsonRpcError, RevertCatalog, RpcError
from protocol.chain.wire import BlockHeader
from protocol.settings import ChainSettings


def make_web3(settings: ChainSettings) -> Web3:
    """A synchronous Web3 over HTTP with the configured per-request timeout and NO retries.

    web3's HTTP provider retries by default (``exception_retry_configuration``), which multiplies
    the timeout (a hanging endpoint with a 1 s timeout took 7 s and 10 connections) and re-sends
    raw transactions behind the sender's back; retries are the caller's, bounded and logged. So one
    call takes at most ``settings.rpc_timeout`` (connect + read).
    """
    provider = HTTPProvider(
        settings.rpc_url,
        request_kwargs={"timeout": settings.rpc_timeout},
        exception_retry_configuration=None,
        # web3's validation middleware asks ``eth_chainId`` before EVERY eth_call, estimate and
        # send (to check the call's chainId): twice the requests of every read, and 16 % of a
        # devnet node's CPU in the bench's profile. A chain's id does not change: ask it once.
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
    )
    return Web3(provider)


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A frozen reference to one block, by number AND hash.

    The async client (:class:`~protocol.chain.aio.AsyncRpc`) reads at exactly this block by hash
    (EIP-1898 ``{"blockHash": ..., "requireCanonical": true}``: a block reorged away is refused,
    not silently replaced); the synchronous web3 path passes ``block_identifier=ref.number``.
    """

    number: int
    hash: bytes
    timestamp: int | None = field(default=None, compare=False)
    """The block's timestamp (unix seconds) when the reader had it (:func:`confirmed_head` does);
    not part of the reference's identity."""

    @property
    def block_identifier(self) -> int:
        return self.number


def revert_data(exc: ContractLogicError) -> bytes | None:
    """The raw revert data a web3 ``ContractLogicError`` carries, if any."""
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes(HexBytes(data))
        except ValueError:
            return None
    return None


@contextmanager
def translated(catalog: RevertCatalog, what: str) -> Iterator[None]:
    """Turn web3/requests failures inside the block into :class:`ContractRevert` / :class:`RpcError`."""
    try:
        yield
    except ContractLogicError as exc:
        data = revert_data(exc)
        if data is None:
            raise RpcError(f"{what} reverted without data: {exc.message}") from None
        raise catalog.decode(data, what) from None
    except ContractRevert:
        raise
    except (Web3Exception, OSError) as exc:  # requests' errors are OSErrors
        raise RpcError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def raw_request(w3: Web3, method: str, params: list[Any]) -> Any:
    """One JSON-RPC request straight through ``w3``'s provider; returns the raw ``result``.

    It skips web3's request/result middleware and formatters (the chain-id check, attribute
    dicts, hex formatting: most of the CPU of a small read), so the caller parses the raw JSON
    values itself. Raises :class:`JsonRpcError` for an error object, :class:`RpcError` for a reply
    without a result; transport failures raise what the provider raises (``OSError`` from
    requests: wrap the call in :func:`translated`).
    """
    reply = w3.provider.make_request(RPCEndpoint(method), params)
    error = reply.get("error")
    if error is not None:
        if not isinstance(error, Mapping):
            raise JsonRpcError(method, -1, f"malformed error object {error!r:.200}")
        code = error.get("code", -1)
        raise JsonRpcError(
            method, code if isinstance(code, int) else -1, str(error.get("message", "")), error.get("data")
        )
    if "result" not in reply:
        raise RpcError(f"{method}: reply without result {reply!r:.200}")
    return reply["result"]


def confirmed_head(w3: Web3, catalog: RevertCatalog, confirmations: int) -> BlockRef:
    """The block ``confirmations`` behind the head (never below 0), as a frozen reference with its
    timestamp. One request (``eth_getBlockByNumber("latest")``) at depth 0, two otherwise (the head
    number, then that block)."""
    with translated(catalog, "eth_getBlockByNumber"):
        if confirmations == 0:
            where = "latest"
        else:
            head = raw_request(w3, "eth_blockNumber", [])
            if not isinstance(head, str) or not head.startswith("0x"):
                raise RpcError(f"eth_blockNumber: expected a hex quantity, got {head!r:.100}")
            where = hex(max(int(head, 16) - confirmations, 0))
        raw = raw_request(w3, "eth_getBlockByNumber", [where, False])
    if raw is None:
        raise RpcError(f"block {where} ({confirmations} confirmations) is missing")
    try:
        header = BlockHeader.model_validate(raw)
    except ValidationError as exc:
        detail = exc.errors(include_input=False)[:1]
        raise RpcError(f"eth_getBlockByNumber: malformed block: {detail}") from None
    return BlockRef(number=header.number, hash=header.hash, timestamp=header.timestamp)
