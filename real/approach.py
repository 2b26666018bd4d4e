"""A separate slow approach move from where the robot is to where the plan starts.

It is a straight line in joint space with a minimum-jerk profile, at a small fraction of the
joint limits; it is not sim-validated, so it goes through every other pre-flight check and needs
its own typed confirmation before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from real.collision import CollisionModel
from real.kinematics import ArmKinematics
from real.limits import RobotLimits
from real.preflight import PreflightReport, SafetyConfig, preflight

# Peaks of the minimum-jerk profile s(u) = 10u^3 - 15u^4 + 6u^5 for a unit move in unit time.
_PEAK_V, _PEAK_A, _PEAK_J = 1.875, 5.7735, 60.0


def approach_trajectory(
    q_from: np.ndarray,  # [J] rad, where the robot is
    q_to: np.ndarray,  # [J] rad, the plan's first waypoint
    limits: RobotLimits,
    fraction: float = 0.1,  # of the velocity/acceleration/jerk limits
    dt: float = 0.01,  # s, waypoint spacing
    min_duration: float = 1.0,  # s
) -> tuple[np.ndarray, np.ndarray]:
    """(t [M], q [M, J]) of a minimum-jerk joint move whose peaks stay under ``fraction`` x the limits."""
    q_from = np.asarray(q_from, dtype=float)
    q_to = np.asarray(q_to, dtype=float)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction is {fraction}, expected (0, 1]")
    _, _, vmax, amax, jmax = limits.arrays()
    d = np.abs(q_to - q_from)
    T = max(
        min_duration,
        float(np.max(_PEAK_V * d / (fraction * vmax))),
        float(np.max(np.sqrt(_PEAK_A * d / (fraction * amax)))),
        float(np.max(np.cbrt(_PEAK_J * d / (fraction * jmax)))),
    )
    n = int(np.ceil(T / dt)) + 1
    t = np.linspace(0.0, (n - 1) * dt, n)
    u = t / t[-1]
    s = 10 * u**3 - 15 * u**4 + 6 * u**5
    return t, q_from + s[:, None] * (q_to - q_from)


class ApproachMove:
    """The approach as a plan-like object that ``preflight`` can check (no gripper motion)."""

    def __init__(
        self,
        t: np.ndarray,  # [M] s
        q: np.ndarray,  # [M, J] rad
        joint_names: tuple[str, ...],
        gripper_width: float = 0.0,  # m, where the fingers are (the approach does not move them)
    ):
        self.t = t
        self.q = q
        self.gripper = np.full(len(t), float(gripper_width))
        self.ee_pose = np.tile([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], (len(t), 1))
        self.joint_names = tuple(joint_names)
        self.validation = None

    def content_hash(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for arr in (self.t, self.q):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class Approach:
    """An approach move and its pre-flight verdict."""

    move: ApproachMove  # the trajectory, on its own (unslowed) timeline
    report: PreflightReport  # every pre-flight rule but the sim validation, which is waived


def plan_approach(
    current_q: np.ndarray,  # [J] rad, where the robot is
    plan_start: np.ndarray,  # [J] rad, the plan's first waypoint
    limits: RobotLimits,
    kinematics: ArmKinematics | None,
    config: SafetyConfig,
    *,
    collision: CollisionModel | None = None,  # self-collision (and the scene's) along the move
    gripper_width: float = 0.0,  # m, the fingers' opening now (collision geometry; not commanded)
) -> Approach:
    """Plan the approach from ``current_q`` to ``plan_start`` and pre-flight it (robot state ``current_q``).

    The report applies ``config`` as for a plan (its timeline stretched by ``config.slowdown``), so
    the move must run on ``move.t * config.slowdown``. Never raises on a refused move: read ``report``.
    """
    t, q = approach_trajectory(current_q, plan_start, limits)
    move = ApproachMove(t, q, limits.joint_names, gripper_width)
    report = preflight(
        move, limits, kinematics, config, current_q, require_validation=False, collision=collision
    )
    return Approach(move, report)
