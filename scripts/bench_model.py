"""Local model throughput through one ``synod model serve``: ``python -m scripts.bench_model``.

Starts ``synod model serve --port 0`` (``--parallel N``, default the server's), then prints
``name=value`` lines:

- ``local_tokens_per_s``: generated tokens per wall-clock second of one client sending
  ``--requests`` Ollama ``/api/generate`` requests one after the other (``--tokens`` each, prompt
  evaluation and HTTP included);
- ``local_tokens_per_s_4_clients``: the aggregate of four such clients at once (total tokens over
  the wall-clock time of the whole run).

Every request must succeed within ``--timeout`` seconds; otherwise the bench fails (exit 1, the
reason on stderr). Model loading is excluded (the server is warmed up first).
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"listening on (http://\S+)")
PROMPTS = (
    "The history of the lighthouse begins",
    "A short guide to keeping bees:",
    "The river Danube flows",
    "Glass owls are made by",
)


class BenchError(Exception):
    """A request failed or timed out, or the server did not start."""


def start_server(extra: Sequence[str], timeout_s: float = 120.0) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "cli.main", "model", "serve", "--port", "0", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.2):
                match = READY.search(process.stdout.readline())
                if match:
                    return process, match.group(1)
    stop_server(process)
    raise BenchError(f"synod model serve did not start (exit {process.returncode})")


def stop_server(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


async def one_client(url: str, index: int, requests: int, tokens: int, timeout_s: float) -> int:
    """Send ``requests`` generations one after the other; return the tokens generated."""
    generated = 0
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as http:
        for n in range(requests):
            body = {
                "model": "gemma3-270m",
                "prompt": PROMPTS[(index + n) % len(PROMPTS)],
                "stream": False,
                "options": {"num_predict": tokens, "temperature": 0.7, "seed": index * 1000 + n},
            }
            try:
                with trio.fail_after(timeout_s):
                    response = await http.post("/api/generate", json=body)
            except (trio.TooSlowError, httpx.TimeoutException) as exc:
                raise BenchError(f"client {index} request {n} timed out after {timeout_s}s") from exc
            if response.status_code != 200:
                raise BenchError(
                    f"client {index} request {n}: HTTP {response.status_code} {response.text[:200]}"
                )
            generated += int(response.json()["eval_count"])
    return generated


async def throughput(url: str, clients: int, requests: int, tokens: int, timeout_s: float) -> float:
    """Aggregate generated tokens per second of ``clients`` concurrent clients."""
    counts: list[int] = []
    failures: list[BenchError] = []

    async def run(index: int) -> None:
        try:
            counts.append(await one_client(url, index, requests, tokens, timeout_s))
        except BenchError as exc:  # kept here: out of the nursery it would come in a group
            failures.append(exc)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(run, index)
    if failures:
        raise failures[0]
    return sum(counts) / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=None, help="server slots (default: the server's)")
    parser.add_argument(
        "--threads", type=int, default=None, help="server llama.cpp threads (default: the server's)"
    )
    parser.add_argument("--requests", type=int, default=4, help="requests per client (4)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per request (64)")
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline of one request, seconds (120)")
    args = parser.parse_args(argv)
    extra: list[str] = []
    if args.parallel is not None:
        extra += ["--parallel", str(args.parallel)]
    if args.threads is not None:
        extra += ["--threads", str(args.threads)]
    try:
        process, url = start_server(extra)
        try:
            trio.run(throughput, url, 1, 1, 4, args.timeout)  # warm-up
            one = trio.run(throughput, url, 1, args.requests, args.tokens, args.timeout)
            print(f"local_tokens_per_s={one:.1f}", flush=True)
            four = trio.run(throughput, url, 4, args.requests, args.tokens, args.timeout)
            print(f"local_tokens_per_s_4_clients={four:.1f}", flush=True)
        finally:
            stop_server(process)
    except BenchError as exc:
        print(f"bench_model: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
