"""Where the requester's chain, contracts and key are: flags or environment, checked before use.

Sources, first wins: the command's flags, then ``SYNOD_RPC_URL``, ``SYNOD_DEPLOYMENT``,
``SYNOD_ARTIFACTS_DIR``, ``SYNOD_KEYSTORE`` (password: ``--password-file``, then
``$SYNOD_KEYSTORE_PASSWORD``), ``SYNOD_DEV_KEY`` (an Anvil account index, accepted on chain 31337
only). ``synod devnet status`` prints these lines for its requester account.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.artifacts import load_abis, packaged_deployment
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError, DeploymentError, RevertCatalog, RpcError
from protocol.chain.rpc import make_web3, translated
from protocol.chain.sender import TxSender
from protocol.chain.signer import Signer, anvil_dev_signer, keystore_signer
from protocol.errors import SynodError
from protocol.operator.amounts import TokenUnits
from protocol.operator.keys import resolve_password
from protocol.settings import ChainSettings
from requester.errors import RequesterError


class RequesterSettings(BaseModel):
    """The requester's connection (see the module docstring for the sources)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpc_url: str = "http://127.0.0.1:8545"
    deployment: Path | None = None
    """The deployment JSON; unset: the package's file for the chain the RPC serves."""
    artifacts_dir: Path | None = None
    """A forge ``out/`` to read ABIs from; unset: the packaged ABIs."""
    keystore: Path | None = None
    password_file: Path | None = None
    dev_key: int | None = Field(default=None, ge=0, le=19)
    rpc_timeout: float = Field(default=10.0, gt=0)
    receipt_timeout: float = Field(default=120.0, gt=0)

    @classmethod
    def from_sources(
        cls, flags: Mapping[str, object], environ: Mapping[str, str] | None = None
    ) -> RequesterSettings:
        """Flags (``None`` values ignored) over the environment. Raises :class:`RequesterError`
        naming the bad field."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, var in (
            ("rpc_url", "SYNOD_RPC_URL"),
            ("deployment", "SYNOD_DEPLOYMENT"),
            ("artifacts_dir", "SYNOD_ARTIFACTS_DIR"),
            ("keystore", "SYNOD_KEYSTORE"),
            ("dev_key", "SYNOD_DEV_KEY"),
        ):
            if env.get(var):
                values[name] = env[var]
        values.update({k: v for k, v in flags.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise RequesterError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


@dataclass(frozen=True)
class RequesterChain:
    """The connected contracts and the token's unit."""

    chain: SynodContracts
    units: TokenUnits
    settings: RequesterSettings

    def signer(self, environ: Mapping[str, str] | None = None) -> Signer:
        """The requester's key: the keystore (password from the file, the environment or a prompt)
        or the Anvil dev key. Raises :class:`RequesterError` saying which flag to give."""
        env = os.environ if environ is None else environ
        s = self.settings
        try:
            if s.keystore is not None:
                prompt = getpass.getpass if sys.stdin.isatty() else None
                password = resolve_password(s.password_file, env, prompt=prompt)
                return keystore_signer(s.keystore, password.get_secret_value())
            if s.dev_key is not None:
                return anvil_dev_signer(s.dev_key, self.chain.chain_id)
        except SynodError as exc:
            raise RequesterError(f"{exc}") from None
        raise RequesterError(
            "no requester key: pass --keystore FILE (or --dev-key N on a devnet), or set SYNOD_KEYSTORE"
        )

    def sender(self) -> TxSender:
        return self.chain.sender(self.signer())


def connect(settings: RequesterSettings) -> RequesterChain:
    """Check the RPC answers, find the deployment for its chain, load the ABIs, read the token's
    unit. Raises :class:`RequesterError` (nothing sent) saying what to fix."""
    chain_settings = ChainSettings(
        rpc_url=settings.rpc_url, rpc_timeout=settings.rpc_timeout, receipt_timeout=settings.receipt_timeout
    )
    try:
        with translated(RevertCatalog({}), "eth_chainId"):
            chain_id = int(make_web3(chain_settings).eth.chain_id)
    except RpcError as exc:
        raise RequesterError(
            f"cannot reach the chain at {settings.rpc_url} ({type(exc.__cause__).__name__}): check --rpc-url "
            "(or SYNOD_RPC_URL) and that the node is running"
        ) from None
    path = settings.deployment or packaged_deployment(chain_id)
    if path is None:
        raise RequesterError(
            f"no deployment known for chain {chain_id}: pass --deployment deployments/{chain_id}.json "
            "(or set SYNOD_DEPLOYMENT)"
        )
    try:
        abis = load_abis(settings.artifacts_dir)
        chain = SynodContracts.connect(
            chain_settings.model_copy(update={"deployments_file": path}), abis=abis
        )
        block = chain.head(0)
        token = chain.token.functions
        units = TokenUnits(int(chain.read(token.decimals(), block)), str(chain.read(token.symbol(), block)))
    except (DeploymentError, ChainError) as exc:
        raise RequesterError(f"{exc}") from None
    return RequesterChain(chain, units, settings)
