"""``chord plan``: object flow (+ scene) -> plan.npz, with the resolved config beside it.

The options are :class:`planner.config.PlannerConfig`'s fields (tyro): the top-level ones flat
(``--velocity-scale``, ``--geometry``, ...), the nested ones under their group
(``--grasp.friction``, ``--segment.noise-factor``, ``--robot.name`` alias ``--robot``,
``--robot.urdf`` alias ``--robot-urdf``). This module parses, calls
:func:`planner.api.plan_file` and prints (``PlanReport.summary``, the line ``chord run`` reuses).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import tyro

from core.names import check_output_file
from planner.config import PlannerConfig

if TYPE_CHECKING:
    from planner.api import PlanOutcome

log = logging.getLogger(__name__)


def plan(
    flow: tyro.conf.Positional[Path],
    scene: Path | None = None,
    out: Path = Path("plan.npz"),
    config: Annotated[PlannerConfig, tyro.conf.arg(name="")] = PlannerConfig(),
    rerun: Path | None = None,
    sim_grasp: bool = True,
) -> None:
    """Plan a robot trajectory from object flow: grasp (or push) the moving part, follow it, release.

    Reads FLOW (flow.npz) and optionally the scene it was made for (checked to match; gives the
    table height, which objects are movable and, with the default --geometry auto, the meshes
    whose surfaces the grasp and collision checks use); writes OUT (plan.npz, with the planner's
    report in its meta) and OUT with suffix .config.json (the config as planned).

    Example: chord plan runs/banana/flow.npz --scene scenes/pick_banana/scene.yaml --out runs/banana/plan.npz

    Args:
        flow: flow.npz to plan from.
        scene: scene spec (YAML) the flow was made for; checked against the flow.
        out: plan.npz to write.
        config: the planner's settings (planner.config.PlannerConfig; docs/planner.md).
        rerun: also write a rerun recording (.rrd) of the scene, the flow coloured by part and the plan.
        sim_grasp: choose the grasp by trying the best few reachable ones in PyBullet (close, follow
            the track; sim.grasp_trial) when the scene gives every object a
            URDF; --no-sim-grasp chooses by the planner's geometric score alone.
    """
    from planner.api import plan_file
    from sim.grasp_trial import SimGraspJudge

    # Outputs first: an unwritable --out fails now, not after the planning.
    check_output_file(out, "--out")
    if rerun is not None:
        check_output_file(rerun, "--rerun")
    # The judge tries grasps only in a scene whose objects all have URDFs (SimGraspJudge.accepts).
    outcome = plan_file(flow, scene, out, config, judge=SimGraspJudge() if sim_grasp else None)
    print(outcome.report.summary(outcome.plan_path))
    print(f"grasp: {outcome.report.grasp_reason}")
    if rerun is not None:
        _record(rerun, outcome)


def _record(path: Path, outcome: PlanOutcome) -> None:
    """The stage's rerun recording: scene meshes, flow tracks coloured by rigid part, the plan."""
    import numpy as np

    from chord.viz.flow import log_flow
    from chord.viz.plan import log_plan
    from chord.viz.record import open_recording
    from chord.viz.scene import log_scene

    f = outcome.flow
    parts = np.full(f.num_points, -1, dtype=np.int64)
    for seg in outcome.result.analysis.objects:
        parts[seg.indices] = seg.labels
    with open_recording(path) as rec:
        if outcome.scene is not None:
            log_scene(rec, outcome.scene)
        log_flow(rec, f, parts=parts)
        log_plan(rec, outcome.plan)
    print(f"rerun recording: {path}")
