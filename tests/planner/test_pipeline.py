"""The whole planner on synthetic flows: the arm follows the true part motion within limits."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.errors import ChordError, ContractError
from core.plan import Plan
from core.scene import Camera, Pose, Scene, SceneObject
from core.transforms import pose_to_matrix
from planner import synthetic
from planner.geometry import flow_geometry
from planner.grasp import gripper_collisions
from planner.pipeline import PlannerConfig, plan_flow
from planner.robot import Robot


@pytest.fixture(scope="module")
def robot() -> Robot:
    return Robot()


def _true_tcp_path(sf, part, T_world_ee0, sub=20):
    """Dense world TCP poses [T*sub, 4, 4] of the grasp carried by the TRUE part motion."""
    M = sf.motions[part]
    out = []
    for t in range(len(M) - 1):
        rel = Rotation.from_matrix(M[t, :3, :3].T @ M[t + 1, :3, :3]).as_rotvec()
        for u in np.linspace(0, 1, sub, endpoint=False):
            Mi = np.eye(4)
            Mi[:3, :3] = M[t, :3, :3] @ Rotation.from_rotvec(u * rel).as_matrix()
            Mi[:3, 3] = (1 - u) * M[t, :3, 3] + u * M[t + 1, :3, 3]
            out.append(Mi @ T_world_ee0)
    out.append(M[-1] @ T_world_ee0)
    return np.array(out)


def _check_plan(result, sf, part, robot, config, target_tol=1e-3):
    plan = result.plan
    T_world_base = pose_to_matrix(np.array(plan.base_pose[:3]), np.array(plan.base_pose[3:]))
    T_ee = T_world_base @ pose_to_matrix(plan.ee_pose[:, :3], plan.ee_pose[:, 3:])  # world
    # ee_pose is the FK of q (base frame).
    for i in range(0, len(plan.q), 37):
        np.testing.assert_allclose(
            robot.fk(plan.q[i]), pose_to_matrix(plan.ee_pose[i, :3], plan.ee_pose[i, 3:]), atol=1e-9
        )

    # 1. The TCP follows the part's TRUE track within 5 mm / 2 deg, and reaches its goal.
    a, b = result.report["phases_s"]["follow"]
    follow = (plan.t >= a - 1e-9) & (plan.t <= b + 1e-9)
    true = _true_tcp_path(sf, part, result.T_world_ee[result.phases["follow"][0]])
    d = np.linalg.norm(T_ee[follow, None, :3, 3] - true[None, :, :3, 3], axis=-1)
    nearest = d.argmin(1)
    assert d.min(1).max() < 0.005, d.min(1).max()
    rot = Rotation.from_matrix(np.einsum("nji,njk->nik", true[nearest, :3, :3], T_ee[follow, :3, :3]))
    assert np.degrees(rot.magnitude()).max() < 2.0
    end = np.flatnonzero(follow)[-1]
    assert np.linalg.norm(T_ee[end, :3, 3] - true[-1, :3, 3]) < 0.005
    # Every flow frame's waypoint target matches the true motion (1 mm on clean flow).
    f0, f1 = result.phases["follow"]
    M = sf.motions[part]
    targets = result.T_world_ee[f0:f1]
    np.testing.assert_allclose(targets[:, :3, 3], (M @ targets[0])[:, :3, 3], atol=target_tol)

    # 2. Joint limits hold everywhere, with the reported margin.
    assert (plan.q >= robot.lower).all() and (plan.q <= robot.upper).all()
    margin = np.minimum(plan.q - robot.lower, robot.upper - plan.q).min()
    assert margin == pytest.approx(result.report["joint_limit_margin_rad"])
    assert margin > 0.0

    # 3. Speed and acceleration limits hold (scaled limits, so the hardware ones with margin).
    qd = np.diff(plan.q, axis=0) / np.diff(plan.t)[:, None]
    assert (np.abs(qd) <= config.velocity_scale * robot.velocity_limits * 1.02).all()
    dt = np.diff(plan.t)
    qdd = np.diff(qd, axis=0) / (0.5 * (dt[1:] + dt[:-1]))[:, None]
    assert (np.abs(qdd) <= config.accel_scale * robot.accel_limits * 1.05).all()
    # Starts and ends at rest: the first and last intervals only hold what one step of
    # admissible acceleration adds.
    a_max = config.accel_scale * robot.accel_limits
    assert (np.abs(qd[0]) <= a_max * dt[0] * 1.05).all() and (np.abs(qd[-1]) <= a_max * dt[-1] * 1.05).all()
    # Continuity: no jumps between samples.
    assert np.abs(np.diff(plan.q, axis=0)).max() < 0.05
    return plan


def test_rigid_pick_follows_the_true_track(tmp_path, robot):
    sf = synthetic.rigid_pick(n=2500, seed=0)
    base = np.r_[0.05, -0.05, 0.0, Rotation.from_euler("z", 20, degrees=True).as_quat(scalar_first=True)]
    config = PlannerConfig(base_pose=tuple(base))
    result = plan_flow(sf.flow, None, config, robot)
    plan = _check_plan(result, sf, "box", robot, config)
    r = result.report
    assert r["grasp"]["kind"] == "grasp"
    assert r["grasp"]["width_mm"] == pytest.approx(40, abs=3)  # across the 4 cm box
    assert "antipodal" in r["grasp"]["reason"]
    assert r["tracking"]["sampled_position_max_mm"] < 5
    # Gripper: open on approach, closed (below the part's width) while following, open after.
    a, b = r["phases_s"]["follow"]
    assert plan.gripper[0] > 0.04 and plan.gripper[-1] > 0.04
    assert (plan.gripper[(plan.t > a) & (plan.t < b)] < 0.04).all()
    # Round trip through the file contract.
    path = plan.save(tmp_path / "plan.npz")
    back = Plan.load(path)
    assert back.content_hash() == plan.content_hash()
    assert back.report["grasp"]["reason"] == r["grasp"]["reason"]
    assert back.flow_sha256 == sf.flow.content_hash()


def test_noisy_flow_with_outliers_still_tracks_the_true_motion(robot):
    # 5 mm per-axis noise and 10% outlier trajectories: the plan still follows the TRUE motion
    # within 5 mm (measured ~1 mm), because tracks and grasp geometry are fitted robustly.
    sf = synthetic.rigid_pick(n=2500, seed=1, noise=0.005, outliers=0.10)
    config = PlannerConfig()
    result = plan_flow(sf.flow, None, config, robot)
    _check_plan(result, sf, "box", robot, config, target_tol=3e-3)
    assert result.report["grasp"]["kind"] == "grasp"
    assert not result.report["analysis"]["nonrigid"]


def test_lid_is_pushed_shut_along_its_hinge(robot):
    sf = synthetic.hinged_lid(n=2500, seed=0)
    config = PlannerConfig()
    result = plan_flow(sf.flow, None, config, robot)
    _check_plan(result, sf, "lid", robot, config)
    r = result.report
    # The search goes all round the lid (approaches over the circle about each closing line) and
    # finds a hold across its 1 cm edge whose hand stays clear of the base and the table at EVERY
    # frame as it closes (the search checks every 5th); a push is the fallback only.
    assert r["grasp"]["kind"] == "grasp"
    assert r["grasp"]["load_margin"] > 1.0
    geometry = flow_geometry(result.analysis)
    track = result.analysis.target.track.T_world_part
    assert gripper_collisions([result.grasp], track, geometry.part, geometry.other, 0.0, frame_step=1) == [
        None
    ]
    assert r["analysis"]["joint"]["kind"] == "revolute"


def test_drawer_handle_is_grasped(robot):
    sf = synthetic.drawer(n=2500, seed=0)
    config = PlannerConfig()
    result = plan_flow(sf.flow, None, config, robot)
    _check_plan(result, sf, "drawer", robot, config)
    assert result.report["grasp"]["kind"] == "grasp"
    assert result.report["grasp"]["width_mm"] == pytest.approx(20, abs=3)  # the handle
    assert result.report["analysis"]["joint"]["kind"] == "prismatic"


def _scene(names_positions, table=0.0):
    cam = Camera.from_look_at((1.0, 0.0, 0.6), (0.5, 0.0, 0.05))
    objs = [SceneObject(name=n, pose=Pose(tuple(p)), movable=m) for n, p, m in names_positions]
    return Scene(
        name="t", prompt="pick the box", objects=tuple(objs), camera=cam, frames=41, table_height=table
    )


def test_errors_are_clear(robot):
    sf = synthetic.rigid_pick(n=1500, seed=0)
    # A flow made for another scene.
    with pytest.raises(ContractError, match="not in scene"):
        plan_flow(sf.flow, _scene([("banana", (0.5, 0, 0), True)]), robot=robot)
    with pytest.raises(ContractError, match="does not match the scene"):
        plan_flow(
            sf.flow, _scene([("box", (0.9, 0.4, 0), True), ("obstacle", (0.5, 0.2, 0), False)]), robot=robot
        )
    # Only the obstacle is movable, and it does not move.
    with pytest.raises(ChordError, match="no motion"):
        plan_flow(
            sf.flow, _scene([("box", (0.5, 0, 0.06), False), ("obstacle", (0.5, 0.2, 0), True)]), robot=robot
        )
    # Lifted 0.8 m: out of the Panda's reach part-way.
    far = synthetic.rigid_pick(n=1500, lift=0.8)
    with pytest.raises(ChordError, match="unreachable track"):
        plan_flow(far.flow, robot=robot)
    # A 30 cm cube lifted: too wide to grasp, and pushing it up means pushing from below.
    big = synthetic.rigid_pick(n=1500, box=(0.3, 0.3, 0.3), position=(0.55, -0.1))
    with pytest.raises(ChordError, match="no grasp or push fits"):
        plan_flow(big.flow, robot=robot)


def test_scene_gives_table_height_and_movable_objects(robot):
    sf = synthetic.rigid_pick(n=1500, seed=0)
    scene = _scene([("box", (0.5, 0, 0.0), True), ("obstacle", (0.5, 0.2, 0), False)])
    result = plan_flow(sf.flow, scene, robot=robot)
    assert result.plan.task == "pick the box"
    assert result.report["analysis"]["target_object"] == "box"
    # A table above the box's bottom: approach boxes must clear it; the grasp moves up.
    high = _scene([("box", (0.5, 0, 0.0), True), ("obstacle", (0.5, 0.2, 0), False)], table=0.05)
    r2 = plan_flow(sf.flow, high, robot=robot)
    z_grasp = r2.T_world_ee[r2.phases["follow"][0]][2, 3]
    assert z_grasp > 0.05


def test_arm_clearance_sees_scene_points_on_the_arm(robot):
    from planner.pipeline import arm_clearance

    q = np.array([robot.seed] * 3)
    phases = {"follow": (1, 2)}
    T_world_base = np.eye(4)
    T_world_base[:3, 3] = [0.1, 0.0, 0.0]
    far = np.broadcast_to(np.array([2.0, 2.0, 0.0]), (1, 1, 3))
    clear, _ = arm_clearance(robot, q, T_world_base, phases, far, far)
    assert clear > 1.5
    # A point on the shoulder (link1's origin, 0.333 m up the base axis): the arm passes through it.
    shoulder = np.broadcast_to(np.array([0.1, 0.0, 0.333]), (1, 1, 3))
    clear, where = arm_clearance(robot, q, T_world_base, phases, far, shoulder)
    assert clear == pytest.approx(-robot.body_radius, abs=1e-9)
    assert "waypoint 0" in where


def _peak_link_speed(plan, robot) -> float:
    """m/s: the fastest clearance-frame or TCP origin of a plan, between its samples (as chord
    real's pre-flight measures it)."""
    ids = [*robot.clearance_ids, robot.tcp_id]
    p = np.stack([robot.fk_frames(q, ids) for q in plan.q])
    return float((np.linalg.norm(np.diff(p, axis=0), axis=-1) / np.diff(plan.t)[:, None]).max())


def test_the_tool_and_links_stay_under_the_cartesian_speed_cap(robot):
    """The joint limits alone let a link far from the base outrun a Cartesian cap; the plan is
    slowed until the tool and every clearance link stay under it."""
    sf = synthetic.rigid_pick(n=1500, seed=0)
    base = tuple(
        np.r_[0.05, -0.05, 0.0, Rotation.from_euler("z", 20, degrees=True).as_quat(scalar_first=True)]
    )
    free = plan_flow(sf.flow, None, PlannerConfig(base_pose=base, cartesian_speed_max=10.0), robot).plan
    fast = _peak_link_speed(free, robot)
    cap = 0.5 * fast  # a cap the unconstrained timing breaks
    capped = plan_flow(sf.flow, None, PlannerConfig(base_pose=base, cartesian_speed_max=cap), robot).plan
    assert _peak_link_speed(capped, robot) <= cap < fast
    assert capped.duration > free.duration
    np.testing.assert_allclose(capped.q[0], free.q[0])  # the same path, slower
    with pytest.raises(ChordError, match="cartesian_speed_max"):
        PlannerConfig(cartesian_speed_max=0.0)


def test_a_grasp_whose_path_reaches_a_joint_limit_is_passed_over(robot, monkeypatch):
    """A reachable grasp whose IK path comes within the optimiser's limit margin (0.05 rad) of a
    joint limit is set aside while others keep it; with nothing else it is still planned."""
    sf = synthetic.rigid_pick(n=2500, seed=0)
    base = np.r_[0.05, -0.05, 0.0, Rotation.from_euler("z", 20, degrees=True).as_quat(scalar_first=True)]
    config = PlannerConfig(base_pose=tuple(base))
    real = robot.limit_margin
    at_limit: list[int] = []  # which of _choose's margin checks report a path at a joint limit

    def margin(q):
        m = real(q)
        if sys._getframe(1).f_code.co_name != "_choose":  # (inspect.stack() reads source files: slow)
            return m
        at_limit.append(len(at_limit))
        return np.zeros_like(m) if len(at_limit) in limited else m

    monkeypatch.setattr(robot, "limit_margin", margin)
    limited = {1}  # the first reachable candidate's path touches a limit
    r = plan_flow(sf.flow, None, config, robot).report
    assert r["grasp"]["search"]["grasp"]["rejected"]["at a joint limit"] == 1
    assert "joint-limit margin 0.00 rad" not in r["grasp"]["reason"]
    at_limit.clear()
    limited = set(range(1, 1000))  # every one: the best of them, as before
    r = plan_flow(sf.flow, None, config, robot).report
    assert r["grasp"]["search"]["grasp"]["rejected"]["at a joint limit"] >= 1
    assert "joint-limit margin 0.00 rad" in r["grasp"]["reason"]
