"""Break-it review of ``synod model serve``: hostile bodies against the real server, and the cost of
stop sequences in the token loop."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.serve.server import ServeProcess
from workflow.serve.pool import _held_back


def _reference_held_back(text: str, stops: list[str]) -> int:
    """The definition: the longest proper prefix of a stop sequence that ``text`` ends with."""
    return max(
        (k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k])),
        default=0,
    )


@pytest.mark.unit
@given(
    st.text(alphabet="ab<\n", max_size=14),
    st.lists(st.text(alphabet="ab<\n", max_size=7), max_size=4),
)
def test_held_back_is_the_longest_stop_prefix_at_the_end(text: str, stops: list[str]) -> None:
    assert _held_back(text, stops) == _reference_held_back(text, stops)


@pytest.mark.unit
def test_many_long_stop_sequences_cost_little_per_token() -> None:
    # 780 stop sequences of 10,000 characters fit the 8 MB body cap; the old loop tried every prefix
    # length of every stop at every token (about a second per token on this machine).
    stops = [f"{i}" + " " * 9990 + "Q" for i in range(780)]
    text = "Once upon a time, " * 120 + "7  "
    started = time.perf_counter()
    for _ in range(5):
        assert _held_back(text, stops) == 3  # "7  " may begin the stop "7" + spaces + "Q"
    assert (time.perf_counter() - started) / 5 < 0.1


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    with ServeProcess("--parallel", "1", "--ctx", "512") as running:
        yield running
    assert running.returncode == 0, running.stderr


@pytest.mark.integration
@pytest.mark.model
@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/api/generate", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            "/api/chat",
            b'{"model":"gemma3-270m","messages":[],"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            "nested too deeply",
        ),
        ("/v1/chat/completions", b'{"a":' * 100_000, "nested too deeply"),
        (
            "/api/generate",
            b'{"model":"gemma3-270m","prompt":"hi","options":{"presence_penalty":NaN}}',
            "NaN is not a JSON value",
        ),
        (
            "/v1/completions",
            b'{"model":"gemma3-270m","prompt":"hi","temperature":-Infinity}',
            "-Infinity is not a JSON value",
        ),
    ],
)
def test_hostile_json_is_a_400_naming_it_and_the_server_keeps_serving(
    server: ServeProcess, path: str, body: bytes, fragment: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        message = error["message"] if path.startswith("/v1/") else error
        assert fragment in message
        ok = client.post(
            "/api/generate",
            json={"model": "gemma3-270m", "prompt": "Hello", "stream": False, "options": {"num_predict": 1}},
        )
        assert ok.status_code == 200 and ok.json()["eval_count"] == 1


@pytest.mark.integration
@pytest.mark.model
@pytest.mark.parametrize(
    ("path", "schema", "fragment"),
    [
        ("/api/generate", {"enum": []}, "matches nothing"),  # was SIGSEGV: the server died
        ("/api/chat", {"const": "\u0000"}, "NUL"),  # was SIGABRT: the server died
        ("/v1/chat/completions", {"enum": ["\u0000"]}, "NUL"),
        ("/api/generate", {"$ref": "#/nope"}, "unsupported JSON schema"),  # was a 500
        ("/api/generate", {"type": "string", "pattern": "(((("}, "unsupported JSON schema"),
    ],
)
def test_a_hostile_schema_is_a_400_and_the_server_survives(
    server: ServeProcess, path: str, schema: dict[str, object], fragment: str
) -> None:
    body: dict[str, object] = {"model": "gemma3-270m", "stream": False}
    if path == "/api/generate":
        body.update(prompt="Give", format=schema, options={"num_predict": 4})
    elif path == "/api/chat":
        body.update(messages=[{"role": "user", "content": "Give"}], format=schema, options={"num_predict": 4})
    else:
        body.update(
            messages=[{"role": "user", "content": "Give"}],
            max_tokens=4,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )
    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = client.post(path, json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert fragment in (error["message"] if path.startswith("/v1/") else error)
        ok = client.post(
            "/api/generate",
            json={"model": "gemma3-270m", "prompt": "Hello", "stream": False, "options": {"num_predict": 1}},
        )
        assert ok.status_code == 200 and ok.json()["eval_count"] == 1
