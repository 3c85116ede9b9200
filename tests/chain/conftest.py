"""Fixtures of the chain tests: the contracts built once per session, a fresh Anvil per test.

Each test gets its own Anvil (it starts in well under a second) because the watcher tests reorg,
roll back and time-travel the chain; nothing is shared between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.devnet import ROOT, anvil, forge_build


@pytest.fixture(scope="session")
def built() -> Path:
    """``forge build`` once (a no-op when nothing changed): the artifacts under ``out/``."""
    forge_build(ROOT)
    return ROOT


@pytest.fixture
def anvil_url(built: Path) -> Iterator[str]:
    """A fresh Anvil (chain id 31337) on a free port of 127.0.0.1, stopped after the test."""
    with anvil(built) as url:
        yield url
