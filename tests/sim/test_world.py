"""The simulated world: poses, overrides, the arm, and clear errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.linalg

from core.errors import ChordError
from core.robots import PANDA
from core.scene import Pose
from sim.goal import bind_goal, flow_goal
from sim.world import SimConfig, SimWorld
from tests.sim import scaffold as S


def test_object_pose_wxyz_round_trip_and_settle(tmp_path):
    scene = S.box_scene(tmp_path)
    yaw = math.radians(30)
    pose = Pose((0.5, 0.1, S.BOX[2] / 2), (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)))
    scene = scene.with_objects([dataclasses.replace(scene.objects[0], pose=pose)])
    with SimWorld(scene, SimConfig(), arm_joints=S.ARM_JOINTS) as w:
        T = w.object_pose("box")
        np.testing.assert_allclose(T, pose.matrix(), atol=1e-6)
        # Yawed 30 degrees about z (wxyz read as such): the box's x axis points at 30 degrees.
        assert math.degrees(math.atan2(T[1, 0], T[0, 0])) == pytest.approx(30.0, abs=1e-4)
        w.reset_arm(np.array(S.PANDA_READY), 0.08)
        w.step(240)
        np.testing.assert_allclose(w.object_pose("box")[:3, 3], pose.position, atol=1e-3)
        q, width = w.arm_state()
        np.testing.assert_allclose(q, S.PANDA_READY, atol=2e-3)  # position control holds against gravity
        assert width == pytest.approx(0.08, abs=1e-3)


def test_overrides_reach_pybullet(tmp_path):
    scene = S.box_scene(tmp_path)
    cfg = SimConfig(object_friction=0.3, mass_scale=2.0, finger_friction=0.9, physics_hz=480.0, substeps=1)
    with SimWorld(scene, cfg, arm_joints=S.ARM_JOINTS) as w:
        info = w.p.getDynamicsInfo(w.objects["box"].body, -1, physicsClientId=w.client)
        assert info[0] == pytest.approx(2 * S.BOX_MASS)
        assert info[1] == pytest.approx(0.3)
        finger = w.p.getDynamicsInfo(w.arm, w.finger_joints[0], physicsClientId=w.client)
        assert finger[1] == pytest.approx(0.9)
        params = w.p.getPhysicsEngineParameters(physicsClientId=w.client)
        assert params["fixedTimeStep"] == pytest.approx(1 / 480)
        assert w.arm_forces == [87.0] * 4 + [12.0] * 3


def test_base_pose_places_the_arm(tmp_path):
    scene = S.box_scene(tmp_path)
    base = (-0.3, 0.2, 0.0, math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))  # yaw 90 deg
    with SimWorld(scene, SimConfig(), base_pose=base, arm_joints=S.ARM_JOINTS) as w:
        T_base_tcp = w.fk(np.array(S.PANDA_READY))
        # The same joints give the same tool pose in the base frame wherever the base is.
        with SimWorld(scene, SimConfig(), arm_joints=S.ARM_JOINTS) as w0:
            np.testing.assert_allclose(T_base_tcp, w0.fk(np.array(S.PANDA_READY)), atol=1e-6)
        T_world_tcp = w.tcp_pose()
        expected = Pose(base[:3], base[3:]).matrix() @ T_base_tcp
        np.testing.assert_allclose(T_world_tcp, expected, atol=1e-6)


def test_errors_name_the_problem(tmp_path):
    scene = S.box_scene(tmp_path)
    no_urdf = scene.with_objects([dataclasses.replace(scene.objects[0], urdf=None)])
    with pytest.raises(ChordError, match="'box'.*no urdf"):
        SimWorld(no_urdf)
    with pytest.raises(ChordError, match="no joints.*panda_joint99"):
        SimWorld(scene, arm_joints=("panda_joint99",))
    with pytest.raises(ChordError, match="physics_hz"):
        SimConfig(physics_hz=100.0)
    with pytest.raises(ChordError, match="substeps"):
        SimConfig(substeps=0)


def test_articulated_goal_binds_to_the_hinge(tmp_path):
    from planner.synthetic import hinged_lid

    scene = S.lid_scene(tmp_path)
    flow = hinged_lid(T=21, n=1200, position=(0.45, 0.0)).flow
    goal = flow_goal(flow, scene)
    assert goal.articulated
    assert goal.joint_goal == pytest.approx(math.radians(85.0), abs=0.02)
    with SimWorld(scene, arm_joints=S.ARM_JOINTS) as w:
        b = bind_goal(w, goal)
        assert (b.joint_name, b.link_name) == ("hinge", "lid")
        # The flow's closing is a positive turn about -y; the URDF's hinge turns about +y.
        assert b.joint_sign == -1.0
        assert b.axis_angle_deg < 2.0
        # The URDF's lid matches the flow's first frame: its hinge joint axis passes through the flow's.
        axis, point, _ = w.joint_axis_world("laptop", "hinge")
        d = goal.joint.origin - point
        assert np.linalg.norm(d - (d @ axis) * axis) < 0.005


def test_joint_matching_tolerances_come_from_eval_config(tmp_path):
    from planner.synthetic import hinged_lid
    from sim.goal import FlowGoalError
    from sim.rules import EvalConfig

    scene = S.lid_scene(tmp_path)
    goal = flow_goal(hinged_lid(T=21, n=1200, position=(0.45, 0.0)).flow, scene)
    with SimWorld(scene, arm_joints=S.ARM_JOINTS) as w:
        b = bind_goal(w, goal, EvalConfig(joint_axis_tolerance_deg=1.0, joint_offset_tolerance=1e-4))
        assert b.joint_name == "hinge"  # the URDF's axis agrees to ~1e-5 deg and ~1e-7 m
        with pytest.raises(FlowGoalError, match=r"matches no joint.*tolerances 1e-07 deg, 50 mm"):
            bind_goal(w, goal, EvalConfig(joint_axis_tolerance_deg=1e-7))
        with pytest.raises(FlowGoalError, match=r"matches no joint.*tolerances 25.0 deg, 0 mm"):
            bind_goal(w, goal, EvalConfig(joint_offset_tolerance=1e-9))


def test_the_arm_yields_like_a_joint_impedance_controller(tmp_path):
    """20 N pushed on the tool for half a second: under the Franka's joint impedance (the default)
    the tool gives way by the force over the arm's stiffness (a fraction of a millimetre to a few
    at these gains) and springs back when released; PyBullet's position servo does not move at all
    (it is rigid up to the 87 Nm limit: the stiffness a grasp had to fight before)."""
    scene = S.box_scene(tmp_path)
    moved = {}
    for control in ("impedance", "position"):
        with SimWorld(scene, SimConfig(arm_control=control), arm_joints=S.ARM_JOINTS) as w:
            w.reset_arm(np.array(S.PANDA_READY), 0.08)
            w.step(120)
            q, _ = w.arm_state()
            np.testing.assert_allclose(q, S.PANDA_READY, atol=1e-3)  # gravity compensated: no sag
            T0 = w.tcp_pose()
            for _ in range(120):
                w.p.applyExternalForce(
                    w.arm,
                    w.tcp,
                    [20.0, 0.0, 0.0],
                    T0[:3, 3].tolist(),
                    w.p.WORLD_FRAME,
                    physicsClientId=w.client,
                )
                w.step()
            moved[control] = float(np.linalg.norm(w.tcp_pose()[:3, 3] - T0[:3, 3]))
            w.step(240)
            back = float(np.linalg.norm(w.tcp_pose()[:3, 3] - T0[:3, 3]))
            assert back < 1e-4
    assert 2e-4 < moved["impedance"] < 5e-3, moved
    assert moved["position"] < 2e-5, moved
    # The torques are the impedance law: at the target and at rest, gravity compensation only.
    with SimWorld(scene, SimConfig(), arm_joints=S.ARM_JOINTS) as w:
        w.reset_arm(np.array(S.PANDA_READY), 0.08)
        tau0 = w.impedance_torques()
        w.command(np.array(S.PANDA_READY) + 0.001, np.zeros(7), 0.08)
        dtau = w.impedance_torques() - tau0
        np.testing.assert_allclose(dtau, 0.001 * np.array(PANDA.joint_stiffness), rtol=1e-6)
        # Every mode critically damped, the light one too (joints 1 and 3 nearly aligned at
        # q2 = 0.17 rad turn against each other about ~165 rad/s): V^T D V = 2 diag(w).
        q = np.array([0.0, 0.17, 0.0, -2.4, 0.0, 2.57, 0.785])
        w.reset_arm(q, 0.08)
        pos = [s[0] for s in w.p.getJointStates(w.arm, w._dofs, physicsClientId=w.client)]
        M = np.array(w.p.calculateMassMatrix(w.arm, pos, physicsClientId=w.client))[:7, :7]
        w2, V = scipy.linalg.eigh(np.diag(PANDA.joint_stiffness), M)
        np.testing.assert_allclose(
            V.T @ w.impedance_damping() @ V, np.diag(2 * np.sqrt(w2)), atol=1e-6 * w2.max()
        )
        assert np.sqrt(w2.max()) > 2 * np.sqrt(
            np.max(np.array(PANDA.joint_stiffness) / np.diag(M))
        )  # a light mode
        # The step's damping is recomputed once a joint moved DAMPING_REFRESH_RAD, kept below that.
        from sim.world import DAMPING_REFRESH_RAD

        D0 = w._current_damping()
        np.testing.assert_array_equal(D0, w.impedance_damping())
        w.reset_arm(q + np.r_[0.0, 0.5 * DAMPING_REFRESH_RAD, 0.0, 0.0, 0.0, 0.0, 0.0], 0.08)
        assert w._current_damping() is D0
        far = q + np.r_[0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0]
        w.reset_arm(far, 0.08)
        D1 = w._current_damping()
        np.testing.assert_array_equal(D1, w.impedance_damping())
        assert np.abs(D1 - D0).max() > 1e-3 * np.abs(D0).max()  # the inertia changed with q2


def test_joint_stiffness_must_match_the_arm(tmp_path):
    scene = S.box_scene(tmp_path)
    with pytest.raises(ChordError, match="joint_stiffness has 3 values for 7 arm joints"):
        SimWorld(scene, SimConfig(joint_stiffness=(1.0, 2.0, 3.0)), arm_joints=S.ARM_JOINTS)


KNOB_URDF = """<?xml version="1.0"?>
<robot name="knob">
  <link name="base">
    <inertial><origin xyz="0 0 0.02"/><mass value="0.2"/>
      <inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1.6e-4"/></inertial>
    <collision><origin xyz="0 0 0.02"/><geometry><box size="0.08 0.08 0.04"/></geometry></collision>
  </link>
  <link name="knob">
    <inertial><origin xyz="0 0 0.02"/><mass value="{mass}"/>
      <inertia ixx="{izz}" ixy="0" ixz="0" iyy="{izz}" iyz="0" izz="{izz}"/></inertial>
    <collision><origin xyz="0 0 0.02"/><geometry><cylinder radius="{radius}" length="0.04"/></geometry></collision>
  </link>
  <joint name="turn" type="revolute">
    <parent link="base"/><child link="knob"/><origin xyz="0 0 0.041"/><axis xyz="0 0 1"/>
    <limit lower="-100" upper="100" effort="5" velocity="100"/>
    <dynamics damping="{damping}" friction="0.0"/>
  </joint>
</robot>
"""


def _knob_world(tmp_path, mass: float, radius: float, damping: float) -> SimWorld:
    """A 0.2 kg block with a cylinder (``radius`` m, 4 cm tall, ``mass`` kg) turning about z on top.
    PyBullet takes a loaded object's inertia from its collision box (the simulator loads objects
    without URDF_USE_INERTIA_FROM_FILE): about z, mass (2 radius)^2 / 6."""
    urdf = tmp_path / "knob.urdf"
    izz = mass * (2 * radius) ** 2 / 6
    urdf.write_text(KNOB_URDF.format(mass=mass, izz=izz, radius=radius, damping=damping))
    scene = S.box_scene(tmp_path)
    knob = dataclasses.replace(
        scene.objects[0], name="knob", urdf=urdf, pose=Pose((0.5, 0.0, 0.0), (1, 0, 0, 0))
    )
    return SimWorld(scene.with_objects([knob]), SimConfig(), arm_joints=S.ARM_JOINTS)


def test_joint_damping_of_a_light_part_is_stable(tmp_path):
    """A 0.05 N m s/rad damper on a knob of 3.3e-5 kg m^2 (time constant 0.7 ms, under the 2 ms
    solver step): PyBullet's explicit joint damping spun it up to its 100 rad/s cap in a second; the
    damping in the joint's motor stops it, and its base does not turn."""
    with _knob_world(tmp_path, mass=0.08, radius=0.025, damping=0.05) as w:
        ob = w.objects["knob"]
        j = ob.joints["turn"]
        assert ob.damped == {j: (0.0, 0.05)}
        w.step(120)  # settle on the table
        yaw0 = w.object_pose("knob")[:3, :3]
        w.p.resetJointState(ob.body, j, 0.0, targetVelocity=1.0, physicsClientId=w.client)
        w.step(240)
        speed = w.p.getJointState(ob.body, j, physicsClientId=w.client)[1]
        assert abs(speed) < 1e-3
        assert 0.0 < w.joint_values("knob")[0] < 0.01  # stopped within a few ms of travel
        R = yaw0.T @ w.object_pose("knob")[:3, :3]
        assert math.degrees(math.acos(min(1.0, (np.trace(R) - 1) / 2))) < 0.1


def test_joint_damping_of_a_heavy_part_is_viscous(tmp_path):
    """Where the part's inertia dwarfs damping x step (I = 0.01 kg m^2, I / c = 0.5 s), the motor gives
    the damper's exponential decay: speed exp(-c t / I) after t, within 5%."""
    with _knob_world(tmp_path, mass=1.5, radius=0.1, damping=0.02) as w:
        ob = w.objects["knob"]
        j = ob.joints["turn"]
        w.step(120)
        w.p.resetJointState(ob.body, j, 0.0, targetVelocity=0.2, physicsClientId=w.client)
        w.step(120)  # 0.5 s
        speed = w.p.getJointState(ob.body, j, physicsClientId=w.client)[1]
        assert speed == pytest.approx(0.2 * math.exp(-0.02 * 0.5 / 0.01), rel=0.05)


def test_the_fingers_move_together_as_the_franka_hands_linkage_makes_them(tmp_path):
    """One finger pushed shut with more than its motor's force: the Franka hand's fingers are driven
    together by one linkage, so the other closes with it (symmetric about the hand's centre);
    without the coupling (panda.urdf's two independent joints) the pushed finger alone gives way,
    as a squeezed part floated 6 mm off the hand's centre while a knob was turned."""
    scene = S.box_scene(tmp_path)
    gap = {}
    for coupling in (SimConfig().finger_coupling_force, 0.0):
        cfg = SimConfig(finger_force=5.0, finger_coupling_force=coupling)
        with SimWorld(scene, cfg, arm_joints=S.ARM_JOINTS) as w:
            w.reset_arm(np.array(S.PANDA_READY), 0.06)
            w.step(60)
            f1 = w.finger_joints[0]
            # finger 1 opens along its joint's axis: push it the other way (shut), 20 N > 5 N motor
            axis = np.array(w.p.getJointInfo(w.arm, f1, physicsClientId=w.client)[13])  # finger frame
            R = np.array(w.p.getMatrixFromQuaternion(
                w.p.getLinkState(w.arm, f1, physicsClientId=w.client)[5])).reshape(3, 3)  # fmt: skip
            push = (-20.0 * R @ axis).tolist()
            for _ in range(120):
                pos = w.p.getLinkState(w.arm, f1, physicsClientId=w.client)[0]
                w.p.applyExternalForce(w.arm, f1, push, pos, w.p.WORLD_FRAME, physicsClientId=w.client)
                w.step()
            q1, q2 = (s[0] for s in w.p.getJointStates(w.arm, w.finger_joints, physicsClientId=w.client))
            gap[coupling > 0] = (q1, q2)
    q1, q2 = gap[True]
    assert abs(q1 - q2) < 5e-4, gap  # coupled: symmetric
    assert q1 < 0.025, gap  # and the push did close the hand (from 0.03 each)
    q1, q2 = gap[False]
    assert q2 - q1 > 0.01, gap  # independent: finger 1 alone was pushed shut
