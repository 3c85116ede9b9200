"""Typed inputs and outputs of the scoring pipeline (pydantic at the boundary).

A :class:`ScoreRequest` is one task and its results; the pipeline returns one :class:`ResultScore`
per result, in order, with every component (:class:`Components`) that went into the score.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from oracle.scoring.schemas import schema_problem

MAX_TASK_CHARS = 100_000
"""A task text longer than this is refused (it is the prompt of one workflow run)."""
MAX_SOURCES = 64
MAX_SOURCE_CHARS = 100_000
MAX_RESULTS = 256
"""At most this many results per task (a batch has at most 256 rows, k seats each)."""


class ScoreRequest(BaseModel):
    """One task and its results, as ``synod oracle score`` reads them and the daemon builds them.

    ``results``: text (already decoded) or raw bytes (as fetched over p2p; decoded strictly as
    UTF-8 by the validity stage). ``schema``: the output JSON Schema (draft 2020-12), checked when
    the request is built by :func:`.schemas.schema_problem` (a malformed or unsafe schema: a
    backtracking-only regex, a remote ``$ref``, too deep; raises ``ValueError``). ``language``: ISO 639-1 code
    the results must be written in. ``deterministic``: the workflow calls no model and does not
    search (:class:`workflow.outputs.Determinism` ``exact``), so honest results are byte-identical
    and a result whose digest differs from most others' is an outlier (the ``digest`` factor).
    ``greedy``: every model call is greedy (temperature 0), so identical digests are evidence of
    agreement but a different digest is not evidence against a result (greedy output can differ
    across CPUs and builds): identical digests raise the ``agreement`` factor, nothing lowers it
    beyond the embedding agreement. ``deterministic`` wins when both are set.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS)
    results: tuple[str | bytes, ...] = Field(max_length=MAX_RESULTS)
    output_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    sources: tuple[str, ...] = Field(default=(), max_length=MAX_SOURCES)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    deterministic: bool = False
    greedy: bool = False

    @field_validator("output_schema")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            problem = schema_problem(value)
            if problem is not None:
                raise ValueError(f"malformed JSON Schema: {problem}")
        return value

    @field_validator("sources")
    @classmethod
    def _sources_bounded(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for source in value:
            if len(source) > MAX_SOURCE_CHARS:
                raise ValueError(f"a source is over {MAX_SOURCE_CHARS} characters")
        return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Validity(_Frozen):
    """The validity stage's verdict: ``valid`` false means the score is 0; ``reason`` says why.

    ``text``: the result as text (the decoded bytes; for a JSON result, its string values joined,
    which is what the language and content checks read). ``language``: the identified language.
    """

    valid: bool
    reason: str | None = None
    text: str = ""
    is_json: bool = False
    language: str | None = None


class Components(_Frozen):
    """Every component of one score, each in 0..1 unless said otherwise (None: not computed).

    - ``valid``: passed validity; ``invalid_reason`` otherwise.
    - ``injection``: instruction-like text aimed at a grader was found (``injection_reason``).
    - ``relevance``: cosine similarity of the result to the task (and its sources), raw.
    - ``peer_agreement``: median cosine similarity to the task's other results, raw (None if alone).
    - ``prompt_copy``: share of the result's character 5-grams found in the task or its sources.
    - ``digest_agreement``: deterministic or greedy tasks only: share of the other results
      byte-identical; ``digest_rule`` says which rule used it (``exact``: the ``digest`` factor;
      ``greedy``: it can only raise ``agreement``).
    - ``completeness``: 1 if the result ends like a finished text, else 0.
    - ``grounding``: share of the result's sentences supported by the sources (None: no sources);
      ``unsupported``: what was not supported (numbers, names, sentences), for the explanation.
    - ``quality``: the LLM judge's rubric score (None: judge off or unavailable).
    - ``topic``, ``agreement``, ``originality``: the calibrated 0..1 sub-scores combined.
    """

    valid: bool
    invalid_reason: str | None = None
    injection: bool = False
    injection_reason: str | None = None
    language: str | None = None
    relevance: float | None = None
    peer_agreement: float | None = None
    prompt_copy: float | None = None
    digest_agreement: float | None = None
    digest_rule: Literal["exact", "greedy"] | None = None
    completeness: float | None = None
    grounding: float | None = None
    unsupported: tuple[str, ...] = ()
    quality: float | None = None
    quality_reason: str | None = None
    topic: float | None = None
    agreement: float | None = None
    originality: float | None = None


class ResultScore(_Frozen):
    """One result's score: ``score`` 0..100, ``accepted`` at the threshold used, the components."""

    index: int = Field(ge=0)
    score: int = Field(ge=0, le=100)
    accepted: bool
    components: Components
