"""The planner's hook for choosing a grasp by trying it: the :class:`GraspJudge` protocol.

The planner ranks grasp (and push) candidates by geometry alone: friction-cone quality, approach,
joint-limit margin. Whether a grasp *holds* is a question of contact dynamics, which the planner
does not model (and, by the layer rule, may not ask the simulator about). So it takes a judge: a
callable that receives the reachable candidates, each with the timed joint trajectory the plan
would execute (approach, close, follow, open, retreat), tries them, and returns a
:class:`GraspVerdict` per candidate. ``sim.grasp_trial.SimGraspJudge`` is the one chord ships
(PyBullet: close with the real grasp force, follow the first part of the track, measure contact,
slip and tracking); tests use fakes.

The planner obeys the verdicts (``planner.pipeline._choose``): a candidate that does not hold is
never chosen when one that holds exists; among those that hold, the highest ``score`` wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from planner.grasp import GraspCandidate

if TYPE_CHECKING:
    from planner.analysis import FlowAnalysis
    from planner.robot import Robot


@dataclass(frozen=True)
class TrialCandidate:
    """One reachable candidate and the trajectory the plan would execute with it.

    Times are seconds from the trajectory's start; joints are the robot's ``joint_names`` order
    (rad, base frame); widths are the commanded finger opening (m). The trajectory is the IK path
    timed like the final plan (TOPP-RA under the scaled limits, with the gripper dwells), before
    the joint optimisation that smooths it.
    """

    rank: int  # 0-based position among the reachable candidates, in the planner's search order
    candidate: GraspCandidate  # the grasp or push, held rigid on the part (T_part_ee)
    planner_score: float  # the planner's own ranking score (geometry and joint-limit margin)
    t: np.ndarray  # [M] s
    q: np.ndarray  # [M, J] rad
    gripper: np.ndarray  # [M] m, commanded finger opening
    phase_times: dict[str, tuple[float, float]]  # approach, close, follow, open, retreat -> (start, end) s
    frame_times: np.ndarray  # [T] s, when the tool reaches each frame of the part's track
    T_world_ee: np.ndarray  # [K, 4, 4] the waypoint TCP targets (approach, follow, retreat), world


@dataclass(frozen=True)
class GraspVerdict:
    """A judge's answer for one candidate."""

    holds: bool  # the part stayed in the hand (push: followed the tool) through the trial
    # higher is better: compared among the candidates that hold, and, when none of any kind
    # holds, across grasps and pushes to find the least bad (so one scale for both kinds)
    score: float
    reason: str  # one line: what was measured
    metrics: dict[str, Any] = field(default_factory=dict)  # JSON-able numbers behind the verdict


class GraspJudge(Protocol):
    """Tries reachable candidates before the planner commits to one; one verdict per candidate.

    Called once per robot base placement and kind ("grasp" or "push") with at most
    ``GraspConfig.sim_candidates`` candidates. Must return ``len(candidates)`` verdicts in the
    same order, and be deterministic (the plan must not depend on the wall clock). May raise
    ChordError for a scene it cannot load; the planner then fails with that message.
    """

    def accepts(self, scene: Any) -> bool:
        """Whether it can try grasps in ``scene`` (core.scene.Scene); when not, the planner
        chooses by its own score, exactly as without a judge (e.g. the simulator needs every
        object's URDF)."""
        ...

    def __call__(
        self,
        scene: Any,  # core.scene.Scene the flow was made for
        analysis: FlowAnalysis,  # the flow's analysis: analysis.follow_track() is the part's track
        robot: Robot,  # the planner's robot model (URDF, joint names and order)
        T_world_base: np.ndarray,  # [4, 4] the robot base placement being planned for
        candidates: list[TrialCandidate],
    ) -> list[GraspVerdict]: ...


def pick(verdicts: list[GraspVerdict]) -> int | None:
    """Index of the best verdict that holds (highest score, the earliest on ties), or None if none holds."""
    held = [i for i, v in enumerate(verdicts) if v.holds and np.isfinite(v.score)]
    if not held:
        return None
    return max(held, key=lambda i: (verdicts[i].score, -i))
