"""``[run]``: the validator daemon's own settings, the ``[run]`` table of ``validator.toml``.

:class:`OracleRunSettings` validates :attr:`protocol.operator.config.OperatorConfig.run`;
:func:`load_run_settings` reports a bad field as ``run.<field>`` in one line, as the rest of the
config does. Relative paths are relative to the config file's directory. Every field has a
default, so an empty (or missing) ``[run]`` table runs a validator with sane settings::

    [run]
    store_dir = "state"              # journal (sqlite) + lock; created 0700
    poll_interval = 1.0              # seconds between chain polls

    [run.p2p]
    listen_host = "127.0.0.1"
    listen_port = 4002               # 0: any free port (the registered p2p_address must match)
    identity_file = "p2p/identity.key"
    fetch_timeout = 20.0             # seconds per fetch (dial + request + answer)
    max_fetch_bytes = 16777216

    [run.scoring]
    judge = "off"                    # off | local | ollama | openai
    judge_model = "gemma3-270m"
    # judge_base_url = "http://127.0.0.1:11434"
    judge_timeout = 60.0

    [run.schedule]
    draw = true                      # call drawCommittee when due and nobody has
    settle = true                    # call settle when due and nobody has
    claim_interval = 3600.0          # seconds between claims (0: never claim)
    claim_min = "0"                  # claim only when the balance is at least this (token units)

    [run.margins]
    commit_margin = 5.0              # seconds: no score commit later than this before the deadline
    reveal_margin = 5.0
    settle_grace = 2.0               # seconds after a deadline before this validator settles/draws

    [run.metrics]
    port = 0                         # Prometheus on 127.0.0.1:port; 0 = off
    host = "127.0.0.1"

h10 (devnet) writes these tables; ``synod oracle init`` writes the defaults.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, ValidationError, field_validator

from protocol.envelope import MAX_ENVELOPE_BYTES
from protocol.operator.config import describe_validation_error
from protocol.operator.errors import ConfigFileError

DEFAULT_P2P_PORT = 4002
"""The validator's default libp2p port (the node's is 4001)."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OracleP2pSettings(_Section):
    """``[run.p2p]``: the validator's libp2p host (it fetches; it serves nothing)."""

    listen_host: IPvAnyAddress = IPv4Address("127.0.0.1")
    listen_port: int = Field(default=DEFAULT_P2P_PORT, ge=0, le=65535)
    """0 picks a free port (then the registered ``p2p_address`` cannot match it: tests only)."""
    identity_file: Path = Path("p2p/identity.key")
    """The peer key (Ed25519, created 0600 on first start). Relative: to the config's directory."""
    fetch_timeout: float = Field(default=20.0, gt=0, le=600)
    """Seconds one fetch may take (dial, request, answer). A node that does not answer in time
    scores 0 for the rows it did not serve; the validator is not punished for that."""
    max_fetch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    """Largest result envelope accepted from a node (bytes); a larger one scores 0."""
    fetch_concurrency: int = Field(default=4, ge=1, le=64)
    """Fetches in flight at once (over all nodes of a batch)."""


class OracleScoringSettings(_Section):
    """``[run.scoring]``: the scoring pipeline's options (docs/scoring.md)."""

    judge: Literal["off", "local", "ollama", "openai"] = "off"
    """The LLM judge's provider; ``off`` scores without the quality stage."""
    judge_model: str | None = None
    """Judge model name (provider default if unset: ``gemma3-270m`` for ``local``)."""
    judge_base_url: str | None = None
    """Judge server URL (``ollama``: default ``$OLLAMA_HOST`` or 127.0.0.1:11434; ``openai``: required)."""
    judge_timeout: float = Field(default=60.0, gt=0, le=3600)
    """Seconds for one verdict."""
    max_result_chars: int = Field(default=MAX_ENVELOPE_BYTES, ge=1)
    """A result's text longer than this (after decoding) scores 0 as too long. The default lets
    through every output a node may commit (an envelope of at most ``MAX_ENVELOPE_BYTES`` bytes
    holds fewer characters): a lower value scores honest long answers 0 (and junk-slashes their
    nodes), so lower it only for jobs known to want short answers."""

    @field_validator("judge_base_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class OracleScheduleSettings(_Section):
    """``[run.schedule]``: the permissionless calls this validator makes, and claims."""

    draw: bool = True
    """Call ``drawCommittee`` for batches in Drawing when nobody else has (another's mining first is fine)."""
    settle: bool = True
    """Call ``settle`` for batches this validator sits in once they are settleable and nobody has."""
    claim_interval: float = Field(default=3600.0, ge=0)
    """Seconds between claims of the rewards balance; 0 never claims."""
    claim_min: str = "0"
    """Claim only a balance of at least this many tokens (decimal token units, e.g. ``"0.5"``)."""

    @field_validator("claim_min")
    @classmethod
    def _decimal(cls, value: str) -> str:
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise ValueError("must be a decimal amount of tokens such as 0.5") from None
        if not amount.is_finite() or amount < 0:
            raise ValueError("must be a finite amount >= 0")
        return value


class OracleMarginSettings(_Section):
    """``[run.margins]``: safety margins around the on-chain deadlines (seconds of block time)."""

    commit_margin: float = Field(default=5.0, ge=0, le=3600)
    """Scores not computed this long before the score-commit deadline are committed as they stand
    (rows not fetched in time score 0) rather than risking a slashed seat."""
    reveal_margin: float = Field(default=5.0, ge=0, le=3600)
    """A reveal is sent as soon as the phase opens; one still unsent this close to the deadline is
    logged as a warning (``reveal_late``)."""
    settle_grace: float = Field(default=2.0, ge=0, le=3600)
    """Seconds after a batch becomes drawable/settleable before this validator calls it (gives the
    others' transactions a chance to land first; a call that loses the race is harmless)."""


class OracleMetricsSettings(_Section):
    """``[run.metrics]``: the Prometheus endpoint."""

    port: int = Field(default=0, ge=0, le=65535)
    """0 turns the endpoint off."""
    host: IPvAnyAddress = IPv4Address("127.0.0.1")


class OracleRunSettings(_Section):
    """The ``[run]`` table of a validator config (see the module docstring for a full example)."""

    store_dir: Path = Path("state")
    """The journal (sqlite) and its lock file. Relative: to the config's directory."""
    poll_interval: float = Field(default=1.0, gt=0, le=600)
    """Seconds between polls of the chain head."""
    start_block: int | None = Field(default=None, ge=0)
    """The first block to watch on a fresh journal (default: the deployment's ``deployBlock``)."""
    p2p: OracleP2pSettings = Field(default_factory=OracleP2pSettings)
    scoring: OracleScoringSettings = Field(default_factory=OracleScoringSettings)
    schedule: OracleScheduleSettings = Field(default_factory=OracleScheduleSettings)
    margins: OracleMarginSettings = Field(default_factory=OracleMarginSettings)
    metrics: OracleMetricsSettings = Field(default_factory=OracleMetricsSettings)

    def resolved(self, base: Path) -> OracleRunSettings:
        """A copy whose relative paths are made absolute against ``base`` (the config's directory)."""
        store = self.store_dir.expanduser()
        ident = self.p2p.identity_file.expanduser()
        return self.model_copy(
            update={
                "store_dir": store if store.is_absolute() else base / store,
                "p2p": self.p2p.model_copy(
                    update={"identity_file": ident if ident.is_absolute() else base / ident}
                ),
            }
        )


class _RunTable(_Section):
    run: OracleRunSettings = Field(default_factory=OracleRunSettings)


def load_run_settings(run: dict[str, Any], config_path: Path) -> OracleRunSettings:
    """Validate a config's ``[run]`` table; paths resolved against ``config_path``'s directory.

    Raises :class:`ConfigFileError` naming ``run.<field>``, its env variable and the reason in one
    line, e.g. ``invalid config v.toml: run.p2p.fetch_timeout (SYNOD_RUN__P2P__FETCH_TIMEOUT): ...``.
    """
    try:
        table = _RunTable.model_validate({"run": run})
    except ValidationError as exc:
        raise ConfigFileError(describe_validation_error(exc, str(config_path))) from None
    return table.run.resolved(config_path.resolve().parent)


def default_run_table() -> dict[str, Any]:
    """The ``[run]`` table ``synod oracle init`` writes: every default, as TOML-ready values."""
    dumped: dict[str, Any] = OracleRunSettings().model_dump(mode="json", exclude_none=True)
    return dumped
