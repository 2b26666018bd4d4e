"""`chord plan` end to end: its flags (PlannerConfig through tyro), outputs and errors; import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chord.cli.main import main
from core.errors import ChordError
from core.plan import Plan
from core.record import PlanRecord, record_path
from core.scene import Camera, Pose, Scene, SceneObject
from planner import synthetic
from planner.api import PlanReport
from planner.config import PlannerConfig, RobotConfig


def test_planner_imports_without_torch():
    code = (
        "import sys, planner, planner.pipeline, chord.cli.plan, planner.synthetic, planner.analysis;"
        "import chord.cli.main; chord.cli.main.subcommands();"
        "bad = [m for m in ('torch', 'gsplat', 'diffusers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_chord_plan_writes_a_valid_plan(tmp_path, capsys):
    sf = synthetic.rigid_pick(n=1500, seed=3)
    flow_path = sf.flow.save(tmp_path / "flow.npz")
    import trimesh

    box_mesh = tmp_path / "box.obj"
    obstacle_mesh = tmp_path / "obstacle.obj"
    trimesh.creation.box(extents=(0.04, 0.04, 0.12)).export(box_mesh)
    trimesh.creation.box(extents=(0.1, 0.1, 0.05)).export(obstacle_mesh)
    cam = Camera.from_look_at((1.0, 0.0, 0.6), (0.5, 0.0, 0.05))
    scene = Scene(
        name="pick_box",
        prompt="pick up the box",
        objects=(
            SceneObject(name="box", pose=Pose((0.5, 0.0, 0.06)), mesh=box_mesh),
            SceneObject(name="obstacle", pose=Pose((0.5, 0.2, 0.025)), mesh=obstacle_mesh, movable=False),
        ),
        camera=cam,
    )
    scene_path = scene.save(tmp_path / "scene.yaml")
    out = tmp_path / "out" / "plan.npz"
    rrd = tmp_path / "plan.rrd"
    rc = main(
        ["plan", str(flow_path), "--scene", str(scene_path), "--out", str(out), "--velocity-scale", "0.3",
         "--rerun", str(rrd)]
    )  # fmt: skip
    assert rc == 0
    plan = Plan.load(out)
    assert plan.task == "pick up the box"
    assert plan.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8))
    qd = np.abs(np.diff(plan.q, axis=0) / np.diff(plan.t)[:, None])
    assert qd.max() <= 0.3 * 2.61 * 1.02
    assert plan.report["limits"]["velocity_scale"] == 0.3
    cfg = json.loads(out.with_suffix(".config.json").read_text())
    assert cfg["config"]["velocity_scale"] == 0.3
    printed = capsys.readouterr().out
    assert "grasp of 'box'" in printed and "antipodal" in printed
    # The printed summary is the plan's own report's summary line (what chord run reuses).
    assert printed.splitlines()[0] == PlanReport.from_plan(plan).summary(out)
    assert printed.splitlines()[0].startswith(f"{out}: grasp of 'box', {len(plan.t)} waypoints over ")
    # Default geometry "auto" with a scene: the scene's meshes, recorded as such.
    assert plan.report["grasp"]["geometry"] == "mesh"
    assert PlanRecord.load(record_path(out)).config["geometry"] == "mesh"
    # The default approach: 10 cm from the pre-grasp pose (t = 0) to the grasp (gripper closing).
    assert _approach_length(plan) == pytest.approx(0.10, abs=0.002)
    # The recording holds the scene, the flow's tracks and the EE path of every waypoint.
    from chord.viz.readback import read_recording

    entities = read_recording(rrd)
    assert {
        "/world/scene/box",
        "/world/flow/box/tracks",
        "/world/flow/obstacle/tracks",
        "/world/plan/ee_path",
    } <= set(entities)
    # chord check understands the plan it wrote.
    assert main(["check", str(out)]) == 0
    # The flow's own points as grasp geometry, despite the scene, are a flag away.
    flow_out = tmp_path / "flow" / "plan.npz"
    rc = main(
        ["plan", str(flow_path), "--scene", str(scene_path), "--out", str(flow_out), "--geometry", "flow"]
    )
    assert rc == 0
    assert json.loads(flow_out.with_suffix(".config.json").read_text())["config"]["geometry"] == "flow"
    assert Plan.load(flow_out).report["grasp"]["geometry"] == "flow"
    assert cfg["config"]["geometry"] == "mesh"


def test_chord_plan_reports_errors_in_one_line(tmp_path, capsys):
    sf = synthetic.rigid_pick(n=800, lift=0.0, yaw_deg=0.0)
    flow_path = sf.flow.save(tmp_path / "still.npz")
    rc = main(["plan", str(flow_path), "--out", str(tmp_path / "p.npz")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "chord plan: error: flow has no motion" in err
    assert not (tmp_path / "p.npz").exists()
    assert main(["plan", str(flow_path), "--velocity-scale", "1.5"]) == 1
    assert "chord plan: error: velocity_scale is 1.5, expected a fraction" in capsys.readouterr().err
    assert main(["plan", str(flow_path), "--accel-scale", "0"]) == 1
    assert "chord plan: error: accel_scale is 0.0, expected a fraction" in capsys.readouterr().err
    assert main(["plan", str(flow_path), "--geometry", "mesh"]) == 1
    assert 'error: geometry "mesh" carries the scene\'s meshes along the flow: it needs the scene' in (
        capsys.readouterr().err
    )
    assert not list(tmp_path.glob("*.config.json"))


def _approach_length(plan: Plan) -> float:
    """Metres the TCP travels in a straight line from the pre-grasp pose to the grasp."""
    close_start = plan.report["phases_s"]["close"][0]
    k = int(np.argmin(np.abs(plan.t - close_start)))
    return float(np.linalg.norm(plan.ee_pose[k, :3] - plan.ee_pose[0, :3]))


def test_nested_config_flags_reach_the_planner(tmp_path, capsys):
    sf = synthetic.rigid_pick(n=1500, seed=3)
    flow_path = sf.flow.save(tmp_path / "flow.npz")
    out = tmp_path / "plan.npz"
    rc = main(
        ["plan", str(flow_path), "--out", str(out), "--grasp.approach-distance", "0.06",
         "--grasp.friction", "0.5", "--segment.max-parts", "2"]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    record = PlanRecord.load(record_path(out))
    assert record.scene is None and record.flow == flow_path
    assert record.config["grasp"]["approach_distance"] == 0.06
    assert record.config["grasp"]["friction"] == 0.5
    assert record.config["segment"]["max_parts"] == 2
    # No scene: "auto" is the flow's own points.
    assert record.config["geometry"] == "flow"
    plan = Plan.load(out)
    assert plan.report["grasp"]["geometry"] == "flow"
    # The effect: the approach is 6 cm, not the default 10.
    assert _approach_length(plan) == pytest.approx(0.06, abs=0.002)


def test_the_older_flags_still_work(tmp_path, monkeypatch):
    import planner.api

    seen = {}

    def fake_plan_file(flow, scene, out, config, judge=None):
        seen.update(flow=flow, scene=scene, out=out, config=config, judge=judge)
        raise ChordError("stopped after parsing")

    monkeypatch.setattr(planner.api, "plan_file", fake_plan_file)
    rc = main(
        ["plan", "f.npz", "--scene", "s.yaml", "--out", "p.npz", "--robot", "xarm6", "--robot-urdf", "/arm.urdf",
         "--target-object", "box", "--base-pose", "0.1", "0.2", "0", "1", "0", "0", "0",
         "--velocity-scale", "0.3", "--accel-scale", "0.4", "--geometry", "flow"]
    )  # fmt: skip
    assert rc == 1
    assert (seen["flow"], seen["scene"], seen["out"]) == (Path("f.npz"), Path("s.yaml"), Path("p.npz"))
    assert seen["config"] == PlannerConfig(
        robot=RobotConfig(name="xarm6", urdf="/arm.urdf"),
        target_object="box",
        base_pose=(0.1, 0.2, 0.0, 1.0, 0.0, 0.0, 0.0),
        velocity_scale=0.3,
        accel_scale=0.4,
        geometry="flow",
    )
    # Without flags: PlannerConfig's defaults, nothing else.
    assert main(["plan", "f.npz"]) == 1
    assert seen["config"] == PlannerConfig() and seen["scene"] is None and seen["out"] == Path("plan.npz")


def test_a_bad_nested_grasp_value_is_one_line(tmp_path, capsys):
    # GraspConfig is built by tyro while parsing: its error must not become a usage box.
    sf = synthetic.rigid_pick(n=300, seed=3)
    flow_path = sf.flow.save(tmp_path / "flow.npz")
    rc = main(["plan", str(flow_path), "--out", str(tmp_path / "p.npz"), "--grasp.friction", "nan"])
    err = capsys.readouterr().err
    assert (
        rc != 0
        and err.strip() == "chord plan: error: GraspConfig.friction is nan, expected a coefficient > 0"
    )


def test_a_bad_nested_segment_value_is_one_line(tmp_path, capsys):
    # Likewise SegmentConfig (it was a ValueError: tyro's usage box).
    sf = synthetic.rigid_pick(n=300, seed=3)
    flow_path = sf.flow.save(tmp_path / "flow.npz")
    rc = main(["plan", str(flow_path), "--out", str(tmp_path / "p.npz"), "--segment.noise-factor", "nan"])
    err = capsys.readouterr().err
    assert rc != 0 and err.strip() == (
        "chord plan: error: SegmentConfig.noise_factor is nan, expected a multiple > 0 of the noise residual"
    )
    assert not (tmp_path / "p.npz").exists()
