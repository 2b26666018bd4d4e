"""The flow's own goal: which part moves, its SE(3) track, its joint, and where that is in the simulator.

The flow analysis itself (rigid parts, robust Kabsch tracks, joint fitting) is the planner's
(:func:`planner.analysis.analyse_flow`); this module matches its result to the simulated bodies:
the target object to a scene object, an articulated target part to the URDF joint whose axis
agrees with the fitted one, and that joint's child link to the part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from core.errors import ChordError
from core.flow import ObjectFlow
from core.scene import Scene
from core.truth import Truth
from planner.analysis import analyse_flow
from planner.articulation import Joint
from sim.rules import EvalConfig
from sim.world import SimWorld

log = logging.getLogger(__name__)


class FlowGoalError(ChordError):
    """The flow does not define a goal the simulator can judge (failure stage "flow")."""


@dataclass(frozen=True)
class FlowGoal:
    """What the flow asks of the manipulated part, in the world frame."""

    object_name: str  # the scene object the flow moves most
    times: np.ndarray  # [T] seconds, the flow's frame times
    motion: np.ndarray  # [T, 4, 4] M_t: world motion of the part from frame 0 (M_0 = I)
    T_world_part: np.ndarray  # [T, 4, 4] part frame (frame-0 centroid, world axes), as the planner's
    joint: Joint | None  # the part's joint to its parent (articulated), from the planner's fit
    parent_motion: np.ndarray | None  # [T, 4, 4] world motion of the joint's parent part (articulated)
    parent_centroid0: np.ndarray | None  # [3] world m, the parent part's centroid at frame 0
    analysis: dict  # the planner's analysis summary (JSON-able)

    @property
    def num_frames(self) -> int:
        return len(self.times)

    @property
    def centroid0(self) -> np.ndarray:
        """[3] world m, the part's centroid at frame 0 (where position errors are measured)."""
        return self.T_world_part[0, :3, 3]

    @property
    def articulated(self) -> bool:
        return self.joint is not None

    @property
    def joint_goal(self) -> float:
        """The joint value at the last frame, relative to frame 0 (rad or m)."""
        assert self.joint is not None
        return float(self.joint.values[-1])

    @property
    def joint_span(self) -> float:
        """The flow's range of the joint value, max - min (rad or m)."""
        assert self.joint is not None
        lo, hi = self.joint.range
        return hi - lo


def flow_goal(flow: ObjectFlow, scene: Scene) -> FlowGoal:
    """Analyse ``flow`` (planner's analysis) for the part to move among the scene's movable objects.

    Raises FlowGoalError if no movable scene object is in the flow or nothing in it moves.
    """
    movable = [o.name for o in scene.movable_objects if o.name in flow.object_names]
    if not movable:
        raise FlowGoalError(
            f"no movable scene object is in the flow: flow has {list(flow.object_names)}, scene movable "
            f"{[o.name for o in scene.movable_objects]}"
        )
    try:
        analysis = analyse_flow(flow, objects=movable)
    except ChordError as e:
        raise FlowGoalError(f"the flow defines no goal: {e}") from e
    part = analysis.target
    track = part.track
    parent = None
    if analysis.joint is not None:
        parent = analysis.objects[analysis.target_object].parts[analysis.joint.parent]
    return FlowGoal(
        object_name=part.object_name,
        times=flow.times.astype(np.float64),
        motion=track.motion,
        T_world_part=track.T_world_part,
        joint=analysis.joint,
        parent_motion=None if parent is None else parent.track.motion,
        parent_centroid0=None if parent is None else parent.track.T_world_part[0, :3, 3].copy(),
        analysis=analysis.summary(),
    )


@dataclass(frozen=True)
class GoalBinding:
    """The simulated body that plays the flow's part."""

    object_name: str
    link: int  # PyBullet link index of the part (-1 = the object's base)
    link_name: str  # "base" or the URDF child link name
    joint_name: str | None  # the URDF joint matched to the flow's joint (articulated)
    joint_column: int  # its column in Rollout.joints[object_name] (-1 if none)
    joint_sign: float  # +1 or -1: URDF joint value direction relative to the flow's
    axis_angle_deg: float  # angle between the URDF and flow axes (0 if none)
    parent_link: int = -1  # PyBullet link index of the joint's parent (-1 = the object's base)
    parent_link_name: str = "base"


def bind_goal(
    world: SimWorld,
    goal: FlowGoal,
    config: EvalConfig = EvalConfig(),
) -> GoalBinding:
    """Match the goal's part to a body (and joint) of the world, at the world's current state.

    A URDF joint of the same kind plays the flow's joint when their axes agree within
    ``config.joint_axis_tolerance_deg`` and (revolute) the flow's axis passes within
    ``config.joint_offset_tolerance`` of the URDF joint's; the closest such joint wins.

    Raises FlowGoalError if the object is not simulated, or the flow's joint matches no URDF joint
    (the flow moves the object in a way its model cannot).
    """
    if goal.object_name not in world.objects:
        raise FlowGoalError(
            f"flow object {goal.object_name!r} is not in the simulated scene {sorted(world.objects)}"
        )
    ob = world.objects[goal.object_name]
    if goal.joint is None:
        return GoalBinding(goal.object_name, -1, "base", None, -1, 1.0, 0.0)
    import pybullet as p

    want = p.JOINT_REVOLUTE if goal.joint.kind == "revolute" else p.JOINT_PRISMATIC
    best: tuple[float, str, float, float] | None = None
    seen = []
    for name in ob.joints:
        axis, point, kind = world.joint_axis_world(goal.object_name, name)
        cos = float(axis @ goal.joint.axis)
        angle = float(np.degrees(np.arccos(min(1.0, abs(cos)))))
        offset = 0.0
        if kind == p.JOINT_REVOLUTE:
            d = goal.joint.origin - point
            offset = float(np.linalg.norm(d - (d @ axis) * axis))
        seen.append(f"{name}: {angle:.0f} deg, {1000 * offset:.0f} mm")
        if kind != want or not (
            angle <= config.joint_axis_tolerance_deg and offset <= config.joint_offset_tolerance
        ):
            continue
        score = angle + 1000 * offset
        if best is None or score < best[0]:
            best = (score, name, 1.0 if cos >= 0 else -1.0, angle)
    if best is None:
        raise FlowGoalError(
            f"the flow's {goal.joint.kind} joint of {goal.object_name!r} (axis {np.round(goal.joint.axis, 3).tolist()}, "
            f"through {np.round(goal.joint.origin, 3).tolist()}) matches no joint of its URDF "
            f"({'; '.join(seen) or 'no movable joints'}); tolerances {config.joint_axis_tolerance_deg} deg, "
            f"{1000 * config.joint_offset_tolerance:.0f} mm"
        )
    _, name, sign, angle = best
    link = ob.joints[name]
    link_name = next(k for k, v in ob.links.items() if v == link)
    parent = int(world.p.getJointInfo(ob.body, link, physicsClientId=world.client)[16])
    parent_name = "base" if parent < 0 else next(k for k, v in ob.links.items() if v == parent)
    return GoalBinding(
        goal.object_name, link, link_name, name, list(ob.joints).index(name), sign, angle, parent, parent_name
    )


# -- the truth's goal: what a task's recorded ground truth asks (chord bench --suite, chord sim) ----


@dataclass(frozen=True)
class TruthGoal:
    """What the task's ground truth (core.truth) asks of the object it moves, in the world frame.

    The flow still says which part the plan holds and when each frame is reached; the truth alone
    says where the object ends: its base's final pose and, for a jointed object, every joint the
    truth moves at its final value. A plan judged against it cannot pass by agreeing with an
    analysis of the same flow it was planned from.
    """

    object_name: str  # the movable scene object the truth moves
    motion: np.ndarray  # [4, 4] world motion of the object's base from the truth's first frame to its last
    joints: dict[str, tuple[float, float]]  # moved joint -> (final value - first value, max - min), rad or m
    # every other scene object the truth records -> [4, 4] its base's motion, first frame to last
    # (the identity for a bystander the truth leaves where it is): knocking a distractor over fails
    others: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def articulated(self) -> bool:
        """Whether the truth moves a joint of the object (then its base must stay where the truth leaves it)."""
        return bool(self.joints)


def truth_goal(truth: Truth, scene: Scene, prefer: str | None = None) -> TruthGoal:
    """The goal the truth sets for the movable scene object it moves (``prefer`` if it moves several).

    An object "moves" when any of its recorded poses or joint values differs from its first
    frame's (the truth is written exactly, so a still object's rows are equal). Raises
    FlowGoalError (stage "flow": there is no goal to judge) when the truth moves no movable object
    of the scene.
    """
    movers = []
    for o in scene.movable_objects:
        if o.name not in truth.object_names:
            continue
        P = truth.pose_matrices(o.name)
        q = truth.joint_values(o.name)
        if np.any(P != P[0]) or any(np.any(v != v[0]) for v in q.values()):
            movers.append(o.name)
    if not movers:
        raise FlowGoalError(
            f"the ground truth moves none of the scene's movable objects "
            f"{[o.name for o in scene.movable_objects]} (truth objects {list(truth.object_names)})"
        )
    name = prefer if prefer in movers else movers[0]
    P = truth.pose_matrices(name)
    joints = {
        j: (float(v[-1] - v[0]), float(v.max() - v.min()))
        for j, v in truth.joint_values(name).items()
        if np.any(v != v[0])
    }
    others = {}
    for o in scene.objects:
        if o.name != name and o.name in truth.object_names:
            Q = truth.pose_matrices(o.name)
            others[o.name] = Q[-1] @ np.linalg.inv(Q[0])
    return TruthGoal(name, P[-1] @ np.linalg.inv(P[0]), joints, others)
