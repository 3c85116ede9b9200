"""Rich renderings of a job's progress (the CLI's ``job status`` and ``make demo`` show the same)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table

from requester.status import JobStatus


def render_status(status: JobStatus) -> RenderableType:
    """A rich renderable of ``status``: a phase table and one line per batch (first 20)."""
    summary = Table(title=f"job {status.job_id}: {status.rows} tasks at block {status.block}")
    for col in ("phase", "batches", "tasks"):
        summary.add_column(col, justify="left" if col == "phase" else "right")
    for phase, (count, tasks) in status.by_phase.items():
        summary.add_row(phase.name.lower(), str(count), str(tasks))
    nxt = status.next_deadline
    footer = "every batch is settled or refunded" if nxt is None else f"next deadline in {nxt} s"
    batches = Table(title=f"accepted results {status.accepted}; {footer}")
    for col in ("batch", "rows", "phase", "commits", "reveals", "committee", "scores", "accepted", "slashes"):
        batches.add_column(col, justify="left" if col == "phase" else "right")
    for one in status.batches[:20]:
        batches.add_row(
            str(one.batch_id),
            str(one.rows),
            one.phase.name.lower(),
            str(one.commits),
            str(one.reveals),
            str(one.committee),
            str(one.scores),
            str(one.accepted),
            str(one.slashes),
        )
    if len(status.batches) > 20:
        batches.add_row("…", "", f"{len(status.batches) - 20} more", "", "", "", "", "", "")
    return Group(summary, batches)
