"""The result envelope: the one definition of the bytes a node hashes, commits, reveals and serves.

A node's digest for a row of a batch is ``keccak256(envelope_bytes)``, where the envelope is the
canonical JSON (:mod:`protocol.canonical`) of::

    {"error": null | "reason",            # why the task failed, or null
     "input": "0x..",                     # keccak256 of the row's bytes as posted (BatchPosted.rows[i])
     "model": "gemma3:270m",              # the model the node ran
     "output": "...",                     # the workflow's return value as text ("" when error is set)
     "output_is_json": true | false,      # whether ``output`` parses as JSON (strict, no NaN)
     "v": 1,                              # envelope version
     "workflow": "0x.."}                  # keccak256 of the job's workflow bytes (JobPosted.workflow)

The node (to commit), the validator (to check fetched bytes and read the output) and the dataset
export and verifier (to prove a row from chain data) all use :class:`ResultEnvelope`, so the three
can never disagree on what was hashed. Parsing (:meth:`ResultEnvelope.from_bytes`) accepts only the
canonical bytes: any other encoding of the same content is refused, so one result has one digest.

A failed task may be committed as an explicit failure envelope (``error`` set, ``output`` empty):
it binds the node to having failed that row; validators score it 0.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from protocol.canonical import Digest, canonical_bytes, keccak256
from protocol.errors import SynodError

ENVELOPE_VERSION: Literal[1] = 1
MAX_ENVELOPE_BYTES = 256 * 1024
"""Largest envelope a node commits or a validator accepts, in bytes (its canonical encoding)."""
MAX_ERROR_CHARS = 500
"""Longest failure reason kept in an envelope, in characters (longer ones are cut by :func:`failure`)."""
MAX_JSON_DEPTH = 256
"""Deepest nesting of arrays/objects an ``output`` may have and still count as JSON.

Fixed so that ``output_is_json`` never depends on the Python stack depth of the caller (the C JSON
parser's recursion limit counts the caller's frames too, so node and validator could disagree)."""

_JSON_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


class EnvelopeError(SynodError, ValueError):
    """Bytes that are not a valid, canonical result envelope, or an envelope over the size cap."""


_HEX32 = re.compile(r"0x[0-9a-f]{64}")


def _hex32(value: str, what: str) -> str:
    # one C regex match (fullmatch: no trailing newline slips through) instead of a Python loop
    # over the 64 digits: this runs twice for every envelope built or parsed
    if not (isinstance(value, str) and _HEX32.fullmatch(value)):
        raise ValueError(f"{what} must be 0x followed by 64 lowercase hex digits, got {value!r}")
    return value


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside JSON strings do not count).

    One linear scan without recursion, so deterministic for any input; for text that is not JSON
    it is what a parser would reach before failing, or more.
    """
    if text.count("[") + text.count("{") <= 1:
        return text.count("[") + text.count("{")
    depth = deepest = 0
    in_string = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or token[0] == "\\":
            continue
        elif token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def is_json_text(text: str) -> bool:
    """Whether ``text`` parses as strict JSON (no NaN/Infinity) nested at most
    :data:`MAX_JSON_DEPTH` deep, as ``output_is_json`` records it. Deterministic: the answer never
    depends on the caller's stack depth or recursion limit."""

    def _refuse(constant: str) -> object:
        raise ValueError(constant)

    if json_depth(text) > MAX_JSON_DEPTH:
        return False
    try:
        json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return False
    return True


class ResultEnvelope(BaseModel):
    """One task's result as committed on chain (see the module docstring for the byte format).

    Build one with :func:`success` or :func:`failure`; parse untrusted bytes with :meth:`from_bytes`.
    Raises :class:`pydantic.ValidationError` for a malformed field when built directly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Literal[1] = ENVELOPE_VERSION
    workflow: str
    input: str
    model: str = Field(min_length=1, max_length=200)
    output: str
    output_is_json: bool
    error: str | None = Field(default=None, min_length=1, max_length=MAX_ERROR_CHARS)

    @field_validator("workflow", "input")
    @classmethod
    def _check_hex(cls, value: str, info: ValidationInfo) -> str:
        return _hex32(value, info.field_name or "digest")

    @model_validator(mode="after")
    def _check_consistent(self) -> ResultEnvelope:
        if self.error is not None and (self.output != "" or self.output_is_json):
            raise ValueError("a failure envelope has output '' and output_is_json false")
        if self.error is None and self.output_is_json != is_json_text(self.output):
            raise ValueError(f"output_is_json is {self.output_is_json} but the output says otherwise")
        return self

    @property
    def ok(self) -> bool:
        """True for a result, False for an explicit failure."""
        return self.error is None

    def to_bytes(self) -> bytes:
        """The canonical bytes (UTF-8 JSON, sorted keys, no spaces). Raises :class:`EnvelopeError`
        when they exceed :data:`MAX_ENVELOPE_BYTES` or a text has no UTF-8 form (a lone surrogate)."""
        try:
            data = canonical_bytes(self.model_dump())
        except UnicodeEncodeError as exc:  # a lone surrogate (e.g. from a JSON "\\ud800" escape)
            raise EnvelopeError(f"result envelope has text with no UTF-8 form: {exc.reason}") from None
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"result envelope is {len(data)} bytes, over the cap of {MAX_ENVELOPE_BYTES}")
        return data

    def digest(self) -> Digest:
        """keccak256 of :meth:`to_bytes`: the 32-byte word a node commits and reveals for the row."""
        return keccak256(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, *, expect_digest: bytes | None = None) -> ResultEnvelope:
        """Parse untrusted envelope bytes (for example fetched over p2p).

        Raises :class:`EnvelopeError` if ``data`` is over the cap, not UTF-8, not JSON, not a valid
        envelope, not in canonical form, or (when ``expect_digest`` is given) hashes to another digest.
        """
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"result envelope is {len(data)} bytes, over the cap of {MAX_ENVELOPE_BYTES}")
        if expect_digest is not None and keccak256(data) != bytes(expect_digest):
            raise EnvelopeError(
                f"bytes hash to 0x{keccak256(data).hex()}, not the committed 0x{bytes(expect_digest).hex()}"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"result envelope is not UTF-8: {exc.reason} at byte {exc.start}") from None
        if json_depth(text) > 1:  # an envelope is one flat object; its strings may hold any brackets
            raise EnvelopeError("result envelope nests brackets deeper than one object")
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise EnvelopeError(f"result envelope is not JSON: {exc}") from None
        try:
            envelope = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "envelope"
            raise EnvelopeError(f"invalid result envelope: {where}: {first['msg']}") from None
        if envelope.to_bytes() != data:
            raise EnvelopeError("result envelope is not in canonical form (sorted keys, no spaces, UTF-8)")
        return envelope


def success(*, workflow_hash: bytes, row: bytes, model: str, output: str) -> ResultEnvelope:
    """The envelope of a task that returned ``output`` (the workflow's return value as text).

    ``workflow_hash`` is the job's 32-byte workflow hash; ``row`` the row's bytes as posted.
    Raises :class:`EnvelopeError` if the envelope would exceed :data:`MAX_ENVELOPE_BYTES` or
    ``output`` has no UTF-8 form (a lone surrogate).
    """
    envelope = ResultEnvelope(
        workflow="0x" + bytes(workflow_hash).hex(),
        input="0x" + keccak256(bytes(row)).hex(),
        model=model,
        output=output,
        output_is_json=is_json_text(output),
    )
    envelope.to_bytes()  # size check
    return envelope


def failure(*, workflow_hash: bytes, row: bytes, model: str, reason: str) -> ResultEnvelope:
    """The envelope that records a task's failure with ``reason`` (cut to :data:`MAX_ERROR_CHARS`;
    a character with no UTF-8 form, such as a lone surrogate, becomes ``?``). Never raises for any
    ``reason``."""
    reason = reason.encode("utf-8", "replace").decode("utf-8").strip() or "failed"
    return ResultEnvelope(
        workflow="0x" + bytes(workflow_hash).hex(),
        input="0x" + keccak256(bytes(row)).hex(),
        model=model,
        output="",
        output_is_json=False,
        error=reason[:MAX_ERROR_CHARS],
    )
