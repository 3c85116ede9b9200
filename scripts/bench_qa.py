"""Q&A quality on the dev set: ``python -m scripts.bench_qa [--limit N] [--dump F]``.

Runs ``qa_pairs.json`` at its shipped settings on the local model (Gemma 3 270M via
llama.cpp) over ``tests/data/qa_passages.jsonl`` (passages written for this project, 60-120 words,
several languages) and prints ``name=value`` lines (definitions in :mod:`workflow.eval.scores`):

- ``qa_grounded_pair_rate``, ``qa_distinct_question_rate``, ``qa_language_match_rate``,
  ``qa_example_leak_rate``: shares of the pairs ``qa_pairs.json`` returned;
- ``qa_gap_question_rate``: share of the pairs whose question is the workflow's fill-in-the-gap
  fallback (the model's questions failed the checks or the round trip), not one the model wrote;
  ``qa_model_question_rate``: the rest, the share of pairs whose question the model wrote;
- ``qa_roundtrip_pass_rate``: of the model's questions that passed every check of their form and
  went to the round trip (the model answers its own question; ``roundtrip`` task), the share whose
  reply gave the planned answer;
- ``qa_pairs_per_document`` (the workflow returns up to three; fewer when its checks reject the
  rest), ``qa_failed_documents`` (runs that ended in the workflow's clear failure),
  ``qa_seconds_per_document`` (wall time of a run, model loading excluded), ``qa_model_calls_per_document``
  (generation steps of a run: the figure that does not depend on the machine's load).

``persona_dialogue.json`` and ``extract_record.json`` are measured by :mod:`scripts.bench_data`
(``make bench`` runs both scripts).

``--dump F`` writes every output and its scores as JSON lines (for reading them by hand).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from pydantic import BaseModel, ConfigDict

from workflow.engine import Engine
from workflow.eval.grounding import example_markers
from workflow.eval.language import LanguageIdentifier
from workflow.eval.scores import score_qa
from workflow.model import Operator, Workflow
from workflow.providers.base import LLMProvider, ProviderSettings
from workflow.validate import load_workflow

ROOT = Path(__file__).resolve().parents[1]
PASSAGES = ROOT / "tests" / "data" / "qa_passages.jsonl"
EXAMPLES = ROOT / "examples" / "workflows"
_PLACEHOLDER = re.compile(r"\{\{?\s*[A-Za-z_]\w*\s*\}?\}")


class Passage(BaseModel):
    """One dev-set passage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    lang: str
    title: str
    text: str


def load_passages(path: Path = PASSAGES) -> list[Passage]:
    """The dev set, one JSON object per line, languages interleaved (so ``--limit`` takes a mix)."""
    passages = [Passage.model_validate_json(line) for line in path.read_text("utf-8").splitlines() if line]
    rank: dict[str, int] = {}
    order = []
    for p in passages:
        rank[p.lang] = rank.get(p.lang, -1) + 1
        order.append((rank[p.lang], p.lang, p))
    return [p for _, _, p in sorted(order, key=lambda item: (item[0], item[1]))]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def few_shot_texts(workflow: Workflow) -> list[str]:
    """The few-shot examples: the fixed text of each model prompt up to its first placeholder, and
    every string of ``external_memory`` (where workflows keep examples by language) but those with
    a ``{}`` (question templates, meant to be output) and question words (``qa_question_*``)."""
    memory = {k: v for k, v in (workflow.external_memory or {}).items() if not k.startswith("qa_question_")}
    texts: list[str] = [s for s in _strings(memory) if "{}" not in s]
    for task in workflow.tasks:
        if task.operator is not Operator.GENERATION:
            continue
        prompts = [task.prompt] if task.prompt else [m.content for m in task.messages or ()]
        for prompt in prompts:
            match = _PLACEHOLDER.search(prompt)
            texts.append(prompt[: match.start()] if match else prompt)
    return texts


def example_questions(texts: Sequence[str]) -> list[str]:
    """The ``Question:`` lines of few-shot examples."""
    return [m.group(1).strip() for t in texts for m in re.finditer(r"^Question:(.*)$", t, re.MULTILINE)]


class Run(BaseModel):
    """One workflow run: its return value (None on failure), the error, the wall time in seconds
    and the status of every step by task id, in order (``[("roundtrip", "failed"), ...]``); the ids
    of the workflow's generation tasks (``generations``: what :meth:`calls` counts)."""

    model_config = ConfigDict(frozen=True)

    value: Any
    error: str | None
    seconds: float
    steps: tuple[tuple[str, str], ...]
    generations: frozenset[str] = frozenset()

    def calls(self) -> int:
        """How many model calls (generation steps) the run made."""
        return sum(1 for t, _ in self.steps if t in self.generations)

    def count(self, task_id: str, status: str) -> int:
        """How many times the task ``task_id`` ended with ``status`` (``ok``, ``failed``)."""
        return sum(1 for t, st in self.steps if t == task_id and st == status)


async def _execute(engine: Engine, workflow: Workflow, inputs: dict[str, Any]) -> Run:
    started = time.perf_counter()
    outcome = await engine.execute(workflow, inputs)
    elapsed = time.perf_counter() - started
    rejected = [s.error for s in outcome.trace.steps if s.status == "failed"]
    print(
        f"bench_qa: {workflow.name}: {len(outcome.trace.steps)} steps; rejected: {rejected}", file=sys.stderr
    )
    steps = tuple((s.task_id, s.status) for s in outcome.trace.steps)
    generations = frozenset(t.id for t in workflow.tasks if t.operator is Operator.GENERATION)
    if outcome.result is None:
        return Run(
            value=None, error=str(outcome.error), seconds=elapsed, steps=steps, generations=generations
        )
    return Run(
        value=outcome.result.json_value(), error=None, seconds=elapsed, steps=steps, generations=generations
    )


async def _run(engine: Engine, workflow: Workflow, inputs: dict[str, Any]) -> tuple[Any, str | None, float]:
    done = await _execute(engine, workflow, inputs)
    return done.value, done.error, done.seconds


class Dump:
    """Where ``--dump`` writes, one JSON line per run as soon as it ends (or nowhere)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        if path is not None:
            path.write_text("", "utf-8")

    def append(self, record: dict[str, Any]) -> None:
        if self._path is not None:
            with self._path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _rate(good: int, total: int) -> float:
    return good / total if total else 0.0


async def bench_qa(
    provider: LLMProvider, passages: Sequence[Passage], identifier: LanguageIdentifier, dump: Dump
) -> dict[str, float]:
    """Run ``qa_pairs.json`` on every passage; the Q&A figures."""
    workflow = load_workflow(EXAMPLES / "qa_pairs.json")
    shots = few_shot_texts(workflow)
    markers, questions_seen = example_markers(shots), example_questions(shots)
    engine = Engine(provider)
    pairs, seconds, failed, calls = [], 0.0, 0, 0
    trips = trips_passed = 0
    for passage in passages:
        done = await _execute(engine, workflow, {"document": passage.text})
        value, error, elapsed = done.value, done.error, done.seconds
        seconds += elapsed
        calls += done.calls()
        passed = done.count("roundtrip", "ok")
        trips, trips_passed = trips + passed + done.count("roundtrip", "failed"), trips_passed + passed
        scored = []
        if error is None and isinstance(value, list) and len(value) == 2:
            scored = score_qa(
                passage.text,
                passage.lang,
                value[0] or [],
                value[1] or [],
                markers=markers,
                example_questions=questions_seen,
                identifier=identifier,
            )
        else:
            failed += 1
        pairs.extend(scored)
        dump.append(
            {
                "workflow": "qa_pairs",
                "id": passage.id,
                "lang": passage.lang,
                "seconds": round(elapsed, 2),
                "error": error,
                "roundtrips": done.count("roundtrip", "ok") + done.count("roundtrip", "failed"),
                "roundtrips_passed": passed,
                "model_calls": done.calls(),
                "pairs": [s.model_dump() for s in scored],
            }
        )
        print(f"bench_qa: {passage.id} {len(scored)} pair(s) {elapsed:.1f}s {error or ''}", file=sys.stderr)
    n = len(pairs)
    return {
        "qa_grounded_pair_rate": _rate(sum(p.grounded for p in pairs), n),
        "qa_distinct_question_rate": _rate(sum(p.distinct for p in pairs), n),
        "qa_language_match_rate": _rate(sum(p.language_match for p in pairs), n),
        "qa_example_leak_rate": _rate(sum(bool(p.leaked) for p in pairs), n),
        "qa_gap_question_rate": _rate(sum(p.gap_question for p in pairs), n),
        "qa_model_question_rate": _rate(sum(not p.gap_question for p in pairs), n),
        "qa_roundtrip_pass_rate": _rate(trips_passed, trips),
        "qa_pairs_per_document": n / len(passages),
        "qa_failed_documents": float(failed),
        "qa_seconds_per_document": seconds / len(passages),
        "qa_model_calls_per_document": calls / len(passages),
    }


def record_of(value: Any) -> Any:
    """The record an ``extract_record`` run returned: its return value is the model's JSON as text
    (``to_json`` of one read), so a string is parsed; anything else is returned as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N passages (0: all)")
    parser.add_argument(
        "--only", default="qa", choices=("qa",), help="kept for old command lines: only qa is measured here"
    )
    parser.add_argument("--ids", default="", help="comma-separated passage ids (default: all)")
    parser.add_argument("--dump", type=Path, default=None, help="write outputs and scores as JSON lines")
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (0: the provider's default)"
    )
    parser.add_argument("--shard", default="", help="I/N: every N-th passage from the I-th (0-based)")
    args = parser.parse_args(argv)
    passages = load_passages()
    if args.ids:
        wanted = set(args.ids.split(","))
        passages = [p for p in passages if p.id in wanted]
    if args.limit:
        passages = passages[: args.limit]
    if args.shard:
        index, count = (int(x) for x in args.shard.split("/"))
        passages = passages[index::count]
    dump = Dump(args.dump)

    async def run() -> dict[str, float]:
        from workflow.providers.factory import build_provider

        settings = ProviderSettings(kind="local")
        if args.threads:
            settings = settings.model_copy(update={"n_threads": args.threads})
        provider = build_provider(settings)
        figures: dict[str, float] = {}
        try:
            loader = getattr(provider, "load", None)
            if loader is not None:
                await loader()
            figures |= await bench_qa(provider, passages, LanguageIdentifier(), dump)
        finally:
            await provider.aclose()
        return figures

    figures = trio.run(run)
    for name, value in figures.items():
        print(
            f"{name}={value:.3f}" if not name.endswith("_documents") else f"{name}={int(value)}", flush=True
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
