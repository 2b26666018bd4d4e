"""The planner on the task scenes of assets (ground-truth flows of the seed's three tasks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.flow import ObjectFlow
from core.scene import Scene
from planner.pipeline import plan_flow
from planner.robot import Robot

tasks = pytest.importorskip("assets.tasks")


def _build(name, tmp_path, points=1500):
    scene_path = tasks.build_task(name, tmp_path / name, (64, 36), points)
    scene = Scene.load(scene_path)
    flow = ObjectFlow.load(scene.reference.flow)
    motion = json.loads((scene_path.parent / "reference" / "motion.json").read_text())
    return scene, flow, motion


def _limits_hold(plan, robot):
    assert (plan.q >= robot.lower).all() and (plan.q <= robot.upper).all()
    qd = np.abs(np.diff(plan.q, axis=0) / np.diff(plan.t)[:, None])
    assert (qd <= robot.velocity_limits).all()


def test_pick_banana_follows_the_reference_pose(tmp_path):
    scene, flow, motion = _build("pick_banana", tmp_path)
    robot = Robot()
    result = plan_flow(flow, scene, robot=robot)
    assert result.report["grasp"]["kind"] == "grasp"
    _limits_hold(result.plan, robot)
    # The grasp carried by the reference banana pose, frame by frame.
    P = np.array(motion["poses"]["banana"])
    f0, f1 = result.phases["follow"]
    T_grasp = result.T_world_ee[f0]
    truth = P @ np.linalg.inv(P[0]) @ T_grasp
    np.testing.assert_allclose(result.T_world_ee[f0:f1, :3, 3], truth[:, :3, 3], atol=1e-3)
    assert result.report["tracking"]["sampled_position_max_mm"] < 5.0


def test_close_laptop_finds_the_hinge_and_pushes(tmp_path):
    scene, flow, motion = _build("close_laptop", tmp_path)
    robot = Robot()
    result = plan_flow(flow, scene, robot=robot)
    joint = result.analysis.joint
    assert joint is not None and joint.kind == "revolute"
    yaw = math.radians(25.0)  # the laptop's yaw in the task
    hinge = np.array([-math.sin(yaw), math.cos(yaw), 0.0])  # object y axis in the world
    assert np.degrees(np.arccos(min(1.0, abs(float(joint.axis @ hinge))))) < 3.0
    true_range = np.degrees(np.ptp(motion["joints"]["laptop"]["hinge"]))
    assert np.degrees(np.ptp(joint.values)) == pytest.approx(true_range, abs=2.0)
    assert result.report["tracking"]["sampled_position_max_mm"] < 5.0
    _limits_hold(result.plan, robot)


def test_lower_lamp_moves_the_head_not_the_elbow(tmp_path):
    # The lamp's head tapers like a cone, and a push on it loads the elbow (its lever arm is
    # three times the head's), which then gives way first; the plan grasps the head's narrow end.
    # 3,000 points (~1,000 on the head): at 1,500 the normals of the narrow end are too rough for
    # its 19 deg taper to pass the 20 deg friction cone, and the planner falls back to the push.
    simulate = pytest.importorskip("sim.evaluate").simulate
    scene, flow, motion = _build("lower_lamp", tmp_path, points=3000)
    robot = Robot()
    result = plan_flow(flow, scene, robot=robot)
    assert result.report["grasp"]["kind"] == "grasp"
    _limits_hold(result.plan, robot)
    sim = simulate(result.plan, scene, flow)
    assert sim.success, sim.reason
    assert sim.joint_name == "head"
    truth = np.ptp(motion["joints"]["lamp"]["head"])  # 30 deg down
    assert sim.joint_value == pytest.approx(truth, abs=0.05)
    assert sim.joint_travel["elbow"] < 0.01 and sim.joint_travel["shoulder"] < 0.01
