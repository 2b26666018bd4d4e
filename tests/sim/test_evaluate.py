"""Plans judged in PyBullet: a known-good plan succeeds, broken plans fail at the right stage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.plan import Plan
from core.transforms import matrix_to_quat
from planner.synthetic import hinged_lid
from sim.evaluate import EvalConfig, flow_mismatch, simulate, with_verdict
from sim.goal import flow_goal
from sim.world import SimConfig, SimWorld
from tests.sim import scaffold as S


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("box")
    scene = S.box_scene(folder)
    flow = S.lift_flow()
    return scene, flow, S.ik_plan(flow)


def test_known_good_plan_succeeds(setup):
    scene, flow, plan = setup
    r = simulate(plan, scene, flow)
    assert r.success, r.reason
    assert r.cause is None
    assert r.grasp_kind == "grasp" and r.grasped and r.held_to_end
    assert r.final_position_error_m < 0.005
    assert r.final_angle_error_deg < 2.0
    assert r.track_position_max_m < 0.01  # the box follows the flow all the way, not only at the end
    assert r.slip_m < 0.005
    assert not r.arm_table_contact
    assert r.frame_times_source == "report"
    assert r.physics_hz == 480.0
    assert len(r.track_position_m) == flow.num_frames
    assert r.plan_fk_position_max_m < 1e-4


def test_plan_offset_5cm_fails_at_grasp(setup):
    scene, flow, _ = setup
    # A plan whose grasp is 5 cm beside the box: the tool goes where planned, the fingers close on air.
    r = simulate(S.ik_plan(flow, offset=(0.05, 0.0, 0.0)), scene, flow)
    assert not r.success
    assert r.cause == "grasp", r.reason
    assert r.grasped is False
    assert r.final_position_error_m > 0.1  # the box stayed on the table


def test_base_offset_5cm_fails_at_ik(setup):
    scene, flow, plan = setup
    # Same joints, base moved 5 cm: the planned tool path no longer carries the part along the flow.
    moved = dataclasses.replace(plan, base_pose=(0.05, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0))
    r = simulate(moved, scene, flow)
    assert not r.success
    assert r.cause == "IK", r.reason
    assert r.planned_track_position_max_m == pytest.approx(0.05, abs=0.002)


def test_inconsistent_ee_pose_fails_at_ik(setup):
    scene, flow, plan = setup
    ee = plan.ee_pose.copy()
    ee[:, 2] += 0.01  # the plan claims poses its joints do not reach
    bad = dataclasses.replace(plan, ee_pose=ee)
    r = simulate(bad, scene, flow)
    assert r.cause == "IK" and r.plan_fk_position_max_m == pytest.approx(0.01, abs=1e-4)


def test_slippery_heavy_box_is_dropped(setup):
    scene, flow, plan = setup
    # 1 kg at friction 0.05: two 70 N fingers hold 7 N < 9.8 N, so the lift leaves it behind.
    r = simulate(plan, scene, flow, SimConfig(object_friction=0.05, mass_scale=5.0))
    assert not r.success
    assert r.cause == "execution"
    assert r.grasped and r.slip_m > 0.05
    # The fingers let go of it: the verdict says when, not that it slipped "while held".
    assert r.held_to_end is False and r.contact_lost_s is not None
    assert r.frame_times_s[0] - 0.15 <= r.contact_lost_s <= r.frame_times_s[-1]
    assert "the fingers lost contact with it" in r.reason and "while held" not in r.reason


def test_tool_into_table_is_an_arm_table_collision(setup):
    scene, flow, _ = setup
    # Fingertips planned 3 cm below the table top, coupled fingers or not. (At 1.5 cm the outcome
    # hung on how the squeezed 6 cm box, taller than the fingers are long, was held under the palm:
    # with the same code and packages, coupled fingers stayed above the table on the machine that
    # wrote the test and reached it on an AMD EPYC.)
    deep = S.ik_plan(flow, grasp_depth=0.09)
    for cfg in (SimConfig(), SimConfig(finger_coupling_force=0.0)):
        r = simulate(deep, scene, flow, cfg)
        assert not r.success and r.cause == "execution", r.reason
        assert r.arm_table_contact
        assert any("finger" in link for link in r.arm_table_links)
        assert "hit the table" in r.reason


def test_static_flow_has_no_goal(setup):
    scene, flow, plan = setup
    still = dataclasses.replace(flow, points=np.broadcast_to(flow.points[:1], flow.points.shape).copy())
    r = simulate(plan, scene, still)
    assert not r.success and r.cause == "flow"
    assert "no goal" in r.reason


def test_fixed_seed_is_deterministic(setup):
    scene, flow, plan = setup
    cfg = SimConfig(object_friction=0.7, mass_scale=1.3)
    a = simulate(plan, scene, flow, cfg).to_dict()
    b = simulate(plan, scene, flow, cfg).to_dict()
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


def test_verdict_round_trip_keeps_hash(setup, tmp_path):
    scene, flow, plan = setup
    cfg = SimConfig()
    r = simulate(plan, scene, flow, cfg)
    judged = with_verdict(plan, r, cfg)
    path = judged.save(tmp_path / "plan.npz")
    back = Plan.load(path)
    assert back.content_hash() == plan.content_hash()
    v = back.validation
    assert v["success"] is True and v["cause"] is None
    assert v["plan_sha256"] == plan.content_hash()
    assert v["simulator"] == "pybullet" and v["physics_hz"] == 480.0
    assert v["metrics"]["final_position_error_m"] == pytest.approx(r.final_position_error_m)


def test_articulated_goal_untouched_lid_fails_with_joint_numbers(tmp_path):
    scene = S.lid_scene(tmp_path)
    flow = hinged_lid(T=21, n=1200, position=(0.45, 0.0)).flow
    # The arm holds its ready posture for 2 s: a push plan that never reaches the lid.
    q = np.array([S.PANDA_READY, S.PANDA_READY])
    with SimWorld(scene, arm_joints=S.ARM_JOINTS) as w:
        T = w.fk(q[0])
    pose = np.r_[T[:3, 3], matrix_to_quat(T[:3, :3])]
    idle = Plan(
        t=np.array([0.0, 2.0]), q=q, gripper=np.zeros(2), ee_pose=np.stack([pose, pose]),
        robot="panda", joint_names=S.ARM_JOINTS, base_pose=(0, 0, 0, 1, 0, 0, 0),
        task="close", flow_sha256=flow.content_hash(),
    )  # fmt: skip
    r = simulate(idle, scene, flow)
    assert r.articulated and r.part_link == "lid" and r.joint_name == "hinge"
    assert r.grasp_kind == "push"
    assert r.cause == "grasp" and not r.grasped
    assert abs(r.joint_value) < 0.02  # the lid stays open (held by its joint friction)
    assert r.joint_goal == pytest.approx(np.radians(85.0), abs=0.02)
    assert r.joint_tolerance == pytest.approx(0.1 * r.joint_goal, rel=1e-6)
    assert r.joint_error == pytest.approx(r.joint_goal, abs=0.02)
    assert r.parent_position_error_m < 0.005  # the base stays put, as in the flow
    assert set(r.joint_travel) == {"hinge"} and r.joint_travel["hinge"] < 0.02


def test_failures_are_blamed_on_a_wrong_flow(setup):
    scene, flow, _ = setup
    # Planned from a flow that lifts 5 cm; judged against the reference that lifts 12 cm.
    low = S.lift_flow(lift=0.05)
    r = simulate(S.ik_plan(low), scene, flow, planning_flow=low)
    assert not r.success and r.cause == "flow", r.reason
    assert "planning flow's final pose" in r.reason and "in simulation: part ends" in r.reason
    # A plan that carries out the planning flow faithfully is not an IK or execution failure.
    assert r.planned_track_position_max_m is None
    assert r.final_position_error_m == pytest.approx(0.07, abs=0.005)


def test_plan_analysis_disagreeing_with_goal_is_a_flow_failure(setup):
    scene, flow, plan = setup
    claims_joint = dataclasses.replace(
        plan, report={**plan.report, "analysis": {"target_object": "box", "joint": {"kind": "revolute"}}}
    )
    goal = flow_goal(flow, scene)
    msg = flow_mismatch(claims_joint, goal, goal, EvalConfig())
    assert msg is not None and "one rigid body" in msg
    assert flow_mismatch(plan, goal, goal, EvalConfig()) is None
    # It only assigns blame: the plan still succeeds in simulation.
    assert simulate(claims_joint, scene, flow).success


LOLLIPOP = """<?xml version="1.0"?>
<robot name="lollipop">
  <link name="base">
    <inertial><origin xyz="0 0 -0.02"/><mass value="0.2"/>
      <inertia ixx="1e-4" ixy="0" ixz="0" iyy="7e-4" iyz="0" izz="7e-4"/></inertial>
    <collision><origin xyz="0 0 -0.02"/><geometry><box size="0.2 0.02 0.02"/></geometry></collision>
    <collision><origin xyz="0.1 0 -0.01"/><geometry><sphere radius="0.02"/></geometry></collision>
  </link>
</robot>
"""


def test_spinning_friction_holds_a_ball_pinched_at_a_bars_end_level_without_it_the_bar_pivots(tmp_path):
    """A 20 cm bar with a ball at its end, the ball pinched (fingers closing horizontally) and lifted:
    each finger touches the ball at one point, and the bar's weight turns it about the closing line
    with 0.2 kg x 9.81 x 0.1 m = 0.2 N m. The fingers' spinning friction resists it: panda.urdf's
    0.1 m (the default, None) and a pad-sized 5 mm (2 x 0.005 x 0.5 x 70 N = 0.35 N m) hold the bar
    level; point contacts that spin freely (0) let it pivot down between the fingers."""
    scene = S.box_scene(tmp_path)
    urdf = tmp_path / "lollipop.urdf"
    urdf.write_text(LOLLIPOP)
    scene = scene.with_objects([dataclasses.replace(scene.objects[0], urdf=urdf)])
    flow = S.lift_flow()
    # The tool at the ball's centre: 10 cm along the bar, 2 cm above the table.
    plan = S.ik_plan(flow, offset=(0.1, 0.0, 0.0), grasp_depth=0.04)
    tilt = {}
    for spin in (None, 0.005, 0.002, 0.0):
        r = simulate(plan, scene, flow, SimConfig(finger_spinning_friction=spin))
        tilt[spin] = r.final_angle_error_deg
    assert SimConfig().finger_spinning_friction is None
    assert tilt[None] < 3.0 and tilt[0.005] < 3.0, tilt
    # 2 x 0.002 x 0.5 x 70 N = 0.14 N m is less than the bar's 0.2 N m: it turns, as with none.
    assert tilt[0.002] > 15.0 and tilt[0.0] > 15.0, tilt
