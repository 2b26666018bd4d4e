"""Schedules of the 4D optimisation (seed A.1): log-linear learning rates, linear CFG, decaying weights.

Every schedule is a pure function of ``progress`` = iteration / total iterations in [0, 1], so a
resumed run recomputes exactly the values an uninterrupted run used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def log_linear(start: float, end: float, progress: float) -> float:
    """Interpolate between ``start`` and ``end`` linearly in log space (3D-GS's exponential decay).

    ``log_linear(0.006, 0.00006, p)`` is 0.006 at p=0, 0.0006 at p=0.5, 0.00006 at p=1. Both ends
    must be positive; ``progress`` is clamped to [0, 1].
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"log_linear needs positive ends, got start={start}, end={end}")
    p = min(max(progress, 0.0), 1.0)
    return math.exp(math.log(start) * (1.0 - p) + math.log(end) * p)


def linear(start: float, end: float, progress: float) -> float:
    """Interpolate between ``start`` and ``end`` linearly; ``progress`` is clamped to [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    return start + (end - start) * p


@dataclass(frozen=True)
class Decay:
    """A value that moves from ``start`` to ``end`` over the run."""

    start: float
    end: float
    kind: str = "log"  # "log" (log-linear, like 3D-GS learning rates) or "linear"

    def __post_init__(self) -> None:
        if self.kind not in ("log", "linear"):
            raise ValueError(f"Decay.kind is {self.kind!r}, expected 'log' or 'linear'")
        if self.kind == "log" and (self.start <= 0 or self.end <= 0):
            raise ValueError(f"a log decay needs positive ends, got {self.start} -> {self.end}")

    def at(self, progress: float) -> float:
        if self.kind == "log":
            return log_linear(self.start, self.end, progress)
        return linear(self.start, self.end, progress)
