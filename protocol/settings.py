"""Settings for chain access: built once at an entry point and passed down (no globals).

Every model is frozen and rejects unknown fields. Key material is a :class:`~pydantic.SecretStr`
and never appears in a repr or a log. The well-known Anvil development keys are a key source of
their own, accepted only on chain id 31337 (checked when the signer is built).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from protocol.errors import ConfigError

DEVNET_CHAIN_ID = 31337
"""Anvil's chain id: the only chain on which the Anvil development keys are accepted."""

ANVIL_DEV_ACCOUNTS = 10
"""How many accounts Anvil funds from its well-known mnemonic by default."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeystoreKey(_Frozen):
    """An eth-account encrypted keystore (JSON v3) file and its password."""

    kind: Literal["keystore"] = "keystore"
    path: Path
    password: SecretStr


class AnvilDevKey(_Frozen):
    """Anvil's account ``index`` from the well-known test mnemonic; devnet (31337) only."""

    kind: Literal["anvil-dev"] = "anvil-dev"
    index: int = Field(ge=0, lt=ANVIL_DEV_ACCOUNTS)


KeySource = Annotated[KeystoreKey | AnvilDevKey, Field(discriminator="kind")]


class WatcherSettings(_Frozen):
    """The chain watcher's paging, polling and retry knobs (seconds, blocks)."""

    initial_range: int = Field(default=100, ge=1, le=100_000)
    """Blocks per ``eth_getLogs`` query at start."""
    min_range: int = Field(default=1, ge=1)
    max_range: int = Field(default=5_000, ge=1, le=1_000_000)
    """The range never shrinks below ``min_range`` nor grows above ``max_range``."""
    quiet_logs: int = Field(default=2_000, ge=1)
    """A query that returned fewer logs than this doubles the range (up to ``max_range``)."""
    poll_interval: float = Field(default=1.0, gt=0, le=600)
    """Seconds between polls of the head once caught up."""
    backoff_initial: float = Field(default=0.1, gt=0, le=60)
    backoff_max: float = Field(default=5.0, gt=0, le=600)
    """A failing RPC is retried after ``backoff_initial`` seconds, doubling up to ``backoff_max``."""
    reorg_window: int = Field(default=128, ge=1, le=100_000)
    """Blocks below the cursor whose hashes are remembered to find a reorg's fork point."""

    @model_validator(mode="after")
    def _ranges(self) -> WatcherSettings:
        if not self.min_range <= self.initial_range <= self.max_range:
            raise ValueError("need min_range <= initial_range <= max_range")
        if self.backoff_initial > self.backoff_max:
            raise ValueError("need backoff_initial <= backoff_max")
        return self


class ChainSettings(_Frozen):
    """How to reach the chain and the deployed contracts."""

    rpc_url: str = "http://127.0.0.1:8545"
    deployments_file: Path | None = None
    """The deployment JSON; ``None`` means ``deployments/<chainId>.json`` under the working dir."""
    confirmations: int = Field(default=0, ge=0, le=256)
    """Blocks behind the head that reads are pinned to."""
    rpc_timeout: float = Field(default=10.0, gt=0, le=600)
    """Seconds for one JSON-RPC request."""
    receipt_timeout: float = Field(default=60.0, gt=0, le=3600)
    """Seconds to wait for a sent transaction's receipt before re-checking / re-sending."""
    receipt_poll: float = Field(default=0.05, gt=0, le=10)
    send_retries: int = Field(default=3, ge=1, le=20)
    """Attempts for one transaction (RPC failures and receipt timeouts), bounded."""
    rpc_concurrency: int = Field(default=4, ge=1, le=64)
    """Reads in flight at once (threads into web3, or requests of the async client); writers
    have capacity of their own, so reads never wait behind a transaction."""
    stuck_after: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a sent transaction may stay unmined before the writer replaces it with higher fees."""
    fee_bump_percent: int = Field(default=15, ge=10, le=500)
    """How much a replacement raises both EIP-1559 fees (nodes require at least 10 %)."""
    max_fee_per_gas: int | None = Field(default=None, gt=0)
    """A ceiling (wei) on ``maxFeePerGas`` for fee bumps; ``None``: no ceiling."""
    max_replacements: int = Field(default=5, ge=0, le=50)
    """Fee bumps for one transaction; after them the writer keeps waiting at the last fee."""
    key: KeySource | None = None
    """The account this process signs with; ``None`` for read-only use."""

    watcher: WatcherSettings = Field(default_factory=WatcherSettings)
    """How the chain watcher pages ``eth_getLogs`` and retries."""

    @field_validator("rpc_url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("rpc_url must start with http:// or https://")
        return value

    def deployments_path(self, chain_id: int) -> Path:
        """The deployment file for ``chain_id`` (the configured one, else the default)."""
        return self.deployments_file or Path("deployments") / f"{chain_id}.json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ChainSettings:
        """Read ``SYNOD_RPC_URL``, ``SYNOD_DEPLOYMENTS_FILE``, ``SYNOD_CONFIRMATIONS``,
        ``SYNOD_KEYSTORE`` + ``SYNOD_KEYSTORE_PASSWORD`` or ``SYNOD_DEV_KEY_INDEX``; explicit
        ``overrides`` win. Raises :class:`ConfigError` naming the bad field."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if "SYNOD_RPC_URL" in env:
            values["rpc_url"] = env["SYNOD_RPC_URL"]
        if "SYNOD_DEPLOYMENTS_FILE" in env:
            values["deployments_file"] = env["SYNOD_DEPLOYMENTS_FILE"]
        if "SYNOD_CONFIRMATIONS" in env:
            values["confirmations"] = env["SYNOD_CONFIRMATIONS"]
        if "SYNOD_KEYSTORE" in env:
            values["key"] = {
                "kind": "keystore",
                "path": env["SYNOD_KEYSTORE"],
                "password": env.get("SYNOD_KEYSTORE_PASSWORD", ""),
            }
        elif "SYNOD_DEV_KEY_INDEX" in env:
            values["key"] = {"kind": "anvil-dev", "index": env["SYNOD_DEV_KEY_INDEX"]}
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # Never echo the input: it may hold a keystore password.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors(include_input=False, include_url=False)
            )
            raise ConfigError(f"invalid chain settings: {problems}") from None
