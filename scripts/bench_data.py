"""Dialogue and extraction quality on the dev set: ``python -m scripts.bench_data [--limit N] [--only ...]``.

Runs ``persona_dialogue.json`` and ``extract_record.json`` at their shipped settings on the local
model (Gemma 3 270M via llama.cpp) over ``tests/data/qa_passages.jsonl`` (the Q&A dev set: 37
passages, 7 languages) and prints ``name=value`` lines (definitions in
:mod:`workflow.eval.records`):

- ``dialogue_grounded_turn_rate``: share of all dialogue turns (visitor and guide) grounded in the
  passage; ``dialogue_guide_quote_rate``: share of guide turns that are a sentence of the passage
  word for word (the guide's fallback, or the model copying it); ``dialogue_language_match_rate``:
  turns of three words or more identified as the passage's language (fastText lid.176);
  ``dialogue_example_leak_rate``: turns holding a name or number of the few-shot examples that the
  passage lacks; ``dialogue_turns_per_document`` (four: two rounds; fewer when the checks reject
  the visitor's questions), ``dialogue_failed_documents``, ``dialogue_seconds_per_document``;
- ``extract_grounded_field_rate``: share of the non-empty ``name``, ``year`` and ``summary`` fields
  whose value occurs in the passage; ``extract_empty_field_rate``: share of those fields left
  empty (year 0); ``extract_example_leak_rate``: fields holding a name or number of the examples;
  ``extract_failed_documents``, ``extract_seconds_per_document``.

Seconds are wall time of one run, model loading excluded. ``--dump F`` writes every output and its
scores as JSON lines, for reading them by hand.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from pydantic import BaseModel, ConfigDict

from scripts.bench_qa import EXAMPLES, Dump, Passage, few_shot_texts, load_passages, record_of
from workflow.engine import Engine
from workflow.eval.grounding import example_markers
from workflow.eval.language import LanguageIdentifier
from workflow.eval.records import FieldScore, TurnScore, score_dialogue, score_record
from workflow.eval.text import normalise, sentences, words
from workflow.model import Workflow
from workflow.providers.base import LLMProvider, ProviderSettings
from workflow.validate import load_workflow


class Outcome(BaseModel):
    """One run: its return value (None on failure), the failure's text, wall seconds."""

    model_config = ConfigDict(frozen=True)

    value: Any
    error: str | None
    seconds: float


async def run_once(engine: Engine, workflow: Workflow, inputs: dict[str, Any]) -> Outcome:
    """Run ``workflow`` once on ``inputs``; log the checks that rejected a step to stderr."""
    started = time.perf_counter()
    outcome = await engine.execute(workflow, inputs)
    elapsed = time.perf_counter() - started
    rejected = [s.error for s in outcome.trace.steps if s.status == "failed"]
    print(
        f"bench_data: {workflow.name}: {len(outcome.trace.steps)} steps; rejected: {rejected}",
        file=sys.stderr,
    )
    if outcome.result is None:
        return Outcome(value=None, error=str(outcome.error), seconds=elapsed)
    return Outcome(value=outcome.result.json_value(), error=None, seconds=elapsed)


def _rate(good: int, total: int) -> float:
    return good / total if total else 0.0


def dialogue_turns(value: Any) -> list[Any] | None:
    """The turns of a ``persona_dialogue`` result (``["Persona: ...", [turns...]]``), or None when
    the value has another shape."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], list):
        return value[1]
    return None


def is_quote(turn: str, passage: str, language: str) -> bool:
    """Whether ``turn`` is one of the passage's sentences word for word (case, spacing and edge
    punctuation ignored)."""
    key = normalise(turn)
    return any(normalise(s) == key for s in sentences(passage, language))


async def bench_dialogue(
    provider: LLMProvider, passages: Sequence[Passage], identifier: LanguageIdentifier, dump: Dump
) -> dict[str, float]:
    """Run ``persona_dialogue.json`` on every passage; the dialogue figures."""
    workflow = load_workflow(EXAMPLES / "persona_dialogue.json")
    markers = example_markers(few_shot_texts(workflow))
    engine = Engine(provider)
    scored: list[TurnScore] = []
    quotes = guides = spoken = matched = failed = 0
    seconds = 0.0
    for passage in passages:
        done = await run_once(engine, workflow, {"document": passage.text})
        seconds += done.seconds
        turns = dialogue_turns(done.value) if done.error is None else None
        if turns is None:
            failed += 1
            turns = []
        scores = score_dialogue(passage.text, passage.lang, turns, markers=markers)
        scored.extend(scores)
        for s in scores:
            if s.speaker == "guide":
                guides += 1
                quotes += is_quote(s.text, passage.text, passage.lang)
            if len(words(s.text)) >= 3:
                spoken += 1
                matched += identifier.code(s.text) == passage.lang
        dump.append(
            {
                "workflow": "persona_dialogue",
                "id": passage.id,
                "lang": passage.lang,
                "seconds": round(done.seconds, 2),
                "error": done.error,
                "value": done.value,
                "turns": [s.model_dump() for s in scores],
            }
        )
        print(f"bench_data: dialogue {passage.id} {len(scores)} turn(s) {done.seconds:.1f}s", file=sys.stderr)
    n = len(scored)
    return {
        "dialogue_grounded_turn_rate": _rate(sum(s.grounded for s in scored), n),
        "dialogue_guide_quote_rate": _rate(quotes, guides),
        "dialogue_language_match_rate": _rate(matched, spoken),
        "dialogue_example_leak_rate": _rate(sum(bool(s.leaked) for s in scored), n),
        "dialogue_turns_per_document": n / len(passages),
        "dialogue_failed_documents": float(failed),
        "dialogue_seconds_per_document": seconds / len(passages),
    }


async def bench_extract(provider: LLMProvider, passages: Sequence[Passage], dump: Dump) -> dict[str, float]:
    """Run ``extract_record.json`` on every passage; the extraction figures."""
    workflow = load_workflow(EXAMPLES / "extract_record.json")
    markers = example_markers(few_shot_texts(workflow))
    engine = Engine(provider)
    fields: list[FieldScore] = []
    failed = 0
    seconds = 0.0
    for passage in passages:
        done = await run_once(engine, workflow, {"text": passage.text})
        seconds += done.seconds
        if done.error is not None:
            failed += 1
            scores = []
        else:
            scores = score_record(passage.text, record_of(done.value), markers=markers)
        fields.extend(scores)
        dump.append(
            {
                "workflow": "extract_record",
                "id": passage.id,
                "lang": passage.lang,
                "seconds": round(done.seconds, 2),
                "error": done.error,
                "value": done.value,
                "fields": [s.model_dump() for s in scores],
            }
        )
        print(f"bench_data: extract {passage.id} {done.seconds:.1f}s {done.error or ''}", file=sys.stderr)
    filled = [f for f in fields if not f.empty]
    return {
        "extract_grounded_field_rate": _rate(sum(f.grounded for f in filled), len(filled)),
        "extract_empty_field_rate": _rate(len(fields) - len(filled), len(fields)),
        "extract_example_leak_rate": _rate(sum(bool(f.leaked) for f in fields), len(fields)),
        "extract_failed_documents": float(failed),
        "extract_seconds_per_document": seconds / len(passages),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N passages (0: all)")
    parser.add_argument("--only", default="dialogue,extract", help="comma-separated: dialogue, extract")
    parser.add_argument("--ids", default="", help="comma-separated passage ids (default: all)")
    parser.add_argument("--dump", type=Path, default=None, help="write outputs and scores as JSON lines")
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (0: the provider's default)"
    )
    args = parser.parse_args(argv)
    passages = load_passages()
    if args.ids:
        wanted = set(args.ids.split(","))
        passages = [p for p in passages if p.id in wanted]
    if args.limit:
        passages = passages[: args.limit]
    if not passages:
        parser.error("no passage selected")
    only = set(args.only.split(","))
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
            if "dialogue" in only:
                figures |= await bench_dialogue(provider, passages, LanguageIdentifier(), dump)
            if "extract" in only:
                figures |= await bench_extract(provider, passages, dump)
        finally:
            await provider.aclose()
        return figures

    figures = trio.run(run)
    print(f"data_bench_passages={len(passages)}", flush=True)
    for name, value in figures.items():
        print(f"{name}={int(value)}" if name.endswith("_documents") else f"{name}={value:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
