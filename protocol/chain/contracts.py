"""The contracts facade: Web3 contract objects built from forge's ABIs and the deployment file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import Contract, ContractFunction
from web3.types import EventData, LogReceipt, TxReceipt

from protocol.chain.deployment import CONTRACT_NAMES, Deployment, load_abi, load_deployment
from protocol.chain.errors import DeploymentError, RevertCatalog
from protocol.chain.rpc import BlockRef, confirmed_head, make_web3, translated
from protocol.chain.sender import TxSender
from protocol.chain.signer import Signer, load_signer
from protocol.log import get_logger
from protocol.settings import ChainSettings, KeySource

log = get_logger(__name__)


@dataclass(frozen=True)
class SynodContracts:
    """DevnetToken, StakeRegistry and TaskMarket on one chain, plus their decoded errors.

    Build it once with :meth:`connect` at an entry point and pass it down. Reads go through
    :meth:`read` pinned to a :class:`BlockRef`; writes through a :class:`TxSender` from :meth:`sender`.
    """

    settings: ChainSettings
    w3: Web3
    chain_id: int
    deployment: Deployment
    contracts: Mapping[str, Contract]
    errors: RevertCatalog

    @classmethod
    def connect(
        cls,
        settings: ChainSettings,
        root: Path = Path(),
        abis: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> SynodContracts:
        """Connect, load the deployment for the node's chain id and check code is deployed.

        ``root`` is the project directory the artifact paths of the deployment are relative to;
        ``abis`` (contract name -> ABI, e.g. from :func:`protocol.artifacts.load_abis`), when
        given, are used instead of those artifact files.
        """
        w3 = make_web3(settings)
        bootstrap = RevertCatalog({})
        with translated(bootstrap, "eth_chainId"):
            chain_id = int(w3.eth.chain_id)
        path = settings.deployments_path(chain_id)
        deployment = load_deployment(path)
        if deployment.chain_id != chain_id:
            raise DeploymentError(
                f"{path} is for chain {deployment.chain_id}, the RPC serves chain {chain_id}"
            )
        if abis is None:
            abis = {name: load_abi(root / deployment.contracts[name].artifact) for name in CONTRACT_NAMES}
        missing = [name for name in CONTRACT_NAMES if name not in abis]
        if missing:
            raise DeploymentError(f"no ABI given for {missing}")
        abis = {name: list(abis[name]) for name in CONTRACT_NAMES}
        contracts: dict[str, Contract] = {}
        for name, abi in abis.items():
            address = deployment.address(name)
            with translated(bootstrap, "eth_getCode"):
                code = w3.eth.get_code(address)
            if len(code) == 0:
                raise DeploymentError(
                    f"no contract code for {name} at {address} on chain {chain_id}: {path} is stale or "
                    "for another network (redeploy, or point at the right deployment file)"
                )
            contracts[name] = w3.eth.contract(address=address, abi=abi, decode_tuples=True)
        log.info("chain_connected", chain_id=chain_id, deployment=str(path), block=deployment.deploy_block)
        return cls(settings, w3, chain_id, deployment, contracts, RevertCatalog(abis))

    @property
    def token(self) -> Contract:
        return self.contracts["DevnetToken"]

    @property
    def registry(self) -> Contract:
        return self.contracts["StakeRegistry"]

    @property
    def market(self) -> Contract:
        return self.contracts["TaskMarket"]

    def head(self, confirmations: int | None = None) -> BlockRef:
        """The confirmed head (``settings.confirmations`` behind the latest block by default)."""
        depth = self.settings.confirmations if confirmations is None else confirmations
        return confirmed_head(self.w3, self.errors, depth)

    def read(self, fn: ContractFunction, block: BlockRef) -> Any:
        """Call a view function at exactly ``block``; reverts come back decoded."""
        with translated(self.errors, fn.fn_name):
            return fn.call(block_identifier=block.block_identifier)

    def signer(self, source: KeySource | None = None) -> Signer:
        """The signer for ``source`` (default: the configured key)."""
        key = source if source is not None else self.settings.key
        if key is None:
            raise DeploymentError("no key configured: set a keystore (or a dev key index on the devnet)")
        return load_signer(key, self.chain_id)

    def sender(self, signer: Signer) -> TxSender:
        """A new transaction sender for ``signer``; keep one per key for the life of the process."""
        return TxSender(self.w3, signer, self.errors, self.settings, self.chain_id)

    def decode_logs(self, logs: Sequence[LogReceipt] | TxReceipt) -> list[EventData]:
        """Decode the logs of our three contracts (others are skipped), in log order."""
        entries = logs["logs"] if isinstance(logs, Mapping) else logs
        by_source = {c.address: c for c in self.contracts.values()}
        out: list[EventData] = []
        for entry in entries:
            contract = by_source.get(Web3.to_checksum_address(entry["address"]))
            topics = entry["topics"]
            if contract is None or not topics:
                continue
            event = _event_for_topic(contract, HexBytes(topics[0]))
            if event is not None:
                out.append(contract.events[event]().process_log(entry))
        return out


def _event_for_topic(contract: Contract, topic: bytes) -> str | None:
    for entry in contract.abi:
        if (
            entry["type"] == "event"
            and not entry.get("anonymous", False)
            and event_abi_to_log_topic(entry) == topic
        ):
            return str(entry["name"])
    return None
