"""Joint-space optimisation and TOPP-RA time parameterisation."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ChordError
from planner.robot import Robot
from planner.timing import limit_ratios, parameterize
from planner.trajectory import ik_path, optimise, tracking_errors


@pytest.fixture(scope="module")
def robot() -> Robot:
    return Robot()


def _path(robot, K=20):
    """Targets from a known joint path whose 3rd joint runs 1 cm from its upper limit."""
    q = np.array(robot.seed)
    q[2] = robot.upper[2] - 0.01
    qs = np.array([q + np.r_[0.3 * np.sin(k / K * np.pi), 0, 0, 0.2 * k / K, 0, 0, 0] for k in range(K)])
    qs = np.clip(qs, robot.lower, robot.upper)
    return qs, np.array([robot.fk(x) for x in qs])


def test_optimise_keeps_tracking_and_restores_the_limit_margin(robot):
    qs, T = _path(robot)
    assert robot.limit_margin(qs).min() < 0.02
    q = optimise(robot, qs, T, table_z=-1.0)
    ep, er = tracking_errors(robot, q, T)
    assert ep.max() < 1e-4 and er.max() < 1e-3
    # The arm's redundancy moves joint 3 out to the 0.05 rad margin.
    assert robot.limit_margin(q).min() > 0.049


def test_optimise_smooths_a_noisy_start(robot):
    qs, T = _path(robot)
    noisy = qs + np.random.default_rng(0).normal(0, 0.05, qs.shape)
    q = optimise(robot, noisy, T, table_z=-1.0)
    ep, _ = tracking_errors(robot, q, T)
    assert ep.max() < 1e-4
    d2 = lambda x: np.abs(np.diff(x, 2, axis=0)).max()  # noqa: E731
    assert d2(q) < 0.02 < 0.2 < d2(noisy)


def test_ik_path_is_continuous(robot):
    _, T = _path(robot, 30)
    path = ik_path(robot, T, anchor=10)
    assert path.position_error.max() < 1e-4
    assert path.max_jump < 0.1


def test_toppra_respects_limits_and_passes_waypoints():
    rng = np.random.default_rng(0)
    q = np.cumsum(rng.normal(0, 0.05, (40, 7)), axis=0)
    v, a = np.full(7, 1.0), np.full(7, 3.0)
    tp = parameterize(q, v, a)
    rv, ra = limit_ratios(tp, v, a, dt=0.001)
    assert rv <= 1.0 and ra <= 1.0
    assert max(rv, ra) > 0.9  # and it is (near) time-optimal: some limit is active
    # Waypoint k sits at path parameter knots[k]: the spline passes through every waypoint.
    np.testing.assert_allclose(np.asarray(tp.spline(tp.knots)), q, atol=1e-9)
    # Starts and ends at rest, at the first and last waypoint.
    _, qq = tp.sample(np.array([0.0, 1e-3, tp.duration - 1e-3, tp.duration]))
    np.testing.assert_allclose(qq[[0, -1]], q[[0, -1]], atol=1e-9)
    assert np.abs(qq[1] - qq[0]).max() / 1e-3 < 0.05
    # Velocity limits halved and acceleration limits quartered: the optimum is the same law 2x slower.
    slow = parameterize(q, v / 2, a / 4)
    assert slow.duration == pytest.approx(2 * tp.duration, rel=0.05)


@pytest.mark.parametrize(("drift", "still"), [(0.5e-3, 3), (0.5e-3, 4), (0.74e-3, 6)])
def test_toppra_times_a_self_motion_tail_in_a_fraction_of_a_second(drift, still):
    """A 0.4 rad slide whose last waypoints drift ``drift`` rad per waypoint across it (a redundant
    arm's self-motion while the tool stands still, as planned for suite slide_008): 28, 76 and
    24 s with scipy's not-a-knot spline ends (one 2 mrad interval timed at over 10 s), where the
    same slide without the tail takes 0.42 s."""
    v = np.array([1.09, 1.09, 1.09, 1.09, 1.3, 1.3, 1.3])  # rad/s: half the Panda's, as planned
    a = np.array([7.5, 3.75, 5.0, 6.25, 7.5, 10.0, 10.0])  # rad/s^2
    u = np.array([0.3, -0.2, 0.1, 0.5, 0.4, -0.1, 0.2])
    u /= np.linalg.norm(u)
    w = np.array([0.43, -0.04, -0.53, -0.01, 0.65, 0.04, -0.35])
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    slide = (1 - np.cos(np.linspace(0.0, np.pi, 31))) / 2 * 0.4  # rad along u, at rest at both ends
    plain = parameterize(slide[:, None] * u, v, a)
    tail = slide[-1] * u + drift * np.arange(1, still + 1)[:, None] * w
    tp = parameterize(np.r_[slide[:, None] * u, tail], v, a)
    assert plain.duration < 0.5
    # The tail turns the path (the arm slows at the corner), but its few mrad take tenths of a second.
    assert tp.duration < plain.duration + 0.5
    assert np.diff(tp.grid_t).max() * tp.stretch < 0.1
    # The timing checks itself by finite differences every 2 ms (the sim steps 2.1 ms) with a 1%
    # margin; the corner's short acceleration peak, sampled at other instants, reads within 2%.
    rv, ra = limit_ratios(tp, v, a)
    assert rv <= 1.0 and ra <= 1.02


def test_toppra_rejects_a_path_that_does_not_move():
    with pytest.raises(ChordError, match="does not move"):
        parameterize(np.zeros((5, 7)), np.ones(7), np.ones(7))


def test_optimise_moves_the_arm_body_out_of_a_static_obstacle(robot):
    qs, T = _path(robot)
    qs[:, 2] = 0.0  # a mid-range elbow, free to swing by redundancy
    T = np.array([robot.fk(x) for x in qs])
    # An obstacle point 2 cm from the elbow sphere (link4's origin) of every waypoint's posture.
    elbow = np.array([robot.body_spheres(x)[2 * 4] for x in qs])  # third chain frame: link4
    tcp = T[:, :3, 3]
    assert np.linalg.norm(elbow - tcp, axis=1).min() > 0.2  # far from the gripper zone
    obstacle = elbow.mean(0, keepdims=True) + np.array([[0.0, 0.02, 0.0]])
    need = robot.config.body_radius
    before = min(np.linalg.norm(robot.body_spheres(x) - obstacle, axis=1).min() for x in qs)
    assert before < need
    q = optimise(robot, qs, T, table_z=-1.0, obstacles=obstacle)
    after = min(np.linalg.norm(robot.body_spheres(x) - obstacle, axis=1).min() for x in q)
    ep, er = tracking_errors(robot, q, T)
    assert after > need, (before, after)
    # Redundancy does most of it; the soft terms trade well under a millimetre of tracking.
    assert ep.max() < 1e-3 and er.max() < 0.02
