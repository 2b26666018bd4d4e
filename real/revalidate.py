"""Re-simulate a plan before an arm moves: the validation record in the plan file is never trusted.

A plan's ``validation`` is data in a file: anyone can edit it and recompute the public
``content_hash()``. So ``chord real`` runs the PyBullet validation again (``sim.evaluate.simulate``,
what ``chord sim`` runs) on the very ``Plan`` object it is about to stream, in the scene and against
the goal flow the user gives, and pre-flight refuses unless it succeeds (``Reason.SIM_FAILED``).
The flow must be one this plan belongs to: the flow it was planned from (``plan.flow_sha256``,
part of the plan's content hash) or the flow its record says it was judged against
(``validation.goal_flow_sha256``); success against an unrelated flow proves nothing
(``Reason.FLOW_MISMATCH``). The record is only used to accept that second hash: the simulation
here decides.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.errors import ChordError
from core.robots import RobotSpec
from real.preflight import CheckResult, Reason
from sim.rules import EvalConfig
from sim.world import SimConfig

log = logging.getLogger(__name__)


def revalidate(
    plan: Any,  # core.plan.Plan: the object that will be streamed, not a file
    scene_path: Path,  # scene spec (YAML) with a URDF for every object
    flow_path: Path,  # goal flow.npz: the plan's own flow, or the one it was judged against
    *,
    robot: RobotSpec
    | None = None,  # the arm (command line's --robot/--robot-urdf resolved); None: plan.robot
    config: SimConfig = SimConfig(),
    eval_config: EvalConfig = EvalConfig(),
) -> tuple[CheckResult, CheckResult]:
    """(``flow_mismatch``, ``sim_failed``) results for ``plan``; never raises on a bad plan or file.

    A file that cannot be read, a robot the simulator does not know, or a simulation that
    raises is a refusal ("cannot be run: ..."), not an exception: an arm never moves on a plan
    that could not be re-simulated.
    """
    from core.flow import ObjectFlow
    from core.scene import Scene
    from sim.evaluate import simulate

    try:
        scene = Scene.load(scene_path)
        flow = ObjectFlow.load(flow_path)
    except ChordError as e:
        msg = f"cannot be run: {e}"
        return CheckResult(Reason.FLOW_MISMATCH, False, msg), CheckResult(Reason.SIM_FAILED, False, msg)
    flow_hash = flow.content_hash()
    record = plan.validation if isinstance(plan.validation, dict) else {}
    judged = record.get("goal_flow_sha256")
    if flow_hash == plan.flow_sha256:
        flow_ok = CheckResult(
            Reason.FLOW_MISMATCH, True, f"flow {flow_hash[:12]} is the one the plan was made from"
        )
    elif isinstance(judged, str) and flow_hash == judged:
        flow_ok = CheckResult(
            Reason.FLOW_MISMATCH, True, f"flow {flow_hash[:12]} is the one the plan was judged against"
        )
    else:
        flow_ok = CheckResult(
            Reason.FLOW_MISMATCH,
            False,
            f"{flow_path} hashes to {flow_hash[:12]}, but the plan was made from flow {plan.flow_sha256[:12]}"
            + (f" and judged against {judged[:12]}" if isinstance(judged, str) else "")
            + ": give the plan's own flow (--flow)",
        )
        skipped = CheckResult(Reason.SIM_FAILED, None, "skipped: depends on flow_mismatch")
        return flow_ok, skipped
    try:
        result = simulate(plan, scene, flow, config, eval_config, robot=robot)
    except ChordError as e:
        return flow_ok, CheckResult(Reason.SIM_FAILED, False, f"cannot be run: {e}")
    except Exception as e:  # a simulator failure on a hostile plan must refuse, not crash the session
        log.exception("re-simulation raised")
        return flow_ok, CheckResult(Reason.SIM_FAILED, False, f"cannot be run: {type(e).__name__}: {e}")
    if not result.success:
        return flow_ok, CheckResult(
            Reason.SIM_FAILED,
            False,
            f"re-simulated here in PyBullet: FAILURE ({result.cause}): {result.reason}",
        )
    return flow_ok, CheckResult(Reason.SIM_FAILED, True, f"re-simulated here in PyBullet: {result.reason}")
