"""Every call keeps its deadline, even against an endpoint that accepts connections and never
answers; reads never wait behind writes; reads are pinned by block number AND hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from web3.exceptions import Web3Exception

from protocol.chain.aio import DEADLINE_MARGIN, AsyncRpc, TrioChain
from protocol.chain.contracts import SynodContracts
from protocol.chain.deployment import Deployment
from protocol.chain.errors import JsonRpcError, RevertCatalog, RpcError, RpcTimeout
from protocol.chain.events import ViewDecoder
from protocol.chain.rpc import BlockRef, make_web3
from protocol.chain.signer import anvil_dev_signer
from protocol.chain.writer import TxCall, TxWriter
from protocol.settings import ChainSettings
from tests.chain.helpers import DEPLOYER, OTHER, abi, automine, deploy, mine, mint
from tests.chain.proxy import SilentServer

pytestmark = pytest.mark.integration

SLACK = 0.25
"""Scheduler noise allowed on top of DEADLINE_MARGIN on a loaded 2-core machine."""


def test_async_read_returns_at_the_callers_deadline() -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            server: SilentServer = await nursery.start(SilentServer().run)
            async with AsyncRpc.open(server.url, request_timeout=30.0) as rpc:
                start = trio.current_time()
                with pytest.raises(trio.TooSlowError), trio.fail_after(0.3):
                    await rpc.block_number()
                assert trio.current_time() - start < 0.3 + DEADLINE_MARGIN + SLACK
            nursery.cancel_scope.cancel()

    async def short_timeout() -> None:
        # the request timeout alone: one attempt, one connection, no retries behind our back
        async with trio.open_nursery() as nursery:
            server: SilentServer = await nursery.start(SilentServer().run)
            async with AsyncRpc.open(server.url, request_timeout=0.5) as rpc:
                start = trio.current_time()
                with pytest.raises(RpcTimeout):
                    await rpc.block_number()
                assert 0.5 <= trio.current_time() - start < 0.5 + DEADLINE_MARGIN + SLACK
            assert server.connections == 1
            nursery.cancel_scope.cancel()

    trio.run(scenario)
    trio.run(short_timeout)


def test_a_send_returns_at_the_callers_deadline_and_stays_tracked() -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            server: SilentServer = await nursery.start(SilentServer().run)
            settings = ChainSettings(rpc_url=server.url, rpc_timeout=5.0)
            async with AsyncRpc.from_settings(settings) as rpc:
                writer = TxWriter(rpc, anvil_dev_signer(3, 31337), 31337, settings)
                await nursery.start(writer.run)
                call = TxCall(to=OTHER, data=b"", value=1, label="pay")
                start = trio.current_time()
                with pytest.raises(trio.TooSlowError), trio.fail_after(0.5):
                    await writer.transact(call)
                assert trio.current_time() - start < 0.5 + DEADLINE_MARGIN + SLACK
                assert len(writer.tracked) == 1  # the request is not forgotten
                nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_web3_reads_are_abandoned_at_the_deadline_and_web3_does_not_retry(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            server: SilentServer = await nursery.start(SilentServer().run)
            settings = ChainSettings(rpc_url=server.url, rpc_timeout=1.0)
            w3 = make_web3(settings)
            deployment = Deployment.model_validate(
                {
                    "chainId": 31337,
                    "deployBlock": 0,
                    "deployer": DEPLOYER,
                    "contracts": {
                        name: {"address": DEPLOYER, "artifact": "x"}
                        for name in ("DevnetToken", "StakeRegistry", "TaskMarket")
                    },
                }
            )
            chain = SynodContracts(settings, w3, 31337, deployment, {}, RevertCatalog({}))
            trio_chain = TrioChain(chain)
            start = trio.current_time()
            with pytest.raises(trio.TooSlowError), trio.fail_after(0.3):
                await trio_chain.head()
            assert trio.current_time() - start < 0.3 + DEADLINE_MARGIN + SLACK
            # synchronously: one request, bounded by rpc_timeout (web3's retries are off)
            before = server.connections
            start = trio.current_time()
            with pytest.raises((RpcError, Web3Exception, OSError)):
                await trio.to_thread.run_sync(lambda: w3.eth.block_number)
            assert trio.current_time() - start < 1.0 + SLACK + 0.5
            assert server.connections - before == 1
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_reads_do_not_wait_behind_a_pending_write(anvil_url: str) -> None:
    async def scenario() -> None:
        settings = ChainSettings(rpc_url=anvil_url, rpc_concurrency=2, receipt_poll=0.02)
        async with AsyncRpc.from_settings(settings) as rpc, trio.open_nursery() as nursery:
            writer = TxWriter(rpc, anvil_dev_signer(3, 31337), 31337, settings)
            await nursery.start(writer.run)
            await automine(rpc, False)
            handle = await writer.submit(TxCall(to=OTHER, data=b"", value=5, label="pay"))
            with trio.fail_after(5):
                while not handle.sent:  # noqa: ASYNC110 -- polling for readiness
                    await trio.sleep(0.01)
            # the write is waiting for a block that does not come; reads still flow, fast
            start = trio.current_time()
            async with trio.open_nursery() as readers:
                for _ in range(20):
                    readers.start_soon(rpc.block_number)
            assert trio.current_time() - start < 2.0
            assert not handle.done
            # and a writer does not wait for read capacity: hold every read slot, then mine
            borrowers = [object(), object()]
            for borrower in borrowers:
                await rpc.read_limiter.acquire_on_behalf_of(borrower)
            assert rpc.read_limiter.available_tokens == 0
            await rpc.request("evm_mine", [], write=True)
            with trio.fail_after(5):
                receipt = await handle.wait()
            for borrower in borrowers:
                rpc.read_limiter.release_on_behalf_of(borrower)
            assert receipt.status == 1
            await automine(rpc, True)
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_reads_are_pinned_by_number_and_hash(anvil_url: str) -> None:
    async def scenario() -> None:
        async with AsyncRpc.open(anvil_url, 5.0) as rpc:
            token = await deploy(rpc, "DevnetToken")
            views = ViewDecoder(abi("DevnetToken"), "DevnetToken")
            await mint(rpc, token, OTHER, 7)
            await mine(rpc, 2)
            pinned = await rpc.confirmed_head(2)
            head = await rpc.block_number()
            assert pinned.number == head - 2
            header = await rpc.block(pinned.number)
            assert header is not None and header.hash == pinned.hash
            await mint(rpc, token, OTHER, 100)
            data = views.encode("balanceOf", OTHER)
            at_pin = views.decode("balanceOf", await rpc.call(token, data, pinned))
            latest = views.decode("balanceOf", await rpc.call(token, data, "latest"))
            assert at_pin.value == 7  # type: ignore[attr-defined]
            assert latest.value == 107  # type: ignore[attr-defined]
            # a block reference whose hash is no longer canonical is refused, not silently read
            await rpc.request("anvil_reorg", [await rpc.block_number() - pinned.number + 1, []])
            with pytest.raises(JsonRpcError):
                await rpc.call(token, data, pinned)
            stale = BlockRef(number=pinned.number, hash=b"\x11" * 32)
            with pytest.raises(JsonRpcError):
                await rpc.call(token, data, stale)

    trio.run(scenario)
