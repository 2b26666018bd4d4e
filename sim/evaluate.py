"""Judge a simulated plan against the flow's goal: success, the failing stage, and the numbers behind it.

Stages, checked in this order (the first that fails is the cause):

- ``flow``: the flow defines no goal the simulator can judge (nothing moves, no movable object,
  or its joint matches no joint of the object's model);
- ``IK``: the plan's joints do not put the tool where the plan says (forward kinematics against
  ``ee_pose``, joint limits), or the planned tool path, carried rigidly from the planner's grasp
  (``report.grasp.T_part_ee``), does not carry the part along the flow's track;
- ``grasp``: the tool went where planned but the fingers did not close on the part (grasp), or
  never touched it (push);
- ``execution``: the part missed the flow's final pose (rigid: 2 cm and 15 degrees; articulated:
  joint value within 10% of the flow's range, and the part's parent within 2 cm and 15 degrees of
  where the flow leaves it, so closing a laptop by shoving it across the table does not count),
  slipped out of the grasp, or the arm hit the table.

Poses are compared as motions from the plan's start (after settling), so a settled object that
rests a millimetre away from the flow's first frame is not an error. The thresholds above are
:class:`sim.rules.EvalConfig`'s defaults.

:func:`evaluate` measures the rollout (``track_errors``, ``grasp_measures``, ``joint_change``,
``parent_errors``, ``planned_track_errors``), applies the pure rules of :mod:`sim.rules` to the
measurements and blames the earliest stage (:func:`blame`); :func:`simulate` builds the world,
executes the plan and evaluates it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ChordError
from core.flow import ObjectFlow
from core.plan import Plan
from core.robots import RobotSpec
from core.scene import Scene
from core.transforms import pose_to_matrix
from core.truth import Truth
from sim.goal import FlowGoal, FlowGoalError, GoalBinding, TruthGoal, bind_goal, flow_goal, truth_goal
from sim.rollout import Rollout, execute
from sim.rules import (
    EvalConfig,
    RuleResult,
    check_bystanders_in_place,
    check_flows_agree,
    check_grasped,
    check_held,
    check_joint_goal,
    check_joint_limits,
    check_no_table_contact,
    check_parent_in_place,
    check_plan_fk,
    check_planned_track,
    check_rigid_goal,
    first_failure,
)
from sim.world import SimConfig, SimWorld, robot_for

log = logging.getLogger(__name__)

STAGES = ("flow", "IK", "grasp", "execution")


@dataclass(frozen=True)
class SimResult:
    """A ManiSkill-style evaluation: ``success``, the failing stage, and every quantity behind it."""

    success: bool
    cause: str | None  # None on success, else one of STAGES
    reason: str  # one line: what failed and by how much (or what succeeded)
    # whose goal decided success: "truth" (the scene's recorded ground truth, reference.truth) or
    # "flow" (the goal flow's own analysis, when the scene has no ground truth)
    judged_by: str = "flow"
    object_name: str | None = None  # the part's object
    part_link: str | None = None  # "base" or the URDF link playing the flow's part
    articulated: bool = False
    grasp_kind: str | None = None  # "grasp" or "push"
    # goal (against the truth's final pose when judged_by is "truth")
    final_position_error_m: float | None = None  # part centroid at the last flow frame
    final_angle_error_deg: float | None = None
    joint_name: str | None = None
    joint_value: float | None = None  # simulated change of the matched joint, flow's direction
    joint_goal: float | None = None  # flow's final joint value (relative to frame 0)
    joint_error: float | None = None
    joint_tolerance: float | None = None
    parent_position_error_m: float | None = None  # articulated: the part's parent at the last frame
    parent_angle_error_deg: float | None = None
    joint_travel: dict[str, float] = field(default_factory=dict)  # every joint of the object: max |q - q0|
    # every joint the goal moves: name -> (simulated change, goal's change), rad or m, from the
    # plan's start to the last flow frame (the truth's joints when judged_by is "truth")
    joint_values: dict[str, tuple[float, float]] = field(default_factory=dict)
    # tracking along the flow's frames
    track_position_mean_m: float | None = None
    track_position_max_m: float | None = None
    track_angle_mean_deg: float | None = None
    track_angle_max_deg: float | None = None
    track_position_m: list[float] | None = None  # [T] per flow frame
    # grasp and contacts
    grasped: bool | None = None  # both fingers on the part at the first frame (push: part touched)
    held_to_end: bool | None = None  # both fingers still on the part at the last frame
    contact_lost_s: float | None = (
        None  # plan time the fingers left the part for good (None: held, or a push)
    )
    slip_m: float | None = None  # largest drift of the part in the tool frame while following
    arm_table_contact: bool | None = None
    arm_table_links: list[str] = field(default_factory=list)
    # plan kinematics
    plan_fk_position_max_m: float | None = None
    plan_fk_angle_max_deg: float | None = None
    plan_limit_violation_rad: float | None = None
    planned_track_position_max_m: float | None = None  # part carried rigidly by the planned tool
    planned_track_angle_max_deg: float | None = None
    arm_tracking_max_rad: float | None = None  # |q - q_cmd| over the rollout
    # after the plan (the part may be released)
    end_position_error_m: float | None = None  # part at the rollout's end against the final goal
    # bookkeeping
    frame_times_s: list[float] | None = None  # plan time of each flow frame
    frame_times_source: str | None = None  # "report", "matched" or "uniform"
    settle_drift_m: float | None = None
    physics_hz: float | None = None
    sim_seconds: float | None = None
    wall_s: float | None = None
    plan_sha256: str | None = None
    flow_sha256: str | None = None  # the goal flow's content hash
    robot: str | None = None  # the arm simulated (its registry name, core.robots)
    arm_control: str | None = None  # how it was driven: "impedance" or "position" (SimConfig.arm_control)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _angle_deg(R: np.ndarray) -> np.ndarray:
    """Rotation angles [...] in degrees of rotation matrices [..., 3, 3]."""
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def plan_kinematics(world: SimWorld, plan: Plan, max_samples: int = 200) -> dict[str, float]:
    """FK of the plan's joints against its ee_pose, and joint-limit excess (resets the arm's state)."""
    idx = np.unique(np.linspace(0, len(plan.t) - 1, min(len(plan.t), max_samples)).astype(int))
    pos, ang = [], []
    for i in idx:
        T = world.fk(plan.q[i])
        E = pose_to_matrix(plan.ee_pose[i, :3], plan.ee_pose[i, 3:])
        pos.append(np.linalg.norm(T[:3, 3] - E[:3, 3]))
        ang.append(float(_angle_deg(E[:3, :3].T @ T[:3, :3])))
    excess = np.maximum(world.arm_lower - plan.q, plan.q - world.arm_upper).max()
    return {
        "fk_position_max": float(max(pos)),
        "fk_angle_max": float(max(ang)),
        "limit_excess": float(max(excess, 0.0)),
    }


def _planned_tool(world: SimWorld, plan: Plan) -> np.ndarray:
    """[M, 4, 4] the plan's tool poses in the world."""
    return world.T_world_base @ pose_to_matrix(plan.ee_pose[:, :3], plan.ee_pose[:, 3:])


def frame_times(plan: Plan, goal: FlowGoal, T_world_tool: np.ndarray) -> tuple[np.ndarray, str]:  # [M, 4, 4]
    """Plan time [T] at which each flow frame should be reached, and how it was found.

    From ``report.frame_times_s`` if the planner wrote them; else the planned tool pose nearest to
    each frame's grasp target T_world_part(t) @ T_part_ee within the follow phase (in order); else
    the frames spread evenly over the follow phase (or the whole plan).
    """
    rep = plan.report or {}
    T = goal.num_frames
    given = rep.get("frame_times_s")
    if isinstance(given, list) and len(given) == T:
        return np.asarray(given, dtype=float), "report"
    follow = (rep.get("phases_s") or {}).get("follow")
    t0, t1 = (float(follow[0]), float(follow[1])) if follow else (0.0, plan.duration)
    T_part_ee = (rep.get("grasp") or {}).get("T_part_ee")
    if T_part_ee is not None and follow:
        targets = goal.T_world_part @ np.asarray(T_part_ee, dtype=float)  # [T, 4, 4]
        window = np.flatnonzero((plan.t >= t0 - 1e-9) & (plan.t <= t1 + 1e-9))
        out, lo = [], 0
        for k in range(T):
            d = np.linalg.norm(T_world_tool[window[lo:], :3, 3] - targets[k, :3, 3], axis=1)
            lo += int(np.argmin(d))
            out.append(plan.t[window[lo]])
        return np.asarray(out), "matched"
    return np.linspace(t0, t1, T), "uniform"


def flow_mismatch(plan: Plan, goal: FlowGoal, planned: FlowGoal | None, config: EvalConfig) -> str | None:
    """Why the plan was made for a different motion than the goal's, or None if it was not.

    Checks the planner's own analysis in ``plan.report`` (target object; articulated or a rigid
    whole) and, when the planning flow is known, its final pose of the part against the goal's
    (:func:`sim.rules.check_flows_agree`).
    """
    rep = (plan.report or {}).get("analysis")
    if isinstance(rep, dict):
        if rep.get("target_object") not in (None, goal.object_name):
            return f"the plan moves {rep.get('target_object')!r}, the goal flow moves {goal.object_name!r}"
        if "joint" in rep and not goal.articulated:
            return f"the plan moves a jointed part of {goal.object_name!r}; the goal flow moves it as one rigid body"
        if "joint" not in rep and goal.articulated:
            return (
                f"the plan moves {goal.object_name!r} as one rigid body; the goal flow turns its part about a "
                f"{goal.joint.kind} joint"
            )
    if planned is None or planned is goal:
        return None
    if planned.object_name != goal.object_name or planned.articulated != goal.articulated:
        return (
            f"the planning flow moves {planned.object_name!r} ({'articulated' if planned.articulated else 'rigid'}), "
            f"the goal flow moves {goal.object_name!r} ({'articulated' if goal.articulated else 'rigid'})"
        )
    c0 = np.append(goal.centroid0, 1.0)
    d = float(np.linalg.norm((planned.motion[-1] @ c0)[:3] - (goal.motion[-1] @ c0)[:3]))
    a = float(_angle_deg(planned.motion[-1, :3, :3] @ goal.motion[-1, :3, :3].T))
    agree = check_flows_agree(d, a, config)
    return None if agree.passed else agree.reason


# -- measuring: what happened in the rollout, before any rule judges it ------------------------


def link_poses(rollout: Rollout, object_name: str, link: int, link_name: str) -> np.ndarray:
    """[S, 4, 4] world poses over the rollout of an object's base (``link`` < 0) or of its link ``link_name``."""
    if link < 0:
        return rollout.T_world_obj[object_name]
    return rollout.T_world_link[object_name][:, rollout.link_names[object_name].index(link_name)]


@dataclass(frozen=True)
class TrackErrors:
    """The part's simulated motion from the plan's start against the flow's, at its frame-0 centroid."""

    position_m: np.ndarray  # [T] m, position error at each flow frame
    angle_deg: np.ndarray  # [T] degrees, orientation error at each flow frame
    end_position_m: float  # m, position error at the rollout's end against the flow's final pose


def track_errors(T_part: np.ndarray, idx: np.ndarray, goal: FlowGoal) -> TrackErrors:
    """Errors of the part (world poses ``T_part`` [S, 4, 4]) at the rollout steps ``idx`` [T] of the flow's frames.

    Poses are compared as motions from the plan's start, so a settled object resting a millimetre
    from the flow's first frame is not an error.
    """
    M_sim = T_part @ np.linalg.inv(T_part[0])  # [S, 4, 4]
    c0 = np.append(goal.centroid0, 1.0)
    pos = np.linalg.norm((M_sim[idx] @ c0)[:, :3] - (goal.motion @ c0)[:, :3], axis=1)  # [T]
    ang = _angle_deg(M_sim[idx, :3, :3] @ goal.motion[:, :3, :3].swapaxes(-1, -2))  # [T]
    end = float(np.linalg.norm((M_sim[-1] @ c0)[:3] - (goal.motion[-1] @ c0)[:3]))
    return TrackErrors(pos, ang, end)


def grasp_kind(plan: Plan) -> str:
    """ "grasp" or "push": the planner's report, else whether the plan ever closes the gripper (by > 5 mm)."""
    kind = (plan.report.get("grasp") or {}).get("kind") if plan.report else None
    if kind not in ("grasp", "push"):
        kind = "grasp" if plan.gripper.min() < plan.gripper.max() - 0.005 else "push"
    return kind


@dataclass(frozen=True)
class GraspMeasures:
    """How the tool held the part."""

    contact_steps: int  # steps with both fingers on the part within the grasp window (push: the arm on it,
    #   within the grasp window or the follow phase)
    held_to_end: bool | None  # grasp: both fingers on the part at the last flow frame; None for a push
    slip_m: (
        float | None
    )  # grasp: m, the part's largest drift in the tool frame while following; None for a push
    # grasp: s, plan time after the fingers' last step together on the part up to the last flow
    # frame, when they are not on it there (contact lost for good); None when held or for a push
    lost_at_s: float | None = None


def grasp_measures(
    rollout: Rollout,
    binding: GoalBinding,
    T_part: np.ndarray,  # [S, 4, 4] the part in the world
    kind: str,  # "grasp" or "push"
    ft: np.ndarray,  # [T] s, plan time of each flow frame
    idx: np.ndarray,  # [T] rollout steps of the flow frames
    grasp_window: float,  # s, around the first flow frame
) -> GraspMeasures:
    """Contacts, hold and slip of the part during the rollout."""
    name = binding.object_name
    slot = 0 if binding.link < 0 else rollout.link_names[name].index(binding.link_name) + 1
    win = np.abs(rollout.t - ft[0]) <= grasp_window
    follow = (rollout.t >= ft[0]) & (rollout.t <= ft[-1])
    if kind != "grasp":
        return GraspMeasures(int(rollout.arm_contact[name][follow | win, slot].sum()), None, None)
    both = rollout.finger_contact[name][:, :, slot].all(axis=1)  # [S]
    T_tool_part = np.linalg.inv(rollout.T_world_tcp) @ T_part  # [S, 4, 4]
    rel = T_tool_part[follow] if follow.any() else T_tool_part[idx[:1]]
    slip = float(np.linalg.norm(rel[:, :3, 3] - T_tool_part[idx[0], :3, 3], axis=1).max())
    held = bool(both[idx[-1]])
    lost = None
    on = np.flatnonzero(both[: idx[-1] + 1])
    if not held and len(on):
        lost = float(rollout.t[min(int(on[-1]) + 1, len(rollout.t) - 1)])
    return GraspMeasures(int(both[win].sum()), held, slip, lost)


def planned_track_errors(
    plan: Plan, planned: FlowGoal, T_world_tool: np.ndarray, ft: np.ndarray
) -> tuple[float, float] | None:
    """Largest (m, degrees) error over the flow's frames of the part carried rigidly by the planned
    tool (``T_world_tool`` [M, 4, 4]) from the planner's grasp, against the planning flow's track;
    None when the plan's report has no grasp transform."""
    T_part_ee = (plan.report.get("grasp") or {}).get("T_part_ee") if plan.report else None
    if T_part_ee is None:
        return None
    plan_i = np.clip(np.searchsorted(plan.t, ft), 0, len(plan.t) - 1)
    T_part_planned = T_world_tool[plan_i] @ np.linalg.inv(np.asarray(T_part_ee, dtype=float))
    pos = float(np.linalg.norm(T_part_planned[:, :3, 3] - planned.T_world_part[:, :3, 3], axis=1).max())
    ang = float(
        _angle_deg(T_part_planned[:, :3, :3] @ planned.T_world_part[:, :3, :3].swapaxes(-1, -2)).max()
    )
    return pos, ang


def joint_change(rollout: Rollout, binding: GoalBinding, step: int) -> float:
    """The matched joint's change (rad or m) from the plan's start to ``step``, in the flow's direction."""
    q = rollout.joints[binding.object_name][:, binding.joint_column]
    return float(binding.joint_sign * (q[step] - q[0]))


def parent_errors(
    rollout: Rollout, binding: GoalBinding, goal: FlowGoal, step: int
) -> tuple[float, float] | None:
    """(m, degrees) of an articulated part's parent at ``step`` from where the flow leaves it (its
    last frame); None for a rigid goal or a flow without the parent's motion."""
    if not goal.articulated or goal.parent_motion is None:
        return None
    T_parent = link_poses(rollout, binding.object_name, binding.parent_link, binding.parent_link_name)
    Mp = T_parent[step] @ np.linalg.inv(T_parent[0])
    cp = np.append(goal.parent_centroid0, 1.0)
    pos = float(np.linalg.norm((Mp @ cp)[:3] - (goal.parent_motion[-1] @ cp)[:3]))
    return pos, float(_angle_deg(Mp[:3, :3] @ goal.parent_motion[-1, :3, :3].T))


def joint_travel(rollout: Rollout, object_name: str) -> dict[str, float]:
    """Every joint of the object: its largest |q - q0| over the rollout (a push that moves the wrong joint shows here)."""
    q = rollout.joints.get(object_name)
    return {
        j: float(np.abs(q[:, c] - q[0, c]).max())
        for c, j in enumerate(rollout.joint_names.get(object_name, ()))
    }


# -- judging: the rules in the order things happen, and the stage to blame -----------------------

_RULE_STAGE = {"grasped": "grasp"}  # a failed physical rule's stage; the others' is "execution"


def blame(
    ik: RuleResult | None,  # the first failed plan-consistency rule
    physical: RuleResult | None,  # the first failed rule of what the simulation shows
    flow_fault: str | None,  # flow_mismatch's answer
    planned_track: RuleResult | None,  # check_planned_track, when it could be measured
) -> tuple[str | None, str]:
    """(cause, reason): a failure is blamed on the earliest stage whose output was already wrong.

    A plan that is not self-consistent is an IK failure whatever happened. A physical failure is
    the flow's if the plan was made for another motion than the goal's, IK's if the planned tool
    path already left the planning flow's track, else its own stage's. (None, "") on success.
    """
    if ik is not None:
        return "IK", ik.reason
    if physical is None:
        return None, ""
    if flow_fault is not None:
        return "flow", f"{flow_fault}; in simulation: {physical.reason}"
    if planned_track is not None and not planned_track.passed:
        return "IK", f"{planned_track.reason}; in simulation: {physical.reason}"
    return _RULE_STAGE.get(physical.name, "execution"), physical.reason


def truth_rules(
    rollout: Rollout,
    truth: TruthGoal,
    goal: FlowGoal,
    step: int,  # the rollout step of the last flow frame
    travel: dict[str, float],  # joint_travel of the truth's object
    config: EvalConfig,
) -> tuple[list[RuleResult], dict[str, Any], tuple[float, float] | None]:
    """The goal rules against the ground truth, at rollout ``step``: (rules, joint fields of
    SimResult, (m, degrees) final error of a rigid object or None).

    Motions are compared from the plan's start, as for the flow's goal. A rigid object is measured
    at the flow's frame-0 centroid of the part when the flow moves that object as one rigid whole,
    else at its base origin. A jointed object: every joint the truth moves must reach the truth's
    final value (change from the first frame) within ``joint_tolerance_fraction`` of the truth's
    range, and the object's base must end within the pose tolerances of the truth's final pose.
    Same thresholds as the flow's goal (EvalConfig); none of its own.
    """
    name = truth.object_name
    T_obj = rollout.T_world_obj[name]  # [S, 4, 4]
    M_sim = T_obj[step] @ np.linalg.inv(T_obj[0])
    rigid_part = goal.object_name == name and not goal.articulated
    c = np.append(goal.centroid0 if rigid_part and not truth.articulated else T_obj[0, :3, 3], 1.0)
    pos = float(np.linalg.norm((M_sim @ c)[:3] - (truth.motion @ c)[:3]))
    ang = float(_angle_deg(M_sim[:3, :3] @ truth.motion[:3, :3].T))
    if not truth.articulated:
        return [check_rigid_goal(pos, ang, config, judge="truth")], {}, (pos, ang)
    q = rollout.joints[name]
    names = list(rollout.joint_names[name])
    others = {j: round(v, 3) for j, v in travel.items() if j not in truth.joints and v > 0.01}
    rules, fields, values = [], {}, {}
    for j, (target, span) in truth.joints.items():
        col = names.index(j)  # simulate() checked that the object has every joint the truth moves
        value = float(q[step, col] - q[0, col])
        values[j] = (value, target)
        rule = check_joint_goal(value, target, span, config, j, others, judge="truth")
        rules.append(rule)
        if not fields or (not rule.passed and fields.get("_passed", True)):
            fields = dict(
                joint_name=j, joint_value=value, joint_goal=target, joint_error=rule.value,
                joint_tolerance=rule.limit, _passed=rule.passed,
            )  # fmt: skip
    fields.pop("_passed")
    rules.append(check_parent_in_place(pos, ang, config, f"{name}/base", judge="truth"))
    fields.update(parent_position_error_m=pos, parent_angle_error_deg=ang, joint_values=values)
    return rules, fields, None


def bystander_errors(rollout: Rollout, truth: TruthGoal) -> dict[str, tuple[float, float]]:
    """Each other object's (m, degrees) error at the rollout's end against the truth's motion of it,
    compared from the plan's start and measured at its base origin (a bystander's truth motion is
    the identity). Objects the simulator did not record are left out."""
    out = {}
    for name, motion in truth.others.items():
        T = rollout.T_world_static.get(name)
        if T is None:
            T = rollout.T_world_obj.get(name)
        if T is None:
            continue
        M_sim = T[-1] @ np.linalg.inv(T[0])
        c = np.append(T[0, :3, 3], 1.0)
        pos = float(np.linalg.norm((M_sim @ c)[:3] - (motion @ c)[:3]))
        out[name] = (pos, float(_angle_deg(M_sim[:3, :3] @ motion[:3, :3].T)))
    return out


def success_reason(
    name: str,
    link_name: str,
    judge: str,
    final: tuple[float, float],  # (m, deg): the rigid object's final error, or a jointed object's parent's
    joint: dict[str, Any],  # the joint fields of SimResult ({} for a rigid goal)
    mean_tracking_m: float,
) -> str:
    """The one-line success reason. A jointed object: every goal joint's simulated change against
    the goal's (rad or m) and where its parent (the base, judged by the truth) ended; a rigid one:
    its final pose error. The flow's tracking error comes last, as what it is."""
    if joint.get("joint_values"):
        values = ", ".join(f"{j} {v:+.3f} ({judge} {g:+.3f})" for j, (v, g) in joint["joint_values"].items())
        head = f"{name} reached the {judge}'s joint values: {values}"
        if joint.get("parent_position_error_m") is not None:
            head += (
                f"; its {'base' if judge == 'truth' else 'parent'} {1000 * joint['parent_position_error_m']:.1f} mm, "
                f"{joint['parent_angle_error_deg']:.1f} deg from the {judge}'s"
            )
    else:
        head = f"{name}/{link_name} reached the {judge}'s goal: {1000 * final[0]:.1f} mm, {final[1]:.1f} deg"
    return head + f"; the held part's mean tracking error against the flow {1000 * mean_tracking_m:.1f} mm"


def evaluate(
    plan: Plan,
    goal: FlowGoal,
    binding: GoalBinding,
    rollout: Rollout,
    kinematics: dict[str, float],
    T_world_tool: np.ndarray,  # [M, 4, 4] the plan's tool poses in the world
    config: EvalConfig = EvalConfig(),
    planned: FlowGoal | None = None,  # the goal of the flow the plan was made from, if known
    truth: TruthGoal | None = None,  # the task's ground truth's goal: it, not ``goal``, decides success
) -> SimResult:
    """Success and its quantities for one rollout of ``plan`` against ``goal``: measure, apply the
    rules of :mod:`sim.rules`, blame (:func:`blame`).

    With ``truth`` the goal rules measure the object against the truth's final base pose and
    joint values (:func:`truth_rules`); ``goal`` then only names the held part and times the
    frames, and the tracking numbers stay the flow's."""
    ft, source = frame_times(plan, planned if planned is not None else goal, T_world_tool)
    idx = rollout.index_at(ft)
    name = binding.object_name
    T_part = link_poses(rollout, name, binding.link, binding.link_name)
    track = track_errors(T_part, idx, goal)
    kind = grasp_kind(plan)
    grip = grasp_measures(rollout, binding, T_part, kind, ft, idx, config.grasp_window)
    travel = joint_travel(rollout, name)
    parent = parent_errors(rollout, binding, goal, idx[-1])
    flow_fault = flow_mismatch(plan, goal, planned, config)
    planned_err = None
    if planned is not None and flow_fault is None:
        planned_err = planned_track_errors(plan, planned, T_world_tool, ft)

    ik_rules = [
        check_plan_fk(kinematics["fk_position_max"], kinematics["fk_angle_max"], config),
        check_joint_limits(kinematics["limit_excess"], config),
    ]
    # What the simulation shows, in the order things happen.
    physical = [
        check_grasped(grip.contact_steps, kind, f"{name}/{binding.link_name}", float(ft[0])),
        check_no_table_contact(rollout.arm_table, rollout.t, list(rollout.arm_table_links)),
    ]
    if kind == "grasp":
        physical.append(check_held(grip.slip_m, grip.held_to_end, config, grip.lost_at_s, float(ft[0])))
    joint: dict[str, Any] = {}
    final: tuple[float, float] | None = None
    if truth is not None:
        rules, joint, final = truth_rules(rollout, truth, goal, int(idx[-1]), travel, config)
        physical.extend(rules)
        physical.append(check_bystanders_in_place(bystander_errors(rollout, truth), config))
    elif goal.articulated:
        others = {j: round(v, 3) for j, v in travel.items() if j != binding.joint_name and v > 0.01}
        value = joint_change(rollout, binding, idx[-1])
        rule = check_joint_goal(value, goal.joint_goal, goal.joint_span, config, binding.joint_name, others)
        physical.append(rule)
        joint = dict(
            joint_name=binding.joint_name, joint_value=value, joint_goal=goal.joint_goal,
            joint_error=rule.value, joint_tolerance=rule.limit,
            joint_values={binding.joint_name: (value, goal.joint_goal)},
        )  # fmt: skip
        if parent is not None:
            physical.append(check_parent_in_place(*parent, config, f"{name}/{binding.parent_link_name}"))
            joint.update(parent_position_error_m=parent[0], parent_angle_error_deg=parent[1])
    else:
        physical.append(check_rigid_goal(float(track.position_m[-1]), float(track.angle_deg[-1]), config))
    planned_rule = None if planned_err is None else check_planned_track(*planned_err, config)
    for r in [*ik_rules, *physical, *([planned_rule] if planned_rule else [])]:
        log.debug("rule %s: %s (%s)", r.name, "pass" if r.passed else "FAIL", r.reason)

    cause, reason = blame(first_failure(ik_rules), first_failure(physical), flow_fault, planned_rule)
    pos_err, ang_err = track.position_m, track.angle_deg
    final = final or (float(pos_err[-1]), float(ang_err[-1]))
    judge = "flow" if truth is None else "truth"
    if cause is None:
        reason = success_reason(name, binding.link_name, judge, final, joint, float(pos_err.mean()))
    return SimResult(
        success=cause is None,
        cause=cause,
        reason=reason,
        judged_by=judge,
        object_name=name,
        part_link=binding.link_name,
        articulated=goal.articulated if truth is None else truth.articulated,
        grasp_kind=kind,
        final_position_error_m=final[0],
        final_angle_error_deg=final[1],
        **joint,
        joint_travel=travel,
        track_position_mean_m=float(pos_err.mean()),
        track_position_max_m=float(pos_err.max()),
        track_angle_mean_deg=float(ang_err.mean()),
        track_angle_max_deg=float(ang_err.max()),
        track_position_m=[float(v) for v in pos_err],
        grasped=grip.contact_steps >= 1,
        held_to_end=grip.held_to_end,
        contact_lost_s=grip.lost_at_s,
        slip_m=grip.slip_m,
        arm_table_contact=bool(rollout.arm_table.any()),
        arm_table_links=list(rollout.arm_table_links),
        plan_fk_position_max_m=kinematics["fk_position_max"],
        plan_fk_angle_max_deg=kinematics["fk_angle_max"],
        plan_limit_violation_rad=kinematics["limit_excess"],
        planned_track_position_max_m=None if planned_err is None else planned_err[0],
        planned_track_angle_max_deg=None if planned_err is None else planned_err[1],
        arm_tracking_max_rad=float(np.abs(rollout.q - rollout.q_cmd).max()),
        end_position_error_m=track.end_position_m,
        frame_times_s=[float(v) for v in ft],
        frame_times_source=source,
        settle_drift_m=float(rollout.settle_drift.get(name, 0.0)),
        physics_hz=rollout.physics_hz,
        sim_seconds=float(rollout.t[-1]),
        wall_s=rollout.wall_s,
        plan_sha256=plan.content_hash(),
    )


def simulate(
    plan: Plan,
    scene: Scene,
    flow: ObjectFlow,  # the flow whose goal judges the plan
    config: SimConfig | None = None,  # None = SimConfig()
    eval_config: EvalConfig = EvalConfig(),
    object_poses: dict[str, np.ndarray] | None = None,  # name -> T_world_obj [4, 4] overriding the scene's
    planning_flow: ObjectFlow | None = None,  # the flow the plan was made from, if not ``flow``
    robot_urdf: str | Path | None = None,  # the arm's URDF from the command line; None: the entry's
    truth: Truth | None = None,  # the task's ground truth: it judges the goal (judged_by "truth")
    robot: str
    | RobotSpec
    | None = None,  # --robot (a name, YAML file or RobotSpec); None: plan.robot by name
) -> SimResult:
    """Execute ``plan`` in PyBullet in ``scene`` and judge it against ``flow``'s goal, or the truth's.

    With ``truth`` (the scene's ``reference.truth``) success is decided by the object's final pose
    and joint values against the truth's (:func:`truth_rules`); the flow only names the held part
    and times the frames. Without it the flow's own goal decides, and the result says so
    (``judged_by`` "flow").

    The arm is the registered robot ``plan.robot`` names, or the one ``robot`` describes (which must
    be the plan's), with ``robot_urdf`` as its URDF if given (``sim.world.robot_for``): a plan file
    never chooses which file the simulator loads.

    ``planning_flow`` (when the plan was made from another flow, e.g. a generated one judged
    against the reference) only assigns the blame of a failure: a planning flow whose motion
    differs from the goal's makes it a "flow" failure. A goal flow with no judgeable goal gives a
    result with cause "flow" (no rollout). Raises ChordError for a scene or plan the simulator
    cannot load.
    """
    config = SimConfig() if config is None else config
    flow_hash = flow.content_hash()
    judge = "flow" if truth is None else "truth"
    if flow_hash != plan.flow_sha256:
        log.info(
            "judging against flow %s; the plan was made from flow %s", flow_hash[:12], plan.flow_sha256[:12]
        )
    try:
        goal = flow_goal(flow, scene)
    except FlowGoalError as e:
        return SimResult(False, "flow", str(e), judge, plan_sha256=plan.content_hash(), flow_sha256=flow_hash)
    planned: FlowGoal | None = goal if flow_hash == plan.flow_sha256 else None
    if planning_flow is not None and planning_flow.content_hash() != flow_hash:
        try:
            planned = flow_goal(planning_flow, scene)
        except FlowGoalError as e:
            return SimResult(
                False, "flow", f"planning flow: {e}", judge, plan_sha256=plan.content_hash(),
                flow_sha256=flow_hash,
            )  # fmt: skip
    arm = robot_for(plan.robot, robot, robot_urdf)
    with SimWorld(scene, config, arm, plan.base_pose, plan.joint_names, object_poses) as world:
        try:
            binding = bind_goal(world, goal, eval_config)
            target = None if truth is None else truth_goal(truth, scene, prefer=goal.object_name)
        except FlowGoalError as e:
            return SimResult(
                False,
                "flow",
                str(e),
                judge,
                object_name=goal.object_name,
                plan_sha256=plan.content_hash(),
                flow_sha256=flow_hash,
            )
        if target is not None:
            have = (
                list(world.objects[target.object_name].joints)
                if target.object_name in world.objects
                else None
            )
            missing = [j for j in target.joints if have is None or j not in have]
            if have is None or missing:
                raise ChordError(
                    f"the ground truth moves {target.object_name!r}"
                    + (f" joints {missing}" if have is not None else "")
                    + f", which the simulated scene does not have (its joints: {have}); "
                    "the truth is not this scene's"
                )
        kin = plan_kinematics(world, plan)
        tool = _planned_tool(world, plan)
        rollout = execute(world, plan)
        control = world.arm_control
    result = evaluate(plan, goal, binding, rollout, kin, tool, eval_config, planned, target)
    result = dataclasses.replace(result, flow_sha256=flow_hash, robot=arm.name, arm_control=control)
    log.info("sim: %s (%s)", "success" if result.success else f"failure at {result.cause}", result.reason)
    return result


def verdict(
    result: SimResult,
    plan: Plan,
    config: SimConfig,
    eval_config: EvalConfig = EvalConfig(),
) -> dict[str, Any]:
    """The ``plan.validation`` record: the verdict, the plan hash it holds for, and how it was simulated."""
    import pybullet

    metrics = {
        k: v for k, v in result.to_dict().items() if k not in ("success", "cause", "reason", "judged_by")
    }
    return json.loads(
        json.dumps(
            {
                "success": result.success,
                "cause": result.cause,
                "reason": result.reason,
                "judged_by": result.judged_by,
                "plan_sha256": plan.content_hash(),
                "goal_flow_sha256": result.flow_sha256,
                "simulator": "pybullet",
                "pybullet_api_version": int(pybullet.getAPIVersion()),
                "physics_hz": config.physics_hz * config.substeps,
                "control_hz": config.physics_hz,
                "sim_config": asdict(config),
                "eval_config": asdict(eval_config),
                "metrics": metrics,
            }
        )
    )


def with_verdict(
    plan: Plan,
    result: SimResult,
    config: SimConfig,
    eval_config: EvalConfig = EvalConfig(),
) -> Plan:
    """A copy of ``plan`` carrying the verdict in ``validation`` (its content hash is unchanged)."""
    return dataclasses.replace(plan, validation=verdict(result, plan, config, eval_config))
