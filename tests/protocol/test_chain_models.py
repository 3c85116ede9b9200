"""protocol.chain.models against forge's ABI output and the Solidity sources.

Every event and every view (constants included) of TaskMarket and StakeRegistry has a model whose
fields match the ABI name for name and type for type, no model is left over that the ABI lacks, and
every enum mirrors the Solidity enum member for member. Needs `make build` (the artifacts in out/).
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Any

import pytest

from protocol.chain.deployment import artifact_path, load_abi
from protocol.chain.errors import ChainError
from protocol.chain.models import (
    ENUMS,
    EVENTS,
    VIEWS,
    AbiModel,
    BatchSettled,
    BatchView,
    JobParams,
    JobPosted,
    Phase,
    PhaseOf,
    Sol,
    decode_event,
    sol_type,
    view_value,
)
from scripts.devnet import ROOT

pytestmark = pytest.mark.unit

CONTRACTS = ("TaskMarket", "StakeRegistry")
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _abi(contract: str) -> list[dict[str, Any]]:
    return load_abi(artifact_path(ROOT, contract))


def _enum_name(internal_type: str) -> str | None:
    match = re.fullmatch(r"enum (?:\w+\.)?(\w+)", internal_type)
    return match.group(1) if match else None


def _field_shape(model: type[AbiModel]) -> list[tuple[str, Any]]:
    """(ABI name, type) per field; nested models as a list, enums as ``enum <Name>``."""
    shape: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, AbiModel):
            shape.append((alias, _field_shape(annotation)))
            continue
        sols = [m.type for m in field.metadata if isinstance(m, Sol)]
        assert len(sols) == 1, f"{model.__name__}.{name} has no Sol type"
        if isinstance(annotation, type) and issubclass(annotation, IntEnum):
            shape.append((alias, f"enum {annotation.__name__} {sols[0]}"))
        else:
            shape.append((alias, sols[0]))
    return shape


def _abi_shape(entries: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    shape: list[tuple[str, Any]] = []
    for entry in entries:
        if entry["type"] == "tuple":
            shape.append((entry["name"], _abi_shape(entry["components"])))
            continue
        enum = _enum_name(entry.get("internalType", ""))
        shape.append((entry["name"], f"enum {enum} {entry['type']}" if enum else entry["type"]))
    return shape


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_event_has_a_matching_model(contract: str) -> None:
    abi_events = {e["name"]: e for e in _abi(contract) if e["type"] == "event"}
    assert set(abi_events) == set(EVENTS[contract]), "events without a model, or models without an event"
    for name, entry in abi_events.items():
        model = EVENTS[contract][name]
        assert name == model.EVENT and contract == model.CONTRACT
        assert _field_shape(model) == _abi_shape(entry["inputs"]), name
        # Python names are snake_case spellings of the ABI names (nothing renamed by hand)
        for field, abi_input in zip(model.model_fields, entry["inputs"], strict=True):
            assert (
                re.fullmatch(r"[a-z][a-z0-9_]*", field)
                and field.replace("_", "") == abi_input["name"].lower()
            )


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_view_has_a_matching_model(contract: str) -> None:
    views = {
        e["name"]: e
        for e in _abi(contract)
        if e["type"] == "function" and e["stateMutability"] in ("view", "pure")
    }
    assert set(views) == set(VIEWS[contract]), "views without a model, or models without a view"
    for name, entry in views.items():
        output = VIEWS[contract][name]
        outputs = entry["outputs"]
        if isinstance(output, type) and issubclass(output, AbiModel):
            components = outputs[0]["components"] if len(outputs) == 1 else outputs
            assert _field_shape(output) == _abi_shape(components), name
        else:
            assert len(outputs) == 1, name
            assert sol_type(output) == outputs[0]["type"], name


def _solidity_enums() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "contracts" / "interfaces").glob("*.sol")):
        source = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.S)
        for name, body in re.findall(r"\benum\s+(\w+)\s*\{([^}]*)\}", source):
            found[name] = [member.strip() for member in body.split(",") if member.strip()]
    return found


def test_enums_mirror_the_solidity_source() -> None:
    source = _solidity_enums()
    assert {e.__name__ for e in ENUMS} == set(source)
    for enum in ENUMS:
        members = [re.sub(r"(?<!^)(?=[A-Z])", "_", m).upper() for m in source[enum.__name__]]
        assert [m.name for m in enum] == members, enum.__name__
        assert [m.value for m in enum] == list(range(len(members)))


def test_enums_used_by_the_abi_are_all_mirrored() -> None:
    used = {
        _enum_name(i.get("internalType", ""))
        for contract in CONTRACTS
        for entry in _abi(contract)
        for i in [*entry.get("inputs", []), *entry.get("outputs", [])]
    } - {None}
    assert used <= {e.__name__ for e in ENUMS}
    assert {"Phase", "RefundReason", "SlashReason", "Role"} <= used


def _params() -> dict[str, Any]:
    return {
        "model": b"\x01" * 32,
        "bountyPerTask": 5,
        "batchSize": 3,
        "k": 3,
        "m": 3,
        "threshold": 50,
        "tolerance": 10,
        "junkFloor": 20,
        "validatorShareBps": 2000,
        "commitDuration": 60,
        "revealDuration": 60,
        "scoreCommitDuration": 60,
        "scoreRevealDuration": 60,
    }


def test_models_validate_what_web3_decodes() -> None:
    event = {
        "event": "JobPosted",
        "args": {
            "jobId": 1,
            "requester": ALICE.lower(),
            "model": b"\x01" * 32,
            "firstBatchId": 4,
            "batchCount": 2,
            "rowCount": 5,
            "params": tuple(_params().values()),  # positional struct
            "workflow": b"{}",
        },
    }
    posted = decode_event(event)
    assert isinstance(posted, JobPosted)
    assert posted.requester == ALICE  # checksummed
    assert posted.params == JobParams.from_abi(_params())
    assert posted.params.to_abi() == _params()
    phase = view_value("TaskMarket", "phaseOf", [4, 1234])
    assert phase == PhaseOf(phase=Phase.SCORE_COMMITTING, deadline=1234)
    assert view_value("TaskMarket", "balanceOf", 7) == 7
    settled = decode_event(
        {
            "event": "BatchSettled",
            "args": {
                "batchId": 2,
                "requester": ALICE,
                "round": 0,
                "scored": True,
                "medians": b"\x50\x10",
                "nodePaid": [3, 0],
                "agreedMask": 5,
                "validatorReward": 1,
                "refund": 2,
            },
        },
        contract="TaskMarket",
    )
    assert isinstance(settled, BatchSettled) and settled.node_paid == (3, 0)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"k": 256}, "k"),
        ({"bountyPerTask": 2**96}, "bountyPerTask"),
        ({"bountyPerTask": -1}, "bountyPerTask"),
        ({"model": b"\x01" * 31}, "model"),
        ({"extra": 1}, "extra"),
    ],
)
def test_values_outside_the_abi_types_are_refused(change: dict[str, Any], what: str) -> None:
    with pytest.raises(ChainError, match=what):
        JobParams.from_abi({**_params(), **change})


def test_bad_views_and_events_are_refused() -> None:
    with pytest.raises(ChainError, match="phaseOf"):
        view_value("TaskMarket", "phaseOf", [8, 0])  # no Phase 8
    with pytest.raises(ChainError, match="expected 2 values"):
        view_value("TaskMarket", "phaseOf", [1])
    with pytest.raises(ChainError, match="no model for view"):
        view_value("TaskMarket", "noSuchView", 1)
    with pytest.raises(ChainError, match="no model for event"):
        decode_event({"event": "Transfer", "args": {}})
    with pytest.raises(ChainError, match="account"):
        decode_event({"event": "AccountOpened", "args": {"account": "0x1234"}})
    with pytest.raises(ChainError, match="balanceOf"):
        view_value("TaskMarket", "balanceOf", 2**256)


def test_batch_view_seat_helpers() -> None:
    view = BatchView(
        job_id=1,
        phase=Phase.SCORE_REVEALING,
        deadline=10,
        rows=2,
        first_row=0,
        round=0,
        commit_count=3,
        reveal_count=2,
        revealed_mask=0b101,
        committee_size=3,
        score_commit_mask=0b111,
        score_reveal_mask=0b110,
        seed_block=5,
        input_hash=b"\x00" * 32,
    )
    assert view.revealed_seats() == [0, 2]
    assert view.score_revealed_seats() == [1, 2]
