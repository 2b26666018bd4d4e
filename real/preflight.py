"""Pre-flight checks: every reason to refuse a plan, decided before anything moves.

Each rule is one function, ``check_<rule>(...) -> CheckResult``, that takes only what it needs and
returns its own reason code (``Reason``) with a message naming the offending value, the joint or
frame, the time and the limit. A rule refuses what it cannot evaluate (a non-finite value, a
timeline that does not increase, arrays of the wrong shape): NaN never passes a rule, whatever
its arguments. ``preflight`` runs the rules in ``Reason.ALL`` order; a rule whose prerequisites
did not pass (e.g. derivatives of a plan with non-finite values) is reported as skipped, and the
plan is refused by the rule it depends on. Arrays of a loaded ``Plan`` are mutable, so the
contract checks (finite values, increasing time) are repeated here rather than trusted.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from core.errors import ChordError
from core.robots import ROBOTS, RobotSpec
from real.collision import CollisionModel
from real.gripper import gripper_events
from real.kinematics import ArmKinematics
from real.limits import GripperLimits, RobotLimits, gripper_for

log = logging.getLogger(__name__)

# The cartesian speed cap of first-run mode (m/s), for the tool and every checked link.
FIRST_RUN_SPEED = 0.25
# m: the table height and the workspace box corners stay this close to the robot base.
REACH = 2.0
# SafetyConfig fields whose larger values weaken a check: field -> (largest allowed, why).
_WEAKEST = {
    "start_tolerance": (0.1, "rad; an arm further off the start takes --approach"),
    "rest_velocity": (0.1, "rad/s; faster is not at rest"),
    "max_sample_gap": (0.5, "s; sparser waypoints leave the derivative checks blind"),
    "cartesian_speed_max": (2.0, "m/s; above every supported arm's top tool speed"),
    "slowdown": (100.0, "a plan slowed further is a different plan"),
    "collision_dt": (0.008, "s; the shortest control period of a backend (UR, 125 Hz)"),
    "collision_step": (0.05, "rad between collision samples"),
}


class Reason:
    """Reason codes of the pre-flight checks, in the order they run."""

    NOT_VALIDATED = "not_validated"
    HASH_MISMATCH = "hash_mismatch"
    FLOW_MISMATCH = "flow_mismatch"  # the flow given to re-simulate is not the plan's
    SIM_FAILED = "sim_failed"  # re-simulated here, the plan fails (or cannot be simulated)
    NONFINITE = "nonfinite"
    ROBOT = "robot"  # the plan was made for another arm than the one driven
    JOINT_NAMES = "joint_names"
    TIME_NOT_INCREASING = "time_not_increasing"
    SAMPLE_GAP = "sample_gap"
    START_NOT_AT_REST = "start_not_at_rest"
    FINAL_NOT_AT_REST = "final_not_at_rest"
    JOINT_LIMIT = "joint_limit"
    VELOCITY_LIMIT = "velocity_limit"
    ACCELERATION_LIMIT = "acceleration_limit"
    JERK_LIMIT = "jerk_limit"
    GRIPPER_WIDTH = "gripper_width"
    GRASP_FORCE = "grasp_force"
    GRIPPER_WHILE_MOVING = "gripper_while_moving"
    WORKSPACE = "workspace"
    TABLE = "table"
    TCP_SPEED = "tcp_speed"
    LINK_SPEED = "link_speed"
    SELF_COLLISION = "self_collision"
    SCENE_COLLISION = "scene_collision"
    START_STATE = "start_state"

    # In the order pre-flight runs them: the re-simulation (seconds) after every rule on the plan
    # itself, so that a plan those refuse is not simulated.
    ALL = (
        NOT_VALIDATED,
        HASH_MISMATCH,
        NONFINITE,
        ROBOT,
        JOINT_NAMES,
        TIME_NOT_INCREASING,
        SAMPLE_GAP,
        START_NOT_AT_REST,
        FINAL_NOT_AT_REST,
        JOINT_LIMIT,
        VELOCITY_LIMIT,
        ACCELERATION_LIMIT,
        JERK_LIMIT,
        GRIPPER_WIDTH,
        GRASP_FORCE,
        GRIPPER_WHILE_MOVING,
        WORKSPACE,
        TABLE,
        TCP_SPEED,
        LINK_SPEED,
        SELF_COLLISION,
        SCENE_COLLISION,
        FLOW_MISMATCH,
        SIM_FAILED,
        START_STATE,
    )

    # The rules every check on the trajectory's values needs to have passed: finite arrays in
    # the robot's joint order, on a strictly increasing timeline dense enough to differentiate.
    GATES = (NONFINITE, ROBOT, JOINT_NAMES, TIME_NOT_INCREASING, SAMPLE_GAP)


@dataclass(frozen=True)
class SafetyConfig:
    """Thresholds of the pre-flight checks (the ``chord real`` flags). Positions are in the robot base frame.

    Raises ChordError, naming the field and its value, when a number is not finite or out of range.
    """

    speed_scale: float = 0.25  # fraction (0, 1] of the joint velocity/acceleration/jerk limits allowed
    first_run: bool = True  # caps tool and link speed at FIRST_RUN_SPEED (0.25 m/s)
    cartesian_speed_max: float = 1.0  # m/s (> 0), tool and link speed cap when not in first-run mode
    joint_margin: float = 0.05  # rad (>= 0), keep-out band inside each joint position limit
    workspace_min: tuple[float, float, float] = (-0.9, -0.9, -0.1)  # m, base frame, low box corner (x y z)
    workspace_max: tuple[float, float, float] = (0.9, 0.9, 1.2)  # m, base frame, high box corner (x y z)
    table_z: float = 0.0  # m, table surface height in the base frame
    link_clearance: float = 0.03  # m (>= 0), every checked link origin stays this far above the table
    tcp_clearance: float = 0.005  # m (>= 0), the tool point stays this far above the table
    start_tolerance: float = 0.01  # rad (>= 0), max |q_robot - q_plan[0]| per joint
    max_sample_gap: float = 0.1  # s (> 0), longest gap between waypoints (for meaningful differences)
    rest_velocity: float = 0.01  # rad/s (>= 0), joint speed counted as "at rest" at both ends
    slowdown: float = 1.0  # >= 1, the plan's timeline is stretched by this factor before checking and running
    grasp_force: float | None = None  # N, the force the gripper closes with; None: the gripper's rated force
    self_clearance: float = 0.005  # m (>= 0), checked link pairs of the arm stay this far apart
    scene_clearance: float = (
        0.0  # m (>= 0), the arm stays this far from the table and objects (0: no contact)
    )
    collision_dt: float = (
        0.004  # s (> 0), collision samples at most this far apart (finer than every backend's 8-20 ms period)
    )
    collision_step: float = 0.01  # rad (> 0), ... and no joint moves more than this between two samples

    def __post_init__(self) -> None:
        def refuse(name: str, expected: str) -> ChordError:
            return ChordError(f"safety config: {name} is {getattr(self, name)!r}, expected {expected}")

        scalars = [
            f.name
            for f in fields(self)
            if f.name not in ("first_run", "workspace_min", "workspace_max")
            and not (f.name == "grasp_force" and self.grasp_force is None)
        ]
        for name in scalars:
            if not _finite_real(getattr(self, name)):
                raise refuse(name, "a finite number")
        if not isinstance(self.first_run, bool):
            raise refuse("first_run", "True or False")
        if not 0.0 < self.speed_scale <= 1.0:
            raise refuse("speed_scale", "a fraction in (0, 1]")
        if not self.slowdown >= 1.0:
            raise refuse("slowdown", ">= 1 (it may only slow a plan down)")
        for name in ("cartesian_speed_max", "max_sample_gap", "collision_dt", "collision_step"):
            if not getattr(self, name) > 0:
                raise refuse(name, "> 0")
        if self.grasp_force is not None and not self.grasp_force > 0:
            raise refuse("grasp_force", "> 0 N (or unset: the gripper's rated force)")
        for name in (
            "joint_margin", "link_clearance", "tcp_clearance", "start_tolerance", "rest_velocity",
            "self_clearance", "scene_clearance",
        ):  # fmt: skip
            if not getattr(self, name) >= 0:
                raise refuse(name, ">= 0")
        # Upper bounds where a larger value weakens a check until it checks nothing (a start
        # tolerance of 1e6 rad, a table 1 km below the arm); a stricter value is never capped.
        for name, (most, why) in _WEAKEST.items():
            if not getattr(self, name) <= most:
                raise refuse(name, f"<= {most} ({why})")
        if not abs(self.table_z) <= REACH:
            raise refuse("table_z", f"within {REACH} m of the robot base (no arm here reaches further)")
        for name in ("workspace_min", "workspace_max"):
            corner = getattr(self, name)
            if not (
                isinstance(corner, (Sequence, np.ndarray))
                and len(corner) == 3
                and all(map(_finite_real, corner))
            ):
                raise refuse(name, "3 finite numbers (x y z, metres)")
            if not all(abs(float(x)) <= REACH for x in corner):
                raise refuse(
                    name, f"3 numbers within {REACH} m of the robot base (no arm here reaches further)"
                )
            object.__setattr__(self, name, tuple(float(x) for x in corner))
        inverted = [
            f"{axis}: {lo} >= {hi}"
            for axis, lo, hi in zip("xyz", self.workspace_min, self.workspace_max, strict=True)
            if not lo < hi
        ]
        if inverted:
            raise ChordError(
                f"safety config: workspace_min {self.workspace_min} must be below workspace_max "
                f"{self.workspace_max} on every axis ({', '.join(inverted)})"
            )

    @property
    def speed_cap(self) -> float:
        """m/s, the tool and link speed cap in force."""
        return min(self.cartesian_speed_max, FIRST_RUN_SPEED) if self.first_run else self.cartesian_speed_max


def _finite_real(v: Any) -> bool:
    """True for a finite int/float (numpy scalars included), False for bools, NaN, inf and the rest."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one pre-flight rule."""

    code: str  # a Reason code
    passed: bool | None  # None: skipped (could not be evaluated)
    message: str  # what was checked, and the offending value if it failed


@dataclass
class PreflightReport:
    """The outcome of every check for one plan on one robot."""

    plan_sha256: str
    robot: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def refused(self) -> list[CheckResult]:
        return [c for c in self.checks if c.passed is False]

    @property
    def reasons(self) -> list[str]:
        return [c.code for c in self.refused]

    @property
    def ok(self) -> bool:
        """True when no check failed and none was skipped."""
        return all(c.passed for c in self.checks)

    def format(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}
        lines = [f"pre-flight for plan {self.plan_sha256[:12]} on {self.robot}:"]
        lines += [f"  [{mark[c.passed]}] {c.code}: {c.message}" for c in self.checks]
        verdict = "PASS" if self.ok else f"REFUSED ({', '.join(self.reasons) or 'checks skipped'})"
        lines.append(f"  verdict: {verdict}")
        return "\n".join(lines)

    def raise_if_refused(self) -> None:
        if not self.ok:
            raise PreflightRefusedError(self)


class PreflightRefusedError(ChordError):
    """A plan failed (or could not complete) pre-flight; ``reasons`` lists the reason codes."""

    def __init__(self, report: PreflightReport):
        self.report = report
        self.reasons = report.reasons
        first = report.refused[0] if report.refused else next(c for c in report.checks if c.passed is None)
        super().__init__(f"refused before moving ({', '.join(self.reasons) or first.code}): {first.message}")


# -- helpers shared by the rules --------------------------------------------------------------


def _first_nonfinite(arrays: Mapping[str, Any]) -> str | None:
    """'name[i, j] is nan; n non-finite value(s) in name' for the first array with one, else None."""
    for name, values in arrays.items():
        a = np.asarray(values, dtype=float)
        idx = np.argwhere(~np.isfinite(a))
        if len(idx):
            return f"{name}{idx[0].tolist()} is {a[tuple(idx[0])]}; {len(idx)} non-finite value(s) in {name}"
    return None


def _timeline_problem(t: np.ndarray) -> str | None:  # t: [M] s
    """Why ``t`` cannot be differentiated over (non-finite, < 2 waypoints, not increasing), or None."""
    if t.ndim != 1:
        return f"t has shape {t.shape}, expected [M]"
    bad = _first_nonfinite({"t": t})
    if bad:
        return bad
    if len(t) < 2:
        return f"t has {len(t)} waypoint(s), at least 2 are needed"
    dt = np.diff(t)
    if not (dt > 0).all():
        i = int(np.argmin(dt > 0))
        return f"t does not strictly increase: t[{i}]={t[i]:.6g} s, t[{i + 1}]={t[i + 1]:.6g} s"
    return None


def _trajectory_problem(t: np.ndarray, q: np.ndarray, limits: RobotLimits) -> str | None:
    """Why joints ``q`` [M, J] on ``t`` [M] cannot be checked against ``limits``, or None."""
    problem = _timeline_problem(t)
    if problem:
        return problem
    if q.shape != (len(t), limits.dof):
        return (
            f"q has shape {q.shape}, expected [{len(t)}, {limits.dof}] ({limits.model} joints per waypoint)"
        )
    return _first_nonfinite({"q": q})


def _points_problem(t: np.ndarray, points: np.ndarray, frame_names: Sequence[str]) -> str | None:
    """Why frame positions ``points`` [M, F, 3] on ``t`` [M] cannot be checked, or None."""
    problem = _timeline_problem(t)
    if problem:
        return problem
    shape = (len(t), len(frame_names), 3)
    if points.shape != shape:
        return f"frame positions have shape {points.shape}, expected {list(shape)} (waypoints, frames, xyz)"
    return _first_nonfinite({"frame positions": points})


def _cannot(code: str, problem: str) -> CheckResult:
    return CheckResult(code, False, f"cannot be checked: {problem}")


def _as_float(*arrays: Any) -> list[np.ndarray]:
    return [np.asarray(a, dtype=float) for a in arrays]


# -- the rules, in the order preflight runs them ----------------------------------------------


def check_validated(validation: Any) -> CheckResult:
    """``not_validated``: ``plan.validation`` is {"success": true, "simulator": <name>, ...}."""
    if not isinstance(validation, dict):
        return CheckResult(
            Reason.NOT_VALIDATED, False, f"plan.validation is {validation!r}: run it in sim first"
        )
    if validation.get("success") is not True or not isinstance(validation.get("simulator"), str):
        return CheckResult(
            Reason.NOT_VALIDATED,
            False,
            f"plan.validation success={validation.get('success')!r} simulator={validation.get('simulator')!r}; "
            "expected success=true from a named simulator",
        )
    return CheckResult(Reason.NOT_VALIDATED, True, f"validated in {validation['simulator']}")


def check_hash(validation: Any, plan_sha256: str) -> CheckResult:
    """``hash_mismatch``: the validation record's ``plan_sha256`` is the plan's own content hash.

    Skipped (passed None) when there is no record at all: ``not_validated`` refuses that plan.
    """
    if not isinstance(validation, dict):
        return CheckResult(Reason.HASH_MISMATCH, None, "no validation record to compare")
    recorded = validation.get("plan_sha256")
    if recorded != plan_sha256:
        return CheckResult(
            Reason.HASH_MISMATCH,
            False,
            f"plan.validation.plan_sha256={recorded!r} but the plan hashes to {plan_sha256!r}: "
            "these are not the trajectories the simulator validated",
        )
    return CheckResult(Reason.HASH_MISMATCH, True, f"hash {plan_sha256[:12]} matches the validated plan")


def validation_ok(validation: Any, plan_sha256: str) -> tuple[CheckResult, CheckResult]:
    """(``not_validated``, ``hash_mismatch``) results for a plan's validation record."""
    return check_validated(validation), check_hash(validation, plan_sha256)


def check_finite(arrays: Mapping[str, Any]) -> CheckResult:
    """``nonfinite``: every value of every named array (t, q, gripper, ee_pose, ...) is finite."""
    bad = _first_nonfinite(arrays)
    if bad:
        return CheckResult(Reason.NONFINITE, False, bad)
    return CheckResult(Reason.NONFINITE, True, "all values finite")


def check_robot(plan_robot: Any, limits: RobotLimits, arm: RobotSpec | None = None) -> CheckResult:
    """``robot``: the plan was made for the arm being driven.

    The plan's ``robot`` is a registry name (core.robots), or the name of the user's arm that
    ``arm`` describes (``chord real --robot FILE.yaml``); its entry's limit table must be the one
    of the arm being driven (``limits``, the connected backend's).
    """
    spec = arm if arm is not None else ROBOTS.get(plan_robot) if isinstance(plan_robot, str) else None
    shown = (
        plan_robot if not isinstance(plan_robot, str) or len(plan_robot) <= 120 else plan_robot[:120] + "..."
    )
    if spec is None:
        return CheckResult(
            Reason.ROBOT,
            False,
            f"plan robot {shown!r} is not a registered robot ({', '.join(sorted(ROBOTS))}); re-plan for one, or "
            "describe your arm in a YAML file and pass it with --robot (docs/robots.md)",
        )
    if spec.name != plan_robot:
        return CheckResult(
            Reason.ROBOT, False, f"the plan was made for {shown!r}, --robot describes {spec.name!r}"
        )
    if spec.limits_model != limits.model:
        return CheckResult(
            Reason.ROBOT,
            False,
            f"the plan was made for {spec.name!r} (limit table {spec.limits_model or 'none'!r}), "
            f"the arm driven is a {limits.model!r}",
        )
    return CheckResult(Reason.ROBOT, True, f"made for {spec.name!r}, the arm driven ({limits.model})")


def check_joint_names(names: Sequence[str], limits: RobotLimits) -> CheckResult:
    """``joint_names``: the plan's joints are the robot's, by name and in the robot's order."""
    names = tuple(names)
    if names != limits.joint_names:
        return CheckResult(
            Reason.JOINT_NAMES,
            False,
            f"plan joints {list(names)} != {limits.model} joints {list(limits.joint_names)} (names and order must match)",
        )
    return CheckResult(Reason.JOINT_NAMES, True, f"{len(names)} joints in the robot's order")


def check_time(t: np.ndarray) -> CheckResult:  # t: [M] s, the (slowed) timeline
    """``time_not_increasing``: ``t`` is finite, starts at 0 and strictly increases over >= 2 waypoints."""
    (t,) = _as_float(t)
    bad = _first_nonfinite({"t": t})
    if t.ndim != 1 or len(t) == 0 or bad:
        return CheckResult(Reason.TIME_NOT_INCREASING, False, bad or f"t has shape {t.shape}, expected [M]")
    dt = np.diff(t)
    if not (len(t) >= 2 and t[0] == 0.0 and (dt > 0).all()):
        i = int(np.argmax(dt <= 0)) if len(dt) and (dt <= 0).any() else 0
        return CheckResult(
            Reason.TIME_NOT_INCREASING,
            False,
            f"t must start at 0 and strictly increase; t[0]={t[0]:.6g}, t[{i}]={t[i]:.6g} s, t[{i + 1}]={t[min(i + 1, len(t) - 1)]:.6g} s",
        )
    return CheckResult(Reason.TIME_NOT_INCREASING, True, f"{len(t)} waypoints over {t[-1]:.3f} s")


def check_sample_gap(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    max_gap: float,  # s, SafetyConfig.max_sample_gap
) -> CheckResult:
    """``sample_gap``: no two consecutive waypoints are more than ``max_gap`` apart."""
    (t,) = _as_float(t)
    problem = _timeline_problem(t)
    if problem:
        return _cannot(Reason.SAMPLE_GAP, problem)
    dt = np.diff(t)
    i = int(np.argmax(dt))
    if not dt[i] <= max_gap:
        return CheckResult(
            Reason.SAMPLE_GAP,
            False,
            f"{dt[i]:.3f} s between waypoints {i} and {i + 1} (t={t[i]:.3f} s) exceeds {max_gap} s",
        )
    return CheckResult(Reason.SAMPLE_GAP, True, f"largest waypoint gap {dt[i]:.4f} s")


def _at_rest(
    code: str,
    seg: int,  # 0: the first segment, -1: the last
    t: np.ndarray,
    q: np.ndarray,
    limits: RobotLimits,
    speed_scale: float,
    rest_velocity: float,
) -> CheckResult:
    t, q = _as_float(t, q)
    problem = _trajectory_problem(t, q, limits)
    if problem:
        return _cannot(code, problem)
    where = "first" if seg == 0 else "last"
    dt = np.diff(t)
    v = np.diff(q, axis=0)[seg] / dt[seg]  # [J] rad/s, the segment's mean speed
    # The end segment's mean speed must be reachable from (or reducible to) zero within one
    # segment under the scaled acceleration limit, plus a small tolerance.
    allowed = rest_velocity + 0.5 * speed_scale * np.asarray(limits.acceleration) * dt[seg]  # [J] rad/s
    j = int(np.argmax(np.abs(v) / allowed))
    if not abs(v[j]) <= allowed[j]:
        return CheckResult(
            code,
            False,
            f"joint {limits.joint_names[j]} moves at {v[j]:.4g} rad/s over the {where} segment; at rest means <= {allowed[j]:.4g} rad/s",
        )
    return CheckResult(code, True, f"{where} segment speed within {allowed.min():.4g} rad/s of rest")


def check_start_at_rest(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    limits: RobotLimits,
    speed_scale: float,  # fraction (0, 1] of the acceleration limits
    rest_velocity: float,  # rad/s, speed tolerance of "at rest"
) -> CheckResult:
    """``start_not_at_rest``: the first segment's speed could be reached from rest within it."""
    return _at_rest(Reason.START_NOT_AT_REST, 0, t, q, limits, speed_scale, rest_velocity)


def check_final_at_rest(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    limits: RobotLimits,
    speed_scale: float,  # fraction (0, 1] of the acceleration limits
    rest_velocity: float,  # rad/s, speed tolerance of "at rest"
) -> CheckResult:
    """``final_not_at_rest``: the last segment's speed could be brought to rest within it."""
    return _at_rest(Reason.FINAL_NOT_AT_REST, -1, t, q, limits, speed_scale, rest_velocity)


def check_joint_limits(
    t: np.ndarray,  # [M] s, the (slowed) timeline (for the message)
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    limits: RobotLimits,
    margin: float,  # rad, keep-out band inside each position limit
) -> CheckResult:
    """``joint_limit``: every joint stays inside its position limits less ``margin``."""
    t, q = _as_float(t, q)
    problem = _trajectory_problem(t, q, limits)
    if problem:
        return _cannot(Reason.JOINT_LIMIT, problem)
    lower, upper = _as_float(limits.lower, limits.upper)
    lo_m, hi_m = lower + margin, upper - margin
    over = np.maximum(lo_m - q, q - hi_m)  # [M, J] > 0 where inside the margin band or beyond
    k, j = np.unravel_index(int(np.argmax(over)), over.shape)
    if not over[k, j] <= 0:
        return CheckResult(
            Reason.JOINT_LIMIT,
            False,
            f"joint {limits.joint_names[j]} = {q[k, j]:.4f} rad at t={t[k]:.3f} s is outside [{lo_m[j]:.4f}, {hi_m[j]:.4f}] "
            f"(limits [{lower[j]:.4f}, {upper[j]:.4f}] less a {margin} rad margin)",
        )
    return CheckResult(
        Reason.JOINT_LIMIT, True, f"closest approach to a limit {-over.max():.3f} rad inside the margin"
    )


def _derivative(t: np.ndarray, q: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """(d^order q / dt^order [M-order, J], its times [M-order]) by finite differences at midpoints."""
    val, tt = q, t
    for _ in range(order):
        val = np.diff(val, axis=0) / np.diff(tt)[:, None]
        tt = 0.5 * (tt[1:] + tt[:-1])
    return val, tt


def _within_scaled_limit(
    code: str,
    order: int,  # 1 velocity, 2 acceleration, 3 jerk
    t: np.ndarray,
    q: np.ndarray,
    limits: RobotLimits,
    speed_scale: float,
) -> CheckResult:
    what, unit = {1: ("velocity", "rad/s"), 2: ("acceleration", "rad/s^2"), 3: ("jerk", "rad/s^3")}[order]
    t, q = _as_float(t, q)
    problem = _trajectory_problem(t, q, limits)
    if problem:
        return _cannot(code, problem)
    if len(t) <= order:
        return CheckResult(code, True, "too few waypoints to have one")
    val, tt = _derivative(t, q, order)
    lim = np.asarray(getattr(limits, what), dtype=float)  # [J]
    s = speed_scale
    ratio = np.abs(val) / (s * lim)  # [K, J]; argmax finds a NaN first, and NaN fails below
    k, j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    if not ratio[k, j] <= 1.0:
        return CheckResult(
            code,
            False,
            f"joint {limits.joint_names[j]} {what} {val[k, j]:.4g} {unit} at t={tt[k]:.3f} s exceeds "
            f"{s} x {lim[j]:.4g} = {s * lim[j]:.4g} {unit}",
        )
    return CheckResult(code, True, f"peak {what} {100 * ratio[k, j]:.0f}% of {s} x the limit")


def check_velocity(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    limits: RobotLimits,
    speed_scale: float,  # fraction (0, 1] of the datasheet limits allowed
) -> CheckResult:
    """``velocity_limit``: |dq/dt| (finite differences) <= speed_scale x the velocity limit, per joint."""
    return _within_scaled_limit(Reason.VELOCITY_LIMIT, 1, t, q, limits, speed_scale)


def check_acceleration(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    limits: RobotLimits,
    speed_scale: float,  # fraction (0, 1] of the datasheet limits allowed
) -> CheckResult:
    """``acceleration_limit``: |d2q/dt2| <= speed_scale x the acceleration limit (passes with < 3 waypoints)."""
    return _within_scaled_limit(Reason.ACCELERATION_LIMIT, 2, t, q, limits, speed_scale)


def check_jerk(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    limits: RobotLimits,
    speed_scale: float,  # fraction (0, 1] of the datasheet limits allowed
) -> CheckResult:
    """``jerk_limit``: |d3q/dt3| <= speed_scale x the jerk limit (passes with < 4 waypoints)."""
    return _within_scaled_limit(Reason.JERK_LIMIT, 3, t, q, limits, speed_scale)


def check_gripper_width(
    t: np.ndarray,  # [M] s (for the message)
    widths: np.ndarray,  # [M] m, the plan's gripper opening
    gripper: GripperLimits,
) -> CheckResult:
    """``gripper_width``: every gripper width is finite and within the gripper's [min_width, max_width]."""
    t, w = _as_float(t, widths)
    if w.shape != t.shape:
        return _cannot(
            Reason.GRIPPER_WIDTH, f"gripper has shape {w.shape}, expected {list(t.shape)} (one per waypoint)"
        )
    bad = _first_nonfinite({"t": t, "gripper": w})
    if bad:
        return _cannot(Reason.GRIPPER_WIDTH, bad)
    out = np.maximum(gripper.min_width - w, w - gripper.max_width)  # [M] > 0 outside the range
    k = int(np.argmax(out))
    if not out[k] <= 0:
        return CheckResult(
            Reason.GRIPPER_WIDTH,
            False,
            f"gripper width {w[k]:.6g} m at t={t[k]:.3f} s is outside the {gripper.model}'s "
            f"[{gripper.min_width}, {gripper.max_width}] m",
        )
    return CheckResult(
        Reason.GRIPPER_WIDTH,
        True,
        f"widths {w.min():.4f}..{w.max():.4f} m within the {gripper.model}'s range",
    )


def check_grasp_force(
    force: float | None,  # N, SafetyConfig.grasp_force; None: the gripper's rated force
    gripper: GripperLimits,
) -> CheckResult:
    """``grasp_force``: the force the gripper will close with is finite and within its [min_force, max_force]."""
    f = gripper.rated_force if force is None else force
    if not _finite_real(f) or not gripper.min_force <= f <= gripper.max_force:
        return CheckResult(
            Reason.GRASP_FORCE,
            False,
            f"grasp force {f!r} N is outside the {gripper.model}'s [{gripper.min_force}, {gripper.max_force}] N",
        )
    what = "rated" if force is None else "given"
    return CheckResult(
        Reason.GRASP_FORCE, True, f"{what} grasp force {f} N within the {gripper.model}'s range"
    )


def check_gripper_at_rest(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    widths: np.ndarray,  # [M] m, the plan's gripper opening
    limits: RobotLimits,
    rest_velocity: float,  # rad/s, speed tolerance of "at rest"
) -> CheckResult:
    """``gripper_while_moving``: the arm is at rest while the gripper opens or closes.

    The streaming loop holds the arm still at the end of each gripper motion until the fingers
    stop (and checks the grasp before lifting); that hold is only safe from rest.
    """
    t, q, w = _as_float(t, q, widths)
    problem = _trajectory_problem(t, q, limits) or (
        _first_nonfinite({"gripper": w})
        if w.shape == t.shape
        else f"gripper has shape {w.shape}, expected {list(t.shape)}"
    )
    if problem:
        return _cannot(Reason.GRIPPER_WHILE_MOVING, problem)
    events = gripper_events(t, w)
    for ev in events:
        seg = slice(ev.i_start, ev.i_end)
        v = np.diff(q, axis=0)[seg] / np.diff(t)[seg, None]  # [S, J] rad/s over the event's segments
        k, j = np.unravel_index(int(np.argmax(np.abs(v))), v.shape)
        if not abs(v[k, j]) <= rest_velocity:
            what = "closes" if ev.closing else "opens"
            return CheckResult(
                Reason.GRIPPER_WHILE_MOVING,
                False,
                f"joint {limits.joint_names[j]} moves at {v[k, j]:.4g} rad/s at t={t[ev.i_start + k]:.3f} s while the "
                f"gripper {what} ({1000 * ev.width_from:.1f} -> {1000 * ev.width_to:.1f} mm, t={ev.t_start:.3f}.."
                f"{ev.t_end:.3f} s); the arm must be at rest (<= {rest_velocity} rad/s)",
            )
    return CheckResult(
        Reason.GRIPPER_WHILE_MOVING, True, f"arm at rest during all {len(events)} gripper motion(s)"
    )


def collision_samples(
    t: np.ndarray,  # [M] s, strictly increasing
    q: np.ndarray,  # [M, J] rad
    widths: np.ndarray,  # [M] m
    dt: float,  # s, longest time between samples
    step: float,  # rad, largest joint change between samples
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts [N], qs [N, J], ws [N]): the trajectory interpolated linearly (as it is streamed), dense enough.

    Each segment is split so that samples are at most ``dt`` apart and no joint moves more than
    ``step`` between two of them; every waypoint is a sample.
    """
    seg_dt = np.diff(t)
    seg_dq = np.abs(np.diff(q, axis=0)).max(axis=1)
    n = np.maximum(1, np.ceil(np.maximum(seg_dt / dt, seg_dq / step))).astype(int)  # [M-1] pieces
    seg = np.repeat(np.arange(len(n)), n)
    u = np.concatenate([np.arange(k) / k for k in n])
    ts = np.append(t[seg] + u * seg_dt[seg], t[-1])
    qs = np.vstack([q[seg] + u[:, None] * (q[seg + 1] - q[seg]), q[-1:]])
    ws = np.append(widths[seg] + u * (widths[seg + 1] - widths[seg]), widths[-1])
    return ts, qs, ws


def _collision_inputs(t, q, widths, limits) -> str | None:
    problem = _trajectory_problem(t, q, limits)
    if problem:
        return problem
    if widths.shape != t.shape:
        return f"gripper has shape {widths.shape}, expected {list(t.shape)}"
    return _first_nonfinite({"gripper": widths})


def check_self_collision(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    widths: np.ndarray,  # [M] m, the gripper opening (moves the fingers)
    limits: RobotLimits,
    model: CollisionModel,
    clearance: float,  # m, SafetyConfig.self_clearance
    dt: float,  # s, SafetyConfig.collision_dt
    step: float,  # rad, SafetyConfig.collision_step
) -> CheckResult:
    """``self_collision``: no two checked links of the arm come within ``clearance``, at any sample.

    Sampled (``collision_samples``) finer than any backend's control period, so no collision can
    hide between two commands. Pairs checked: ``real.collision`` (non-adjacent links, fingers included).
    """
    t, q, w = _as_float(t, q, widths)
    problem = _collision_inputs(t, q, w, limits) or (
        None if _finite_real(clearance) else f"clearance is {clearance!r}"
    )
    if problem:
        return _cannot(Reason.SELF_COLLISION, problem)
    ts, qs, ws = collision_samples(t, q, w, dt, step)
    hit = model.self_collision(qs, ws, clearance)
    if hit is not None:
        return CheckResult(
            Reason.SELF_COLLISION,
            False,
            f"{hit.a} and {hit.b} come {1000 * hit.distance:.1f} mm apart at t={ts[hit.index]:.3f} s "
            f"(self clearance {1000 * clearance:.1f} mm)",
        )
    return CheckResult(
        Reason.SELF_COLLISION, True, f"{len(model.self_pairs)} link pairs clear at {len(ts)} samples"
    )


def check_scene_collision(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    q: np.ndarray,  # [M, J] rad, in the robot's joint order
    widths: np.ndarray,  # [M] m, the gripper opening
    limits: RobotLimits,
    model: CollisionModel,  # built with the scene
    clearance: float,  # m, SafetyConfig.scene_clearance
    dt: float,  # s, SafetyConfig.collision_dt
    step: float,  # rad, SafetyConfig.collision_step
) -> CheckResult:
    """``scene_collision``: the arm stays ``clearance`` from the table and the scene's objects.

    Movable objects are checked at their scene poses until the gripper first moves (or, for a
    push, until the hand reaches one): ``real.collision`` explains why.
    """
    t, q, w = _as_float(t, q, widths)
    problem = _collision_inputs(t, q, w, limits) or (
        None if _finite_real(clearance) else f"clearance is {clearance!r}"
    )
    if problem:
        return _cannot(Reason.SCENE_COLLISION, problem)
    ts, qs, ws = collision_samples(t, q, w, dt, step)
    events = gripper_events(t, w)
    grasp_start = int(np.searchsorted(ts, events[0].t_start)) if events else None
    hit = model.scene_collision(qs, ws, grasp_start, clearance)
    if hit is not None:
        return CheckResult(
            Reason.SCENE_COLLISION,
            False,
            f"{hit.a} comes {1000 * hit.distance:.1f} mm from {hit.b} at t={ts[hit.index]:.3f} s "
            f"(scene clearance {1000 * clearance:.1f} mm)",
        )
    return CheckResult(
        Reason.SCENE_COLLISION,
        True,
        f"clear of the table and {len(model.objects)} object(s) at {len(ts)} samples",
    )


def check_workspace(
    t: np.ndarray,  # [M] s (for the message)
    points: np.ndarray,  # [M, F, 3] m, frame origins in the base frame (ArmKinematics.points)
    frame_names: Sequence[str],  # F names, the last is the tool
    workspace_min: Sequence[float],  # (x, y, z) m, low box corner
    workspace_max: Sequence[float],  # (x, y, z) m, high box corner
) -> CheckResult:
    """``workspace``: every frame origin stays inside the axis-aligned box, at every waypoint."""
    t, p = _as_float(t, points)
    problem = _points_problem(t, p, frame_names)
    if problem:
        return _cannot(Reason.WORKSPACE, problem)
    lo, hi = _as_float(workspace_min, workspace_max)
    out = np.maximum(lo - p, p - hi).max(axis=-1)  # [M, F] > 0 outside the box
    k, f = np.unravel_index(int(np.argmax(out)), out.shape)
    if not out[k, f] <= 0:
        return CheckResult(
            Reason.WORKSPACE,
            False,
            f"{frame_names[f]} at {np.round(p[k, f], 4).tolist()} m (t={t[k]:.3f} s) is outside the workspace box "
            f"{list(workspace_min)}..{list(workspace_max)} m by {out[k, f]:.4f} m",
        )
    return CheckResult(
        Reason.WORKSPACE, True, f"{len(frame_names)} frames inside the box, margin {-out.max():.3f} m"
    )


def check_table(
    t: np.ndarray,  # [M] s (for the message)
    points: np.ndarray,  # [M, F, 3] m, frame origins in the base frame
    frame_names: Sequence[str],  # F names, the last is the tool
    table_z: float,  # m, table surface height in the base frame
    link_clearance: float,  # m, for every frame but the tool
    tcp_clearance: float,  # m, for the tool (the last frame)
) -> CheckResult:
    """``table``: every link origin stays ``link_clearance`` and the tool ``tcp_clearance`` above the table."""
    t, p = _as_float(t, points)
    problem = _points_problem(t, p, frame_names)
    if problem:
        return _cannot(Reason.TABLE, problem)
    floor = np.full(len(frame_names), table_z + link_clearance)  # [F] m
    floor[-1] = table_z + tcp_clearance
    below = floor - p[..., 2]  # [M, F] > 0 when too low
    k, f = np.unravel_index(int(np.argmax(below)), below.shape)
    if not below[k, f] <= 0:
        return CheckResult(
            Reason.TABLE,
            False,
            f"{frame_names[f]} at z={p[k, f, 2]:.4f} m (t={t[k]:.3f} s) is below the table at {table_z} m "
            f"+ clearance {floor[f] - table_z:.3f} m",
        )
    return CheckResult(Reason.TABLE, True, f"lowest frame {-below.max():.3f} m above its clearance")


def _speed_under_cap(
    code: str,
    frames: list[int],
    t: np.ndarray,
    points: np.ndarray,
    frame_names: Sequence[str],
    cap: float,
    first_run: bool,
) -> CheckResult:
    t, p = _as_float(t, points)
    problem = _points_problem(t, p, frame_names)
    if problem:
        return _cannot(code, problem)
    if not frames:
        return CheckResult(code, True, "no link frames")
    speed = np.linalg.norm(np.diff(p[:, frames], axis=0), axis=-1) / np.diff(t)[:, None]  # [M-1, n] m/s
    mode = "first-run cap" if first_run else "cap"
    k, c = np.unravel_index(int(np.argmax(speed)), speed.shape)
    if not speed[k, c] <= cap:
        return CheckResult(
            code,
            False,
            f"{frame_names[frames[c]]} moves at {speed[k, c]:.3f} m/s around t={0.5 * (t[k] + t[k + 1]):.3f} s, above the {mode} of {cap} m/s",
        )
    return CheckResult(code, True, f"peak {speed[k, c]:.3f} m/s <= {mode} {cap} m/s")


def check_tcp_speed(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    points: np.ndarray,  # [M, F, 3] m, frame origins in the base frame; the last frame is the tool
    frame_names: Sequence[str],  # F names
    cap: float,  # m/s, SafetyConfig.speed_cap
    first_run: bool,  # names the cap "first-run cap" in the message
) -> CheckResult:
    """``tcp_speed``: the tool's speed between waypoints stays under ``cap``."""
    return _speed_under_cap(Reason.TCP_SPEED, [len(frame_names) - 1], t, points, frame_names, cap, first_run)


def check_link_speed(
    t: np.ndarray,  # [M] s, the (slowed) timeline
    points: np.ndarray,  # [M, F, 3] m, frame origins in the base frame; all but the last are links
    frame_names: Sequence[str],  # F names
    cap: float,  # m/s, SafetyConfig.speed_cap
    first_run: bool,  # names the cap "first-run cap" in the message
) -> CheckResult:
    """``link_speed``: every checked link origin's speed between waypoints stays under ``cap``."""
    frames = list(range(len(frame_names) - 1))
    return _speed_under_cap(Reason.LINK_SPEED, frames, t, points, frame_names, cap, first_run)


def check_start_state(
    current_q: np.ndarray | None,  # [J] rad, the robot's joints now; None: no robot (offline)
    q0: np.ndarray,  # [J] rad, the plan's first waypoint
    limits: RobotLimits,
    tolerance: float,  # rad, max |current_q - q0| per joint
) -> CheckResult:
    """``start_state``: the robot is within ``tolerance`` of the plan's start on every joint.

    Skipped (passed None) without a robot state: an offline dry run cannot check it.
    """
    if current_q is None:
        return CheckResult(Reason.START_STATE, None, "skipped: no robot state (offline dry run)")
    cur, q0 = _as_float(current_q, q0)
    if cur.shape != (limits.dof,) or not np.isfinite(cur).all():
        return CheckResult(
            Reason.START_STATE, False, f"robot state {cur.tolist()} is not {limits.dof} finite joints"
        )
    if q0.shape != (limits.dof,) or not np.isfinite(q0).all():
        return _cannot(
            Reason.START_STATE, f"the plan's start {q0.tolist()} is not {limits.dof} finite joints"
        )
    d = np.abs(cur - q0)
    j = int(np.argmax(d))
    if not d[j] <= tolerance:
        return CheckResult(
            Reason.START_STATE,
            False,
            f"robot joint {limits.joint_names[j]} is at {cur[j]:.4f} rad, the plan starts at {q0[j]:.4f} rad "
            f"(|diff| {d[j]:.4f} > {tolerance} rad); use a separate approach move",
        )
    return CheckResult(Reason.START_STATE, True, f"robot within {d[j]:.4f} rad of the plan's start")


# -- composition --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One pre-flight rule as ``preflight`` runs it."""

    code: str  # the Reason code the check returns
    check: Callable[[], CheckResult]  # evaluates the rule on the plan at hand
    needs: tuple[str, ...] = ()  # codes that must have passed first; otherwise this rule is skipped
    unavailable: str | None = None  # why it cannot be evaluated at all (no FK model, no robot state)
    # Skipped if any rule before it refused the plan: for a costly rule (the re-simulation, seconds)
    # whose verdict cannot change a refusal.
    after_refusals: bool = False


def run_rules(rules: Sequence[Rule], report: PreflightReport) -> PreflightReport:
    """Append each rule's result to ``report`` in order, skipping those whose ``needs`` did not pass."""
    results: dict[str, CheckResult] = {}
    for rule in rules:
        blocked = [c for c in rule.needs if not results[c].passed]
        refused = [c for c, r in results.items() if r.passed is False] if rule.after_refusals else []
        if refused and not blocked:
            result = CheckResult(
                rule.code, None, f"skipped: the plan is refused already ({', '.join(refused)}); "
                "it is re-simulated once every other check passes",
            )  # fmt: skip
        elif blocked:
            # Name the rules that failed; the skipped ones among them were skipped for those.
            failed = [c for c in blocked if results[c].passed is False]
            result = CheckResult(rule.code, None, f"skipped: depends on {', '.join(failed or blocked)}")
        elif rule.unavailable is not None:
            result = CheckResult(rule.code, None, f"skipped: {rule.unavailable}")
        else:
            result = rule.check()
            if result.code != rule.code:
                raise AssertionError(f"rule {rule.code} returned a {result.code} result")
        results[rule.code] = result
        report.checks.append(result)
    return report


def preflight(
    plan: Any,  # core.plan.Plan, or a plan-like object (t, q, gripper, ee_pose, joint_names, validation)
    limits: RobotLimits,
    kinematics: ArmKinematics | None,
    config: SafetyConfig,
    current_q: np.ndarray | None = None,  # [J] rad, the robot's joints now; None in an offline dry run
    *,
    require_validation: bool = True,  # False only for chord's own approach move (confirmed separately)
    collision: CollisionModel | None = None,  # self-collision (and the scene's, if built with one)
    gripper: GripperLimits | None = None,  # default: the arm's gripper (limits.gripper)
    # (flow_mismatch, sim_failed) from real.revalidate, or a function returning them, called only
    # once every other rule but start_state passed (a re-simulation takes seconds)
    sim: Sequence[CheckResult] | Callable[[], Sequence[CheckResult]] | None = None,
    arm: RobotSpec | None = None,  # the arm --robot describes; None: the registry entry plan.robot names
) -> PreflightReport:
    """Run every rule on ``plan`` for the robot described by ``limits``; never raises on a bad plan.

    The plan's timeline is stretched by ``config.slowdown`` first. A rule whose model is missing
    (``kinematics``, ``collision``, ``sim``) is skipped, and a skipped rule keeps the report from
    passing (``report.ok``). Without a scene in ``collision`` there is nothing but the arm to
    collide with: ``scene_collision`` passes saying so (the re-simulation, which an arm never
    moves without, needs the scene anyway). The re-simulation's two rules run after the others
    (start_state excepted): a plan those refuse is not re-simulated, and the report says so.
    Returns the report; call
    ``raise_if_refused`` to turn a refusal into PreflightRefusedError.
    """
    t = np.array(plan.t, dtype=float) * config.slowdown  # [M] s
    q = np.array(plan.q, dtype=float)  # [M, J] rad
    widths = np.array(plan.gripper, dtype=float)  # [M] m
    sha = plan.content_hash()
    # chord's own approach move has no robot rule (it is made for the arm it runs on)
    gates = tuple(g for g in Reason.GATES if g != Reason.ROBOT or require_validation)
    if gripper is None and limits.gripper:
        gripper = gripper_for(limits.gripper)

    @functools.cache
    def fk() -> np.ndarray:  # [M, F, 3] m, evaluated once, only if a cartesian rule runs
        assert kinematics is not None
        return kinematics.points(q)

    frames = kinematics.frame_names if kinematics is not None else ()
    no_fk = "depends on kinematics (no FK model)" if kinematics is None else None
    no_collision = "no collision model of the arm" if collision is None else None
    no_gripper = None if gripper is not None else f"no gripper table for {limits.model}"
    s = config.speed_scale
    if require_validation:
        resim = (
            "not re-simulated: give the scene and the flow (--scene, --flow); an arm never moves without it"
        )

        @functools.cache
        def verdict() -> tuple[CheckResult, CheckResult]:
            flow_result, sim_result = tuple(sim() if callable(sim) else sim)
            return flow_result, sim_result

        validation = [
            Rule(Reason.NOT_VALIDATED, lambda: check_validated(plan.validation)),
            Rule(Reason.HASH_MISMATCH, lambda: check_hash(plan.validation, sha)),
        ]
        resimulation = [
            Rule(
                Reason.FLOW_MISMATCH,
                lambda: verdict()[0],
                unavailable=None if sim is not None else resim,
                after_refusals=True,
            ),
            Rule(
                Reason.SIM_FAILED,
                lambda: verdict()[1],
                needs=(Reason.FLOW_MISMATCH,),
                unavailable=None if sim is not None else resim,
            ),
        ]
    else:
        waived = "waived: chord's own approach move, not sim-validated; confirmed on its own"
        validation = [
            Rule(code, lambda code=code: CheckResult(code, True, waived))
            for code in (Reason.NOT_VALIDATED, Reason.HASH_MISMATCH)
        ]
        resimulation = [
            Rule(code, lambda code=code: CheckResult(code, True, waived))
            for code in (Reason.FLOW_MISMATCH, Reason.SIM_FAILED)
        ]
    arrays = {"t": plan.t, "q": plan.q, "gripper": plan.gripper, "ee_pose": plan.ee_pose}
    cd, cs = config.collision_dt, config.collision_step
    rules = [
        *validation,
        Rule(Reason.NONFINITE, lambda: check_finite(arrays)),
        *(
            [Rule(Reason.ROBOT, lambda: check_robot(getattr(plan, "robot", None), limits, arm))]
            if require_validation  # chord's own approach move is made for the arm it runs on
            else []
        ),
        Rule(Reason.JOINT_NAMES, lambda: check_joint_names(plan.joint_names, limits)),
        Rule(Reason.TIME_NOT_INCREASING, lambda: check_time(t), needs=(Reason.NONFINITE,)),
        Rule(
            Reason.SAMPLE_GAP,
            lambda: check_sample_gap(t, config.max_sample_gap),
            needs=(Reason.NONFINITE, Reason.TIME_NOT_INCREASING),
        ),
        Rule(
            Reason.START_NOT_AT_REST,
            lambda: check_start_at_rest(t, q, limits, s, config.rest_velocity),
            needs=gates,
        ),
        Rule(
            Reason.FINAL_NOT_AT_REST,
            lambda: check_final_at_rest(t, q, limits, s, config.rest_velocity),
            needs=gates,
        ),
        Rule(Reason.JOINT_LIMIT, lambda: check_joint_limits(t, q, limits, config.joint_margin), needs=gates),
        Rule(Reason.VELOCITY_LIMIT, lambda: check_velocity(t, q, limits, s), needs=gates),
        Rule(Reason.ACCELERATION_LIMIT, lambda: check_acceleration(t, q, limits, s), needs=gates),
        Rule(Reason.JERK_LIMIT, lambda: check_jerk(t, q, limits, s), needs=gates),
        Rule(Reason.GRIPPER_WIDTH, lambda: check_gripper_width(t, widths, gripper), unavailable=no_gripper),
        Rule(
            Reason.GRASP_FORCE, lambda: check_grasp_force(config.grasp_force, gripper), unavailable=no_gripper
        ),
        Rule(
            Reason.GRIPPER_WHILE_MOVING,
            lambda: check_gripper_at_rest(t, q, widths, limits, config.rest_velocity),
            needs=gates,
        ),
        Rule(
            Reason.WORKSPACE,
            lambda: check_workspace(t, fk(), frames, config.workspace_min, config.workspace_max),
            needs=gates,
            unavailable=no_fk,
        ),
        Rule(
            Reason.TABLE,
            lambda: check_table(t, fk(), frames, config.table_z, config.link_clearance, config.tcp_clearance),
            needs=gates,
            unavailable=no_fk,
        ),
        Rule(
            Reason.TCP_SPEED,
            lambda: check_tcp_speed(t, fk(), frames, config.speed_cap, config.first_run),
            needs=gates,
            unavailable=no_fk,
        ),
        Rule(
            Reason.LINK_SPEED,
            lambda: check_link_speed(t, fk(), frames, config.speed_cap, config.first_run),
            needs=gates,
            unavailable=no_fk,
        ),
        Rule(
            Reason.SELF_COLLISION,
            lambda: check_self_collision(t, q, widths, limits, collision, config.self_clearance, cd, cs),
            needs=gates,
            unavailable=no_collision,
        ),
        Rule(
            Reason.SCENE_COLLISION,
            lambda: (
                check_scene_collision(t, q, widths, limits, collision, config.scene_clearance, cd, cs)
                if collision.has_scene
                else CheckResult(
                    Reason.SCENE_COLLISION, True, "no scene given (--scene): only the arm itself"
                )
            ),
            needs=gates,
            unavailable=no_collision,
        ),
        *resimulation,
        Rule(
            Reason.START_STATE,
            lambda: check_start_state(current_q, q[0], limits, config.start_tolerance),
            needs=gates,
        ),
    ]
    report = run_rules(rules, PreflightReport(plan_sha256=sha, robot=limits.model))
    _log_report(report)
    return report


def _log_report(report: PreflightReport) -> None:
    for c in report.refused:
        log.warning("pre-flight refused (%s): %s", c.code, c.message)
