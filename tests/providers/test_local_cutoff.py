"""``synod workflow run`` cut off at ``max_time`` on the local model: always exit 3 and one stderr line.

Issue 12 reproduction: ``examples/workflows/qa_pairs.json`` with ``config.max_time`` 0.5-1.2 s
crashed with a segfault (exit 139) after printing the TimeLimitError line, or exited 3 with nothing
on stderr (the line went to the ``/dev/null`` llama-cpp-python puts on fd 2 while loading). The
deadlines below are spread from "during model loading" to "during generation", so every stage is
cut: 56 runs, two at a time (each process runs llama.cpp on 2 threads; this machine has 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = "The Danube flows 2,850 km to the Black Sea."
RUNS = 56


def _workflow(tmp_path: Path, max_time: float) -> Path:
    spec = json.loads((ROOT / "examples" / "workflows" / "qa_pairs.json").read_text(encoding="utf-8"))
    spec["config"]["max_time"] = max_time
    path = tmp_path / f"qa_pairs_{max_time}.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def _run(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "workflow", "run", str(path), "--input", f"document={DOCUMENT}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(1200)  # ~90 s on an idle 2-core machine; each run loads the model
def test_cut_off_runs_exit_3_with_one_stderr_line_every_time(tmp_path: Path) -> None:
    # 0.05 s ends during model loading, 0.3-0.6 s around prompt evaluation, 0.8-1.2 s mid-generation.
    deadlines = [round(0.05 + (i % 8) * 0.16, 2) for i in range(RUNS)]
    paths = {d: _workflow(tmp_path, d) for d in set(deadlines)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda d: (d, _run(paths[d], env)), deadlines))
    failures = []
    for deadline, result in results:
        lines = result.stderr.splitlines()
        ok = (
            result.returncode == 3
            and len(lines) == 1
            and f"ran past max_time={deadline}s" in lines[0]
            and lines[0].startswith("synod workflow: run failed: TimeLimitError")
            and result.stdout == ""
        )
        if not ok:
            failures.append((deadline, result.returncode, result.stderr[-500:], result.stdout[-200:]))
    assert failures == [], f"{len(failures)} of {RUNS} runs misbehaved: {failures[:5]}"


def test_a_model_that_cannot_load_is_one_stderr_line(tmp_path: Path) -> None:
    """The model-loading stage fails (the model cache is a file, not a directory): one line, exit 3."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SYNOD_MODEL_DIR": str(blocker)}
    result = _run(ROOT / "examples" / "workflows" / "qa_pairs.json", env)
    lines = result.stderr.splitlines()
    assert result.returncode == 3, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("synod workflow: provider failed:") and "GGUF" in lines[0], lines[0]
