"""Re-check an exported dataset against the chain; name every altered, added and dropped row.

For each line of the file: it must parse as a :class:`~requester.export.DatasetRow`; its
(batch, node seat, row) must be an accepted result of the job on chain (else **added**; a second
line for the same result is added too); every chain field must equal what :func:`chain_fields`
derives now, the input must be the posted row's bytes, the envelope's canonical bytes must hash
to the revealed digest and prove this row (input, workflow and model), and ``result`` must be the
envelope's output (else **altered**, naming the fields). Every accepted result of the jobs with no
line is **dropped**. Rows are parsed strictly: ``"85"`` or ``85.0`` for an integer field is an
alteration, not the same value.

The jobs checked are the ones given explicitly (``--job``): then the file must hold exactly their
accepted results, and a row of any other job is **added**. With none given, the jobs are those the
rows name; a row naming a job the chain does not have is **added**, and a file that names no job
at all proves nothing and is refused (:class:`DatasetError`), so an emptied file never verifies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from protocol.canonical import canonical_bytes
from protocol.chain.contracts import SynodContracts
from protocol.envelope import EnvelopeError, ResultEnvelope
from protocol.errors import CanonicalError
from requester.errors import DatasetError, UnknownJob
from requester.export import CHAIN_FIELDS, DatasetRow, chain_fields, check_envelope, posted_row, result_of
from requester.history import DEFAULT_LOG_RANGE, JobHistory, load_history

Kind = Literal["altered", "added", "dropped"]


@dataclass(frozen=True)
class Finding:
    """One problem: ``line`` is the file's 1-based line (``None`` for a dropped row)."""

    kind: Kind
    line: int | None
    task: str
    detail: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "missing"
        return f"{self.kind}: {where} (task {self.task}): {self.detail}"


@dataclass
class VerifyReport:
    """The verdict: ``ok`` rows proven, and the findings in file order, dropped rows last."""

    rows: int = 0
    ok: int = 0
    jobs: tuple[int, ...] = ()
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.findings


def read_dataset(path: Path) -> list[tuple[int, Any]]:
    """(line number, JSON value) of every non-blank line; a line that is not JSON is kept as the
    :class:`str` error. Raises :class:`DatasetError` when the file cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"cannot read the dataset {path}: {exc.strerror}; give the file `synod job export` wrote"
        ) from None
    out: list[tuple[int, Any]] = []
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append((number, f"not UTF-8 text (byte {exc.start + 1} of the line)"))
            continue
        if line.strip():
            try:
                out.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                out.append((number, f"not JSON ({exc.msg})"))
    return out


MAX_JOB_ID = 2**64 - 1
"""Job ids are ``uint64`` on chain; a row naming a larger one names no job."""


def _job_of(value: Any) -> int | None:
    job = value.get("job_id") if isinstance(value, dict) else None
    ok = isinstance(job, int) and not isinstance(job, bool) and 0 <= job <= MAX_JOB_ID
    return job if ok else None


def _claimed_key(value: Any) -> tuple[int, int, int] | None:
    """The (batch, node seat, row) a line that failed to parse still names with whole numbers."""
    if not isinstance(value, dict):
        return None
    parts = [value.get(name) for name in ("batch_id", "node_seat", "row")]
    ints = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    return (ints[0], ints[1], ints[2]) if len(ints) == 3 else None


def _canonical_text(value: Any) -> str:
    """JSON text with sorted keys: ``1`` and ``1.0``, ``true`` and ``1`` stay different."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _differences(row: DatasetRow, expected: dict[str, Any], history: JobHistory) -> list[str]:
    dumped = row.model_dump(mode="json")
    wrong = [name for name in CHAIN_FIELDS if dumped[name] != expected[name]]
    batch = history.batches[row.batch_id]
    try:
        if canonical_bytes(row.input) != posted_row(batch, row.row):
            wrong.append("input")
    except (CanonicalError, TypeError, ValueError):
        wrong.append("input")
    try:
        envelope = ResultEnvelope.model_validate(row.envelope)
        if "0x" + envelope.digest().hex() != expected["digest"]:
            wrong.append("envelope (does not hash to the revealed digest)")
        elif (why := check_envelope(envelope, history, batch, row.row)) is not None:
            wrong.append(f"envelope ({why})")
        elif _canonical_text(row.result) != _canonical_text(result_of(envelope)):
            wrong.append("result")
    except (ValidationError, EnvelopeError) as exc:
        wrong.append(f"envelope (invalid: {str(exc).splitlines()[0]})")
    return wrong


def verify_dataset(
    chain: SynodContracts,
    lines: list[tuple[int, Any]],
    jobs: set[int] | None = None,
    log_range: int = DEFAULT_LOG_RANGE,
) -> VerifyReport:
    """Check ``lines`` (from :func:`read_dataset`) against the chain; see the module docstring.

    Raises :class:`~requester.errors.UnknownJob` for a job in ``jobs`` the chain does not know,
    :class:`DatasetError` when neither ``jobs`` nor any row names a job (nothing to prove), and the
    chain layer's errors when the RPC fails."""
    named = {j for _, v in lines if (j := _job_of(v)) is not None}
    wanted = set(jobs) if jobs else named
    if not wanted:
        raise DatasetError(
            f"none of the {len(lines)} line(s) names a job, so nothing can be verified: give the file "
            "`synod job export` wrote, or pass --job JOB to check that the job's rows are all there"
        )
    block = chain.head(0)
    histories: dict[int, JobHistory] = {}
    for j in sorted(wanted):
        try:
            histories[j] = load_history(chain, j, block, log_range)
        except UnknownJob:
            if jobs:
                raise
    market = chain.market.address
    expected: dict[tuple[int, int, int], tuple[JobHistory, dict[str, Any]]] = {}
    for history in histories.values():
        for batch, seat, row in history.accepted():
            fields = chain_fields(chain.chain_id, market, history, batch, seat, row)
            expected[(batch.batch_id, seat, row)] = (history, fields)
    report = VerifyReport(rows=len(lines), jobs=tuple(sorted(histories)))
    seen: set[tuple[int, int, int]] = set()
    for number, value in lines:
        if isinstance(value, str):
            report.findings.append(Finding("altered", number, "?", value))
            continue
        task = str(value.get("task", "?")) if isinstance(value, dict) else "?"
        try:
            parsed = DatasetRow.model_validate(value, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            report.findings.append(
                Finding("altered", number, task, f"not a dataset row: {where}: {first['msg']}")
            )
            claimed = _claimed_key(value)
            if claimed in expected and claimed not in seen:
                seen.add(claimed)  # the line is this result, altered: not also a dropped one
            continue
        key = parsed.key()
        if parsed.job_id not in histories:
            if jobs:
                checked = ", ".join(map(str, sorted(histories)))
                detail = f"a row of job {parsed.job_id}, but the file is checked as job(s) {checked} (--job)"
            else:
                detail = f"job {parsed.job_id} does not exist on chain {chain.chain_id}"
            report.findings.append(Finding("added", number, parsed.task, detail))
            continue
        if key not in expected:
            where = f"batch {parsed.batch_id} seat {parsed.node_seat} row {parsed.row}"
            detail = f"{where} is not an accepted result on chain"
            report.findings.append(Finding("added", number, parsed.task, detail))
            continue
        if key in seen:
            report.findings.append(Finding("added", number, parsed.task, "a second line for the same result"))
            continue
        seen.add(key)
        history, fields = expected[key]
        wrong = _differences(parsed, fields, history)
        if wrong:
            report.findings.append(
                Finding("altered", number, parsed.task, "differs from the chain in " + ", ".join(wrong))
            )
        else:
            report.ok += 1
    for key, (_history, fields) in expected.items():
        if key not in seen:
            digest = fields["digest"][:12]
            detail = f"accepted result of node {fields['node']} (seat {key[1]}, digest {digest}…) has no line"
            report.findings.append(Finding("dropped", None, fields["task"], detail))
    return report
