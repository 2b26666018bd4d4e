"""Small, hand-made plans for the real/ tests: one safe Panda plan and helpers to break it."""

from __future__ import annotations

import numpy as np

from core.plan import Plan
from real.limits import PANDA, RobotLimits
from real.preflight import CheckResult, Reason

# The box task's plan (tests/real/conftest.py) is timed at 0.5 x the limits by the planner; pre-flight
# allows 0.25 x by default, so it runs slowed down 2x.
BOX_SLOWDOWN = 2.0

READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])


def min_jerk(
    q0: np.ndarray, q1: np.ndarray, duration: float, dt: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """(t [M], q [M, J]): a rest-to-rest minimum-jerk move."""
    n = round(duration / dt) + 1
    t = np.linspace(0.0, duration, n)
    u = t / duration
    s = 10 * u**3 - 15 * u**4 + 6 * u**5
    return t, q0 + s[:, None] * (np.asarray(q1) - q0)


def make_plan(
    t: np.ndarray,  # [M] s
    q: np.ndarray,  # [M, J] rad
    limits: RobotLimits = PANDA,
    joint_names: tuple[str, ...] | None = None,
    validated: bool = True,
) -> Plan:
    """A Plan of ``q``; ``validated`` stamps a sim verdict carrying its own hash."""
    M = len(t)
    ee = np.tile([0.4, 0.0, 0.4, 1.0, 0.0, 0.0, 0.0], (M, 1))
    plan = Plan(
        t=np.asarray(t, dtype=np.float64),
        q=np.asarray(q, dtype=np.float64),
        gripper=np.full(M, 0.04),
        ee_pose=ee,
        robot=limits.model,
        joint_names=joint_names or limits.joint_names,
        base_pose=(0, 0, 0, 1, 0, 0, 0),
        task="test move",
        flow_sha256="0" * 64,
    )
    if validated:
        restamp(plan)
    return plan


def restamp(plan: Plan) -> Plan:
    """(Re)write the sim verdict for the plan's current arrays, as the simulator would."""
    object.__setattr__(
        plan, "validation", {"success": True, "plan_sha256": plan.content_hash(), "simulator": "pybullet"}
    )
    return plan


def safe_plan() -> Plan:
    t, q = min_jerk(READY, READY + np.array([0.3, 0.15, -0.1, 0.2, 0.1, -0.15, 0.2]), 3.0)
    return make_plan(t, q)


def passing_resim() -> tuple[CheckResult, CheckResult]:
    """A re-simulation verdict that passes, for tests of what happens after it (session mechanics, rules).

    The real verdict comes from ``real.revalidate`` (tested against PyBullet in test_revalidate).
    """
    return (
        CheckResult(Reason.FLOW_MISMATCH, True, "flow given by the test"),
        CheckResult(Reason.SIM_FAILED, True, "verdict given by the test"),
    )
