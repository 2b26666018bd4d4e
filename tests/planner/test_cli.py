"""`chord plan` end to end, and the planner's import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from chord.cli.main import main
from core.plan import Plan
from core.scene import Camera, Pose, Scene, SceneObject
from planner import synthetic


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
    # The scene's meshes as grasp geometry (the bench's default) are a flag away.
    mesh_out = tmp_path / "mesh" / "plan.npz"
    rc = main(
        ["plan", str(flow_path), "--scene", str(scene_path), "--out", str(mesh_out), "--geometry", "mesh"]
    )
    assert rc == 0
    assert json.loads(mesh_out.with_suffix(".config.json").read_text())["config"]["geometry"] == "mesh"
    assert cfg["config"]["geometry"] == "flow"


def test_chord_plan_reports_errors_in_one_line(tmp_path, capsys):
    sf = synthetic.rigid_pick(n=800, lift=0.0, yaw_deg=0.0)
    flow_path = sf.flow.save(tmp_path / "still.npz")
    rc = main(["plan", str(flow_path), "--out", str(tmp_path / "p.npz")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "chord plan: error: flow has no motion" in err
    assert not (tmp_path / "p.npz").exists()
    assert main(["plan", str(flow_path), "--velocity-scale", "1.5"]) == 1
    assert "--velocity-scale is 1.5" in capsys.readouterr().err
    assert main(["plan", str(flow_path), "--geometry", "mesh"]) == 1
    assert (
        "--geometry mesh carries the scene's meshes along the flow: give --scene" in capsys.readouterr().err
    )
