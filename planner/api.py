"""The planner stage as one call: flow (+ scene) files in; plan.npz and its config record out.

:func:`plan_file` is what ``chord plan`` does, for any caller: load the flow and the scene, plan
(:func:`planner.pipeline.plan_flow`), write ``plan.npz`` and ``<plan>.config.json`` (a
:class:`core.record.PlanRecord`) atomically, and return a :class:`PlanOutcome` with the plan, its
headline numbers as a typed :class:`PlanReport`, the config as planned and the paths written.
The full report stays a dict in the plan's meta (``plan.report``), as before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import ContractError
from core.flow import ObjectFlow
from core.plan import Plan
from core.record import PlanRecord
from core.scene import Scene
from planner.config import PlannerConfig, config_dict
from planner.judge import GraspJudge
from planner.pipeline import PlanResult, for_robot, plan_flow
from planner.robot import Robot


@dataclass(frozen=True)
class PlanReport:
    """A plan's headline numbers: what ``chord plan`` prints and ``chord run`` summarises.

    Read from the report in the plan's meta (:meth:`from_plan`), so a plan loaded from a file
    gives the same values as the plan just made.
    """

    grasp_kind: str  # "grasp" (antipodal, fingers closed on the part) or "push" (closed fingertips)
    target_object: str  # scene object whose moving part the plan follows
    waypoints: int  # samples of the timed trajectory (len(plan.t))
    duration_s: float  # seconds, the whole plan (approach, close, follow, open, retreat)
    tracking_max_mm: float  # mm: TCP from the part's track, worst sample of the timed follow phase
    tracking_max_deg: float  # degrees: likewise for orientation
    joint_limit_margin_rad: float  # rad: smallest distance of any joint from its limits
    peak_speed_fraction: float  # largest joint speed as a fraction of its URDF velocity limit
    planning_time_s: float  # seconds of wall time the planner took
    grasp_reason: str  # why this grasp (or push) was chosen, in words
    geometry: str  # surfaces grasps and collisions used: "flow" (its points) or "mesh" (scene meshes)

    @classmethod
    def from_plan(cls, plan: Plan) -> PlanReport:
        """The headline numbers of ``plan.report``; raises ContractError if the report lacks one."""
        r = plan.report

        def get(*keys: str) -> Any:
            value: Any = r
            for k in keys:
                if not isinstance(value, dict) or k not in value:
                    raise ContractError(
                        "meta.report." + ".".join(keys), "missing: this plan has no planner report"
                    )
                value = value[k]
            return value

        return cls(
            grasp_kind=str(get("grasp", "kind")),
            target_object=str(get("analysis", "target_object")),
            waypoints=len(plan.t),
            duration_s=float(get("duration_s")),
            tracking_max_mm=float(get("tracking", "sampled_position_max_mm")),
            tracking_max_deg=float(get("tracking", "sampled_rotation_max_deg")),
            joint_limit_margin_rad=float(get("joint_limit_margin_rad")),
            peak_speed_fraction=float(get("peak_speed_fraction_of_limit")),
            planning_time_s=float(get("planning_time_s")),
            grasp_reason=str(get("grasp", "reason")),
            geometry=str(get("grasp", "geometry")),
        )

    def summary(self, out: str | Path) -> str:
        """One line on the plan written to ``out``: what it grasps, how long, how well, how fast.

        ``chord plan`` prints it and ``chord run`` summarises with it (here, not in chord.cli,
        because library modules such as chord.run may not import a CLI module).
        """
        return (
            f"{out}: {self.grasp_kind} of {self.target_object!r}, {self.waypoints} waypoints over "
            f"{self.duration_s:.2f} s; tracking {self.tracking_max_mm:.2f} mm / "
            f"{self.tracking_max_deg:.2f} deg max, joint-limit margin {self.joint_limit_margin_rad:.3f} rad, "
            f"peak speed {100 * self.peak_speed_fraction:.0f}% of limit; planned in "
            f"{self.planning_time_s:.2f} s on {self.geometry} geometry"
        )


@dataclass(frozen=True)
class PlanOutcome:
    """What :func:`plan_file` made and wrote."""

    plan: Plan  # the plan written to plan_path
    report: PlanReport  # its headline numbers (the full report: plan.report)
    config: PlannerConfig  # the config as planned ("auto" geometry resolved), as recorded
    plan_path: Path  # plan.npz written
    config_path: Path  # <plan>.config.json written (core.record.PlanRecord)
    result: PlanResult  # the planner's intermediate results (flow analysis, grasp, waypoints)
    flow: ObjectFlow  # the flow planned from
    scene: Scene | None  # the scene it was checked against, if one was given


def plan_file(
    flow_path: str | Path,
    scene_path: str | Path | None = None,
    out: str | Path = "plan.npz",
    config: PlannerConfig = PlannerConfig(),
    robot: Robot | None = None,  # a Robot built from config.robot, to reuse one across calls
    judge: GraspJudge | None = None,  # tries grasp candidates before one is chosen (needs the scene)
) -> PlanOutcome:
    """Plan from a flow file (and the scene it was made for); write the plan and its config record.

    Writes ``out`` (plan.npz, the full report in its meta) and, beside it, ``<out>.config.json``
    (``core.record.PlanRecord``: the config as planned, with ``geometry`` "auto" resolved to the
    surfaces chosen, and the flow and scene paths as given), each atomically. Raises
    ContractError for an unreadable flow or scene, and ChordError for everything
    :func:`planner.pipeline.plan_flow` refuses; nothing is written then. ``judge``
    (planner.judge.GraspJudge, e.g. sim.grasp_trial.SimGraspJudge) chooses among the reachable
    grasps by trying them; None: by the planner's score alone.
    """
    flow = ObjectFlow.load(flow_path)
    scene = None if scene_path is None else Scene.load(scene_path)
    robot = Robot(config.robot) if robot is None else robot
    # as planned and recorded: "auto" geometry resolved, the robot's gripper filled in
    planned = for_robot(replace(config, geometry=config.geometry_for(scene is not None)), robot)
    result = plan_flow(flow, scene, planned, robot, judge)
    plan_path = result.plan.save(out)
    record = PlanRecord(
        config=config_dict(planned),
        flow=Path(flow_path),
        scene=None if scene_path is None else Path(scene_path),
    )
    config_path = record.save(plan_path)
    return PlanOutcome(
        plan=result.plan,
        report=PlanReport.from_plan(result.plan),
        config=planned,
        plan_path=plan_path,
        config_path=config_path,
        result=result,
        flow=flow,
        scene=scene,
    )
