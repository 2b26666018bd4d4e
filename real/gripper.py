"""The plan's gripper track as commands: each stretch where the width changes is one gripper motion.

Pre-flight checks that the arm is at rest during each of these stretches (so the run can hold it
still while the fingers finish), and the streaming loop sends one command per stretch and checks
the fingers at its end (``real.execute``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GripperEvent:
    """One stretch of the plan where the gripper width changes monotonically (one command)."""

    i_start: int  # waypoint index where the width starts to change
    i_end: int  # waypoint index where it stops changing
    t_start: float  # s, on the timeline the event was found on
    t_end: float  # s
    width_from: float  # m
    width_to: float  # m

    @property
    def closing(self) -> bool:
        return self.width_to < self.width_from


def gripper_events(
    t: np.ndarray,  # [M] s
    widths: np.ndarray,  # [M] m, the plan's gripper track
    tolerance: float = 1e-5,  # m, width changes below this between waypoints are not a motion
) -> list[GripperEvent]:
    """The gripper commands in a width track: maximal runs of same-direction width changes."""
    t = np.asarray(t, dtype=float)
    w = np.asarray(widths, dtype=float)
    step = np.diff(w)
    direction = np.where(step > tolerance, 1, np.where(step < -tolerance, -1, 0))
    events: list[GripperEvent] = []
    i = 0
    while i < len(direction):
        if direction[i] == 0:
            i += 1
            continue
        j = i
        while j + 1 < len(direction) and direction[j + 1] == direction[i]:
            j += 1
        events.append(GripperEvent(i, j + 1, float(t[i]), float(t[j + 1]), float(w[i]), float(w[j + 1])))
        i = j + 1
    return events
