"""The sim stage as one call: validate a plan file against a flow's goal in PyBullet (``chord sim``)."""

from __future__ import annotations

import json
from pathlib import Path

from core.atomic import write_text_atomic
from core.errors import ChordError
from core.flow import ObjectFlow
from core.plan import Plan
from core.scene import Scene
from core.truth import Truth
from sim.evaluate import SimResult, simulate, verdict, with_verdict
from sim.rules import EvalConfig
from sim.world import SimConfig


def goal_flow_path(scene: Scene, scene_path: Path, goal_flow: Path | None) -> Path:
    """``goal_flow`` if given, else the scene's reference flow; raises ChordError if there is neither."""
    if goal_flow is not None:
        return Path(goal_flow)
    if scene.reference is None or scene.reference.flow is None:
        raise ChordError(
            f"{scene_path}: the scene has no reference flow (reference.flow); give the flow to judge "
            "against (chord sim --flow FLOW.npz)"
        )
    return Path(scene.reference.flow)


def scene_truth(scene: Scene) -> Truth | None:
    """The scene's recorded ground truth (``reference.truth``), or None when it names none.

    Raises ContractError for a truth file that is unreadable or not a ``chord.truth`` archive.
    """
    if scene.reference is None or scene.reference.truth is None:
        return None
    return Truth.load(scene.reference.truth)


def validate_plan(
    plan_path: Path,  # plan.npz to execute
    scene_path: Path,  # scene spec (YAML) with a URDF for every object
    goal_flow: Path | None = None,  # flow.npz whose goal judges the plan; None = the scene's reference flow
    planned_from: Path | None = None,  # flow.npz the plan was made from, when it is not goal_flow
    config: SimConfig = SimConfig(),
    eval_config: EvalConfig = EvalConfig(),
    write_verdict: bool = False,  # store the verdict in plan_path's meta.validation (atomically)
    out_json: Path | None = None,  # also write the verdict record (sim.evaluate.verdict) here, atomically
    robot_urdf: Path | None = None,  # the arm's URDF (the user's --robot-urdf); None: the entry's
    robot: str | None = None,  # the user's --robot (a name or YAML file); None: plan.robot by name
) -> SimResult:
    """Execute the plan in PyBullet in the scene and judge it against the scene's ground truth
    (``reference.truth``) when it has one, else against the goal flow's own goal
    (``SimResult.judged_by`` says which).

    ``planned_from`` only assigns the blame of a failure (a planning flow whose motion differs
    from the goal's makes it a "flow" failure). With ``write_verdict`` the plan file gets the
    verdict in ``meta.validation`` (its content hash is unchanged); ``out_json`` gets the same
    record. A failed plan is a result with ``success`` False, not an exception.

    The arm is the robot ``plan.robot`` names in the robot registry (core.robots), or the one
    ``robot`` describes (it must be the plan's), with ``robot_urdf`` as its URDF if given; a plan
    file never names a file to load.

    Raises ChordError (ContractError) for an unreadable plan, scene or flow, a scene without a
    reference flow when ``goal_flow`` is None, a plan robot that is not a registered name (and no
    ``robot`` describing it), or a scene or plan the simulator cannot load.
    """
    plan = Plan.load(plan_path)
    scene = Scene.load(scene_path)
    flow = ObjectFlow.load(goal_flow_path(scene, Path(scene_path), goal_flow))
    planning = ObjectFlow.load(planned_from) if planned_from is not None else None
    truth = scene_truth(scene)
    result = simulate(
        plan,
        scene,
        flow,
        config,
        eval_config,
        planning_flow=planning,
        robot_urdf=robot_urdf,
        truth=truth,
        robot=robot,
    )
    if out_json is not None:
        record = verdict(result, plan, config, eval_config)
        write_text_atomic(Path(out_json), json.dumps(record, indent=2) + "\n")
    if write_verdict:
        with_verdict(plan, result, config, eval_config).save(plan_path)
    return result
