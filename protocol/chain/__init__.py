"""Chain access: the contracts facade from forge's ABIs, decoded custom errors, signer, sender.

Typical use at an entry point::

    settings = ChainSettings.from_env()
    chain = SynodContracts.connect(settings)
    sender = chain.sender(chain.signer())
    block = chain.head()
    fee = chain.read(chain.market.functions.someView(), block)
    receipt = sender.transact(chain.market.functions.someCall(...))
    posted = Market(chain).post_job(sender, JobParams(...), workflow, rows)  # typed helpers (v2: batches)
    view = Market(chain).batch(posted.batch_ids[0], chain.head())           # -> models.BatchView

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
from protocol.chain.market import Market, PostedBatch, PostedJob, PostLimits, Settlement, model_id, plan_posts
from protocol.chain.models import (
    BatchView,
    CommitteeSeat,
    JobParams,
    JobView,
    NodeSeat,
    Participant,
    Phase,
    PhaseOf,
    RefundReason,
    Role,
    SlashReason,
    decode_event,
)
from protocol.chain.registry import Registry
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import Receipt, TxSender
from protocol.chain.signer import Signer, anvil_dev_signer, keystore_signer, load_signer

__all__ = [
    "BatchView",
    "BlockRef",
    "ChainError",
    "CommitteeSeat",
    "ContractRevert",
    "Deployment",
    "DeploymentError",
    "JobParams",
    "JobView",
    "JsonRpcError",
    "Market",
    "NodeSeat",
    "NonceTooLow",
    "Participant",
    "Phase",
    "PhaseOf",
    "PostLimits",
    "PostedBatch",
    "PostedJob",
    "RangeTooLarge",
    "Receipt",
    "RefundReason",
    "Registry",
    "RevertCatalog",
    "Role",
    "RpcError",
    "RpcTimeout",
    "Settlement",
    "Signer",
    "SignerError",
    "SlashReason",
    "SynodContracts",
    "TransactionReverted",
    "TransactionTimeout",
    "TxSender",
    "UnknownRevert",
    "anvil_dev_signer",
    "decode_event",
    "keystore_signer",
    "load_abi",
    "load_deployment",
    "load_signer",
    "model_id",
    "plan_posts",
]
