"""The engine's own cost per step stays far under the 1 ms budget (zero-latency provider)."""

from __future__ import annotations

import pytest

from scripts.bench_workflow import overhead_us_per_step

pytestmark = pytest.mark.unit


def test_engine_overhead_is_under_one_millisecond_per_step() -> None:
    assert overhead_us_per_step(500, repeats=3) < 1000
