"""What every suite gets: the common options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    warmup_s: float = 1.0  # per scenario, not measured
    duration_s: float = 4.0  # per scenario, measured
    workers: int = 2  # gunicorn worker processes of each server under test
