"""The node's pieces without a chain: the decider's rules at their exact boundaries, the commit
policy against the junk rule, the ``[run]`` table's validation, the state file across a reopen,
and one task on the real engine and Ollama provider against the scripted server (a malformed row,
a server dropping the connection mid-answer, a result over the envelope cap)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from pydantic import ValidationError

from devnet.scripted_model import ScriptedModelServer, hashed_reply
from node.config import NodeRunSettings, default_run_table
from node.daemon import seats_filled
from node.decider import BatchOffer, NodeCapacity, commit_policy, decide, estimated_seconds
from node.state import BatchRecord, BatchStatus, JobRecord, NodeState, TaskRecord
from node.work import run_task
from protocol.canonical import canonical_bytes, keccak256
from protocol.chain.errors import RevertCatalog, TransactionReverted
from protocol.chain.market import model_id
from protocol.envelope import MAX_ENVELOPE_BYTES, ResultEnvelope
from tests.node.helpers import WORKFLOW, params
from workflow.engine import Engine
from workflow.providers.base import ProviderSettings
from workflow.providers.ollama import OllamaProvider
from workflow.validate import parse_workflow

pytestmark = pytest.mark.unit

MODEL = "gemma3:270m"
NOW = 1_000_000


def _node(**changes: object) -> NodeCapacity:
    values: dict[str, object] = {
        "served": frozenset({bytes(model_id(MODEL))}),
        "min_bounty_per_task": 10,
        "open_batches": 0,
        "max_open_batches": 2,
        "concurrency": 2,
        "task_seconds": 10.0,
        "margin_s": 5.0,
    }
    values.update(changes)
    return NodeCapacity(**values)  # type: ignore[arg-type]


def test_decide_takes_a_batch_only_when_every_rule_passes_at_its_boundary() -> None:
    job = params(bounty=10)
    # 5 rows, 2 at a time: 3 waves of 10 s = 30 s of work; deadline - now - margin = 30 s exactly
    offer = BatchOffer(job, rows=5, commit_deadline=NOW + 35)
    assert estimated_seconds(5, 2, 10.0) == 30
    assert decide(offer, _node(), NOW).take
    assert decide(BatchOffer(job, 5, NOW + 34), _node(), NOW).reason == "deadline"
    assert decide(offer, _node(min_bounty_per_task=11), NOW).reason == "bounty"
    assert decide(offer, _node(open_batches=1), NOW).take
    assert decide(offer, _node(open_batches=2), NOW).reason == "capacity"
    assert decide(offer, _node(served=frozenset()), NOW).reason == "model"
    assert decide(BatchOffer(None, 5, NOW + 35), _node(), NOW).reason == "unknown_job"
    assert decide(BatchOffer(job, 5, NOW + 35, "bad json"), _node(), NOW).reason == "malformed_workflow"
    assert decide(BatchOffer(job, 5, NOW + 35, accepting=False), _node(), NOW).reason == "closed"
    # a faster measured speed admits a tighter window
    assert decide(BatchOffer(job, 5, NOW + 35 - 15), _node(task_seconds=5.0), NOW).take


def test_commit_policy_abandons_what_the_junk_rule_would_slash() -> None:
    lenient = params().model_copy(update={"threshold": 50, "junk_floor": 0})
    strict = params().model_copy(update={"threshold": 60, "junk_floor": 30})
    assert commit_policy(4, 0, strict) == (True, "")
    assert commit_policy(4, 4, lenient)[0] is False, "nothing to commit"
    assert commit_policy(4, 3, lenient)[0] is True, "junkFloor 0: failures cost nothing"
    # 2 ok x 60 = 120 >= 30 x 4 = 120: commit; 1 ok x 60 = 60 < 120: abandon
    assert commit_policy(4, 2, strict)[0] is True
    committed, why = commit_policy(4, 3, strict)
    assert committed is False and "junk" in why


def test_run_table_defaults_resolve_and_bad_fields_are_named(tmp_path: Path) -> None:
    table = default_run_table([MODEL], p2p_port=4100)
    settings = NodeRunSettings.model_validate(table).resolved(tmp_path)
    assert settings.store_dir == tmp_path / "store"
    assert settings.p2p.identity_file == tmp_path / "p2p.key" and settings.p2p.listen_port == 4100
    assert settings.provider.kind == "local" and settings.provider.models == {MODEL: ""}
    big = NodeRunSettings.model_validate({"min_bounty_per_task": "1_000000000000000000000"})
    assert big.min_bounty_per_task == 10**21, "token amounts beyond TOML's int64 as decimal strings"
    with pytest.raises(ValidationError) as info:
        NodeRunSettings.model_validate(
            {"provider": {"kind": "openai"}, "halt_at": "later", "p2p": {"port": 1}}
        )
    fields = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert fields == {"provider", "halt_at", "p2p.port"}
    assert NodeProviderSettingsTest.mapped() == "qwen2.5:0.5b"


class NodeProviderSettingsTest:
    @staticmethod
    def mapped() -> str:
        settings = NodeRunSettings.model_validate(
            {"provider": {"kind": "ollama", "models": {MODEL: "qwen2.5:0.5b"}}}
        )
        assert settings.provider.provider_model("other") == "other"
        return settings.provider.provider_model(MODEL)


def test_state_keeps_salt_tasks_and_speed_across_a_reopen_and_forgets_reorged_batches(tmp_path: Path) -> None:
    state = NodeState.open(tmp_path)
    job = JobRecord(
        job_id=1,
        workflow=b"{}",
        workflow_hash=keccak256(b"{}"),
        requester="0x" + "11" * 20,
        params=params(),
        block=5,
    )
    state.put_job(job)
    batch = BatchRecord(
        batch_id=3,
        job_id=1,
        first_row=0,
        commit_deadline=NOW,
        rows=(b'{"a":1}', b"\xff"),
        status=BatchStatus.TAKEN,
        block=5,
    )
    assert state.put_batch(batch) is True
    assert state.put_batch(batch) is False, "a replayed event changes nothing"
    salt = state.ensure_salt(3, b"\x01" * 32)
    assert state.ensure_salt(3, b"\x02" * 32) == salt, "the salt is never replaced"
    state.put_task(TaskRecord(batch_id=3, row=1, digest=b"\x09" * 32, error="malformed row", seconds=0.1))
    assert state.record_speed(job.workflow_hash, 10.0, 0.5) == 10.0
    assert state.record_speed(job.workflow_hash, 20.0, 0.5) == 15.0
    state.close()
    again = NodeState.open(tmp_path)
    assert again.job(1) == job
    kept = again.batch(3)
    assert kept is not None and kept.salt == salt and kept.rows == batch.rows
    assert [b.batch_id for b in again.open_batches()] == [3]
    assert again.tasks(3)[1].error == "malformed row"
    assert again.batches_of_digest(b"\x09" * 32) == [3]
    assert again.speed(job.workflow_hash) == 15.0
    assert again.forget_above(5) == []
    assert again.forget_above(4) == [3]
    assert again.batch(3) is None and again.job(1) is None and again.tasks(3) == {}
    again.close()


def _task(
    server: ScriptedModelServer, row: bytes, deadline: float = 10.0
) -> tuple[ResultEnvelope, str | None]:
    async def run() -> tuple[ResultEnvelope, str | None]:
        provider = OllamaProvider(
            ProviderSettings(kind="ollama", model=MODEL, base_url=server.url, max_retries=0)
        )
        try:
            outcome = await run_task(
                Engine(provider), parse_workflow(WORKFLOW), b"\x07" * 32, row, MODEL, deadline
            )
        finally:
            await provider.aclose()
        assert ResultEnvelope.from_bytes(outcome.data, expect_digest=outcome.digest) == outcome.envelope
        return outcome.envelope, outcome.error

    return trio.run(run)


def test_a_task_gives_a_result_or_a_failure_envelope_with_its_reason() -> None:
    row = canonical_bytes({"topic": "tide"})
    with ScriptedModelServer(models=[MODEL], answer=hashed_reply) as server:
        envelope, error = _task(server, row)
        assert error is None and envelope.ok and envelope.output.startswith("answer ")
        assert envelope.input == "0x" + keccak256(row).hex() and envelope.workflow == "0x" + "07" * 32

        envelope, error = _task(server, b"[1, 2]")
        assert error == envelope.error == "malformed row: a JSON list, not an object"
        assert server.requests == 1, "a malformed row never reaches the model"

        server.drop(1)
        envelope, error = _task(server, row)
        assert (error is not None and "ProviderUnavailableError" in error) or "Provider" in str(error)
        assert envelope.output == "" and not envelope.ok

        envelope, error = _task(server, row, deadline=0)
        assert error == "no time left before the commit deadline"

    with ScriptedModelServer(models=[MODEL], answer=lambda prompt: "x" * (MAX_ENVELOPE_BYTES + 1)) as huge:
        envelope, error = _task(huge, row)
    assert error is not None and error.startswith("result too large")


def test_node_init_writes_a_run_table_that_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import main
    from protocol.operator.config import OperatorRole, load_config

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "node.toml"
    args = ["node", "init", "--config", str(path), "--keystore", str(tmp_path / "k.json")]
    assert main([*args, "--p2p-address", "/ip4/203.0.113.7/tcp/4100"]) == 0
    config = load_config(path, OperatorRole.NODE, environ={})
    settings = NodeRunSettings.model_validate(config.run)
    assert settings.p2p.listen_port == 4100, "the port of the registered address"
    assert settings.provider.models == {MODEL: ""}
    assert settings == NodeRunSettings.model_validate(default_run_table([MODEL], 4100))


def test_only_batch_seats_full_counts_as_seats_filled_at_commit() -> None:
    """A commit that lost the race for the last seat is a closed batch (skipped), any other revert an
    abandoned one; from the simulation (ContractRevert) or the mined replay (TransactionReverted)."""
    abi_dir = Path(__file__).resolve().parents[2] / "protocol" / "artifacts" / "abi"
    names = ("TaskMarket", "StakeRegistry")
    catalog = RevertCatalog({n: json.loads((abi_dir / f"{n}.json").read_text())["abi"] for n in names})
    full = catalog.BatchSeatsFull({"batchId": 7, "k": 3}, b"")
    phase = catalog.BatchWrongPhase({"batchId": 7, "expected": 1, "actual": 2}, b"")
    assert seats_filled(full)
    assert not seats_filled(phase)
    assert seats_filled(TransactionReverted("reverted", "0x01", 21_000, revert=full, block_number=9))
    assert not seats_filled(TransactionReverted("reverted", "0x01", 21_000, revert=phase, block_number=9))
    assert not seats_filled(TransactionReverted("reverted", "0x01", 21_000, revert=None, block_number=9))
