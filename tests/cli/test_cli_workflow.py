"""``synod workflow validate|run`` through the real console script in a subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYNOD = ROOT / ".venv" / "bin" / "synod"
EXAMPLES = ROOT / "examples" / "workflows"


def synod(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYNOD), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def error_lines(stderr: str) -> list[str]:
    """Our lines on stderr (llama.cpp may print its own notices there)."""
    return [line for line in stderr.splitlines() if line.startswith("synod workflow:")]


def write(tmp_path: Path, data: dict[str, Any], name: str = "wf.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def simple(**config: Any) -> dict[str, Any]:
    return {
        "name": "simple",
        "description": "one generation",
        "config": {"max_steps": 3, "max_time": 30, "max_tokens": 4, "stop": ["\n"], **config},
        "tasks": [
            {
                "id": "A",
                "name": "a",
                "description": "",
                "prompt": "Topic: {topic}. One word:",
                "inputs": [{"name": "topic", "value": {"type": "input", "key": "topic"}, "required": True}],
                "operator": "generation",
                "outputs": [{"type": "write", "key": "o", "value": "__result"}],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        "steps": [{"source": "A", "target": "__end"}],
        "return_value": {"input": {"type": "read", "key": "o"}, "post_process": [{"process_type": "trim"}]},
    }


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.unit
@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json")),
    ids=lambda p: p.name,
)
def test_validate_examples(path: Path) -> None:
    done = synod("workflow", "validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "valid workflow" in done.stdout and done.stderr == ""


@pytest.mark.unit
def test_validate_invalid_is_one_line_exit_2(tmp_path: Path) -> None:
    data = simple()
    data["tasks"][0]["operator"] = "telepathy"
    done = synod("workflow", "validate", str(write(tmp_path, data)))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "tasks[0].operator" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.unit
def test_run_invalid_workflow_exit_2(tmp_path: Path) -> None:
    data = simple()
    data["steps"][0]["target"] = "nowhere"
    done = synod("workflow", "run", str(write(tmp_path, data)), "--input", "topic=x", "--strict")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"synod workflow: invalid workflow {tmp_path / 'wf.json'}: "
        "steps[0].target: no task with id 'nowhere': the run ends there"
    ]
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"config": {"max_steps": 1,},}', encoding="utf-8")
    done = synod("workflow", "run", str(not_json))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "not JSON" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.unit
def test_validate_warns_about_what_the_original_accepts_and_strict_rejects_it(tmp_path: Path) -> None:
    data = simple()
    data["steps"][0]["target"] = "end"
    data["tasks"][0]["inputs"][0]["value"]["required"] = True
    path = write(tmp_path, data)
    done = synod("workflow", "validate", str(path))
    assert done.returncode == 0 and "2 warning(s)" in done.stdout
    assert done.stderr.splitlines() == [
        f"synod workflow: warning: {path}: tasks[0].inputs[0].value.required: unknown field 'required' "
        "ignored (as the original does)",
        f"synod workflow: warning: {path}: steps[0].target: no task with id 'end': the run ends there",
    ]
    done = synod("workflow", "validate", str(path), "--strict")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "unknown field 'required'" in done.stderr


@pytest.mark.unit
def test_run_missing_input_exit_2_before_loading_the_model(tmp_path: Path) -> None:
    done = synod("workflow", "run", str(write(tmp_path, simple())))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synod workflow: missing input:") and "'topic'" in lines[0]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--input", "novalue"], "expected KEY=VALUE"),
        (["--input-file", "/nonexistent.json"], "--input-file"),
        (["--provider", "ollama"], "--model is required"),
        (["--num-ctx", "16"], "bad provider setting n_ctx"),
        (["--stall-timeout", "0"], "bad provider setting stall_timeout_s"),
    ],
)
def test_run_usage_errors_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    done = synod("workflow", "run", str(write(tmp_path, simple())), *args)
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and needle in lines[0], done.stderr


@pytest.mark.unit
def test_unconfigured_search_backend_fails_the_run_with_one_line(tmp_path: Path) -> None:
    done = synod(
        "workflow",
        "run",
        str(EXAMPLES / "web_answer.json"),
        "--input",
        "question=q",
        "--input",
        "query=q",
        "--searxng-url",
        "",
    )
    assert done.returncode == 3  # tools are resolved when a task needs them, as the original
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "searxng_url" in lines[0], done.stderr


@pytest.mark.integration
def test_provider_down_is_one_line_exit_3(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    done = synod(
        "workflow", "run", str(write(tmp_path, simple())), "--input", "topic=x",
        "--provider", "ollama", "--model", "gemma3:270m", "--base-url", url,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synod workflow: provider failed:"), done.stderr
    assert url.split("//")[1] in lines[0] and "Traceback" not in done.stderr


@pytest.mark.model
def test_run_prints_value_and_json_trace(tmp_path: Path) -> None:
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"topic": "the sea"}), encoding="utf-8")
    done = synod("workflow", "run", str(write(tmp_path, simple())), "--input-file", str(inputs), "--trace")
    assert done.returncode == 0, done.stderr
    value = done.stdout.removesuffix("\n")
    assert value == value.strip()  # the workflow's post_process trims the model's answer
    trace = json.loads(done.stderr.strip().splitlines()[-1])
    assert trace["status"] == "completed" and trace["steps"][0]["task_id"] == "A"
    assert trace["steps"][0]["prompt_digest"].startswith("0x") and trace["provider"] == "local"


@pytest.mark.model
def test_run_example_json_output_and_table_trace() -> None:
    text = "Ada Lovelace published the first algorithm for a machine in 1843."
    done = synod(
        "workflow", "run", str(EXAMPLES / "extract_record.json"), "--input", f"text={text}",
        "--trace", "--trace-format", "table",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert set(record) == {"name", "category", "year", "summary"}
    assert "extract" in done.stderr and "completed" in done.stderr


@pytest.mark.model
def test_runtime_failure_exit_3(tmp_path: Path) -> None:
    data = simple(max_steps=2)
    data["steps"] = [
        {
            "source": "A",
            "target": "__end",
            "condition": {
                "input": {"type": "read", "key": "o"},
                "expression": "Equal",
                "expected": "never ever",
                "target_if_not": "A",
            },
        }
    ]
    done = synod("workflow", "run", str(write(tmp_path, data)), "--input", "topic=x")
    assert done.returncode == 3
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "StepLimitError" in lines[0] and "max_steps=2" in lines[0]


@pytest.mark.unit
def test_help_lists_the_subcommands() -> None:
    done = synod("workflow", "--help")
    assert done.returncode == 0 and "validate" in done.stdout and "run" in done.stdout


@pytest.mark.model
def test_max_time_stops_a_long_generation_promptly(tmp_path: Path) -> None:
    data = simple(max_time=1, max_tokens=3000)
    data["config"].pop("stop")
    data["tasks"][0]["prompt"] = "Write a very long story about {topic}. Chapter 1."
    started = time.monotonic()
    done = synod("workflow", "run", str(write(tmp_path, data)), "--input", "topic=the sea")
    elapsed = time.monotonic() - started
    assert done.returncode == 3
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "TimeLimitError" in lines[0] and "max_time=1" in lines[0]
    assert elapsed < 20  # the abandoned model call is not waited for (3000 tokens take ~60 s)


@pytest.mark.model
def test_run_on_an_ollama_server(tmp_path: Path) -> None:
    """--provider ollama against the providers' Ollama-compatible test server (real model behind it)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.providers.ollama_server import MODEL_TAG, OllamaTestServer

    with OllamaTestServer() as server:
        done = synod(
            "workflow", "run", str(write(tmp_path, simple())), "--input", "topic=the sea",
            "--provider", "ollama", "--model", MODEL_TAG, "--base-url", server.base_url, "--trace",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        trace = json.loads(done.stderr.strip().splitlines()[-1])
        assert trace["provider"] == "ollama" and trace["model"] == MODEL_TAG
        assert trace["steps"][0]["completion_tokens"] > 0
        assert any(path == "/api/generate" for _, path in server.requests)
