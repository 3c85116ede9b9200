"""The operator config: one TOML file per role, validated by pydantic-settings, with env overrides.

Default locations: ``$XDG_CONFIG_HOME/synod/node.toml`` (compute node) and ``.../validator.toml``
(validator), ``~/.config`` when ``XDG_CONFIG_HOME`` is unset; ``--config PATH`` picks another.
Every field can be overridden from the environment: prefix ``SYNOD_``, nested fields joined by
``__`` (``SYNOD_CHAIN__RPC_URL``, ``SYNOD_ACCOUNT__KEYSTORE``, ``SYNOD_MODELS='["a","b"]'``); the
environment wins over the file. Relative paths are relative to the config file's directory.
Passwords never live in the config: see :mod:`protocol.operator.keys`.

A bad value raises :class:`ConfigFileError` in one line naming the file, the field, its env
variable and the reason, e.g. ``invalid config node.toml: chain.confirmations
(SYNOD_CHAIN__CONFIRMATIONS): Input should be less than or equal to 256 (got 300)``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from protocol.operator.errors import ConfigFileError
from protocol.settings import ChainSettings, KeystoreKey

ENV_PREFIX = "SYNOD_"
ENV_NESTED_DELIMITER = "__"
MAX_MODELS = 32
"""``StakeRegistry.MAX_MODELS``."""
MAX_P2P_ADDRESS_BYTES = 256
"""``StakeRegistry.MAX_P2P_ADDRESS_LENGTH``."""
DEFAULT_NODE_MODEL = "gemma3:270m"
"""The devnet's model (the embedded Gemma 3 270M), the default a new node config serves."""


class OperatorRole(StrEnum):
    """The two staked roles. The CLI calls the validator ``oracle``."""

    NODE = "node"
    VALIDATOR = "validator"

    @property
    def command(self) -> str:
        """The CLI command that manages this role (for messages that say what to run)."""
        return "synod node" if self is OperatorRole.NODE else "synod oracle"

    @property
    def default_config_name(self) -> str:
        return f"{self.value}.toml"

    @property
    def default_p2p_port(self) -> int:
        return 4001 if self is OperatorRole.NODE else 4002


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChainConfig(_Section):
    """``[chain]``: where the chain and the contracts are."""

    rpc_url: str = "http://127.0.0.1:8545"
    """The JSON-RPC endpoint (http or https)."""
    chain_id: int | None = Field(default=None, gt=0)
    """The chain this operator means to use; refused when the RPC serves another. Unset: the
    deployment's chain id is what the RPC must serve."""
    deployment: Path | None = None
    """The deployment JSON ``scripts/Deploy.s.sol`` wrote. Unset: the package's file for the chain."""
    artifacts_dir: Path | None = None
    """A forge ``out/`` directory to read ABIs from. Unset: the ABIs packaged by ``make build``."""
    confirmations: int = Field(default=2, ge=0, le=256)
    """Blocks behind the head that reads (status, rewards) are pinned to."""
    rpc_timeout: float = Field(default=10.0, gt=0, le=600)
    """Seconds for one JSON-RPC request."""
    receipt_timeout: float = Field(default=120.0, gt=0, le=3600)
    """Seconds to wait for a transaction's receipt (per attempt)."""
    log_range: int = Field(default=5_000, ge=1, le=1_000_000)
    """Blocks per ``eth_getLogs`` request when reading past events (``rewards``)."""

    @field_validator("rpc_url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class AccountConfig(_Section):
    """``[account]``: the key this operator signs with."""

    keystore: Path
    """An eth-account encrypted keystore (``synod keys new|import`` writes one)."""
    password_file: Path | None = None
    """A file holding the keystore password (used when neither ``--password-file`` nor
    ``$SYNOD_KEYSTORE_PASSWORD`` is given); keep it 0600."""


class OperatorConfig(BaseSettings):
    """One operator's config (either role). Build it with :func:`load_config`, not directly."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        validate_default=True,
    )

    role: OperatorRole
    """``node`` or ``validator``; must match the command (``synod node`` / ``synod oracle``)."""
    p2p_address: str = Field(min_length=1)
    """The libp2p multiaddr others reach this operator at (registered on chain as UTF-8)."""
    models: list[str] = Field(default_factory=list)
    """Nodes: the model names served (1..32, e.g. ``gemma3:270m``). Validators: empty."""
    chain: ChainConfig = Field(default_factory=ChainConfig)
    account: AccountConfig
    run: dict[str, Any] = Field(default_factory=dict)
    """The ``[run]`` table: the daemon's own settings (store, provider, limits, schedules). Kept raw
    here because the two daemons differ; ``synod node run`` and ``synod oracle run`` each validate
    it with their own pydantic model and report a bad field as ``run.<field>``."""

    @field_validator("p2p_address")
    @classmethod
    def _multiaddr(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be a multiaddr such as /ip4/203.0.113.7/tcp/4001")
        if len(value.encode("utf-8")) > MAX_P2P_ADDRESS_BYTES:
            raise ValueError(f"is longer than {MAX_P2P_ADDRESS_BYTES} bytes")
        return value

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("model names must not be empty")
        if len(set(value)) != len(value):
            raise ValueError("lists a model twice")
        if len(value) > MAX_MODELS:
            raise ValueError(f"lists {len(value)} models, at most {MAX_MODELS} are allowed")
        return value

    @model_validator(mode="after")
    def _models_fit_role(self) -> OperatorConfig:
        if self.role is OperatorRole.NODE and not self.models:
            raise ValueError("models: a node must serve at least one model")
        if self.role is OperatorRole.VALIDATOR and self.models:
            raise ValueError("models: a validator serves no models (leave the list empty)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs (see load_config); the environment wins over them.
        return (env_settings, init_settings)

    def chain_settings(self, password: str | None) -> ChainSettings:
        """The :class:`ChainSettings` the chain facade takes; ``password`` unlocks the keystore
        (``None`` for read-only use). The deployment file is resolved by the caller."""
        key = (
            None
            if password is None
            else KeystoreKey.model_validate({"path": self.account.keystore, "password": password})
        )
        return ChainSettings(
            rpc_url=self.chain.rpc_url,
            deployments_file=self.chain.deployment,
            confirmations=self.chain.confirmations,
            rpc_timeout=self.chain.rpc_timeout,
            receipt_timeout=self.chain.receipt_timeout,
            key=key,
        )


def config_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/synod`` or ``~/.config/synod``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "synod"


def default_config_path(role: OperatorRole, environ: Mapping[str, str] | None = None) -> Path:
    """Where a role's config lives unless ``--config`` says otherwise."""
    return config_home(environ) / role.default_config_name


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in loc).upper()


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_validation_error(exc: ValidationError, where: str) -> str:
    """One line: ``invalid config WHERE: field (ENV): reason (got value); ...``."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            reason = "is required"
        got = "" if err["type"] in ("missing", "value_error") else f" (got {_shown(err.get('input'))})"
        if loc:
            problems.append(f"{field} ({_env_name(loc)}): {reason}{got}")
        else:  # a check across fields: its message names them
            problems.append(f"{reason}{got}")
    return f"invalid config {where}: " + "; ".join(problems)


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def load_config(path: Path, role: OperatorRole, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """Read ``path`` (TOML), apply ``SYNOD_*`` overrides from ``environ`` (default ``os.environ``),
    validate, check the role and resolve relative paths against the file's directory.

    Raises :class:`ConfigFileError` (one line) for a missing or unparsable file, a bad value, or
    a config written for the other role.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(
            f"no config at {path}: run `{role.command} init` first (or pass --config PATH)"
        ) from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        values = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"config {path} is not valid TOML: {exc}") from None
    env = os.environ if environ is None else environ
    try:
        config = _with_environ(env, values)
    except ValidationError as exc:
        raise ConfigFileError(describe_validation_error(exc, str(path))) from None
    if config.role is not role:
        raise ConfigFileError(
            f"config {path} is for a {config.role.value}, not a {role.value}: use "
            f"`{config.role.command} ...` with it, or pass --config with a {role.value} config"
        )
    base = path.resolve().parent
    keystore = _resolve(config.account.keystore, base)
    assert keystore is not None
    account = config.account.model_copy(
        update={"keystore": keystore, "password_file": _resolve(config.account.password_file, base)}
    )
    chain = config.chain.model_copy(
        update={
            "deployment": _resolve(config.chain.deployment, base),
            "artifacts_dir": _resolve(config.chain.artifacts_dir, base),
        }
    )
    return config.model_copy(update={"account": account, "chain": chain})


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping instead of ``os.environ``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(OperatorConfig)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._environ.items()}


def _merged(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _with_environ(env: Mapping[str, str], values: dict[str, Any]) -> OperatorConfig:
    """Validate the file's ``values`` with ``env``'s ``SYNOD_*`` overrides on top (parsed by
    pydantic-settings' env source: prefix, ``__`` nesting, JSON for lists)."""
    return OperatorConfig.model_validate(_merged(values, _MappingEnvSource(env)()))


def render_config(config: OperatorConfig) -> str:
    """The config as a commented TOML document (what ``init`` writes)."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Synod {config.role.value} config. Every field can be overridden by an env"))
    doc.add(tomlkit.comment("variable: SYNOD_<FIELD>, nested with __ (SYNOD_CHAIN__RPC_URL)."))
    doc.add(tomlkit.comment("Relative paths are relative to this file's directory."))
    doc.add(tomlkit.nl())
    doc.add("role", config.role.value)
    doc.add(tomlkit.comment("The multiaddr other participants reach you at (registered on chain)."))
    doc.add("p2p_address", config.p2p_address)
    if config.role is OperatorRole.NODE:
        doc.add(tomlkit.comment("Model names this node serves (1..32); `register` puts their ids on chain."))
        doc.add("models", list(config.models))
    chain = tomlkit.table()
    chain.add("rpc_url", config.chain.rpc_url)
    if config.chain.chain_id is not None:
        chain.add("chain_id", config.chain.chain_id)
    else:
        chain.add(tomlkit.comment("chain_id = 1  # refuse any other chain (default: the deployment's)"))
    if config.chain.deployment is not None:
        chain.add("deployment", str(config.chain.deployment))
    else:
        chain.add(tomlkit.comment('deployment = "deployments/<chainId>.json"  # default: packaged'))
    if config.chain.artifacts_dir is not None:
        chain.add("artifacts_dir", str(config.chain.artifacts_dir))
    else:
        chain.add(tomlkit.comment('artifacts_dir = "out"  # forge output; default: packaged ABIs'))
    chain.add("confirmations", config.chain.confirmations)
    chain.add("rpc_timeout", config.chain.rpc_timeout)
    chain.add("receipt_timeout", config.chain.receipt_timeout)
    chain.add("log_range", config.chain.log_range)
    doc.add("chain", chain)
    account = tomlkit.table()
    account.add("keystore", str(config.account.keystore))
    if config.account.password_file is not None:
        account.add("password_file", str(config.account.password_file))
    else:
        account.add(
            tomlkit.comment('password_file = "keys/password"  # else $SYNOD_KEYSTORE_PASSWORD or a prompt')
        )
    doc.add("account", account)
    return tomlkit.dumps(doc)


def new_config(
    role: OperatorRole,
    keystore: Path,
    p2p_address: str | None = None,
    models: list[str] | None = None,
    chain: Mapping[str, Any] | None = None,
    password_file: Path | None = None,
) -> OperatorConfig:
    """A config with sane defaults for ``role`` (what ``init`` writes), validated without reading
    the environment. Raises :class:`ConfigFileError` for bad values."""
    values: dict[str, Any] = {
        "role": role.value,
        "p2p_address": p2p_address or f"/ip4/127.0.0.1/tcp/{role.default_p2p_port}",
        "models": models
        if models is not None
        else ([DEFAULT_NODE_MODEL] if role is OperatorRole.NODE else []),
        "chain": dict(chain or {}),
        "account": {"keystore": keystore, "password_file": password_file},
    }
    try:
        return OperatorConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigFileError(describe_validation_error(exc, "(new)")) from None
