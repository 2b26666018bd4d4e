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


# The last 20 joint waypoints of a planned 74 deg knob turn (suite knob_002), micro-radians from
# the first: the knob eases to rest and the arm's redundant joints 1, 3 and 5 turn back by ~2 mrad.
_EASE_OUT_Q0 = [-0.0856, 0.7943, 0.0674, -1.5935, -0.0123, 2.4287, -1.6788]
_EASE_OUT_URAD = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0],
        [-13972, 1818, 15619, 2963, -12232, -5070, -68657],
        [-27293, 3829, 30603, 6120, -24227, -10419, -135010],
        [-39764, 5965, 44727, 9377, -35781, -15893, -198069],
        [-51218, 8148, 57791, 12633, -46697, -21327, -256935],
        [-61523, 10300, 69629, 15788, -56786, -26559, -310816],
        [-70579, 12346, 80107, 18745, -65879, -31440, -359054],
        [-78324, 14215, 89128, 21421, -73832, -35838, -401144],
        [-84731, 15850, 96637, 23750, -80540, -39651, -436756],
        [-89810, 17212, 102620, 25686, -85938, -42809, -465760],
        [-93606, 18275, 107111, 27207, -90014, -45281, -488244],
        [-96205, 19038, 110196, 28313, -92817, -47073, -504541],
        [-97735, 19519, 112018, 29036, -94455, -48237, -515254],
        [-98377, 19758, 112783, 29430, -95109, -48865, -521281],
        [-98363, 19816, 112768, 29580, -95030, -49093, -523841],
        [-97990, 19774, 112324, 29595, -94543, -49104, -524503],
        [-97544, 19713, 111794, 29584, -93987, -49071, -524813],
        [-97106, 19651, 111273, 29569, -93440, -49033, -525120],
        [-96675, 19591, 110762, 29537, -92931, -48945, -525395],
        [-96336, 19548, 110352, 29594, -92395, -49092, -525741],
    ]
)


def test_toppra_does_not_crawl_where_the_path_doubles_back_at_rest():
    """Between two grid points at nearly zero speed the path is crossed by speeding up and braking
    (planner.timing._stop_and_go), not at the speed of the ends: this path took 119 s to time
    (78 s in one grid segment entered at 1e-4 rad/s) and the arm held a knob all that while."""
    q = np.asarray(_EASE_OUT_Q0) + 1e-6 * _EASE_OUT_URAD
    v = np.array([1.0875, 1.0875, 1.0875, 1.0875, 1.305, 1.305, 1.305])
    a = np.array([7.5, 3.75, 5.0, 6.25, 7.5, 10.0, 10.0])
    tp = parameterize(q, v, a)
    assert tp.duration < 1.0, tp.duration  # 0.72 s (119 s before)
    ratio_v, ratio_a = limit_ratios(tp, v, a)
    assert ratio_v <= 1.0 and ratio_a <= 1.0
    _, qs = tp.sample(np.array([0.0, tp.duration]))
    np.testing.assert_allclose(qs, q[[0, -1]], atol=1e-9)  # still from the first to the last
