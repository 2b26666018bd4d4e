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
rests a millimetre away from the flow's first frame is not an error.
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
from core.scene import Scene
from core.transforms import pose_to_matrix
from sim.goal import FlowGoal, FlowGoalError, GoalBinding, bind_goal, flow_goal
from sim.rollout import Rollout, execute
from sim.world import SimConfig, SimWorld

log = logging.getLogger(__name__)

STAGES = ("flow", "IK", "grasp", "execution")


@dataclass(frozen=True)
class EvalConfig:
    """Success thresholds; units in each comment."""

    position_tolerance: float = 0.02  # m: final part position error (rigid goals)
    angle_tolerance_deg: float = 15.0  # degrees: final part orientation error (rigid goals)
    joint_tolerance_fraction: float = 0.10  # of the flow's joint range (articulated goals)
    slip_tolerance: float = 0.02  # m: the part may move this much relative to the tool while held
    ik_position_tolerance: float = 0.005  # m: FK(q) against the plan's own ee_pose
    ik_angle_tolerance_deg: float = 2.0  # degrees: likewise for orientation
    ik_limit_tolerance: float = 1e-3  # rad: plan joints beyond the URDF limits by more than this
    grasp_window: float = 0.15  # s: fingers must touch the part within this of the first frame


@dataclass(frozen=True)
class SimResult:
    """A ManiSkill-style evaluation: ``success``, the failing stage, and every quantity behind it."""

    success: bool
    cause: str | None  # None on success, else one of STAGES
    reason: str  # one line: what failed and by how much (or what succeeded)
    object_name: str | None = None  # the part's object
    part_link: str | None = None  # "base" or the URDF link playing the flow's part
    articulated: bool = False
    grasp_kind: str | None = None  # "grasp" or "push"
    # goal
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
    # tracking along the flow's frames
    track_position_mean_m: float | None = None
    track_position_max_m: float | None = None
    track_angle_mean_deg: float | None = None
    track_angle_max_deg: float | None = None
    track_position_m: list[float] | None = None  # [T] per flow frame
    # grasp and contacts
    grasped: bool | None = None  # both fingers on the part at the first frame (push: part touched)
    held_to_end: bool | None = None  # both fingers still on the part at the last frame
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
    whole) and, when the planning flow is known, its final pose of the part against the goal's.
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
    if d > config.position_tolerance or a > config.angle_tolerance_deg:
        return (
            f"the planning flow's final pose of the part is {1000 * d:.1f} mm / {a:.1f} deg from the goal flow's "
            f"(tolerance {1000 * config.position_tolerance:.0f} mm / {config.angle_tolerance_deg:.0f} deg)"
        )
    return None


def evaluate(
    plan: Plan,
    goal: FlowGoal,
    binding: GoalBinding,
    rollout: Rollout,
    kinematics: dict[str, float],
    T_world_tool: np.ndarray,  # [M, 4, 4] the plan's tool poses in the world
    config: EvalConfig = EvalConfig(),
    planned: FlowGoal | None = None,  # the goal of the flow the plan was made from, if known
) -> SimResult:
    """Success and its quantities for one rollout of ``plan`` against ``goal``."""
    ft, source = frame_times(plan, planned if planned is not None else goal, T_world_tool)
    idx = rollout.index_at(ft)
    name = binding.object_name
    if binding.link < 0:
        T_part = rollout.T_world_obj[name]
    else:
        col = rollout.link_names[name].index(binding.link_name)
        T_part = rollout.T_world_link[name][:, col]
    # Simulated motion of the part from the plan's start, compared with the flow's motion.
    M_sim = T_part @ np.linalg.inv(T_part[0])  # [S, 4, 4]
    c0 = np.append(goal.centroid0, 1.0)
    pos_err = np.linalg.norm((M_sim[idx] @ c0)[:, :3] - (goal.motion @ c0)[:, :3], axis=1)  # [T]
    ang_err = _angle_deg(M_sim[idx, :3, :3] @ goal.motion[:, :3, :3].swapaxes(-1, -2))  # [T]
    end_err = float(np.linalg.norm((M_sim[-1] @ c0)[:3] - (goal.motion[-1] @ c0)[:3]))

    kind = (plan.report.get("grasp") or {}).get("kind") if plan.report else None
    if kind not in ("grasp", "push"):
        kind = "grasp" if plan.gripper.min() < plan.gripper.max() - 0.005 else "push"
    slot = 0 if binding.link < 0 else rollout.link_names[name].index(binding.link_name) + 1
    fingers = rollout.finger_contact[name][:, :, slot]  # [S, 2]
    both = fingers.all(axis=1)
    win = np.abs(rollout.t - ft[0]) <= config.grasp_window
    follow = (rollout.t >= ft[0]) & (rollout.t <= ft[-1])
    if kind == "grasp":
        grasped = bool(both[win].any())
        held = bool(both[idx[-1]])
        T_tool_part = np.linalg.inv(rollout.T_world_tcp) @ T_part  # [S, 4, 4]
        rel = T_tool_part[follow] if follow.any() else T_tool_part[idx[:1]]
        slip = float(np.linalg.norm(rel[:, :3, 3] - T_tool_part[idx[0], :3, 3], axis=1).max())
    else:
        grasped = bool(rollout.arm_contact[name][follow | win, slot].any())
        held, slip = None, None

    planned_pos = planned_ang = None
    T_part_ee = (plan.report.get("grasp") or {}).get("T_part_ee") if plan.report else None
    if T_part_ee is not None and planned is not None and flow_mismatch(plan, goal, planned, config) is None:
        plan_i = np.clip(np.searchsorted(plan.t, ft), 0, len(plan.t) - 1)
        T_part_planned = T_world_tool[plan_i] @ np.linalg.inv(np.asarray(T_part_ee, dtype=float))
        planned_pos = float(
            np.linalg.norm(T_part_planned[:, :3, 3] - planned.T_world_part[:, :3, 3], axis=1).max()
        )
        planned_ang = float(
            _angle_deg(T_part_planned[:, :3, :3] @ planned.T_world_part[:, :3, :3].swapaxes(-1, -2)).max()
        )

    joint = {}
    if goal.articulated:
        q = rollout.joints[name][:, binding.joint_column]
        value = float(binding.joint_sign * (q[idx[-1]] - q[0]))
        tol = config.joint_tolerance_fraction * goal.joint_span
        joint = dict(
            joint_name=binding.joint_name,
            joint_value=value,
            joint_goal=goal.joint_goal,
            joint_error=abs(value - goal.joint_goal),
            joint_tolerance=tol,
        )
    # The part's parent (an articulated object's body) must end where the flow leaves it.
    if goal.articulated and goal.parent_motion is not None:
        T_parent = (
            rollout.T_world_obj[name]
            if binding.parent_link < 0
            else rollout.T_world_link[name][:, rollout.link_names[name].index(binding.parent_link_name)]
        )
        Mp = T_parent[idx[-1]] @ np.linalg.inv(T_parent[0])
        cp = np.append(goal.parent_centroid0, 1.0)
        joint["parent_position_error_m"] = float(
            np.linalg.norm((Mp @ cp)[:3] - (goal.parent_motion[-1] @ cp)[:3])
        )
        joint["parent_angle_error_deg"] = float(_angle_deg(Mp[:3, :3] @ goal.parent_motion[-1, :3, :3].T))
    # Every joint's travel over the rollout: a push that moves the wrong joint shows here.
    travel = {
        j: float(np.abs(rollout.joints[name][:, c] - rollout.joints[name][0, c]).max())
        for c, j in enumerate(rollout.joint_names.get(name, ()))
    }

    ik_pos, ik_ang = kinematics["fk_position_max"], kinematics["fk_angle_max"]
    ik_fault = None
    if ik_pos > config.ik_position_tolerance or ik_ang > config.ik_angle_tolerance_deg:
        ik_fault = (
            f"plan joints miss its own ee_pose by {1000 * ik_pos:.1f} mm / {ik_ang:.1f} deg "
            f"(tolerance {1000 * config.ik_position_tolerance:.1f} mm / {config.ik_angle_tolerance_deg} deg)"
        )
    elif kinematics["limit_excess"] > config.ik_limit_tolerance:
        ik_fault = f"plan joints exceed the URDF limits by {kinematics['limit_excess']:.4f} rad"

    # What the simulation shows, in the order things happen.
    physical = None
    if not grasped:
        what = "both fingers never closed on" if kind == "grasp" else "the arm never touched"
        physical = "grasp", f"{what} {name}/{binding.link_name} at the grasp (t = {ft[0]:.2f} s)"
    elif rollout.arm_table.any():
        first = float(rollout.t[np.argmax(rollout.arm_table)])
        physical = (
            "execution",
            f"arm links {list(rollout.arm_table_links)} hit the table at t = {first:.2f} s",
        )
    elif slip is not None and (slip > config.slip_tolerance or not held):
        physical = (
            "execution",
            (
                f"part dropped: it moved {1000 * slip:.1f} mm in the tool frame while held "
                f"(tolerance {1000 * config.slip_tolerance:.0f} mm), fingers on it at the last frame: {held}"
            ),
        )
    elif goal.articulated and joint["joint_error"] > joint["joint_tolerance"]:
        others = {j: round(v, 3) for j, v in travel.items() if j != binding.joint_name and v > 0.01}
        physical = (
            "execution",
            (
                f"joint {binding.joint_name} moved {joint['joint_value']:.3f}, flow's goal {joint['joint_goal']:.3f} "
                f"(error {joint['joint_error']:.3f} > tolerance {joint['joint_tolerance']:.3f})"
                + (f"; other joints moved instead: {others}" if others else "")
            ),
        )
    elif (
        goal.articulated
        and "parent_position_error_m" in joint
        and (
            joint["parent_position_error_m"] > config.position_tolerance
            or joint["parent_angle_error_deg"] > config.angle_tolerance_deg
        )
    ):
        physical = (
            "execution",
            (
                f"{name}/{binding.parent_link_name} (the part's parent) ends {1000 * joint['parent_position_error_m']:.1f} mm / "
                f"{joint['parent_angle_error_deg']:.1f} deg from where the flow leaves it (tolerance "
                f"{1000 * config.position_tolerance:.0f} mm / {config.angle_tolerance_deg:.0f} deg)"
            ),
        )
    elif not goal.articulated and (
        pos_err[-1] > config.position_tolerance or ang_err[-1] > config.angle_tolerance_deg
    ):
        physical = (
            "execution",
            (
                f"part ends {1000 * pos_err[-1]:.1f} mm / {ang_err[-1]:.1f} deg from the flow's final pose "
                f"(tolerance {1000 * config.position_tolerance:.0f} mm / {config.angle_tolerance_deg:.0f} deg)"
            ),
        )

    # A failure is blamed on the earliest stage whose output was already wrong.
    cause, reason = None, ""
    if ik_fault is not None:
        cause, reason = "IK", ik_fault
    elif physical is not None:
        flow_fault = flow_mismatch(plan, goal, planned, config)
        if flow_fault is not None:
            cause, reason = "flow", f"{flow_fault}; in simulation: {physical[1]}"
        elif planned_pos is not None and (
            planned_pos > config.position_tolerance or planned_ang > config.angle_tolerance_deg
        ):
            cause, reason = (
                "IK",
                (
                    f"the planned tool path carries the part off the flow's track by {1000 * planned_pos:.1f} mm / "
                    f"{planned_ang:.1f} deg (tolerance {1000 * config.position_tolerance:.0f} mm / "
                    f"{config.angle_tolerance_deg:.0f} deg); in simulation: {physical[1]}"
                ),
            )
        else:
            cause, reason = physical
    if cause is None:
        reason = (
            f"{name}/{binding.link_name} reached the flow's goal: {1000 * pos_err[-1]:.1f} mm, {ang_err[-1]:.1f} deg"
            + (f", joint error {joint['joint_error']:.3f}" if joint else "")
            + f"; mean tracking {1000 * pos_err.mean():.1f} mm"
        )

    return SimResult(
        success=cause is None,
        cause=cause,
        reason=reason,
        object_name=name,
        part_link=binding.link_name,
        articulated=goal.articulated,
        grasp_kind=kind,
        final_position_error_m=float(pos_err[-1]),
        final_angle_error_deg=float(ang_err[-1]),
        **joint,
        joint_travel=travel,
        track_position_mean_m=float(pos_err.mean()),
        track_position_max_m=float(pos_err.max()),
        track_angle_mean_deg=float(ang_err.mean()),
        track_angle_max_deg=float(ang_err.max()),
        track_position_m=[float(v) for v in pos_err],
        grasped=grasped,
        held_to_end=held,
        slip_m=slip,
        arm_table_contact=bool(rollout.arm_table.any()),
        arm_table_links=list(rollout.arm_table_links),
        plan_fk_position_max_m=ik_pos,
        plan_fk_angle_max_deg=ik_ang,
        plan_limit_violation_rad=kinematics["limit_excess"],
        planned_track_position_max_m=planned_pos,
        planned_track_angle_max_deg=planned_ang,
        arm_tracking_max_rad=float(np.abs(rollout.q - rollout.q_cmd).max()),
        end_position_error_m=end_err,
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
) -> SimResult:
    """Execute ``plan`` in PyBullet in ``scene`` and judge it against ``flow``'s goal.

    ``planning_flow`` (when the plan was made from another flow, e.g. a generated one judged
    against the reference) only assigns the blame of a failure: a planning flow whose motion
    differs from the goal's makes it a "flow" failure. A goal flow with no judgeable goal gives a
    result with cause "flow" (no rollout). Raises ChordError for a scene or plan the simulator
    cannot load.
    """
    config = SimConfig() if config is None else config
    flow_hash = flow.content_hash()
    if flow_hash != plan.flow_sha256:
        log.info(
            "judging against flow %s; the plan was made from flow %s", flow_hash[:12], plan.flow_sha256[:12]
        )
    try:
        goal = flow_goal(flow, scene)
    except FlowGoalError as e:
        return SimResult(False, "flow", str(e), plan_sha256=plan.content_hash(), flow_sha256=flow_hash)
    planned: FlowGoal | None = goal if flow_hash == plan.flow_sha256 else None
    if planning_flow is not None and planning_flow.content_hash() != flow_hash:
        try:
            planned = flow_goal(planning_flow, scene)
        except FlowGoalError as e:
            return SimResult(
                False, "flow", f"planning flow: {e}", plan_sha256=plan.content_hash(), flow_sha256=flow_hash
            )
    robot = plan.robot if Path(plan.robot).is_file() else None
    if robot is None and "panda" not in plan.robot.lower():
        raise ChordError(f"plan robot {plan.robot!r} is neither a URDF file nor the Franka Panda")
    with SimWorld(scene, config, robot, plan.base_pose, plan.joint_names, object_poses) as world:
        try:
            binding = bind_goal(world, goal)
        except FlowGoalError as e:
            return SimResult(
                False,
                "flow",
                str(e),
                object_name=goal.object_name,
                plan_sha256=plan.content_hash(),
                flow_sha256=flow_hash,
            )
        kin = plan_kinematics(world, plan)
        tool = _planned_tool(world, plan)
        rollout = execute(world, plan)
    result = evaluate(plan, goal, binding, rollout, kin, tool, eval_config, planned)
    result = dataclasses.replace(result, flow_sha256=flow_hash)
    log.info("sim: %s (%s)", "success" if result.success else f"failure at {result.cause}", result.reason)
    return result


def verdict(
    result: SimResult, plan: Plan, config: SimConfig, eval_config: EvalConfig = EvalConfig()
) -> dict[str, Any]:
    """The ``plan.validation`` record: the verdict, the plan hash it holds for, and how it was simulated."""
    import pybullet

    metrics = {k: v for k, v in result.to_dict().items() if k not in ("success", "cause", "reason")}
    return json.loads(
        json.dumps(
            {
                "success": result.success,
                "cause": result.cause,
                "reason": result.reason,
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
    plan: Plan, result: SimResult, config: SimConfig, eval_config: EvalConfig = EvalConfig()
) -> Plan:
    """A copy of ``plan`` carrying the verdict in ``validation`` (its content hash is unchanged)."""
    return dataclasses.replace(plan, validation=verdict(result, plan, config, eval_config))
