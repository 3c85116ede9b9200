"""Connecting an operator from its config, refusing to start on the wrong chain.

Before anything is read or sent: the RPC endpoint answers ``eth_chainId``; that chain is the one
the config expects (``chain.chain_id``, when set) and the one the deployment file is for; the
ABIs load (configured forge output or the packaged copies); every contract of the deployment has
code. Any failure raises :class:`StartRefused` with what to change. It also reads the genesis
block's hash, so that a daemon can refuse a store written for another chain
(:mod:`protocol.store.binding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocol.artifacts import load_abis, packaged_deployment
from protocol.chain.contracts import SynodContracts
from protocol.chain.deployment import load_deployment
from protocol.chain.errors import ChainError, DeploymentError, RevertCatalog, RpcError
from protocol.chain.rpc import make_web3, translated
from protocol.operator.amounts import TokenUnits
from protocol.operator.config import OperatorConfig
from protocol.operator.errors import StartRefused
from protocol.store.binding import ChainBinding


@dataclass(frozen=True)
class OperatorChain:
    """The contracts on the configured chain, the token's unit (``decimals()``, ``symbol()``) and
    the chain's identity (chain id, genesis hash, market address) for store binding."""

    config: OperatorConfig
    chain: SynodContracts
    units: TokenUnits
    deployment_path: Path
    binding: ChainBinding


def connect(config: OperatorConfig) -> OperatorChain:
    """Check the chain, the deployment and the contracts (see the module docstring); read the
    token's unit. Raises :class:`StartRefused` (nothing sent) on any mismatch or failure."""
    rpc_url = config.chain.rpc_url
    settings = config.chain_settings(password=None)
    try:
        with translated(RevertCatalog({}), "eth_chainId"):
            chain_id = int(make_web3(settings).eth.chain_id)
    except RpcError as exc:
        raise StartRefused(
            f"cannot reach the chain at {rpc_url} ({exc.__cause__.__class__.__name__}): check "
            "chain.rpc_url and that the node is running"
        ) from None
    expected = config.chain.chain_id
    if expected is not None and expected != chain_id:
        raise StartRefused(
            f"refusing to start: the RPC at {rpc_url} serves chain {chain_id}, but this config "
            f"expects chain {expected} (chain.chain_id); point chain.rpc_url at a chain-{expected} endpoint"
        )
    path = config.chain.deployment or packaged_deployment(chain_id)
    if path is None:
        raise StartRefused(
            f"no deployment known for chain {chain_id}: set chain.deployment to the "
            f"deployments/{chain_id}.json that scripts/Deploy.s.sol wrote"
        )
    try:
        deployment = load_deployment(path)
    except DeploymentError as exc:
        raise StartRefused(f"{exc}; fix chain.deployment") from None
    if deployment.chain_id != chain_id:
        raise StartRefused(
            f"refusing to start: the deployment {path} is for chain {deployment.chain_id}, but the "
            f"RPC at {rpc_url} serves chain {chain_id}; point chain.rpc_url at chain "
            f"{deployment.chain_id} or chain.deployment at chain {chain_id}'s deployment"
        )
    try:
        abis = load_abis(config.chain.artifacts_dir)
        chain = SynodContracts.connect(settings.model_copy(update={"deployments_file": path}), abis=abis)
    except DeploymentError as exc:
        raise StartRefused(f"refusing to start: {exc}") from None
    except ChainError as exc:
        raise StartRefused(f"refusing to start: {exc}; check chain.rpc_url") from None
    block = chain.head(0)
    token = chain.token.functions
    try:
        units = TokenUnits(int(chain.read(token.decimals(), block)), str(chain.read(token.symbol(), block)))
    except ChainError as exc:
        raise StartRefused(
            f"the token at {chain.token.address} does not answer decimals()/symbol(): {exc}"
        ) from None
    try:
        with translated(RevertCatalog({}), "eth_getBlockByNumber"):
            genesis = bytes(chain.w3.eth.get_block(0)["hash"])
    except RpcError as exc:
        raise StartRefused(f"the chain at {rpc_url} does not serve its genesis block: {exc}") from None
    binding = ChainBinding(
        chain_id=chain_id, genesis_hash="0x" + genesis.hex(), market=str(chain.market.address)
    )
    return OperatorChain(config=config, chain=chain, units=units, deployment_path=path, binding=binding)
