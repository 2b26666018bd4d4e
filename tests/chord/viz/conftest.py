"""Small real inputs for the viz tests: a box scene, a synthetic flow, a Panda plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from core.plan import Plan
from core.scene import Camera, Pose, Scene, SceneObject
from core.transforms import matrix_to_quat
from planner.synthetic import rigid_pick

READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])
BASE_POSE = (-0.5, 0.1, 0.0, float(np.cos(0.15)), 0.0, 0.0, float(np.sin(0.15)))  # yawed 0.3 rad


@pytest.fixture(scope="session")
def pick():
    return rigid_pick(T=41, n=1200, seed=3)


@pytest.fixture(scope="session")
def panda_plan() -> Plan:
    """A min-jerk Panda move with EE poses from pinocchio (independent of chord.viz's own FK)."""
    from planner.robot import Robot, RobotConfig

    robot = Robot(RobotConfig())
    t = np.linspace(0.0, 2.0, 121)
    u = t / t[-1]
    s = 10 * u**3 - 15 * u**4 + 6 * u**5
    q = READY + s[:, None] * np.array([0.4, 0.2, -0.1, 0.3, 0.1, -0.2, 0.3])
    ee = np.empty((len(t), 7))
    for i, qi in enumerate(q):
        T = robot.fk(qi)
        ee[i, :3], ee[i, 3:] = T[:3, 3], matrix_to_quat(T[:3, :3])
    gripper = np.where(t < 1.0, 0.08, 0.03)
    return Plan(
        t=t, q=q, gripper=gripper, ee_pose=ee, robot=robot.name,
        joint_names=robot.joint_names, base_pose=BASE_POSE, task="test", flow_sha256="0" * 64,
        report={"phases_s": {"approach": [0.0, 1.0], "close": [1.0, 1.2]}, "grasp": {"kind": "grasp"}},
    )  # fmt: skip


@pytest.fixture
def run_dir(tmp_path: Path, pick, panda_plan) -> Path:
    """A run folder: scene.yaml (+ meshes), flow.npz, plan.npz, run.log, sim.json."""
    mesh_dir = tmp_path / "meshes"
    mesh_dir.mkdir()
    trimesh.creation.box(extents=(0.04, 0.04, 0.12)).export(mesh_dir / "box.obj")
    trimesh.creation.box(extents=(0.1, 0.1, 0.05)).export(mesh_dir / "obstacle.obj")
    scene = Scene(
        name="pick_box",
        prompt="pick the box",
        objects=(
            SceneObject("box", Pose((0.5, 0.0, 0.06)), mesh=mesh_dir / "box.obj"),
            SceneObject("obstacle", Pose((0.5, 0.2, 0.025)), mesh=mesh_dir / "obstacle.obj", movable=False),
        ),
        camera=Camera.from_look_at((1.2, 0.0, 0.6), (0.5, 0.0, 0.05), width=208, height=116),
    )
    scene.save(tmp_path / "scene.yaml")
    pick.flow.save(tmp_path / "flow.npz")
    panda_plan.save(tmp_path / "plan.npz")
    rng = np.random.default_rng(0)
    with (tmp_path / "run.log").open("w") as f:
        for it in range(0, 200, 10):
            f.write(json.dumps({"iteration": it, "loss": 2.0 * np.exp(-it / 50) + 0.01 * rng.random(),
                                "temporal": 0.1 / (1 + it), "lr_deform": 0.006 * 0.99**it}) + "\n")  # fmt: skip
        f.write('{"iteration": 20')  # torn last line of an interrupted run
    sim = {
        "success": True,
        "cause": None,
        "reason": "ok",
        "metrics": {"track_position_m": [0.001 * k for k in range(41)]},
    }
    (tmp_path / "sim.json").write_text(json.dumps(sim))
    return tmp_path
