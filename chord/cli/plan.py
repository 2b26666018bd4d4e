"""``chord plan``: object flow (+ scene) -> plan.npz, with the resolved config beside it."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Literal

import tyro

log = logging.getLogger(__name__)


def plan(
    flow: tyro.conf.Positional[Path],
    scene: Path | None = None,
    out: Path = Path("plan.npz"),
    robot: str = "",
    tcp_frame: str = "panda_grasptarget",
    target_object: str = "",
    base_pose: tuple[float, float, float, float, float, float, float] | None = None,
    velocity_scale: float = 0.5,
    accel_scale: float = 0.5,
    geometry: Literal["flow", "mesh"] = "flow",
    rerun: Path | None = None,
) -> None:
    """Plan a robot trajectory from object flow: grasp (or push) the moving part, follow it, release.

    Reads FLOW (flow.npz) and optionally the scene it was made for (checked to match; gives the
    table height and which objects are movable); writes OUT (plan.npz, with the planner's report
    in its meta) and OUT with suffix .config.json (the resolved planner config).

    For example: chord plan runs/banana/flow.npz --scene scenes/pick_banana/scene.yaml --out runs/banana/plan.npz

    Args:
        flow: flow.npz to plan from.
        scene: scene spec (YAML) the flow was made for; checked against the flow.
        out: plan.npz to write.
        robot: URDF path of the arm; "" = Franka Panda from pybullet_data.
        tcp_frame: URDF link between the fingertips (the grasp point).
        target_object: object to manipulate; "" = the movable one whose part moves most.
        base_pose: robot base in the world, xyz (m) + quaternion wxyz; default: placed
            automatically 0.5 m from the moving part, facing it (recorded in the plan).
        velocity_scale: fraction of the URDF joint velocity limits the plan may use.
        accel_scale: fraction of the joint acceleration limits the plan may use.
        geometry: grasp and collision surfaces: "flow" (the flow's own points) or "mesh" (the scene's
            meshes carried by the flow's fitted parts; needs --scene; `chord bench`'s default).
        rerun: also write a rerun recording (.rrd) of the scene, the flow coloured by part and the plan.
    """
    from core.atomic import write_text_atomic
    from core.errors import ChordError
    from core.flow import ObjectFlow
    from planner.pipeline import PlannerConfig, config_dict, plan_flow
    from planner.robot import RobotConfig

    for name, v in (("velocity_scale", velocity_scale), ("accel_scale", accel_scale)):
        if not 0.0 < v <= 1.0:
            raise ChordError(f"--{name.replace('_', '-')} is {v}, expected a fraction in (0, 1]")
    f = ObjectFlow.load(flow)
    sc = None
    if scene is not None:
        from core.scene import Scene

        sc = Scene.load(scene)
    cfg = PlannerConfig(
        robot=replace(RobotConfig(), urdf=robot, tcp_frame=tcp_frame),
        base_pose=None if base_pose is None else tuple(base_pose),
        target_object=target_object,
        velocity_scale=velocity_scale,
        accel_scale=accel_scale,
        geometry=geometry,
    )
    if geometry == "mesh" and sc is None:
        raise ChordError("--geometry mesh carries the scene's meshes along the flow: give --scene SCENE")
    result = plan_flow(f, sc, cfg)
    result.plan.save(out)
    config_path = out.with_suffix(".config.json")
    doc = {"config": config_dict(cfg), "flow": str(flow), "scene": None if scene is None else str(scene)}
    write_text_atomic(config_path, json.dumps(doc, indent=2) + "\n")
    r = result.report
    print(
        f"{out}: {r['grasp']['kind']} of {r['analysis']['target_object']!r}, {len(result.plan.t)} waypoints "
        f"over {r['duration_s']:.2f} s; tracking {r['tracking']['sampled_position_max_mm']:.2f} mm / "
        f"{r['tracking']['sampled_rotation_max_deg']:.2f} deg max, joint-limit margin "
        f"{r['joint_limit_margin_rad']:.3f} rad, peak speed {100 * r['peak_speed_fraction_of_limit']:.0f}% "
        f"of limit; planned in {r['planning_time_s']:.2f} s"
    )
    print(f"grasp: {r['grasp']['reason']}")
    if rerun is not None:
        _record(rerun, sc, f, result)


def _record(path: Path, sc, f, result) -> None:
    """The stage's rerun recording: scene meshes, flow tracks coloured by rigid part, the plan."""
    import numpy as np

    from chord.viz.flow import log_flow
    from chord.viz.plan import log_plan
    from chord.viz.record import open_recording
    from chord.viz.scene import log_scene

    parts = np.full(f.num_points, -1, dtype=np.int64)
    for seg in result.analysis.objects:
        parts[seg.indices] = seg.labels
    with open_recording(path) as rec:
        if sc is not None:
            log_scene(rec, sc)
        log_flow(rec, f, parts=parts)
        log_plan(rec, result.plan)
    print(f"rerun recording: {path}")
