"""A pick for the gripper tests: down, close on a 4 cm object with the arm still, lift."""

from __future__ import annotations

import numpy as np

from tests.real.plans import READY, min_jerk

OPEN, HOLD, OBJECT = 0.06, 0.03, 0.04  # m: open on approach, commanded while holding, the object's width
DOWN = np.array([0.0, 0.1, 0.0, 0.1, 0.0, 0.0, 0.0])  # rad: READY -> the grasp pose


def pick(
    q0: np.ndarray = READY, down: np.ndarray = DOWN
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """(t [M], q [M, J], gripper [M], phase times): down 1 s, close 0.6 s (arm still), up 1 s."""
    t1, q1 = min_jerk(q0, q0 + down, 1.0)
    t2 = np.linspace(0.0, 0.6, 61)[1:]
    q2 = np.tile(q1[-1], (len(t2), 1))
    t3, q3 = min_jerk(q0 + down, q0, 1.0)
    t = np.concatenate([t1, 1.0 + t2, 1.6 + t3[1:]])
    q = np.vstack([q1, q2, q3[1:]])
    g = np.concatenate([np.full(len(t1), OPEN), np.linspace(OPEN, HOLD, 61)[1:], np.full(len(t3) - 1, HOLD)])
    return t, q, g, {"close_start": 1.0, "close_end": 1.6, "lift_start": 1.6}
