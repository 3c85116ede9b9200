"""Export and verify against a real chain and real p2p hosts: scripted facade actors carry a job
through its lifecycle (devnet.chain.run_batch), each node's results are served by a real libp2p
host registered on chain, and the requester exports with signed fetches and verifies the file.

Then the file is tampered with (a result edited, an input edited, a line added, a line dropped,
a rejected result smuggled in) and verify must name each; the ``synod job verify`` command is run
as a real process on the edited file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from devnet.chain import (
    DEMO_MODEL,
    REQUESTER_INDEX,
    ROOT,
    Actors,
    Devnet,
    fund_and_register,
    run_batch,
)
from protocol.canonical import Digest, keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import model_id
from protocol.chain.models import JobParams
from protocol.chain.signer import anvil_dev_signer
from protocol.envelope import ResultEnvelope, success
from protocol.p2p.host import P2pSettings, open_p2p_host
from protocol.types import Address
from requester.errors import FundsError, InputError, UnknownJob
from requester.export import DatasetRow, export_rows, write_jsonl
from requester.history import load_history, p2p_addresses
from requester.post import plan_job, post_planned
from requester.rows import load_dataset
from requester.verify import read_dataset, verify_dataset

pytestmark = pytest.mark.integration

TOKEN = 10**18
WORKFLOW = ROOT / "examples" / "workflows" / "qa_pairs.json"


@pytest.fixture(scope="module")
def actors(chain: SynodContracts) -> Actors:
    return fund_and_register(chain)[0]


def _params(bounty: int = 10 * TOKEN, batch_size: int = 2) -> JobParams:
    return JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=bounty,
        batch_size=batch_size,
        k=3,
        m=3,
        threshold=60,
        tolerance=15,
        junk_floor=0,
        validator_share_bps=2000,
        commit_duration=600,
        reveal_duration=600,
        score_commit_duration=600,
        score_reveal_duration=600,
    )


def _rows_file(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


DOCS = [{"document": f"Passage {i}: the river Ormel is {60 + i} metres deep."} for i in range(3)]


def _score(round_: int, seat: int, by_seat: Any) -> list[list[int]]:
    """Node seats 0 and 1 are good (scores 80..90), seat 2 is poor (10): rejected."""
    return [
        [10 if s == 2 else 80 + seat * 5 for _ in range(len(results or [0] * 2))]
        for s, results in enumerate(by_seat)
    ]


class Served:
    """Per node: digest -> envelope bytes, what a node's store would hold."""

    def __init__(self) -> None:
        self.by_node: dict[str, dict[bytes, bytes]] = {}


@pytest.fixture(scope="module")
def produced(
    chain: SynodContracts, actors: Actors, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, Served]:
    """Post 3 rows (batches of 2 and 1) and run every batch with scripted actors."""
    tmp = tmp_path_factory.mktemp("job")
    dataset = load_dataset(WORKFLOW, _rows_file(tmp, DOCS))
    plan = plan_job(chain, actors.requester, _params(), dataset, _units())
    posted = post_planned(chain, actors.requester, plan)
    workflow_hash = keccak256(
        json.dumps(dataset.spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    served = Served()
    for batch in posted.batches:
        rows = dataset.rows[batch.dataset_row : batch.dataset_row + batch.rows]
        results: list[list[Any]] = []
        for n, node in enumerate(actors.nodes):
            envelopes = []
            for row in rows:
                row_bytes = json.dumps(
                    row, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                ).encode()
                output = json.dumps([{"question": f"How deep? ({n})", "answer": row["document"][-18:]}])
                env = success(workflow_hash=workflow_hash, row=row_bytes, model=DEMO_MODEL, output=output)
                served.by_node.setdefault(node.address, {})[bytes(env.digest())] = env.to_bytes()
                envelopes.append(env.model_dump())
            results.append(envelopes)
        run_batch(chain, actors, batch.batch_id, results, _score, claim=False)
    return posted.job_ids[0], served


def _units() -> Any:
    from protocol.operator.amounts import TokenUnits

    return TokenUnits(18, "SYN")


async def _serve_and_export(
    chain: SynodContracts, actors: Actors, job_id: int, served: Served, tmp: Path
) -> list[DatasetRow]:
    """Start one real p2p host per node (access: the job's requester only), register its address on
    chain, then export as the requester."""
    history = load_history(chain, job_id)
    requester = history.job.event.requester

    async def requester_only(peer_id: str, digest: Digest, account: Address | None) -> bool:
        return account is not None and account.lower() == requester.lower()

    async with AsyncExitStack() as stack:
        for i, node in enumerate(actors.nodes):
            store = served.by_node[node.address]

            async def lookup(digest: Digest, store: dict[bytes, bytes] = store) -> bytes | None:
                return store.get(bytes(digest))

            host = await stack.enter_async_context(
                open_p2p_host(
                    P2pSettings(identity_file=tmp / f"node{i}.key"), lookup=lookup, access=requester_only
                )
            )
            fn = chain.registry.functions.setP2pAddress(host.multiaddr.encode())
            await trio.to_thread.run_sync(partial(node.transact, fn, label="setP2pAddress"))
        block = chain.head(0)
        history = load_history(chain, job_id, block)
        nodes = sorted({b.reveals[s].event.node for b, s, _ in history.accepted()})
        addresses = p2p_addresses(chain, nodes, block)
        result = await export_rows(
            chain.chain_id,
            chain.market.address,
            [history],
            {str(k): v for k, v in addresses.items()},
            anvil_dev_signer(REQUESTER_INDEX, chain.chain_id),
        )
        assert result.failures == ()
        return list(result.rows)


@pytest.fixture(scope="module")
def exported(
    chain: SynodContracts,
    actors: Actors,
    produced: tuple[int, Served],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    job_id, served = produced
    tmp = tmp_path_factory.mktemp("export")
    rows = trio.run(_serve_and_export, chain, actors, job_id, served, tmp)
    path = tmp / "data.jsonl"
    write_jsonl(rows, path)
    return path


def test_export_holds_exactly_the_accepted_results(
    chain: SynodContracts, produced: tuple[int, Served], exported: Path
) -> None:
    job_id, _ = produced
    rows = [DatasetRow.model_validate(v) for _, v in read_dataset(exported)]
    # 3 rows x node seats 0 and 1 accepted (median 85 >= 60); seat 2 (median 10) rejected
    assert sorted((r.dataset_row, r.node_seat) for r in rows) == [(d, s) for d in range(3) for s in (0, 1)]
    first = rows[0]
    assert first.job_id == job_id and first.input == DOCS[first.dataset_row]
    assert first.median == 85 and [s.score for s in first.scores] == [80, 85, 90]
    assert first.result == [
        {"question": f"How deep? ({first.node_seat})", "answer": DOCS[first.dataset_row]["document"][-18:]}
    ]
    assert "0x" + ResultEnvelope.model_validate(first.envelope).digest().hex() == first.digest
    assert first.blocks["post"] <= first.blocks["commit"] <= first.blocks["reveal"] <= first.blocks["settle"]
    report = verify_dataset(chain, read_dataset(exported))
    assert report.valid, [str(f) for f in report.findings]
    assert report.ok == 6


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_verify_names_each_altered_added_and_dropped_row(
    chain: SynodContracts, exported: Path, tmp_path: Path
) -> None:
    rows = _lines(exported)
    rows[0]["result"][0]["answer"] = "made up"  # line 1: result edited by hand
    rows[1]["envelope"]["output"] = rows[1]["envelope"]["output"].replace(
        "How", "Why"
    )  # line 2: envelope edited
    rows[2]["input"]["document"] += "!"  # line 3: input edited
    rows[3]["median"] = 99  # line 4: provenance edited
    smuggled = dict(rows[4], node_seat=2)  # a rejected result presented as accepted
    duplicate = dict(rows[4])
    dropped = rows.pop(5)
    tampered = _write(tmp_path / "tampered.jsonl", [*rows, smuggled, duplicate])
    report = verify_dataset(chain, read_dataset(tampered))
    found = [(f.kind, f.line, f.task) for f in report.findings]
    assert found == [
        ("altered", 1, rows[0]["task"]),
        ("altered", 2, rows[1]["task"]),
        ("altered", 3, rows[2]["task"]),
        ("altered", 4, rows[3]["task"]),
        ("added", 6, smuggled["task"]),
        ("added", 7, duplicate["task"]),
        ("dropped", None, dropped["task"]),
    ]
    assert "result" in report.findings[0].detail
    assert "envelope" in report.findings[1].detail
    assert "input" in report.findings[2].detail
    assert "median" in report.findings[3].detail
    assert report.ok == 1


def test_verify_command_exit_status_and_message(devnet: Devnet, exported: Path, tmp_path: Path) -> None:
    rows = _lines(exported)
    rows[0]["result"][0]["answer"] = "made up"
    tampered = _write(tmp_path / "tampered.jsonl", rows)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    flags = ["--rpc-url", devnet.rpc_url, "--deployment", str(devnet.deployments_file)]

    def synod(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "job", *args, *flags],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
            check=False,
        )

    good = synod("verify", str(exported))
    assert good.returncode == 0, good.stderr + good.stdout
    assert "verified: 6 rows" in good.stdout
    bad = synod("verify", str(tampered))
    assert bad.returncode == 1
    assert f"altered: line 1 (task {rows[0]['task']})" in bad.stdout and "result" in bad.stdout


def test_rows_that_do_not_fit_the_workflow_are_named(tmp_path: Path) -> None:
    rows = _rows_file(tmp_path, [{"document": "fine"}, {"doc": "typo"}])
    with pytest.raises(
        InputError, match=r"rows.jsonl line 2: the row has no 'document'.*tasks\[0\]\.inputs\[0\]"
    ):
        load_dataset(WORKFLOW, rows)
    (tmp_path / "bad.jsonl").write_text('{"document": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2: a row must be a JSON object"):
        load_dataset(WORKFLOW, tmp_path / "bad.jsonl")


def test_a_bounty_the_wallet_cannot_cover_sends_nothing(
    chain: SynodContracts, actors: Actors, tmp_path: Path
) -> None:
    dataset = load_dataset(WORKFLOW, _rows_file(tmp_path, DOCS))
    balance = int(chain.read(chain.token.functions.balanceOf(actors.requester.address), chain.head(0)))
    nonce = chain.w3.eth.get_transaction_count(actors.requester.address)
    per_task = balance // 3 + 1  # exactly one base unit per row too much
    missing = _units().format(per_task * 3 - balance)  # 1..3 base units
    with pytest.raises(FundsError, match=f"fund the wallet with {missing} more"):
        plan_job(chain, actors.requester, _params(bounty=per_task), dataset, _units())
    plan_job(chain, actors.requester, _params(bounty=balance // 3), dataset, _units())  # the boundary fits
    assert chain.w3.eth.get_transaction_count(actors.requester.address) == nonce


def test_an_unknown_job_is_named(chain: SynodContracts) -> None:
    with pytest.raises(UnknownJob, match="job 999 does not exist"):
        load_history(chain, 999)


# ---------------------------------------------------------------- break-review (rev3): forgeries


def _verify_file(
    chain: SynodContracts, path: Path, jobs: set[int] | None = None
) -> list[tuple[str, int | None]]:
    return [(f.kind, f.line) for f in verify_dataset(chain, read_dataset(path), jobs).findings]


@pytest.mark.parametrize(
    ("field", "forged"),
    [
        ("median", "85"),  # the same number as text
        ("median", 85.0),  # the same number as a float
        ("blocks", "post-as-float"),
        ("scores", "score-as-bool"),
        ("batch_id", "as-text"),
    ],
)
def test_verify_refuses_a_value_of_another_json_type(
    chain: SynodContracts, exported: Path, tmp_path: Path, field: str, forged: Any
) -> None:
    """A hand edit that keeps the number but changes its JSON type is an alteration (the lax parse
    coerced "85", 85.0 and true back to the chain's value, and the line verified)."""
    rows = _lines(exported)
    row = rows[0]
    if forged == "post-as-float":
        row["blocks"]["post"] = float(row["blocks"]["post"])
    elif forged == "score-as-bool":
        row["scores"] = [
            dict(s, seat=bool(s["seat"]) if s["seat"] in (0, 1) else s["seat"]) for s in row["scores"]
        ]
    elif forged == "as-text":
        row["batch_id"] = str(row["batch_id"])
    else:
        assert row["median"] == 85
        row["median"] = forged
    report = verify_dataset(chain, read_dataset(_write(tmp_path / "typed.jsonl", rows)))
    # a line whose own key is unreadable no longer names its result: that result is also dropped
    dropped = [("dropped", None)] if field == "batch_id" else []
    assert [(f.kind, f.line) for f in report.findings] == [("altered", 1), *dropped]
    assert field in report.findings[0].detail
    assert report.ok == 5


def test_verify_names_swapped_seats_results_tx_and_blocks(
    chain: SynodContracts, exported: Path, tmp_path: Path
) -> None:
    rows = _lines(exported)
    # line 1 and 2: the same task, seats 0 and 1: swap who produced it (node and digest)
    for name in ("node", "digest"):
        rows[0][name], rows[1][name] = rows[1][name], rows[0][name]
    # lines 3 and 4 (seats 0 and 1 of another task): swap result and envelope
    for name in ("result", "envelope"):
        rows[2][name], rows[3][name] = rows[3][name], rows[2][name]
    rows[4]["tx"]["settle"] = rows[4]["tx"]["post"]
    rows[5]["blocks"]["reveal"] += 1
    report = verify_dataset(chain, read_dataset(_write(tmp_path / "swapped.jsonl", rows)))
    assert [(f.kind, f.line) for f in report.findings] == [("altered", n) for n in range(1, 7)]
    assert "node, digest" in report.findings[0].detail
    assert "envelope (does not hash to the revealed digest)" in report.findings[2].detail
    assert "tx" in report.findings[4].detail and "blocks" in report.findings[5].detail
    # order is not part of the proof: every row carries its task and dataset_row
    reordered = _write(tmp_path / "reordered.jsonl", list(reversed(_lines(exported))))
    assert _verify_file(chain, reordered) == []


def test_verify_names_a_row_of_an_unknown_job_instead_of_stopping(
    chain: SynodContracts, exported: Path, tmp_path: Path
) -> None:
    """Before: a row naming job 999 aborted the whole check (UnknownJob), and job_id -1 / 2**256
    crashed it (OverflowError); now each such line is named as added and the rest is checked."""
    rows = _lines(exported)
    forged = [dict(rows[0], job_id=999), dict(rows[1], job_id=2**256)]
    path = _write(tmp_path / "unknown.jsonl", [*rows, *forged])
    report = verify_dataset(chain, read_dataset(path))
    assert [(f.kind, f.line) for f in report.findings] == [("added", 7), ("added", 8)]
    assert "job 999 does not exist on chain 31337" in report.findings[0].detail
    assert report.ok == 6


def test_verify_with_job_refuses_rows_of_other_jobs_and_names_their_drops(
    chain: SynodContracts, actors: Actors, produced: tuple[int, Served], exported: Path, tmp_path: Path
) -> None:
    job_id, _ = produced
    dataset = load_dataset(WORKFLOW, _rows_file(tmp_path, DOCS[:1]))
    other = post_planned(
        chain, actors.requester, plan_job(chain, actors.requester, _params(), dataset, _units())
    )
    other_id = other.job_ids[0]  # posted, nothing accepted yet
    assert _verify_file(chain, exported, {job_id}) == []
    assert _verify_file(chain, exported, {other_id}) == [("added", n) for n in range(1, 7)]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    from requester.errors import DatasetError

    with pytest.raises(DatasetError, match="none of the 0 line"):
        verify_dataset(chain, read_dataset(empty))  # before: "verified: 0 rows", exit 0
    assert _verify_file(chain, empty, {job_id}) == [("dropped", None)] * 6
    with pytest.raises(UnknownJob, match="job 999 does not exist"):
        verify_dataset(chain, read_dataset(exported), {999})


def test_verify_names_the_line_of_encoding_damage(
    chain: SynodContracts, exported: Path, tmp_path: Path
) -> None:
    lines = exported.read_bytes().splitlines(keepends=True)
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b"".join(line.rstrip(b"\n") + b"\r\n" for line in lines))
    assert _verify_file(chain, crlf) == []  # the same rows, another line ending
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b"".join(lines))
    assert _verify_file(chain, bom) == [("altered", 1), ("dropped", None)]
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b"".join([lines[0], lines[1][:-2] + b"\xe9\n", *lines[2:], b"junk\n"]))
    report = verify_dataset(chain, read_dataset(latin))  # before: the whole file refused, no line named
    assert [(f.kind, f.line) for f in report.findings] == [("altered", 2), ("altered", 7), ("dropped", None)]
    assert "not UTF-8" in report.findings[0].detail and "not JSON" in report.findings[1].detail
    trailing = tmp_path / "trailing.jsonl"
    trailing.write_bytes(b"".join([*lines[:5], lines[5].rstrip(b"\n") + b" {}\n"]))
    assert _verify_file(chain, trailing) == [("altered", 6), ("dropped", None)]


def test_export_of_a_job_still_running_says_so(
    devnet: Devnet, chain: SynodContracts, actors: Actors, tmp_path: Path
) -> None:
    """Before: `wrote 0 rows`, exit 0, for a job whose batches were not settled yet."""
    dataset = load_dataset(WORKFLOW, _rows_file(tmp_path, DOCS[:1]))
    posted = post_planned(
        chain, actors.requester, plan_job(chain, actors.requester, _params(), dataset, _units())
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "cli.main", "job", "export", str(posted.job_ids[0])]
    argv += ["--out", str(tmp_path / "o.jsonl"), "--rpc-url", devnet.rpc_url]
    argv += ["--deployment", str(devnet.deployments_file), "--artifacts-dir", str(ROOT / "out")]
    argv += ["--dev-key", str(REQUESTER_INDEX)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=99, cwd=tmp_path, env=env, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"not settled yet: batch {posted.batch_ids[0]} of job {posted.job_ids[0]}" in " ".join(
        run.stdout.split()
    )


def test_rows_with_blank_required_inputs_are_named_and_a_bom_is_not_content(tmp_path: Path) -> None:
    """Before: `{"document": null}` and `{"document": "  "}` were posted (a bounty paid for nothing to
    work on), and a file saved with a byte order mark was refused as "not JSON"."""
    for value, shown in ((None, "null"), ("  ", '"  "'), ("", '""')):
        path = _rows_file(tmp_path, [{"document": "fine"}, {"document": value}])
        with pytest.raises(InputError, match=f"rows.jsonl line 2: 'document' is {shown}, but tasks"):
            load_dataset(WORKFLOW, path)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"document": "a"}).encode() + b"\r\n")
    assert load_dataset(WORKFLOW, bom).rows == ({"document": "a"},)
