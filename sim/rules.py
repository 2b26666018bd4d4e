"""The rules that judge a simulated plan: one pure function per rule, measured quantities in, a verdict out.

Each ``check_*`` function compares quantities measured in simulation (or on the plan) with a
limit from :class:`EvalConfig` and returns a :class:`RuleResult`: whether the rule passed, the
measured value, the limit and a one-line reason. A rule passes only when its measurement is
finite and within its limit, so a NaN (a diverged simulation, a degenerate pose) fails it.

:func:`sim.evaluate.evaluate` measures the rollout, applies the rules in the order things happen
and blames a failure on the earliest stage already wrong; the rules themselves know nothing of
PyBullet, plans or flows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.checks import check_number


@dataclass(frozen=True)
class EvalConfig:
    """Success thresholds; units in each comment."""

    position_tolerance: float = 0.02  # m: final part position error (rigid; articulated: its parent's)
    angle_tolerance_deg: float = 15.0  # degrees: final part orientation error (likewise)
    joint_tolerance_fraction: float = 0.10  # of the flow's joint range (articulated goals)
    slip_tolerance: float = 0.02  # m: the part may move this much relative to the tool while held
    ik_position_tolerance: float = 0.005  # m: FK(q) against the plan's own ee_pose
    ik_angle_tolerance_deg: float = 2.0  # degrees: likewise for orientation
    ik_limit_tolerance: float = 1e-3  # rad: plan joints beyond the URDF limits by more than this
    grasp_window: float = 0.15  # s: fingers must touch the part within this of the first frame
    joint_axis_tolerance_deg: float = 25.0  # degrees: a URDF joint plays the flow's joint if axes agree
    joint_offset_tolerance: float = 0.05  # m: and (revolute) the flow's axis passes this close to its axis

    def __post_init__(self) -> None:
        """Raises ConfigError (a ChordError) for a value out of range; NaN is never in range."""
        for key in (
            "position_tolerance", "angle_tolerance_deg", "joint_tolerance_fraction", "slip_tolerance",
            "ik_position_tolerance", "ik_angle_tolerance_deg", "joint_axis_tolerance_deg", "joint_offset_tolerance",
        ):  # fmt: skip
            check_number("EvalConfig", key, getattr(self, key), above=0.0)
        check_number("EvalConfig", "ik_limit_tolerance", self.ik_limit_tolerance, at_least=0.0, unit="rad")
        check_number("EvalConfig", "grasp_window", self.grasp_window, at_least=0.0, unit="s")


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict on one rollout."""

    name: str  # the rule, e.g. "rigid_goal"
    passed: bool
    value: float | tuple[float, float] | None  # measured; (position m, angle deg) for pose rules
    limit: float | tuple[float, float] | None  # the same units; for counts, the bound named in `reason`
    reason: str  # one line: what was measured against what


def _within(value: float, limit: float) -> bool:
    """``value <= limit`` for a finite value; NaN and infinity are never within a limit."""
    return bool(math.isfinite(value) and value <= limit)


def _pose_within(position_m: float, angle_deg: float, config: EvalConfig) -> bool:
    return _within(position_m, config.position_tolerance) and _within(angle_deg, config.angle_tolerance_deg)


def _pose_tolerance(config: EvalConfig) -> str:
    return f"tolerance {1000 * config.position_tolerance:.0f} mm / {config.angle_tolerance_deg:.0f} deg"


def check_plan_fk(position_m: float, angle_deg: float, config: EvalConfig) -> RuleResult:
    """The plan is self-consistent: FK of its joints reaches its own ``ee_pose``.

    ``position_m`` (m) and ``angle_deg`` (degrees): the largest FK error over the plan's samples.
    """
    passed = _within(position_m, config.ik_position_tolerance) and _within(
        angle_deg, config.ik_angle_tolerance_deg
    )
    verb = "reach its own ee_pose within" if passed else "miss its own ee_pose by"
    return RuleResult(
        "plan_fk",
        passed,
        (position_m, angle_deg),
        (config.ik_position_tolerance, config.ik_angle_tolerance_deg),
        f"plan joints {verb} {1000 * position_m:.1f} mm / {angle_deg:.1f} deg "
        f"(tolerance {1000 * config.ik_position_tolerance:.1f} mm / {config.ik_angle_tolerance_deg} deg)",
    )


def check_joint_limits(excess_rad: float, config: EvalConfig) -> RuleResult:
    """The plan's joints stay within the URDF limits: ``excess_rad`` (rad), the largest overshoot (0 if none)."""
    passed = _within(excess_rad, config.ik_limit_tolerance)
    reason = (
        f"plan joints within the URDF limits (excess {excess_rad:.4f} rad)"
        if passed
        else f"plan joints exceed the URDF limits by {excess_rad:.4f} rad"
    )
    return RuleResult("joint_limits", passed, excess_rad, config.ik_limit_tolerance, reason)


def check_grasped(contact_steps: int, kind: str, part: str, t_grasp: float) -> RuleResult:
    """The tool got hold of the part: ``contact_steps`` simulation steps with both fingers on the part
    within the grasp window (``kind`` "grasp"), or with the arm on the part (``kind`` "push");
    at least one is needed. ``part``: "object/link" for the reason; ``t_grasp``: plan time (s) of
    the first flow frame."""
    passed = contact_steps >= 1
    if passed:
        what = "both fingers closed on" if kind == "grasp" else "the arm touched"
        reason = f"{what} {part} at the grasp (t = {t_grasp:.2f} s) for {contact_steps} steps"
    else:
        what = "both fingers never closed on" if kind == "grasp" else "the arm never touched"
        reason = f"{what} {part} at the grasp (t = {t_grasp:.2f} s)"
    return RuleResult("grasped", passed, float(contact_steps), 1.0, reason)


def check_no_table_contact(
    contact: np.ndarray,  # [S] bool: an arm link (its base excluded) touches the table at step s
    t: np.ndarray,  # [S] s, the steps' times
    links: list[str],  # the arm links that touched it
) -> RuleResult:
    """The arm never touched the table; the value is the number of steps in contact (limit 0)."""
    contact = np.asarray(contact, dtype=bool)
    steps = int(contact.sum())
    if steps == 0:
        return RuleResult("no_table_contact", True, 0.0, 0.0, "the arm never touched the table")
    first = float(np.asarray(t)[np.argmax(contact)])
    return RuleResult(
        "no_table_contact",
        False,
        float(steps),
        0.0,
        f"arm links {list(links)} hit the table at t = {first:.2f} s",
    )


def check_held(
    slip_m: float,
    held_to_end: bool,
    config: EvalConfig,
    lost_at_s: float | None = None,  # s: plan time the fingers left the part for good (None: unknown)
    track_start_s: float | None = None,  # s: plan time of the first flow frame (the closing's end)
) -> RuleResult:
    """A grasped part stays in the hand: it drifts at most ``slip_tolerance`` in the tool frame while
    held (``slip_m``, m) and both fingers are still on it at the last flow frame (``held_to_end``).

    When the fingers let go, the reason says when (``lost_at_s``): on closing (before
    ``track_start_s``) or how far into the track, never "while held"."""
    passed = bool(held_to_end) and _within(slip_m, config.slip_tolerance)
    tolerance = f"tolerance {1000 * config.slip_tolerance:.0f} mm"
    if held_to_end:
        what = "held" if passed else "part dropped"
        reason = (
            f"{what}: it moved {1000 * slip_m:.1f} mm in the tool frame while held ({tolerance}), "
            f"fingers on it at the last frame: {held_to_end}"
        )
    else:
        if lost_at_s is None:
            when = "before the last frame"
        elif track_start_s is not None and lost_at_s <= track_start_s:
            when = f"on closing (t = {lost_at_s:.2f} s, before the track began at {track_start_s:.2f} s)"
        elif track_start_s is not None:
            when = f"at t = {lost_at_s:.2f} s, {lost_at_s - track_start_s:.2f} s into the track"
        else:
            when = f"at t = {lost_at_s:.2f} s"
        reason = (
            f"part dropped: the fingers lost contact with it {when}; by then and after, it moved "
            f"{1000 * slip_m:.1f} mm in the tool frame ({tolerance})"
        )
    return RuleResult("held", passed, slip_m, config.slip_tolerance, reason)


def check_joint_goal(
    value: float,  # the simulated change of the matched joint at the last flow frame, flow's direction (rad or m)
    goal: float,  # the flow's final joint value relative to frame 0 (rad or m)
    span: float,  # the flow's range of the joint value, max - min (rad or m)
    config: EvalConfig,
    joint_name: str | None = None,  # for the reason
    others_moved: dict[str, float] | None = None,  # other joints that travelled instead (for the reason)
    judge: str = "flow",  # whose goal it is, for the reason: "flow" or "truth" (the task's ground truth)
) -> RuleResult:
    """An articulated part reached the goal's joint value: |value - goal| <= joint_tolerance_fraction * span."""
    error = abs(value - goal)
    tolerance = config.joint_tolerance_fraction * span
    passed = _within(error, tolerance)
    relation = "<=" if passed else ">"
    reason = (
        f"joint {joint_name} moved {value:.3f}, {judge}'s goal {goal:.3f} "
        f"(error {error:.3f} {relation} tolerance {tolerance:.3f})"
    )
    if not passed and others_moved:
        reason += f"; other joints moved instead: {others_moved}"
    return RuleResult("joint_goal", passed, error, tolerance, reason)


def check_parent_in_place(
    position_m: float, angle_deg: float, config: EvalConfig, parent: str = "parent", judge: str = "flow"
) -> RuleResult:
    """An articulated part's parent ends where the flow leaves it (closing a laptop by shoving it
    across the table does not count). ``position_m`` (m) / ``angle_deg`` (degrees): its error at
    the last flow frame; ``parent``: "object/link" for the reason."""
    passed = _pose_within(position_m, angle_deg, config)
    return RuleResult(
        "parent_in_place",
        passed,
        (position_m, angle_deg),
        (config.position_tolerance, config.angle_tolerance_deg),
        f"{parent} (the part's parent) ends {1000 * position_m:.1f} mm / {angle_deg:.1f} deg from where the {judge} "
        f"leaves it ({_pose_tolerance(config)})",
    )


def check_bystanders_in_place(
    errors: dict[str, tuple[float, float]], config: EvalConfig, judge: str = "truth"
) -> RuleResult:
    """Every object the task does not move ends where the ``judge`` leaves it (a distractor knocked
    over, or a second object dragged along, fails the task). ``errors``: object -> (m at its base
    origin, degrees) against its recorded final pose; the worst one is reported. Same pose
    tolerance as the goal's."""
    if not errors:
        return RuleResult("bystanders_in_place", True, None, None, "no other object to keep in place")
    name, (pos, ang) = max(
        errors.items(),
        key=lambda kv: (
            max(kv[1][0] / config.position_tolerance, kv[1][1] / config.angle_tolerance_deg)
            if all(math.isfinite(v) for v in kv[1])
            else math.inf
        ),
    )
    passed = all(_pose_within(p, a, config) for p, a in errors.values())
    return RuleResult(
        "bystanders_in_place",
        passed,
        (pos, ang),
        (config.position_tolerance, config.angle_tolerance_deg),
        f"{name} (not the task's object) ends {1000 * pos:.1f} mm / {ang:.1f} deg from where the {judge} "
        f"leaves it ({_pose_tolerance(config)}; worst of {len(errors)})",
    )


def check_rigid_goal(
    position_m: float, angle_deg: float, config: EvalConfig, judge: str = "flow"
) -> RuleResult:
    """A rigid part ends at the flow's final pose: ``position_m`` (m, at its frame-0 centroid) and
    ``angle_deg`` (degrees) are its errors at the last flow frame."""
    passed = _pose_within(position_m, angle_deg, config)
    return RuleResult(
        "rigid_goal",
        passed,
        (position_m, angle_deg),
        (config.position_tolerance, config.angle_tolerance_deg),
        f"part ends {1000 * position_m:.1f} mm / {angle_deg:.1f} deg from the {judge}'s final pose "
        f"({_pose_tolerance(config)})",
    )


def check_planned_track(position_m: float, angle_deg: float, config: EvalConfig) -> RuleResult:
    """The planned tool path, carrying the part rigidly from the planner's grasp, keeps it on the
    planning flow's track: ``position_m`` (m) / ``angle_deg`` (degrees), the largest error over the
    flow's frames."""
    passed = _pose_within(position_m, angle_deg, config)
    what = "keeps the part on" if passed else "carries the part off"
    return RuleResult(
        "planned_track",
        passed,
        (position_m, angle_deg),
        (config.position_tolerance, config.angle_tolerance_deg),
        f"the planned tool path {what} the flow's track by {1000 * position_m:.1f} mm / {angle_deg:.1f} deg "
        f"({_pose_tolerance(config)})",
    )


def check_flows_agree(position_m: float, angle_deg: float, config: EvalConfig) -> RuleResult:
    """The flow the plan was made from ends the part where the goal flow does: ``position_m`` (m,
    at the part's frame-0 centroid) / ``angle_deg`` (degrees) between their final poses."""
    passed = _pose_within(position_m, angle_deg, config)
    return RuleResult(
        "flows_agree",
        passed,
        (position_m, angle_deg),
        (config.position_tolerance, config.angle_tolerance_deg),
        f"the planning flow's final pose of the part is {1000 * position_m:.1f} mm / {angle_deg:.1f} deg from the "
        f"goal flow's ({_pose_tolerance(config)})",
    )


def first_failure(results: list[RuleResult]) -> RuleResult | None:
    """The first rule in ``results`` that failed, or None if all passed."""
    return next((r for r in results if not r.passed), None)
