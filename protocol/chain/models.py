"""Typed models of every protocol v2 event and view of TaskMarket and StakeRegistry.

Each model mirrors one ABI entry: its fields carry the ABI names as aliases (``job_id`` <-> ``jobId``)
and their Solidity types as :class:`Sol` metadata, and ``tests/protocol/test_chain_models.py``
enumerates forge's ABI output and asserts that every event and every view has a model here whose
fields match name for name and type for type (enums included: their members are checked against the
Solidity source, since the ABI carries an enum as ``uint8`` only). Nothing here restates a selector or
an event topic: web3 decodes the logs from the ABI, these models type what it decoded::

    args = decode_event(event_data)            # -> e.g. BatchSettled, validated and frozen
    view = BatchView.from_abi(raw_tuple)       # a struct or a multi-value return

Values are validated on the way in (uint ranges, 32-byte words, checksummed addresses, enum members),
so a node or validator never acts on a malformed chain value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, ClassVar, Self, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

from protocol.chain.deployment import ChecksumAddress
from protocol.chain.errors import ChainError
from protocol.types import TypeValidationError, bytes32_of


@dataclass(frozen=True, slots=True)
class Sol:
    """The Solidity type of a field, as the ABI spells it (``uint96``, ``bytes32[]``, ``tuple``)."""

    type: str


class Phase(IntEnum):
    """``ITaskMarket.Phase``: the stored (or, from ``phaseOf``, effective) phase of a batch."""

    NONE = 0
    COMMITTING = 1
    REVEALING = 2
    DRAWING = 3
    SCORE_COMMITTING = 4
    SCORE_REVEALING = 5
    SETTLED = 6
    REFUNDED = 7


class RefundReason(IntEnum):
    """``ITaskMarket.RefundReason``: why a batch's whole bounty went back to its requester."""

    CANCELLED = 0
    NO_COMMIT = 1
    NO_REVEAL = 2
    NO_VALIDATOR = 3
    NO_DRAW = 4


class SlashReason(IntEnum):
    """``ITaskMarket.SlashReason``: why a participant was slashed on a batch."""

    NO_REVEAL = 0
    NO_SCORE_COMMIT = 1
    NO_SCORE_REVEAL = 2
    JUNK = 3


class Role(IntEnum):
    """``IStakeRegistry.Role``: one role per address."""

    NONE = 0
    NODE = 1
    VALIDATOR = 2


ENUMS: tuple[type[IntEnum], ...] = (Phase, RefundReason, SlashReason, Role)
"""Every Solidity enum mirrored here (by class name), for the source check."""


def _word(value: object) -> bytes:
    try:
        return bytes(bytes32_of(value))
    except TypeValidationError as exc:
        raise ValueError(str(exc)) from None


Uint8 = Annotated[int, Field(ge=0, lt=2**8), Sol("uint8")]
Uint16 = Annotated[int, Field(ge=0, lt=2**16), Sol("uint16")]
Uint32 = Annotated[int, Field(ge=0, lt=2**32), Sol("uint32")]
Uint40 = Annotated[int, Field(ge=0, lt=2**40), Sol("uint40")]
Uint64 = Annotated[int, Field(ge=0, lt=2**64), Sol("uint64")]
Uint96 = Annotated[int, Field(ge=0, lt=2**96), Sol("uint96")]
Uint256 = Annotated[int, Field(ge=0, lt=2**256), Sol("uint256")]
Word = Annotated[bytes, BeforeValidator(_word), Sol("bytes32")]
"""A ``bytes32``: exactly 32 bytes."""
Bytes = Annotated[bytes, BeforeValidator(bytes), Sol("bytes")]
Bool = Annotated[bool, Field(strict=True), Sol("bool")]
AddressField = Annotated[ChecksumAddress, Sol("address")]
Words = Annotated[tuple[Word, ...], Sol("bytes32[]")]
AddressList = Annotated[tuple[ChecksumAddress, ...], Sol("address[]")]
Uint96List = Annotated[tuple[Annotated[int, Field(ge=0, lt=2**96)], ...], Sol("uint96[]")]
Uint256List = Annotated[tuple[Annotated[int, Field(ge=0, lt=2**256)], ...], Sol("uint256[]")]
BytesList = Annotated[tuple[Annotated[bytes, BeforeValidator(bytes)], ...], Sol("bytes[]")]
PhaseField = Annotated[Phase, Sol("uint8")]
RefundReasonField = Annotated[RefundReason, Sol("uint8")]
SlashReasonField = Annotated[SlashReason, Sol("uint8")]
RoleField = Annotated[Role, Sol("uint8")]


def _camel(name: str) -> str:
    """``p2p_address`` -> ``p2pAddress`` (the ABI's lowerCamelCase; digits stay as they are)."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _plain(value: Any) -> Any:
    """web3's decoded values as plain Python: named tuples and AttributeDicts to dicts, HexBytes to bytes."""
    if isinstance(value, bytes):
        return bytes(value)
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


class AbiModel(BaseModel):
    """A frozen model of an ABI tuple (event arguments, a struct, or the outputs of a view).

    Fields are declared in ABI order with snake_case names; the aliases are the ABI's camelCase names.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=_camel, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _positional(cls, value: Any) -> Any:
        """A positional tuple (web3's plain struct or multi-value return) by field order."""
        if isinstance(value, tuple | list):
            names = [f.alias or name for name, f in cls.model_fields.items()]
            if len(value) != len(names):
                raise ValueError(f"expected {len(names)} values, got {len(value)}")
            return dict(zip(names, value, strict=True))
        return value

    @classmethod
    def from_abi(cls, value: Any) -> Self:
        """Validate web3's decoded value: a mapping by ABI name, a named tuple, or a positional tuple
        (nested structs alike).

        Raises :class:`ChainError` when it does not fit the model (a value out of range, a field
        missing): the chain answered something the ABI does not allow.
        """
        try:
            return cls.model_validate(_plain(value))
        except ValueError as exc:
            raise ChainError(f"{cls.__name__}: chain value does not fit the ABI: {exc}") from None

    def to_abi(self) -> dict[str, Any]:
        """The fields by their ABI names (web3 orders a struct argument from the ABI)."""
        return self.model_dump(by_alias=True)


# ---------------------------------------------------------------------- structs


class JobParams(AbiModel):
    """``ITaskMarket.JobParams``. Only the Solidity types are checked here; the contract judges the
    ranges (bounty > 0, batch size 1..256, k and m 1..16, ...) and reverts with a named error."""

    model: Word
    bounty_per_task: Uint96
    batch_size: Uint16
    k: Uint8
    m: Uint8
    threshold: Uint8
    tolerance: Uint8
    junk_floor: Uint8
    validator_share_bps: Uint16
    commit_duration: Uint32
    reveal_duration: Uint32
    score_commit_duration: Uint32
    score_reveal_duration: Uint32


class JobView(AbiModel):
    """``ITaskMarket.JobView``: a stored job (``job(jobId)``)."""

    requester: AddressField
    first_batch_id: Uint64
    batch_count: Uint32
    row_count: Uint32
    params: JobParams


class BatchView(AbiModel):
    """``ITaskMarket.BatchView``: a stored batch (``batch(batchId)``). Masks: bit i = seat i."""

    job_id: Uint64
    phase: PhaseField
    deadline: Uint40
    rows: Uint16
    first_row: Uint32
    round: Uint8
    commit_count: Uint8
    reveal_count: Uint8
    revealed_mask: Uint16
    committee_size: Uint8
    score_commit_mask: Uint16
    score_reveal_mask: Uint16
    seed_block: Uint40
    input_hash: Word
    """``keccak256(abi.encode(keccak256(workflow), rowsHash))`` while the batch is open
    (:func:`protocol.commitments.input_hash`), zero once it ended (the parts are in ``JobPosted`` /
    ``BatchPosted``)."""

    def revealed_seats(self) -> list[int]:
        """Node seats that revealed, ascending."""
        return [s for s in range(self.commit_count) if self.revealed_mask >> s & 1]

    def score_revealed_seats(self) -> list[int]:
        """Committee seats of the current round that revealed scores, ascending (``settle``'s order)."""
        return [s for s in range(self.committee_size) if self.score_reveal_mask >> s & 1]


class Participant(AbiModel):
    """``IStakeRegistry.Participant``: a registration record (``participant(account)``)."""

    stake: Uint96
    unbonding_end: Uint40
    role: RoleField
    tree_index: Uint16
    model_count: Uint8
    id: Uint32
    open_seats: Uint16


# ---------------------------------------------------------------------- multi-value views


class PhaseOf(AbiModel):
    """``phaseOf(batchId)``: the effective phase now (deadline transitions applied) and when it ends."""

    phase: PhaseField
    deadline: Uint256


class NodeSeat(AbiModel):
    """``nodeSeat(batchId, seat)``; ``node`` reads as the zero address once the batch has ended (the
    seat page is recycled; the ``ResultCommitted`` events keep the seats)."""

    node: AddressField
    revealed: Bool


class CommitteeSeat(AbiModel):
    """``committeeSeat(batchId, seat)`` of the current round; ``seal`` is the score commitment, then
    after the reveal keccak256 of the revealed score vector (0 before the commit). Once the batch has
    ended (Settled or Refunded) validator, weight and seal read as zero (the seat page is recycled; the
    ``CommitteeDrawn`` event keeps the committee); the flags stay."""

    validator: AddressField
    weight: Uint96
    committed: Bool
    revealed: Bool
    seal: Word


class DrawnValidators(AbiModel):
    """``drawValidators(seed, m)``: what a draw from ``seed`` would seat, in draw order; also
    ``committeePreview(batchId)`` (the committee a draw of the batch now would seat, in seat order;
    empty when no draw would happen)."""

    validators: AddressList
    weights: Uint96List


# ---------------------------------------------------------------------- TaskMarket events


class EventModel(AbiModel):
    """The decoded arguments of one event; ``EVENT`` is its ABI name, ``CONTRACT`` its emitter."""

    EVENT: ClassVar[str] = ""
    CONTRACT: ClassVar[str] = ""


class JobPosted(EventModel):
    """Job ``job_id`` posted: batches ``first_batch_id`` .. ``+ batch_count - 1`` over ``row_count`` rows;
    the workflow's canonical bytes."""

    EVENT = "JobPosted"
    CONTRACT = "TaskMarket"
    job_id: Uint256
    requester: AddressField
    model: Word
    first_batch_id: Uint256
    batch_count: Uint256
    row_count: Uint256
    params: JobParams
    workflow: Bytes


class BatchPosted(EventModel):
    """Batch ``batch_id`` of ``job_id`` holds the job's rows from ``first_row`` (their canonical bytes);
    commits due by ``commit_deadline``."""

    EVENT = "BatchPosted"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    job_id: Uint256
    first_row: Uint256
    commit_deadline: Uint256
    rows_hash: Word
    rows: BytesList


class ResultCommitted(EventModel):
    """``node`` took node ``seat`` with ``commitment``; ``commit_count`` seats are taken."""

    EVENT = "ResultCommitted"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    node: AddressField
    seat: Uint256
    commitment: Word
    commit_count: Uint256


class ResultRevealed(EventModel):
    """``node`` at ``seat`` revealed one digest per row of the batch and its salt."""

    EVENT = "ResultRevealed"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    node: AddressField
    seat: Uint256
    digests: Words
    salt: Word


class BatchPhaseChanged(EventModel):
    """A passed deadline moved the stored phase to ``phase``, which ends at ``deadline``."""

    EVENT = "BatchPhaseChanged"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    phase: PhaseField
    deadline: Uint256


class CommitteeSeedArmed(EventModel):
    """The draw of ``round`` will use the hash of block ``seed_block`` (draw after it, by
    ``draw_deadline``)."""

    EVENT = "CommitteeSeedArmed"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    round: Uint256
    seed_block: Uint256
    draw_deadline: Uint256


class CommitteeDrawn(EventModel):
    """The committee of ``round``: ``validators[i]`` at seat i with weight ``weights[i]`` (stake at the
    draw)."""

    EVENT = "CommitteeDrawn"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    round: Uint256
    seed: Word
    validators: AddressList
    weights: Uint96List
    score_commit_deadline: Uint256


class ScoresCommitted(EventModel):
    """``validator`` at committee ``seat`` committed to its score vector."""

    EVENT = "ScoresCommitted"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    validator: AddressField
    seat: Uint256
    commitment: Word


class ScoresRevealed(EventModel):
    """``validator`` at ``seat`` revealed ``scores`` (byte ``seat * rows + row``)."""

    EVENT = "ScoresRevealed"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    validator: AddressField
    seat: Uint256
    scores: Bytes


class BatchRescoring(EventModel):
    """Round ``round`` ended with ``voters`` of ``committee_size`` vectors, short of a majority: a new draw
    is armed."""

    EVENT = "BatchRescoring"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    round: Uint256
    voters: Uint256
    committee_size: Uint256


class BatchSettled(EventModel):
    """Batch settled: medians (byte ``seat * rows + row``), per node seat credits, agreeing seats, refund."""

    EVENT = "BatchSettled"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    requester: AddressField
    round: Uint256
    scored: Bool
    medians: Bytes
    node_paid: Uint256List
    agreed_mask: Uint256
    validator_reward: Uint256
    refund: Uint256


class BatchRefunded(EventModel):
    """The whole bounty ``amount`` of the batch went back to ``requester`` for ``reason``."""

    EVENT = "BatchRefunded"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    requester: AddressField
    reason: RefundReasonField
    amount: Uint256


class MisconductSlashed(EventModel):
    """``account`` was slashed ``amount`` on ``batch_id`` for ``reason``."""

    EVENT = "MisconductSlashed"
    CONTRACT = "TaskMarket"
    batch_id: Uint256
    account: AddressField
    reason: SlashReasonField
    amount: Uint256


class AccountOpened(EventModel):
    """``account``'s balance slot was created ahead of its first credit."""

    EVENT = "AccountOpened"
    CONTRACT = "TaskMarket"
    account: AddressField


class Claimed(EventModel):
    """``account`` claimed its whole balance, ``amount`` tokens."""

    EVENT = "Claimed"
    CONTRACT = "TaskMarket"
    account: AddressField
    amount: Uint256


# ---------------------------------------------------------------------- StakeRegistry events


class ParticipantRegistered(EventModel):
    """``account`` registered as ``role`` with ``stake``, serving ``models``, reachable at ``p2p_address``."""

    EVENT = "ParticipantRegistered"
    CONTRACT = "StakeRegistry"
    account: AddressField
    role: RoleField
    id: Uint256
    stake: Uint256
    models: Words
    p2p_address: Bytes


class StakeAdded(EventModel):
    """``account`` added ``amount``; its stake is now ``stake``."""

    EVENT = "StakeAdded"
    CONTRACT = "StakeRegistry"
    account: AddressField
    amount: Uint256
    stake: Uint256


class ModelsUpdated(EventModel):
    """Node ``account`` now serves ``models`` (the full list)."""

    EVENT = "ModelsUpdated"
    CONTRACT = "StakeRegistry"
    account: AddressField
    models: Words


class P2pAddressUpdated(EventModel):
    """``account`` is now reachable at ``p2p_address``."""

    EVENT = "P2pAddressUpdated"
    CONTRACT = "StakeRegistry"
    account: AddressField
    p2p_address: Bytes


class UnbondingStarted(EventModel):
    """``account`` stopped taking new work; it may withdraw from ``unbonding_end`` (and no open seat)."""

    EVENT = "UnbondingStarted"
    CONTRACT = "StakeRegistry"
    account: AddressField
    stake: Uint256
    unbonding_end: Uint256


class Withdrawn(EventModel):
    """``account`` withdrew ``amount`` and is no longer registered."""

    EVENT = "Withdrawn"
    CONTRACT = "StakeRegistry"
    account: AddressField
    amount: Uint256


class Slashed(EventModel):
    """The market slashed ``amount`` from ``account`` on ``batch_id``; the treasury holds
    ``treasury_balance``."""

    EVENT = "Slashed"
    CONTRACT = "StakeRegistry"
    account: AddressField
    batch_id: Uint256
    role: RoleField
    amount: Uint256
    treasury_balance: Uint256


class TreasurySwept(EventModel):
    """``amount`` slashed tokens were sent to ``treasury``."""

    EVENT = "TreasurySwept"
    CONTRACT = "StakeRegistry"
    treasury: AddressField
    amount: Uint256


class TaskMarketSet(EventModel):
    """The registry was wired to ``market`` (once)."""

    EVENT = "TaskMarketSet"
    CONTRACT = "StakeRegistry"
    market: AddressField


class OwnershipTransferStarted(EventModel):
    """OpenZeppelin ``Ownable2Step`` (the registry's owner wires the market once)."""

    EVENT = "OwnershipTransferStarted"
    CONTRACT = "StakeRegistry"
    previous_owner: AddressField
    new_owner: AddressField


class OwnershipTransferred(EventModel):
    """OpenZeppelin ``Ownable``."""

    EVENT = "OwnershipTransferred"
    CONTRACT = "StakeRegistry"
    previous_owner: AddressField
    new_owner: AddressField


MarketEvent: TypeAlias = (
    JobPosted
    | BatchPosted
    | ResultCommitted
    | ResultRevealed
    | BatchPhaseChanged
    | CommitteeSeedArmed
    | CommitteeDrawn
    | ScoresCommitted
    | ScoresRevealed
    | BatchRescoring
    | BatchSettled
    | BatchRefunded
    | MisconductSlashed
    | AccountOpened
    | Claimed
)
"""Any TaskMarket event."""

EVENT_MODELS: tuple[type[EventModel], ...] = (
    JobPosted,
    BatchPosted,
    ResultCommitted,
    ResultRevealed,
    BatchPhaseChanged,
    CommitteeSeedArmed,
    CommitteeDrawn,
    ScoresCommitted,
    ScoresRevealed,
    BatchRescoring,
    BatchSettled,
    BatchRefunded,
    MisconductSlashed,
    AccountOpened,
    Claimed,
    ParticipantRegistered,
    StakeAdded,
    ModelsUpdated,
    P2pAddressUpdated,
    UnbondingStarted,
    Withdrawn,
    Slashed,
    TreasurySwept,
    TaskMarketSet,
    OwnershipTransferStarted,
    OwnershipTransferred,
)
"""Every event model."""

EVENTS: dict[str, dict[str, type[EventModel]]] = {
    contract: {cls.EVENT: cls for cls in EVENT_MODELS if contract == cls.CONTRACT}
    for contract in ("TaskMarket", "StakeRegistry")
}
"""Event models by contract name, then by event name."""


def decode_event(event: Mapping[str, Any], contract: str | None = None) -> EventModel:
    """The typed arguments of a web3-decoded event (``EventData``: keys ``event`` and ``args``).

    ``contract`` ("TaskMarket" / "StakeRegistry") disambiguates; by default the name is looked up in
    both. Raises :class:`ChainError` for an event with no model or arguments that do not fit it.
    """
    name = str(event["event"])
    tables = [EVENTS[contract]] if contract is not None else list(EVENTS.values())
    for table in tables:
        cls = table.get(name)
        if cls is not None:
            return cls.from_abi(event["args"])
    raise ChainError(f"no model for event {name!r}")


# ---------------------------------------------------------------------- views


ViewOutput: TypeAlias = type[AbiModel] | Any
"""A model (struct or several outputs) or an annotated scalar type (one output)."""

MARKET_VIEWS: dict[str, ViewOutput] = {
    "phaseOf": PhaseOf,
    "batch": BatchView,
    "job": JobView,
    "nodeSeat": NodeSeat,
    "committeeSeat": CommitteeSeat,
    "committeePreview": DrawnValidators,
    "balanceOf": Uint256,
    "claimedOf": Uint256,
    "openSeatsOf": Uint256,
    "batchCount": Uint256,
    "jobCount": Uint256,
    "minPhaseDuration": Uint256,
    "registry": AddressField,
    "token": AddressField,
    "resultCommitment": Word,
    "scoreCommitment": Word,
    "rowsHash": Word,
    "MAX_BATCH_SIZE": Uint256,
    "MAX_RESULTS": Uint256,
    "MAX_COMMITTEE": Uint256,
    "MAX_SCORE_CELLS": Uint256,
    "MAX_ROWS_PER_POST": Uint256,
    "MAX_BATCHES_PER_POST": Uint256,
    "MAX_PHASE_DURATION": Uint256,
    "MAX_SCORE": Uint256,
    "SEED_DELAY": Uint256,
    "BLOCKHASH_WINDOW": Uint256,
    "MAX_ROUNDS": Uint256,
    "BPS": Uint256,
}
"""Every TaskMarket view and constant: its output model or type."""

REGISTRY_VIEWS: dict[str, ViewOutput] = {
    "participant": Participant,
    "drawValidators": DrawnValidators,
    "requireEligibleNode": Uint32,
    "modelIdOf": Uint32,
    "modelName": Word,
    "accountOf": AddressField,
    "accountsOf": AddressList,
    "modelsOf": Words,
    "serves": Bool,
    "p2pAddressOf": Bytes,
    "totalValidatorStake": Uint256,
    "activeValidatorCount": Uint256,
    "token": AddressField,
    "taskMarket": AddressField,
    "treasury": AddressField,
    "treasuryBalance": Uint256,
    "totalStaked": Uint256,
    "minNodeStake": Uint256,
    "minValidatorStake": Uint256,
    "unbondingDelay": Uint256,
    "slashAmount": Uint256,
    "owner": AddressField,
    "pendingOwner": AddressField,
    "MAX_VALIDATORS": Uint256,
    "MAX_MODELS": Uint256,
    "MAX_P2P_ADDRESS_LENGTH": Uint256,
    "SLASH_DIVISOR": Uint256,
}
"""Every StakeRegistry view and constant: its output model or type."""

VIEWS: dict[str, dict[str, ViewOutput]] = {"TaskMarket": MARKET_VIEWS, "StakeRegistry": REGISTRY_VIEWS}


def view_value(contract: str, name: str, raw: Any) -> Any:
    """Validate the raw return of view ``name`` of ``contract`` into its model or type.

    Raises :class:`ChainError` for a view with no model or a value that does not fit it.
    """
    try:
        output = VIEWS[contract][name]
    except KeyError:
        raise ChainError(f"no model for view {contract}.{name}") from None
    if isinstance(output, type) and issubclass(output, AbiModel):
        try:
            return output.from_abi(raw)
        except ChainError as exc:
            raise ChainError(f"{contract}.{name}: {exc}") from None
    try:
        return _SCALAR_ADAPTERS[contract][name].validate_python(_plain(raw))
    except ValueError as exc:
        raise ChainError(f"{contract}.{name}: chain value does not fit the ABI: {exc}") from None


def sol_type(annotation: Any) -> str | None:
    """The :class:`Sol` type recorded on an annotated type (``None`` if it has none)."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Sol):
            return meta.type
    return None


_SCALAR_ADAPTERS: dict[str, dict[str, TypeAdapter[Any]]] = {
    contract: {
        name: TypeAdapter(output)
        for name, output in views.items()
        if not (isinstance(output, type) and issubclass(output, AbiModel))
    }
    for contract, views in VIEWS.items()
}
