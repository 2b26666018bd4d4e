"""The automatic robot base: searched round the part from the grasp candidates and the whole track."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from planner import synthetic
from planner.base import BaseSearch, BatchKinematics, base_positions, footprint_clear
from planner.pipeline import PlannerConfig, plan_flow
from planner.robot import Robot


@pytest.fixture(scope="module")
def robot() -> Robot:
    return Robot()


def test_batch_kinematics_agree_with_the_robot_and_solve_reachable_poses(robot):
    kin = BatchKinematics(robot)
    rng = np.random.default_rng(0)
    q = rng.uniform(robot.lower, robot.upper, (20, robot.dof))
    T, J = kin.fk(q)
    spheres = kin.body_spheres(q)
    for i in range(len(q)):
        np.testing.assert_allclose(T[i], robot.fk(q[i]), atol=1e-12)
        np.testing.assert_allclose(J[i], robot.jacobian(q[i])[1], atol=1e-12)
        np.testing.assert_allclose(spheres[i], robot.body_spheres(q[i]), atol=1e-12)
        assert kin.link_heights(q[i : i + 1])[0] == pytest.approx(robot.fk_frames(q[i])[:, 2].min())
    # Poses of postures near the ready one are solved to 0.1 mm from the ready posture itself.
    q_near = np.clip(robot.seed + rng.normal(0.0, 0.3, (50, robot.dof)), robot.lower, robot.upper)
    targets, _ = kin.fk(q_near)
    q_sol, ep, er = kin.ik(targets, np.broadcast_to(robot.seed, q_near.shape), 50)
    assert (ep < 1e-4).mean() > 0.95 and (er < 1e-3).mean() > 0.95
    assert (q_sol >= robot.lower).all() and (q_sol <= robot.upper).all()
    # An unreachable target (2 m away) is reported as such, not solved.
    far = targets[:1].copy()
    far[0, :3, 3] = (2.0, 0.0, 0.3)
    assert kin.ik(far, robot.seed[None], 50)[1][0] > 0.5


def _walls(size: float, height: float, n: int, rng) -> np.ndarray:
    """[n, 3] points on the four vertical walls of a size x size x height box at the origin: a
    footprint whose middle is farther than the shoulder's clearance from every point."""
    pts = synthetic.box_surface((size, size, height), 4 * n, rng) + np.array([0.0, 0.0, height / 2])
    side = np.abs(pts[:, :2]).max(1) > size / 2 - 1e-6
    return pts[side][:n]


def test_a_base_is_never_placed_inside_an_objects_footprint():
    rng = np.random.default_rng(0)
    walls = _walls(0.8, 0.3, 3000, rng)
    objects = [np.broadcast_to(walls, (5, *walls.shape))]
    search = BaseSearch()
    # The middle is 0.4 m from every wall point: the points alone would let a base stand there.
    inside = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [0.1, -0.1, 0.0, 1.0, 0.0, 0.0, 0.0]])
    assert np.linalg.norm(walls[:, :2], axis=1).min() > search.clearance
    outside = np.array([[0.6, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [0.0, -0.62, 0.0, 1.0, 0.0, 0.0, 0.0]])
    near = np.array([[0.48, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])  # 8 cm off the wall: the shoulder hits it
    ok = footprint_clear(np.concatenate([inside, outside, near]), objects, 0.0, search)
    assert ok.tolist() == [False, False, True, True, False]
    # Of the whole search round it, none stands in the footprint grown by the clearance.
    bases = base_positions(np.zeros(3), 0.0, search)
    kept = bases[footprint_clear(bases, objects, 0.0, search)]
    assert len(kept) and (np.abs(kept[:, :2]).max(1) >= 0.4 + search.clearance - 1e-9).all()


def _turned(sf, yaw_deg: float):
    """The synthetic flow turned by yaw_deg about the world z axis (through the origin)."""
    R = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    pts = sf.flow.points.astype(float) @ R.T
    return synthetic._flow(pts, sf.flow.object_index, sf.flow.object_names, sf.flow.num_frames), R


@pytest.mark.parametrize("yaw", [135.0, 225.0])
def test_a_drawer_gets_a_base_on_its_pull_side(robot, yaw):
    # The cabinet at the origin, its drawer pulled out along (-1, 0, 0) turned by yaw: diagonal
    # directions none of the six fixed placements of before faced (they stood the base 0.5 m on
    # the cabinet's side, -x, and reached round it).
    flow, R = _turned(synthetic.drawer(T=21, n=2000, seed=0, position=(0.0, 0.0)), yaw)
    result = plan_flow(flow, None, PlannerConfig(geometry="flow"), robot)
    pull = R @ np.array([-1.0, 0.0, 0.0])
    base = np.asarray(result.plan.base_pose)
    cabinet = flow.points[0, :1000].astype(float).mean(0)  # the cabinet: the first half of the points
    assert (base[:2] - cabinet[:2]) @ pull[:2] > 0.3
    # It faces the work: its x axis points at the part's side of the base.
    x_axis = Rotation.from_quat(base[3:], scalar_first=True).apply([1.0, 0.0, 0.0])
    assert x_axis[:2] @ (cabinet[:2] - base[:2]) > 0.0
    search = result.report["base_search"]
    assert search["placements_searched"] == 96 and 0 < search["placements_clear"] < 96
    assert search["placements_reaching"] >= 1 and search["chosen_rank"] == 0
    assert "reaches all its screened waypoints" in search["chosen_why"]
    assert result.report["base_pose_automatic"] is True


def test_a_given_base_pose_is_kept_and_not_searched(robot):
    sf = synthetic.rigid_pick(n=2500, seed=0)
    base = np.r_[0.05, -0.05, 0.0, Rotation.from_euler("z", 20, degrees=True).as_quat(scalar_first=True)]
    result = plan_flow(sf.flow, None, PlannerConfig(base_pose=tuple(base)), robot)
    np.testing.assert_allclose(result.plan.base_pose, base, atol=1e-12)
    assert result.report["base_search"] is None and result.report["base_pose_automatic"] is False


def _low_drawer(height: float, T: int = 21, seed: int = 0):
    """A cabinet (0.3 m cube at the origin) with a counter top overhanging its front by 14 cm, 7 cm
    above a drawer whose pull, a 5 cm post, is ``height`` above the table; the drawer slides out
    15 cm along -x. Under the overhang only a level approach reaches the pull."""
    rng = np.random.default_rng(seed)
    cab = synthetic.box_surface((0.3, 0.3, 0.3), 1500, rng) + np.array([0.0, 0.0, 0.15])
    top = synthetic.box_surface((0.14, 0.3, 0.02), 600, rng) + np.array([-0.22, 0.0, height + 0.07])
    drawer = synthetic.box_surface((0.26, 0.26, 0.06), 1200, rng) + np.array([-0.04, 0.0, height])
    post = synthetic.box_surface((0.02, 0.02, 0.05), 300, rng) + np.array([-0.20, 0.0, height])
    static, part = np.concatenate([cab, top]), np.concatenate([drawer, post])
    d = 0.15 * synthetic._smooth(T)
    moving = part[None] + d[:, None, None] * np.array([-1.0, 0.0, 0.0])
    pts = np.concatenate([np.broadcast_to(static, (T, *static.shape)), moving], axis=1)
    return synthetic._flow(pts, np.zeros(pts.shape[1], int), ("cabinet",), T)


def test_a_level_grasp_on_a_low_drawer_pull_is_reached(robot):
    result = plan_flow(_low_drawer(0.06), None, PlannerConfig(geometry="flow"), robot)
    grasp = result.T_world_ee[result.phases["follow"][0]]
    assert result.report["grasp"]["kind"] == "grasp"
    assert abs(grasp[2, 2]) < 0.2  # the approach (tool z) is level ...
    assert grasp[2, 3] < 0.09 and abs(grasp[0, 3] + 0.20) < 0.02  # ... at the pull, 6 cm up
    assert result.report["tracking"]["sampled_position_max_mm"] < 5.0
    assert result.report["base_search"]["placements_reaching"] >= 1


@pytest.mark.parametrize(
    "field, value",
    [("distances", ()), ("distances", (0.5, float("nan"))), ("directions", 0), ("attempts", 1.5)],
)
def test_a_bad_base_search_setting_is_refused_by_name(field, value):
    from core.errors import ChordError

    with pytest.raises(ChordError, match="BaseSearch"):
        BaseSearch(**{field: value})
