"""Shared by the operator tests (Python API and CLI): one real Anvil with the contracts deployed,
the ABIs exported into the package as ``make build`` does, accounts funded by minting, snapshots
per test, and helpers to write keystores, configs and to run the real ``synod`` CLI.

Import the fixtures into a test module (``from tests.operator.fixtures import devnet, ...``).
Accounts: Anvil dev keys 8 (a node) and 9 (a validator), which ``fund_and_register`` never uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from web3.types import RPCEndpoint

from protocol.chain.contracts import SynodContracts
from protocol.chain.signer import anvil_dev_signer
from protocol.operator.config import OperatorRole, new_config, render_config
from protocol.operator.keys import write_keystore
from scripts.devnet import ROOT, Devnet, dev_private_key_hex, local_devnet
from scripts.export_abi import export_abis

NODE_INDEX = 8
VALIDATOR_INDEX = 9
PASSWORD = "correct horse battery staple"
FAST_SCRYPT_N = 2**4
"""Throwaway test keys only: the scrypt work factor of real keys is eth-account's 2**18."""
TOKEN = 10**18


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    with local_devnet(ROOT) as net:
        export_abis(ROOT)  # what `make build` does after `forge build`
        yield net


@pytest.fixture(scope="session")
def chain(devnet: Devnet) -> SynodContracts:
    return SynodContracts.connect(devnet.settings, ROOT)


def rpc(chain: SynodContracts, method: str, params: list[Any]) -> Any:
    reply = chain.w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in reply, reply
    return reply["result"]


@pytest.fixture
def fresh_chain(chain: SynodContracts) -> Iterator[SynodContracts]:
    """The session chain, rolled back to its state before the test when the test ends."""
    snapshot = rpc(chain, "evm_snapshot", [])
    try:
        yield chain
    finally:
        assert rpc(chain, "evm_revert", [snapshot]) is True


def mint(chain: SynodContracts, index: int, amount: int) -> None:
    """Mint DevnetTokens to Anvil account ``index`` (anyone may mint on a devnet)."""
    sender = chain.sender(anvil_dev_signer(0, chain.chain_id))
    to = anvil_dev_signer(index, chain.chain_id).address
    sender.transact(chain.token.functions.mint(to, amount), label="mint")


def advance_time(chain: SynodContracts, seconds: int) -> None:
    rpc(chain, "evm_increaseTime", [seconds])
    rpc(chain, "evm_mine", [])


def dev_keystore(tmp_path: Path, index: int, name: str | None = None) -> Path:
    """Anvil dev key ``index`` in a keystore under ``tmp_path`` (password :data:`PASSWORD`)."""
    path = tmp_path / "keys" / f"{name or index}.json"
    key = bytes.fromhex(dev_private_key_hex(index)[2:])
    write_keystore(path, SecretStr(PASSWORD), key, scrypt_n=FAST_SCRYPT_N)
    return path


def write_config(
    tmp_path: Path,
    devnet: Devnet,
    role: OperatorRole,
    keystore: Path,
    models: list[str] | None = None,
    **chain: Any,
) -> Path:
    """A config for ``role`` on the devnet (confirmations 0), written under ``tmp_path``."""
    config = new_config(
        role,
        keystore=keystore,
        models=models,
        chain={"rpc_url": devnet.rpc_url, "deployment": devnet.deployments_file, "confirmations": 0, **chain},
    )
    path = tmp_path / f"{role.value}.toml"
    path.write_text(render_config(config), encoding="utf-8")
    return path


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this worktree's packages first, a private HOME and
    config dir, no SYNOD_* leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")}
    env.update(
        PYTHONPATH=str(ROOT),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        **extra,
    )
    return env


def synod(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``synod`` command (``python -m cli.main``) in a subprocess, stdin closed."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,  # never the repository: nothing may be found through the working directory
        env=env if env is not None else cli_env(tmp_path),
        stdin=subprocess.DEVNULL,
        check=False,
    )
