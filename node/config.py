"""The compute node daemon's own settings: the ``[run]`` table of a node config file.

:class:`protocol.operator.config.OperatorConfig` keeps ``[run]`` as a raw table; ``synod node run``
validates it here with :class:`NodeRunSettings` and reports a bad field as ``run.<field>`` (e.g.
``invalid config node.toml: run.provider.kind: Input should be 'local', 'ollama' or 'openai'``).
Every field has a default, so an empty or missing ``[run]`` table is a working local node. A
complete table, as ``synod node init`` writes it::

    [run]
    store_dir = "store"              # the journal + result store (relative to the config file)
    concurrency = 2                  # workflows run at once
    min_bounty_per_task = "0"        # token base units (wei-like), a decimal string or integer
    claim_interval_s = 300.0         # how often earned balances are claimed (0: never)
    deadline_margin_s = 10.0         # kept free before every deadline for the tx to be mined
    poll_interval_s = 1.0            # seconds between head polls once caught up
    start_block = -1                 # first block to watch on a fresh store (-1: deployment block)
    halt_at = ""                     # (tests) same as $SYNOD_HALT_AT

    [run.split]                      # node/split.py: n nodes do about k/n of the batches
    enabled = true
    backup_delay = 0.5               # a backup waits at most this fraction of the commit window
    safety = 2.0                     # ... and starts by the deadline minus safety x its estimate

    [run.p2p]
    listen_host = "127.0.0.1"
    listen_port = 4001               # 0: any free port
    identity_file = "p2p.key"        # Ed25519 libp2p key, created 0600 on first run

    [run.provider]
    kind = "local"                   # local | ollama | openai
    url = ""                         # ollama / openai server ("" = ollama's default)
    timeout_s = 120.0
    [run.provider.models]            # on-chain model name -> the provider's own name (or GGUF path)
    "gemma3:270m" = "gemma3:270m"

    [run.metrics]
    host = "127.0.0.1"
    port = 9101                      # Prometheus /metrics; -1 disables it, 0 picks a free port

    [run.serve]                      # protocol.p2p.server.ServeLimits
    peer_rate = 50.0
    peer_burst = 100
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from node.provider import NodeProviderSettings
from protocol.p2p.server import ServeLimits

HALT_POINTS: tuple[str, ...] = (
    "after_workflows",
    "after_commit_sent",
    "after_commit_mined",
    "after_reveal_sent",
)
"""The crash points ``SYNOD_HALT_AT`` / ``run.halt_at`` accepts (see docs/node.md)."""


class _Table(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeP2pSettings(_Table):
    """``[run.p2p]``: where the libp2p host listens and which identity it uses."""

    listen_host: str = "127.0.0.1"
    """IPv4 address to bind (``0.0.0.0`` for all interfaces)."""
    listen_port: int = Field(default=4001, ge=0, le=65535)
    """TCP port; 0 picks a free one (tests). The on-chain ``p2p_address`` should point here."""
    identity_file: Path = Path("p2p.key")
    """The host's Ed25519 key (created 0600 on first run); relative to the config file."""


class NodeMetricsSettings(_Table):
    """``[run.metrics]``: the Prometheus endpoint."""

    host: str = "127.0.0.1"
    port: int = Field(default=9101, ge=-1, le=65535)
    """-1: no endpoint; 0: any free port (the chosen port is logged as ``metrics_listening``)."""


class NodeSplitSettings(_Table):
    """``[run.split]``: the work split of :mod:`node.split` (n nodes do about k/n of the batches).

    A node ranked k or later for a batch (by ``keccak256(batchId, address)`` among the eligible
    nodes) waits as a backup until ``backup_delay`` of the commit window passed, or until only
    ``safety`` times its estimate of the batch (plus ``run.deadline_margin_s``) is left, whichever
    comes first; it skips the batch if the owners filled its k seats meanwhile."""

    enabled: bool = True
    backup_delay: float = Field(default=0.5, ge=0, le=1)
    """Fraction of the commit window a backup waits at most (0: every node computes every batch)."""
    safety: float = Field(default=2.0, ge=1, le=100)
    """A backup starts no later than ``safety`` x the batch's estimated run time before the deadline."""
    roster_refresh_s: float = Field(default=60.0, gt=0, le=86_400)
    """Seconds the list of eligible nodes (read from the StakeRegistry) is reused."""


class NodeRunSettings(_Table):
    """The ``[run]`` table of a node config: everything ``synod node run`` needs beyond the
    operator config (chain, account, models). All durations in seconds, amounts in token base
    units. Paths are relative to the config file's directory (resolve with :meth:`resolved`).
    Raises ``pydantic.ValidationError`` on bad values (the CLI prefixes fields with ``run.``).
    """

    store_dir: Path = Path("store")
    """Directory of the journal (sqlite) and the result store; one daemon at a time (flock)."""
    concurrency: int = Field(default=2, ge=1, le=256)
    """Workflows (tasks) run at the same time, over all batches."""
    max_open_batches: int = Field(default=8, ge=1, le=1024)
    """Batches taken but not yet committed; beyond this, new batches are skipped (``capacity``)."""
    min_bounty_per_task: int = Field(default=0, ge=0)
    """A batch is taken only if its bounty divided by its task count is at least this (base units)."""
    claim_interval_s: float = Field(default=300.0, ge=0, le=86_400 * 30)
    """Seconds between claims of the node's credited balance; 0 disables claiming."""
    deadline_margin_s: float = Field(default=10.0, ge=0, le=3600)
    """Seconds kept free before the commit deadline (for the commit to be mined) and used to cut
    each task's own deadline; also the slack asked of the reveal window."""
    default_task_seconds: float = Field(default=30.0, gt=0, le=3600)
    """The time one task is assumed to take before the node has measured the workflow."""
    speed_alpha: float = Field(default=0.3, gt=0, le=1)
    """Weight of the newest measurement in the per-workflow moving average of task seconds."""
    poll_interval_s: float = Field(default=1.0, gt=0, le=600)
    """Seconds between head polls once the watcher caught up."""
    workflow_process: bool = True
    """Run the workflows in a worker process (:mod:`node.worker`) so their CPU work does not stall
    the daemon's event loop (p2p serving, the chain watcher); false runs them in the daemon."""
    seat_check_s: float = Field(default=1.0, ge=0, le=600)
    """While a batch computes, its seats are re-read from the chain before a task starts, at most
    once per this many seconds per batch (0: before every task); the node stops computing a batch
    whose k seats other nodes filled (docs/node.md, "Scheduling")."""
    start_block: int = Field(default=-1, ge=-1)
    """First block watched on a fresh store; -1 = the deployment's block (or 0)."""
    halt_at: str = ""
    """Fault tests: crash (SIGKILL self) the first time this point is reached; ``$SYNOD_HALT_AT`` wins."""
    split: NodeSplitSettings = Field(default_factory=NodeSplitSettings)
    """The work split between nodes (docs/node.md, "Scheduling")."""
    p2p: NodeP2pSettings = Field(default_factory=NodeP2pSettings)
    provider: NodeProviderSettings = Field(default_factory=NodeProviderSettings)
    metrics: NodeMetricsSettings = Field(default_factory=NodeMetricsSettings)
    serve: ServeLimits = Field(default_factory=ServeLimits)
    """Limits of the result server (rate, concurrency, size); see :class:`ServeLimits`."""

    @field_validator("min_bounty_per_task", mode="before")
    @classmethod
    def _decimal_string(cls, value: Any) -> Any:
        # TOML integers stop at 2**63; large token amounts are written as decimal strings.
        if isinstance(value, str):
            text = value.strip().replace("_", "")
            if not text.isdigit():
                raise ValueError("must be a whole number of token base units")
            return int(text)
        return value

    @field_validator("halt_at")
    @classmethod
    def _known_point(cls, value: str) -> str:
        if value and value not in HALT_POINTS:
            raise ValueError(f"must be one of {', '.join(HALT_POINTS)}")
        return value

    def resolved(self, base: Path) -> NodeRunSettings:
        """A copy with relative paths made absolute against ``base`` (the config's directory)."""

        def absolute(path: Path) -> Path:
            path = path.expanduser()
            return path if path.is_absolute() else base / path

        p2p = self.p2p.model_copy(update={"identity_file": absolute(self.p2p.identity_file)})
        provider = self.provider
        if provider.kind == "local":
            models = {k: (str(absolute(Path(v))) if v else "") for k, v in provider.models.items()}
            provider = provider.model_copy(update={"models": models})
        return self.model_copy(
            update={"store_dir": absolute(self.store_dir), "p2p": p2p, "provider": provider}
        )


def default_run_table(models: list[str], p2p_port: int = 4001) -> dict[str, Any]:
    """The ``[run]`` table ``synod node init`` writes: a local provider serving ``models`` under
    their own names, everything else at its default (validated with :class:`NodeRunSettings`)."""
    table: dict[str, Any] = {
        "store_dir": "store",
        "concurrency": 2,
        "min_bounty_per_task": "0",
        "claim_interval_s": 300.0,
        "deadline_margin_s": 10.0,
        "p2p": {"listen_host": "127.0.0.1", "listen_port": p2p_port, "identity_file": "p2p.key"},
        "provider": {"kind": "local", "url": "", "models": {name: "" for name in models}},
        "metrics": {"host": "127.0.0.1", "port": 9101},
    }
    NodeRunSettings.model_validate(table)
    return table
