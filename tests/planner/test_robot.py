"""Kinematics of the default Franka Panda: FK against PyBullet, Jacobian against finite differences, IK accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ChordError
from core.robots import ROBOTS
from planner.robot import Robot, RobotConfig, pose_error


@pytest.fixture(scope="module")
def robot() -> Robot:
    return Robot()


def test_panda_model(robot):
    assert robot.dof == 7
    assert robot.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8))
    np.testing.assert_allclose(robot.lower[3], -3.1416)
    assert robot.upper[3] == 0.0
    np.testing.assert_allclose(robot.velocity_limits, [2.175] * 4 + [2.61] * 3)
    # The TCP (panda_grasptarget) sits 0.105 m beyond panda_hand along the hand's z axis.
    hand = robot.model.getFrameId("panda_hand")
    q = robot.seed
    T_tcp = robot.fk(q)
    T_hand, _ = robot.jacobian(q, hand)
    np.testing.assert_allclose(
        np.linalg.inv(T_hand) @ T_tcp, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.105], [0, 0, 0, 1]], atol=1e-9
    )


def test_fk_matches_pybullet(robot):
    import pybullet as p

    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(robot.urdf), useFixedBase=True, physicsClientId=cid)
        names = [
            p.getJointInfo(body, i, physicsClientId=cid)[12].decode()
            for i in range(p.getNumJoints(body, physicsClientId=cid))
        ]
        link = names.index("panda_grasptarget")
        rng = np.random.default_rng(0)
        worst_p = worst_r = 0.0
        for _ in range(50):
            q = rng.uniform(robot.lower, robot.upper)
            for j in range(7):
                p.resetJointState(body, j, q[j], physicsClientId=cid)
            state = p.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=cid)
            R_pb = np.array(p.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            T = robot.fk(q)
            worst_p = max(worst_p, float(np.abs(np.array(state[4]) - T[:3, 3]).max()))
            worst_r = max(worst_r, float(np.abs(R_pb - T[:3, :3]).max()))
    finally:
        p.disconnect(cid)
    assert worst_p < 1e-6, worst_p
    assert worst_r < 1e-6, worst_r


def test_jacobian_matches_finite_differences(robot):
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.uniform(robot.lower + 0.1, robot.upper - 0.1)
        T, J = robot.jacobian(q)
        h = 1e-6
        Jn = np.empty((6, 7))
        for j in range(7):
            dq = np.zeros(7)
            dq[j] = h
            Tp = robot.fk(q + dq)
            # pose_error(T, p*, R*) = (p* - p, log(R* R^T)): the world-frame twist from T to Tp.
            Jn[:, j] = pose_error(T, Tp[:3, 3], Tp[:3, :3]) / h
        np.testing.assert_allclose(J, Jn, atol=1e-5)


def test_ik_converges_on_random_reachable_poses(robot):
    rng = np.random.default_rng(2)
    errors = []
    for _ in range(100):
        q_true = rng.uniform(robot.lower, robot.upper)
        T = robot.fk(q_true)
        res = robot.ik(T, restarts=20, rng=rng)
        assert ((res.q >= robot.lower) & (res.q <= robot.upper)).all()
        T_got = robot.fk(res.q)
        errors.append(np.linalg.norm(T_got[:3, 3] - T[:3, 3]))
        e = pose_error(T_got, T[:3, 3], T[:3, :3])
        assert np.linalg.norm(e[3:]) < 1e-3
    assert max(errors) < 1e-3, max(errors)
    assert np.median(errors) < 1e-5


def test_ik_reports_unreachable_pose(robot):
    T = np.eye(4)
    T[:3, 3] = [2.0, 0.0, 0.5]  # 2 m away: the Panda reaches ~0.85 m
    res = robot.ik(T, restarts=2)
    assert not res.success
    assert res.position_error > 0.9


def test_bad_robot_config_errors(tmp_path):
    import dataclasses

    from core.robots import PANDA

    with pytest.raises(ChordError, match="tcp_frame"):
        Robot(dataclasses.replace(PANDA, tcp_frame="no_such_link"))
    with pytest.raises(ChordError, match="does not exist"):
        Robot(RobotConfig(urdf=str(tmp_path / "missing.urdf")))
    with pytest.raises(ChordError, match="accel_limits"):
        Robot(dataclasses.replace(PANDA, accel_limits=(1.0, 2.0)))
    with pytest.raises(ChordError, match="ready posture .* outside the joint limits at \\['panda_joint4'\\]"):
        Robot(dataclasses.replace(PANDA, ready=(0.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0)))
    with pytest.raises(ChordError, match="'panda_grasptarget' is not a link of xarm6"):  # not a Panda's URDF
        Robot(RobotConfig(urdf=str(ROBOTS["xarm6"].urdf_path())))
    with pytest.raises(ChordError, match="--robot takes a robot name"):
        RobotConfig(name="/arm.urdf")
    with pytest.raises(ChordError, match="not a known robot"):
        Robot(RobotConfig(name="kuka"))
