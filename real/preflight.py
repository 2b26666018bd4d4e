"""Pre-flight checks: every reason to refuse a plan, decided before anything moves.

Each check has its own reason code (``Reason``) and a message naming the offending value, the
joint or frame, the time and the limit. A plan runs only if every check passes; a check that
cannot be evaluated (e.g. derivatives of a plan with non-finite values) is skipped and the
plan is refused by the check it depends on. Arrays of a loaded ``Plan`` are mutable, so the
contract checks (finite values, increasing time) are repeated here rather than trusted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ChordError
from real.kinematics import ArmKinematics
from real.limits import RobotLimits

log = logging.getLogger(__name__)

# The cartesian speed cap of first-run mode (m/s), for the tool and every checked link.
FIRST_RUN_SPEED = 0.25


class Reason:
    """Reason codes of the pre-flight checks, in the order they run."""

    NOT_VALIDATED = "not_validated"
    HASH_MISMATCH = "hash_mismatch"
    NONFINITE = "nonfinite"
    JOINT_NAMES = "joint_names"
    TIME_NOT_INCREASING = "time_not_increasing"
    SAMPLE_GAP = "sample_gap"
    START_NOT_AT_REST = "start_not_at_rest"
    FINAL_NOT_AT_REST = "final_not_at_rest"
    JOINT_LIMIT = "joint_limit"
    VELOCITY_LIMIT = "velocity_limit"
    ACCELERATION_LIMIT = "acceleration_limit"
    JERK_LIMIT = "jerk_limit"
    WORKSPACE = "workspace"
    TABLE = "table"
    TCP_SPEED = "tcp_speed"
    LINK_SPEED = "link_speed"
    START_STATE = "start_state"

    ALL = (
        NOT_VALIDATED,
        HASH_MISMATCH,
        NONFINITE,
        JOINT_NAMES,
        TIME_NOT_INCREASING,
        SAMPLE_GAP,
        START_NOT_AT_REST,
        FINAL_NOT_AT_REST,
        JOINT_LIMIT,
        VELOCITY_LIMIT,
        ACCELERATION_LIMIT,
        JERK_LIMIT,
        WORKSPACE,
        TABLE,
        TCP_SPEED,
        LINK_SPEED,
        START_STATE,
    )


@dataclass(frozen=True)
class SafetyConfig:
    """Thresholds of the pre-flight checks. Positions are in the robot base frame."""

    speed_scale: float = 0.25  # fraction (0, 1] of the joint velocity/acceleration/jerk limits allowed
    first_run: bool = True  # caps tool and link speed at FIRST_RUN_SPEED (m/s)
    cartesian_speed_max: float = 1.0  # m/s, tool and link speed cap when not in first-run mode
    joint_margin: float = 0.05  # rad, keep-out band inside each joint position limit
    workspace_min: tuple[float, float, float] = (-0.9, -0.9, -0.1)  # m, base frame, box corner
    workspace_max: tuple[float, float, float] = (0.9, 0.9, 1.2)  # m, base frame, box corner
    table_z: float = 0.0  # m, table surface height in the base frame
    link_clearance: float = 0.03  # m, every checked link origin stays this far above the table
    tcp_clearance: float = 0.005  # m, the tool point stays this far above the table
    start_tolerance: float = 0.01  # rad, max |q_robot - q_plan[0]| per joint
    max_sample_gap: float = 0.1  # s, longest time between waypoints (finite differences stay meaningful)
    rest_velocity: float = 0.01  # rad/s, joint speed counted as "at rest" at both ends
    slowdown: float = 1.0  # >= 1, the plan's timeline is stretched by this factor before checking

    def __post_init__(self) -> None:
        if not 0.0 < self.speed_scale <= 1.0:
            raise ValueError(f"speed_scale is {self.speed_scale}, expected a fraction in (0, 1]")
        if not self.slowdown >= 1.0:
            raise ValueError(f"slowdown is {self.slowdown}, expected >= 1 (it may only slow a plan down)")
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if lo.shape != (3,) or hi.shape != (3,) or not (lo < hi).all():
            raise ValueError(f"workspace box min {self.workspace_min} must be below max {self.workspace_max}")
        for name in ("joint_margin", "link_clearance", "tcp_clearance", "start_tolerance", "rest_velocity"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is {getattr(self, name)}, expected >= 0")

    @property
    def speed_cap(self) -> float:
        """m/s, the tool and link speed cap in force."""
        return min(self.cartesian_speed_max, FIRST_RUN_SPEED) if self.first_run else self.cartesian_speed_max


@dataclass(frozen=True)
class CheckResult:
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


def validation_ok(validation: Any, plan_sha256: str) -> tuple[CheckResult, CheckResult]:
    """Check ``plan.validation`` = {"success": true, "plan_sha256": <hash>, "simulator": <name>, ...}."""
    if not isinstance(validation, dict):
        v = CheckResult(
            Reason.NOT_VALIDATED, False, f"plan.validation is {validation!r}: run it in sim first"
        )
        return v, CheckResult(Reason.HASH_MISMATCH, None, "no validation record to compare")
    if validation.get("success") is not True or not isinstance(validation.get("simulator"), str):
        v = CheckResult(
            Reason.NOT_VALIDATED,
            False,
            f"plan.validation success={validation.get('success')!r} simulator={validation.get('simulator')!r}; "
            "expected success=true from a named simulator",
        )
    else:
        v = CheckResult(Reason.NOT_VALIDATED, True, f"validated in {validation['simulator']}")
    recorded = validation.get("plan_sha256")
    if recorded != plan_sha256:
        h = CheckResult(
            Reason.HASH_MISMATCH,
            False,
            f"plan.validation.plan_sha256={recorded!r} but the plan hashes to {plan_sha256!r}: "
            "these are not the trajectories the simulator validated",
        )
    else:
        h = CheckResult(Reason.HASH_MISMATCH, True, f"hash {plan_sha256[:12]} matches the validated plan")
    return v, h


def _worst(values: np.ndarray, limit: np.ndarray) -> tuple[int, int, float]:  # values: [K, J]
    """(row, joint, ratio) of the largest |value| / limit."""
    ratio = np.abs(values) / limit
    k, j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return int(k), int(j), float(ratio[k, j])


def preflight(
    plan: Any,  # core.plan.Plan
    limits: RobotLimits,
    kinematics: ArmKinematics | None,
    config: SafetyConfig,
    current_q: np.ndarray | None = None,  # [J] rad, the robot's joints now; None in an offline dry run
    *,
    require_validation: bool = True,  # False only for chord's own approach move (confirmed separately)
) -> PreflightReport:
    """Run every check on ``plan`` for the robot described by ``limits``; never raises on a bad plan.

    ``kinematics`` None skips the FK checks (and so refuses to pass). Returns the report; call
    ``raise_if_refused`` to turn a refusal into PreflightRefusedError.
    """
    t = np.array(plan.t, dtype=float) * config.slowdown  # [M]
    q = np.array(plan.q, dtype=float)  # [M, J]
    names = tuple(plan.joint_names)
    sha = plan.content_hash()
    report = PreflightReport(plan_sha256=sha, robot=limits.model)
    add = report.checks.append
    skipped: list[str] = []

    def skip(code: str) -> None:
        add(CheckResult(code, None, f"skipped: depends on {', '.join(skipped)}"))

    if require_validation:
        for c in validation_ok(plan.validation, sha):
            add(c)
    else:
        waived = "waived: chord's own approach move, not sim-validated; confirmed on its own"
        add(CheckResult(Reason.NOT_VALIDATED, True, waived))
        add(CheckResult(Reason.HASH_MISMATCH, True, waived))

    arrays = {"t": plan.t, "q": plan.q, "gripper": plan.gripper, "ee_pose": plan.ee_pose}
    bad = {k: np.argwhere(~np.isfinite(np.asarray(v, dtype=float))) for k, v in arrays.items()}
    bad = {k: v for k, v in bad.items() if len(v)}
    if bad:
        k, idx = next(iter(bad.items()))
        val = np.asarray(arrays[k], dtype=float)[tuple(idx[0])]
        add(
            CheckResult(
                Reason.NONFINITE, False, f"{k}{list(idx[0])} is {val}; {len(idx)} non-finite value(s) in {k}"
            )
        )
        skipped.append(Reason.NONFINITE)
    else:
        add(CheckResult(Reason.NONFINITE, True, "all values finite"))

    if names != limits.joint_names:
        add(
            CheckResult(
                Reason.JOINT_NAMES,
                False,
                f"plan joints {list(names)} != {limits.model} joints {list(limits.joint_names)} (names and order must match)",
            )
        )
        skipped.append(Reason.JOINT_NAMES)
    else:
        add(CheckResult(Reason.JOINT_NAMES, True, f"{len(names)} joints in the robot's order"))

    dt = np.diff(t)
    if Reason.NONFINITE in skipped:
        skip(Reason.TIME_NOT_INCREASING)
        skip(Reason.SAMPLE_GAP)
    else:
        if len(t) < 2 or t[0] != 0.0 or (dt <= 0).any():
            i = int(np.argmax(dt <= 0)) if len(dt) and (dt <= 0).any() else 0
            add(
                CheckResult(
                    Reason.TIME_NOT_INCREASING,
                    False,
                    f"t must start at 0 and strictly increase; t[0]={t[0]:.6g}, t[{i}]={t[i]:.6g} s, t[{i + 1}]={t[min(i + 1, len(t) - 1)]:.6g} s",
                )
            )
            skipped.append(Reason.TIME_NOT_INCREASING)
            skip(Reason.SAMPLE_GAP)
        else:
            add(CheckResult(Reason.TIME_NOT_INCREASING, True, f"{len(t)} waypoints over {t[-1]:.3f} s"))
            i = int(np.argmax(dt))
            if dt[i] > config.max_sample_gap:
                add(
                    CheckResult(
                        Reason.SAMPLE_GAP,
                        False,
                        f"{dt[i]:.3f} s between waypoints {i} and {i + 1} (t={t[i]:.3f} s) exceeds {config.max_sample_gap} s",
                    )
                )
                skipped.append(Reason.SAMPLE_GAP)
            else:
                add(CheckResult(Reason.SAMPLE_GAP, True, f"largest waypoint gap {dt[i]:.4f} s"))

    derivative_codes = (
        Reason.START_NOT_AT_REST,
        Reason.FINAL_NOT_AT_REST,
        Reason.JOINT_LIMIT,
        Reason.VELOCITY_LIMIT,
        Reason.ACCELERATION_LIMIT,
        Reason.JERK_LIMIT,
        Reason.WORKSPACE,
        Reason.TABLE,
        Reason.TCP_SPEED,
        Reason.LINK_SPEED,
        Reason.START_STATE,
    )
    if skipped:
        for code in derivative_codes:
            skip(code)
        _log_report(report)
        return report

    lower, upper, vmax, amax, jmax = limits.arrays()
    s = config.speed_scale
    v = np.diff(q, axis=0) / dt[:, None]  # [M-1, J] at segment midpoints
    tv = 0.5 * (t[1:] + t[:-1])
    # Starting/ending at rest: the end segment's mean speed must be reachable from (or reducible
    # to) zero within one segment under the scaled acceleration limit, plus a small tolerance.
    for code, seg, where in ((Reason.START_NOT_AT_REST, 0, "first"), (Reason.FINAL_NOT_AT_REST, -1, "last")):
        allowed = config.rest_velocity + 0.5 * s * amax * dt[seg]
        j = int(np.argmax(np.abs(v[seg]) / allowed))
        if abs(v[seg, j]) > allowed[j]:
            add(
                CheckResult(
                    code,
                    False,
                    f"joint {names[j]} moves at {v[seg, j]:.4g} rad/s over the {where} segment; at rest means <= {allowed[j]:.4g} rad/s",
                )
            )
        else:
            add(CheckResult(code, True, f"{where} segment speed within {allowed.min():.4g} rad/s of rest"))

    lo_m, hi_m = lower + config.joint_margin, upper - config.joint_margin
    over = np.maximum(lo_m - q, q - hi_m)  # [M, J] > 0 where inside the margin band or beyond
    k, j = np.unravel_index(int(np.argmax(over)), over.shape)
    if over[k, j] > 0:
        add(
            CheckResult(
                Reason.JOINT_LIMIT,
                False,
                f"joint {names[j]} = {q[k, j]:.4f} rad at t={t[k]:.3f} s is outside [{lo_m[j]:.4f}, {hi_m[j]:.4f}] "
                f"(limits [{lower[j]:.4f}, {upper[j]:.4f}] less a {config.joint_margin} rad margin)",
            )
        )
    else:
        add(
            CheckResult(
                Reason.JOINT_LIMIT,
                True,
                f"closest approach to a limit {-over.max():.3f} rad inside the margin",
            )
        )

    derivs = [("velocity", Reason.VELOCITY_LIMIT, v, tv, vmax, "rad/s")]
    if len(t) >= 3:
        a = np.diff(v, axis=0) / np.diff(tv)[:, None]  # [M-2, J]
        ta = 0.5 * (tv[1:] + tv[:-1])
        derivs.append(("acceleration", Reason.ACCELERATION_LIMIT, a, ta, amax, "rad/s^2"))
        if len(t) >= 4:
            jk = np.diff(a, axis=0) / np.diff(ta)[:, None]  # [M-3, J]
            derivs.append(("jerk", Reason.JERK_LIMIT, jk, 0.5 * (ta[1:] + ta[:-1]), jmax, "rad/s^3"))
    for what, code, val, tt, lim, unit in derivs:
        k, j, ratio = _worst(val, s * lim)
        if ratio > 1.0:
            add(
                CheckResult(
                    code,
                    False,
                    f"joint {names[j]} {what} {val[k, j]:.4g} {unit} at t={tt[k]:.3f} s exceeds "
                    f"{s} x {lim[j]:.4g} = {s * lim[j]:.4g} {unit}",
                )
            )
        else:
            add(CheckResult(code, True, f"peak {what} {100 * ratio:.0f}% of {s} x the limit"))
    for code in (Reason.ACCELERATION_LIMIT, Reason.JERK_LIMIT):
        if not any(c.code == code for c in report.checks):
            add(CheckResult(code, True, "too few waypoints to have one"))

    if kinematics is None:
        skipped.append("kinematics (no FK model)")
        for code in (Reason.WORKSPACE, Reason.TABLE, Reason.TCP_SPEED, Reason.LINK_SPEED):
            skip(code)
    else:
        _cartesian_checks(report, kinematics, q, t, config)

    if current_q is None:
        add(CheckResult(Reason.START_STATE, None, "skipped: no robot state (offline dry run)"))
    else:
        cur = np.asarray(current_q, dtype=float)
        if cur.shape != q[0].shape or not np.isfinite(cur).all():
            add(
                CheckResult(
                    Reason.START_STATE, False, f"robot state {cur.tolist()} is not {len(names)} finite joints"
                )
            )
        else:
            d = np.abs(cur - q[0])
            j = int(np.argmax(d))
            if d[j] > config.start_tolerance:
                add(
                    CheckResult(
                        Reason.START_STATE,
                        False,
                        f"robot joint {names[j]} is at {cur[j]:.4f} rad, the plan starts at {q[0, j]:.4f} rad "
                        f"(|diff| {d[j]:.4f} > {config.start_tolerance} rad); use a separate approach move",
                    )
                )
            else:
                add(CheckResult(Reason.START_STATE, True, f"robot within {d[j]:.4f} rad of the plan's start"))
    _log_report(report)
    return report


def _cartesian_checks(
    report: PreflightReport,
    kinematics: ArmKinematics,
    q: np.ndarray,  # [M, J] rad
    t: np.ndarray,  # [M] s
    config: SafetyConfig,
) -> None:
    add = report.checks.append
    p = kinematics.points(q)  # [M, F, 3]
    names = kinematics.frame_names
    lo, hi = np.asarray(config.workspace_min), np.asarray(config.workspace_max)
    out = np.maximum(lo - p, p - hi).max(axis=-1)  # [M, F] > 0 outside the box
    k, f = np.unravel_index(int(np.argmax(out)), out.shape)
    if out[k, f] > 0:
        add(
            CheckResult(
                Reason.WORKSPACE,
                False,
                f"{names[f]} at {np.round(p[k, f], 4).tolist()} m (t={t[k]:.3f} s) is outside the workspace box "
                f"{list(config.workspace_min)}..{list(config.workspace_max)} m by {out[k, f]:.4f} m",
            )
        )
    else:
        add(
            CheckResult(
                Reason.WORKSPACE, True, f"{len(names)} frames inside the box, margin {-out.max():.3f} m"
            )
        )

    floor = np.full(len(names), config.table_z + config.link_clearance)
    floor[-1] = config.table_z + config.tcp_clearance
    below = floor - p[..., 2]  # [M, F] > 0 when too low
    k, f = np.unravel_index(int(np.argmax(below)), below.shape)
    if below[k, f] > 0:
        add(
            CheckResult(
                Reason.TABLE,
                False,
                f"{names[f]} at z={p[k, f, 2]:.4f} m (t={t[k]:.3f} s) is below the table at {config.table_z} m "
                f"+ clearance {floor[f] - config.table_z:.3f} m",
            )
        )
    else:
        add(CheckResult(Reason.TABLE, True, f"lowest frame {-below.max():.3f} m above its clearance"))

    speed = np.linalg.norm(np.diff(p, axis=0), axis=-1) / np.diff(t)[:, None]  # [M-1, F] m/s
    cap = config.speed_cap
    mode = "first-run cap" if config.first_run else "cap"
    for code, cols in (
        (Reason.TCP_SPEED, [len(names) - 1]),
        (Reason.LINK_SPEED, list(range(len(names) - 1))),
    ):
        if not cols:
            add(CheckResult(code, True, "no link frames"))
            continue
        sp = speed[:, cols]
        k, c = np.unravel_index(int(np.argmax(sp)), sp.shape)
        f = cols[c]
        if sp[k, c] > cap:
            add(
                CheckResult(
                    code,
                    False,
                    f"{names[f]} moves at {sp[k, c]:.3f} m/s around t={0.5 * (t[k] + t[k + 1]):.3f} s, above the {mode} of {cap} m/s",
                )
            )
        else:
            add(CheckResult(code, True, f"peak {sp[k, c]:.3f} m/s <= {mode} {cap} m/s"))


def _log_report(report: PreflightReport) -> None:
    for c in report.refused:
        log.warning("pre-flight refused (%s): %s", c.code, c.message)
