"""``synod node run``: check everything once at the entry point, then run the daemon until a signal.

Start-up, in order, each failure one line on stderr naming what to fix (exit 2: config, keystore,
store; 3: chain, account, model server):

1. the config and its ``[run]`` table (:class:`node.config.NodeRunSettings`; fields named
   ``run.<field>``); ``SYNOD_HALT_AT`` must be a known crash point;
2. the keystore password (``--password-file``, ``$SYNOD_KEYSTORE_PASSWORD``,
   ``account.password_file``): a wrong one says so;
3. the chain (:func:`protocol.operator.connect.connect`: right chain, deployment, code);
4. the account: registered as a node, stake at least the minimum, not unbonding, and serving
   (on chain) at least one configured model; else the command to run;
5. the store directory: the journal's flock (a second daemon on it is refused, naming the PID);
6. the provider serves every configured model: Ollama ``/api/tags``, OpenAI ``/v1/models``, or the
   local GGUF file exists; a missing one refuses to start, naming it.

Then one trio nursery: the libp2p host serving results (access rule :meth:`NodeDaemon.access`),
the metrics endpoint (unless ``run.metrics.port = -1``), the workflow worker process
(:mod:`node.worker`, unless ``run.workflow_process = false``), the daemon, and a signal watcher
that cancels everything on SIGINT/SIGTERM (exit 0 after the clean shutdown).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import trio
from pydantic import ValidationError

from node.config import HALT_POINTS, NodeRunSettings
from node.daemon import NodeChain, NodeDaemon
from node.metrics import NodeMetrics
from node.state import NodeState
from node.work import InlineRunner, TaskRunner
from node.worker import WorkerFailed, WorkerSetup, WorkflowWorker, provider_settings
from protocol.chain.aio import AsyncRpc
from protocol.chain.deployment import load_deployment
from protocol.chain.events import EventCatalog
from protocol.chain.market import model_id
from protocol.chain.signer import Signer
from protocol.errors import SynodError
from protocol.log import get_logger
from protocol.metrics import MetricsSettings, new_registry, serve_metrics
from protocol.operator.config import OperatorConfig, OperatorRole, describe_validation_error, load_config
from protocol.operator.connect import OperatorChain
from protocol.p2p.host import P2pSettings, open_p2p_host
from protocol.store import Store
from protocol.store.binding import bind_store
from workflow.engine import Engine
from workflow.providers.base import LLMProvider, ProviderSettings

log = get_logger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CHAIN = 3
PROG = "synod node run"


class StartError(SynodError):
    """Start-up refused; ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def load_run_settings(config: OperatorConfig, config_path: Path) -> NodeRunSettings:
    """Validate the ``[run]`` table; relative paths against the config's directory. Raises
    :class:`StartError` (exit 2) naming ``run.<field>``."""
    try:
        settings = NodeRunSettings.model_validate(config.run)
    except ValidationError as exc:
        message = describe_validation_error(exc, str(config_path))
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"])
            message = message.replace(f"{field} (SYNOD_", f"run.{field} (SYNOD_RUN__", 1)
        raise StartError(message, EXIT_USAGE) from None
    return settings.resolved(config_path.resolve().parent)


async def check_provider(provider: LLMProvider | None, settings: ProviderSettings, chain_model: str) -> None:
    """Refuse to start unless the provider serves ``chain_model`` (:class:`StartError`, exit 3)."""
    from workflow.errors import ProviderError

    try:
        if settings.kind == "local":
            from workflow.providers.local import default_model_path

            path = Path(settings.model_path) if settings.model_path else default_model_path()
            if not path.is_file():
                raise StartError(
                    f"model {chain_model!r}: the GGUF file {path} does not exist (run.provider.models)",
                    EXIT_CHAIN,
                )
            return
        check = getattr(provider, "check_model", None) if provider is not None else None
        if check is not None:
            with trio.fail_after(settings.timeout_s):
                await check()
    except ProviderError as exc:
        raise StartError(
            f"model {chain_model!r} is not served by the {settings.kind} provider: {exc}", EXIT_CHAIN
        ) from None
    except trio.TooSlowError:
        raise StartError(
            f"model {chain_model!r}: the {settings.kind} provider did not answer in time", EXIT_CHAIN
        ) from None
    except (OSError, ValueError) as exc:
        raise StartError(f"model {chain_model!r}: {exc}", EXIT_CHAIN) from None


def check_account(op: OperatorChain, address: str, models: list[str]) -> dict[bytes, str]:
    """The on-chain checks of step 4; returns the served model ids -> names. Raises
    :class:`StartError` (exit 3) saying which command to run."""
    from protocol.operator.account import OperatorAccount
    from protocol.types import address_of

    account = OperatorAccount(op, address_of(address))
    status = account.status()
    units = op.units
    if status.registered_as == "none":
        raise StartError(
            f"{address} is not registered: run `synod node register --stake AMOUNT` "
            f"(minimum {units.format(status.min_stake)})",
            EXIT_CHAIN,
        )
    if status.registered_as != "node":
        raise StartError(f"{address} is registered as a {status.registered_as}, not a node", EXIT_CHAIN)
    if status.under_staked_by:
        raise StartError(
            f"{address} is under-staked by {units.format(status.under_staked_by)}: run "
            f"`synod node register --stake {units.format(status.min_stake, symbol=False)}`",
            EXIT_CHAIN,
        )
    if status.unbonding:
        raise StartError(
            f"{address} is unbonding: it can take no new work (`synod node withdraw` later)", EXIT_CHAIN
        )
    on_chain = {bytes.fromhex(m.id[2:]) for m in status.models}
    served = {bytes(model_id(name)): name for name in models if bytes(model_id(name)) in on_chain}
    if not served:
        stake = units.format(status.stake, symbol=False)
        raise StartError(
            f"none of the configured models ({', '.join(models)}) is registered on chain: run "
            f"`synod node register --stake {stake} --models {' '.join(models)}`",
            EXIT_CHAIN,
        )
    for name in models:
        if bytes(model_id(name)) not in on_chain:
            log.warning("node_model_not_registered", model=name)
    return served


async def serve(
    config: OperatorConfig,
    settings: NodeRunSettings,
    op: OperatorChain,
    signer: Signer,
    served: dict[bytes, str],
    halt_at: str | None,
) -> None:
    """Open the store, check the provider, run every service until SIGINT/SIGTERM."""
    from workflow.providers.factory import build_provider

    settings.store_dir.mkdir(parents=True, exist_ok=True)
    # refuse a journal written for another chain (same chain id, new anvil) before opening it
    await trio.to_thread.run_sync(bind_store, settings.store_dir, op.binding)
    store = await Store.open(settings.store_dir / "journal.sqlite")
    state = await trio.to_thread.run_sync(NodeState.open, settings.store_dir)
    providers: list[LLMProvider] = []
    failed: str | None = None
    try:
        engines: dict[str, Engine] = {}
        names = sorted(set(served.values()))
        for name in names:
            ps = provider_settings(settings.provider, name)
            if settings.workflow_process and ps.kind == "local":
                await check_provider(None, ps, name)  # the GGUF file; the worker loads it
                continue
            provider = build_provider(ps)
            providers.append(provider)
            await check_provider(provider, ps, name)
            engines[name] = Engine(provider)
        worker: WorkflowWorker | None = None
        runner: TaskRunner
        if settings.workflow_process:
            level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
            worker = WorkflowWorker(
                WorkerSetup(provider=settings.provider, models=tuple(names), log_level=level)
            )
            runner = worker
        else:
            runner = InlineRunner(engines)
        registry = new_registry("node")
        metrics = NodeMetrics(registry)
        deployment = load_deployment(op.deployment_path)
        start = settings.start_block if settings.start_block >= 0 else deployment.deploy_block
        chain_settings = op.chain.settings
        async with AsyncRpc.from_settings(chain_settings, op.chain.errors) as rpc:
            from protocol.artifacts import load_abis

            chain = NodeChain(
                rpc=rpc,
                contracts=op.chain,
                catalog=EventCatalog(load_abis(config.chain.artifacts_dir)),
                settings=chain_settings,
                chain_id=op.chain.chain_id,
                start_block=start,
                confirmations=config.chain.confirmations,
            )
            daemon = NodeDaemon(chain, signer, settings, store, state, runner, served, metrics, halt_at)
            p2p = P2pSettings(
                identity_file=settings.p2p.identity_file,
                listen_host=settings.p2p.listen_host,
                listen_port=settings.p2p.listen_port,
                limits=settings.serve,
            )
            async with (
                open_p2p_host(p2p, lookup=daemon.lookup, access=daemon.access, registry=registry) as host,
                trio.open_nursery() as nursery,
            ):
                log.info("node_p2p", multiaddr=host.multiaddr, peer_id=host.peer_id)
                if settings.metrics.port >= 0:
                    endpoint = await nursery.start(
                        serve_metrics,
                        registry,
                        MetricsSettings(host=settings.metrics.host, port=settings.metrics.port),
                    )
                    log.info("metrics_listening", url=endpoint.url)

                async def run_worker(worker: WorkflowWorker) -> None:
                    # boots beside the daemon (rows wait for it); a worker that cannot start ends
                    # the node with its reason (exit 3) instead of restarting forever
                    nonlocal failed
                    try:
                        await worker.run()
                    except WorkerFailed as exc:
                        failed = str(exc)
                        nursery.cancel_scope.cancel()

                if worker is not None:
                    nursery.start_soon(run_worker, worker)
                await nursery.start(daemon.run)
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        log.info("node_stopping", signal=signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        break
    finally:
        with trio.CancelScope(shield=True):
            for provider in providers:
                await provider.aclose()
        state.close()
        store.close()
    if failed is not None:
        raise StartError(failed, EXIT_CHAIN)
    log.info("node_stopped")


def run_daemon(config_path: Path, password_file: Path | None) -> int:
    """The whole of ``synod node run``; returns the exit code (errors: one line on stderr)."""
    from protocol.chain.errors import ChainError, SignerError
    from protocol.errors import ConfigError
    from protocol.operator.connect import connect
    from protocol.operator.errors import StartRefused
    from protocol.operator.keys import resolve_password, unlock
    from protocol.store.errors import StoreError

    def fail(message: str, code: int) -> int:
        print(f"{PROG}: {message}", file=sys.stderr)
        return code

    try:
        config = load_config(config_path, OperatorRole.NODE)
        settings = load_run_settings(config, config_path)
        halt_at = os.environ.get("SYNOD_HALT_AT") or settings.halt_at or None
        if halt_at is not None and halt_at not in HALT_POINTS:
            return fail(f"SYNOD_HALT_AT={halt_at} is not one of {', '.join(HALT_POINTS)}", EXIT_USAGE)
        password = resolve_password(password_file, os.environ, config.account.password_file, None)
        signer = unlock(config.account.keystore, password)
    except StartError as exc:
        return fail(str(exc), exc.code)
    except (ConfigError, SignerError) as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        op = connect(config)
        served = check_account(op, signer.address, list(config.models))
    except StartError as exc:
        return fail(str(exc), exc.code)
    except (StartRefused, ChainError) as exc:
        return fail(str(exc), EXIT_CHAIN)
    try:
        trio.run(serve, config, settings, op, signer, served, halt_at)
    except StartError as exc:
        return fail(str(exc), exc.code)
    except StoreError as exc:
        return fail(str(exc), EXIT_USAGE)
    except ChainError as exc:
        return fail(str(exc), EXIT_CHAIN)
    return EXIT_OK
