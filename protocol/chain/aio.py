"""Calling the synchronous chain code from trio: worker threads behind one capacity limiter.

web3 is synchronous; every call is bounded by the HTTP timeout and the sender's bounded retries,
so a thread is never abandoned mid-transaction (``abandon_on_cancel=False``): cancelling a caller
waits for the call in flight to finish rather than leave a nonce in an unknown state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio
from web3.contract.contract import ContractFunction

from protocol.chain.contracts import SynodContracts
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import Receipt, TxSender

T = TypeVar("T")


class TrioChain:
    """The async face of :class:`SynodContracts` for trio callers."""

    def __init__(self, chain: SynodContracts, limiter: trio.CapacityLimiter | None = None) -> None:
        self.chain = chain
        self.limiter = limiter or trio.CapacityLimiter(chain.settings.rpc_concurrency)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any synchronous chain call in a worker thread under the limiter."""
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.limiter)

    async def head(self) -> BlockRef:
        return await self.run(self.chain.head)

    async def read(self, fn: ContractFunction, block: BlockRef) -> Any:
        return await self.run(self.chain.read, fn, block)

    async def transact(
        self, sender: TxSender, fn: ContractFunction, value: int = 0, label: str | None = None
    ) -> Receipt:
        return await self.run(sender.transact, fn, value, label)
