"""Chain access: the contracts facade from forge's ABIs, decoded custom errors, signer, sender.

Typical use at an entry point::

    settings = ChainSettings.from_env()
    chain = SynodContracts.connect(settings)
    sender = chain.sender(chain.signer())
    block = chain.head()
    fee = chain.read(chain.market.functions.someView(), block)
    receipt = sender.transact(chain.market.functions.someCall(...))
    posted = Market(chain).post_task(sender, JobParams(...), workflow, input_row)  # typed helpers

trio callers wrap it in :class:`~protocol.chain.aio.TrioChain` (imported from its module, so that
synchronous users do not load trio).

Daemons use the trio-native layer instead, each from its module: :class:`~protocol.chain.aio.AsyncRpc`
(JSON-RPC on httpx: real deadlines, reads pinned by block hash, separate read capacity),
:class:`~protocol.chain.writer.TxWriter` (one per key: journal before send, nonce resync, fee bumps),
:class:`~protocol.chain.watcher.Watcher` (reorg-safe ``eth_getLogs`` from a persisted cursor) and
:class:`~protocol.chain.events.EventCatalog` (typed events from forge's ABIs).
"""

from protocol.chain.contracts import SynodContracts
from protocol.chain.deployment import Deployment, load_abi, load_deployment
from protocol.chain.errors import (
    ChainError,
    ContractRevert,
    DeploymentError,
    JsonRpcError,
    NonceTooLow,
    RangeTooLarge,
    RevertCatalog,
    RpcError,
    RpcTimeout,
    SignerError,
    TransactionReverted,
    TransactionTimeout,
    UnknownRevert,
)
from protocol.chain.market import JobParams, Market, Phase, PostedJob, Seat, model_id
from protocol.chain.registry import Registry, Role
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import Receipt, TxSender
from protocol.chain.signer import Signer, anvil_dev_signer, keystore_signer, load_signer

__all__ = [
    "BlockRef",
    "ChainError",
    "ContractRevert",
    "Deployment",
    "DeploymentError",
    "JobParams",
    "JsonRpcError",
    "Market",
    "NonceTooLow",
    "Phase",
    "PostedJob",
    "RangeTooLarge",
    "Receipt",
    "Registry",
    "RevertCatalog",
    "Role",
    "RpcError",
    "RpcTimeout",
    "Seat",
    "Signer",
    "SignerError",
    "SynodContracts",
    "TransactionReverted",
    "TransactionTimeout",
    "TxSender",
    "UnknownRevert",
    "anvil_dev_signer",
    "keystore_signer",
    "load_abi",
    "load_deployment",
    "load_signer",
    "model_id",
]
