"""The contracts facade: Web3 contract objects built from forge's ABIs and the deployment file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import Contract, ContractFunction
from web3.types import EventData, LogReceipt, TxReceipt

from protocol.chain.deployment import CONTRACT_NAMES, Deployment, load_abi, load_deployment
from protocol.chain.errors import DeploymentError, JsonRpcError, RevertCatalog, RpcError
from protocol.chain.rpc import BlockRef, confirmed_head, make_web3, raw_request, translated
from protocol.chain.sender import TxSender
from protocol.chain.signer import Signer, load_signer
from protocol.log import get_logger
from protocol.settings import ChainSettings, KeySource

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """What a lean ``eth_call`` of one view needs, derived once from its ABI entry: the 4-byte
    selector, the canonical input types and the output entries (with their types)."""

    name: str
    selector: bytes
    input_types: tuple[str, ...]
    outputs: tuple[Mapping[str, Any], ...]
    output_types: tuple[str, ...]

    @classmethod
    def of(cls, abi: Mapping[str, Any]) -> ViewSpec:
        """The spec of a ``function`` ABI entry."""
        return cls(
            name=str(abi["name"]),
            selector=bytes(function_abi_to_4byte_selector(abi)),  # type: ignore[arg-type]
            input_types=tuple(get_abi_input_types(abi)),  # type: ignore[arg-type]
            outputs=tuple(abi.get("outputs", ())),
            output_types=tuple(get_abi_output_types(abi)),  # type: ignore[arg-type]
        )

    def encode(self, args: Sequence[Any]) -> bytes:
        """The call data for ``args`` (Python values eth_abi accepts: ints, bytes, hex addresses)."""
        return self.selector + abi_encode(list(self.input_types), list(args))

    def decode(self, data: bytes) -> Any:
        """The return data as web3 gives it to :func:`protocol.chain.models.view_value`: the single
        output itself, several as a tuple; structs as positional tuples; addresses checksummed.
        Raises what eth_abi raises for data that does not fit (``DecodingError``)."""
        values = abi_decode(list(self.output_types), data)
        normalized = tuple(_normalized(o, v) for o, v in zip(self.outputs, values, strict=True))
        return normalized[0] if len(normalized) == 1 else normalized


def _normalized(entry: Mapping[str, Any], value: Any) -> Any:
    """eth_abi's decoded ``value`` of ABI ``entry`` with web3's normalization: checksummed
    addresses (eth_abi gives lower case), arrays and structs as tuples."""
    kind = str(entry["type"])
    if kind.endswith("]"):
        inner = {**entry, "type": kind[: kind.rindex("[")]}
        return tuple(_normalized(inner, v) for v in value)
    if kind == "tuple":
        return tuple(_normalized(c, v) for c, v in zip(entry["components"], value, strict=True))
    if kind == "address":
        return to_checksum_address(value)
    return value


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
    _views: dict[tuple[str, str, int], ViewSpec | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    """(address, function, argument count) -> its lean spec (None: not one function: use web3)."""

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
        """Call a view function at exactly ``block`` through web3; reverts come back decoded.
        Structs come back as web3's named tuples (callers read fields by name)."""
        with translated(self.errors, fn.fn_name):
            return fn.call(block_identifier=block.block_identifier)

    def view(self, contract: str, name: str, args: Sequence[Any], block: BlockRef) -> Any:
        """View ``name`` of contract ``contract`` (a :data:`CONTRACT_NAMES` entry) with ``args`` at
        ``block``, for :func:`protocol.chain.models.view_value` (the typed readers of ``market.py``
        and ``registry.py``): encoded and decoded here with eth_abi from the function's ABI and sent
        straight through the provider (:func:`~protocol.chain.rpc.raw_request`), without building
        a web3 ``ContractFunction`` (its ABI matching, middleware and formatters were most of a
        small read's CPU). Values as :meth:`ViewSpec.decode` gives them: structs as POSITIONAL
        tuples (not web3's named tuples), addresses checksummed. Reverts come back decoded, as
        from :meth:`read`; a struct argument by name or an overloaded name falls back to web3."""
        address = str(self.contracts[contract].address)
        spec = self._spec(address, name, args)
        if spec is None:
            return self.read(self.contracts[contract].functions[name](*args), block)
        return self._call(address, spec, args, block)

    def _spec(self, address: str, name: str, args: Sequence[Any]) -> ViewSpec | None:
        if any(isinstance(a, Mapping) for a in args):  # a struct by field name: web3 orders it
            return None
        key = (address, name, len(args))
        if key not in self._views:
            by_address = {str(c.address): c for c in self.contracts.values()}
            contract = by_address.get(address)
            abi: list[Mapping[str, Any]] = list(contract.abi) if contract is not None else []
            entries = [
                e
                for e in abi
                if e.get("type") == "function"
                and e.get("name") == name
                and len(e.get("inputs", ())) == len(args)
            ]
            self._views[key] = ViewSpec.of(entries[0]) if len(entries) == 1 else None
        return self._views[key]

    def _call(self, address: str, spec: ViewSpec, args: Sequence[Any], block: BlockRef) -> Any:
        with translated(self.errors, spec.name):
            data = spec.encode(args)
            try:
                call = {"to": address, "data": "0x" + data.hex()}
                raw = raw_request(self.w3, "eth_call", [call, hex(block.block_identifier)])
            except JsonRpcError as exc:
                payload = exc.data.get("data") if isinstance(exc.data, Mapping) else exc.data
                if isinstance(payload, str) and payload.startswith("0x") and len(payload) >= 10:
                    raise self.errors.decode(bytes.fromhex(payload[2:]), spec.name) from None
                if "revert" in exc.rpc_message.lower():
                    raise RpcError(f"{spec.name} reverted without data: {exc.rpc_message}") from None
                raise
            if not isinstance(raw, str) or not raw.startswith("0x"):
                raise RpcError(f"{spec.name}: eth_call returned {raw!r:.100}")
            try:
                return spec.decode(bytes.fromhex(raw[2:]))
            except Exception as exc:  # eth_abi's DecodingError (and ValueError for bad hex)
                raise RpcError(f"{spec.name}: return data does not fit the ABI: {exc}") from None

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
