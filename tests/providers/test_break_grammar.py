"""Break-it review: JSON schemas whose llama.cpp grammar used to kill the whole process (SIGSEGV on a
grammar llama.cpp cannot parse, SIGABRT on one that requires the NUL character). A workflow's schema
comes from a requester, so a hostile job could take down every node running the local model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workflow.providers.llama_runner import _EMPTY_RULE, _needs_nul

ROOT = Path(__file__).resolve().parents[2]

HOSTILE = [
    {"enum": []},  # converter output llama.cpp cannot parse: NULL sampler, SIGSEGV
    {"const": "\u0000"},  # a grammar that needs NUL: every token refused, C++ throw, SIGABRT
    {"enum": ["\u0000"]},
    {"not": {}},  # the converter's AssertionError
    {"$ref": "#/nope"},
    {"type": "string", "pattern": "(((("},  # the converter's regex error
]

SCRIPT = """
import json, sys, trio
from workflow.errors import ProviderError
from workflow.providers.base import GenerationOptions, ProviderSettings
from workflow.providers.factory import build_provider

async def main():
    provider = build_provider(ProviderSettings(kind="local", n_ctx=256))
    try:
        for schema in json.loads(sys.argv[1]):
            try:
                await provider.generate("Hi", GenerationOptions(max_tokens=4, json_schema=schema))
                print("generated")
            except ProviderError as exc:
                print("refused", str(exc).replace("\\n", " ")[:200])
        ok = await provider.generate("Hi", GenerationOptions(max_tokens=3, json_schema={"type": "integer"}))
        print("after", ok.completion_tokens)
    finally:
        await provider.aclose()

trio.run(main)
"""


@pytest.mark.model
def test_hostile_json_schemas_are_provider_errors_not_a_dead_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HOSTILE)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    lines = done.stdout.splitlines()
    assert len(lines) == len(HOSTILE) + 1, done.stdout
    assert all(line.startswith("refused") and "json schema" in line for line in lines[:-1]), lines
    assert "NUL" in lines[1] and "'root' matches nothing" in lines[0]
    assert lines[-1].startswith("after ") and 1 <= int(lines[-1].split()[1]) <= 3


@pytest.mark.unit
@pytest.mark.parametrize(
    ("grammar", "needs"),
    [
        ('root ::= "\\u0000"', True),
        ('root ::= "a" [\\x00-\\x00]', True),
        ('root ::= "\\U00000000"', True),
        ('root ::= "\\\\x00"', False),  # an escaped backslash, then the text x00
        ('root ::= [^"\\\\\\x7F\\x00-\\x1F]', False),  # the negated class of every JSON grammar
        ('root ::= "a" # \\x00 in a comment', False),
        ('root ::= "[^\\x00]"', True),  # a literal that looks like a negated class
    ],
)
def test_nul_detection(grammar: str, needs: bool) -> None:
    assert _needs_nul(grammar) is needs


@pytest.mark.unit
def test_empty_rule_detection_allows_bodies_on_the_next_line() -> None:
    from llama_cpp.llama_grammar import JSON_GBNF

    assert _EMPTY_RULE.search(JSON_GBNF) is None
    assert _EMPTY_RULE.search('object ::=\n  "{" ws\nws ::= " "?') is None
    found = _EMPTY_RULE.search('root ::= \nspace ::= " "?')
    assert found is not None and found.group(1) == "root"
    last = _EMPTY_RULE.search('root ::= "a"\ntail ::=  ')
    assert last is not None and last.group(1) == "tail"
