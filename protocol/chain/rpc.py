"""The web3 connection, block pinning and the translation of web3 failures into Synod errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import RPCEndpoint

from protocol.chain.errors import ContractRevert, RevertCatalog, RpcError
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


def confirmed_head(w3: Web3, catalog: RevertCatalog, confirmations: int) -> BlockRef:
    """The block ``confirmations`` behind the head (never below 0), as a frozen reference."""
    with translated(catalog, "eth_getBlockByNumber"):
        head = w3.eth.block_number
        block = w3.eth.get_block(max(head - confirmations, 0))
    number, block_hash = block.get("number"), block.get("hash")
    if number is None or block_hash is None:
        raise RpcError(f"block {head - confirmations} came back without number/hash")
    return BlockRef(number=int(number), hash=bytes(block_hash))
