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


# The last 21 joint waypoints (mrad from the first) of suite rigid_004's lift, as planned: the
# tool stops, and the arm's self-motion turns the joint path over the last 1.2 mrad.
_RIGID_004_TAIL_MRAD = np.array(
    [
        (0, 0, 0, 0, 0, 0, 0),
        (-13.164, -6.532, 11.022, 1.137, 14.67, -11.972, -11.496),
        (-26.042, -12.663, 21.725, 2.523, 29.045, -23.99, -22.434),
        (-38.432, -18.324, 31.947, 4.106, 42.91, -35.839, -32.673),
        (-50.15, -23.465, 41.548, 5.827, 56.06, -47.301, -42.099),
        (-61.034, -28.058, 50.405, 7.616, 68.313, -58.169, -50.631),
        (-70.943, -32.089, 58.419, 9.403, 79.509, -68.25, -58.215),
        (-79.764, -35.558, 65.511, 11.12, 89.519, -77.376, -64.82),
        (-87.415, -38.478, 71.63, 12.705, 98.242, -85.412, -70.441),
        (-93.847, -40.87, 76.748, 14.108, 105.616, -92.257, -75.095),
        (-99.045, -42.766, 80.863, 15.29, 111.62, -97.86, -78.817),
        (-103.033, -44.201, 84.003, 16.229, 116.277, -102.213, -81.661),
        (-105.88, -45.221, 86.227, 16.921, 119.659, -105.369, -83.701),
        (-107.697, -45.88, 87.629, 17.378, 121.893, -107.433, -85.037),
        (-108.65, -46.242, 88.341, 17.634, 123.169, -108.578, -85.792),
        (-108.96, -46.388, 88.537, 17.74, 123.742, -109.042, -86.125),
        (-108.909, -46.416, 88.439, 17.763, 123.938, -109.135, -86.234),
        (-108.775, -46.426, 88.268, 17.771, 124.083, -109.162, -86.307),
        (-108.63, -46.443, 88.081, 17.766, 124.245, -109.175, -86.392),
        (-108.478, -46.487, 87.893, 17.694, 124.428, -109.086, -86.494),
        (-108.337, -46.387, 87.688, 17.967, 124.524, -109.504, -86.516),
    ]
)


def test_toppra_forward_pass_reaches_the_speed_the_controllable_sets_allow():
    """TOPP-RA's own forward pass put the last grid point of this path at sd 2.5e-4 where its
    controllable set and the stage's accelerations allowed 0.079 (13.2 s for the path, 12.7 s of
    it on the last interval); the exact pass times it in 0.4 s within the limits."""
    q0 = np.array([-0.047, 0.826, 0.03, -1.482, 0.207, 2.309, -1.369])
    v = np.array([1.0875, 1.0875, 1.0875, 1.0875, 1.305, 1.305, 1.305])
    a = np.array([7.5, 3.75, 5.0, 6.25, 7.5, 10.0, 10.0])
    tp = parameterize(q0 + _RIGID_004_TAIL_MRAD / 1000.0, v, a)
    assert tp.duration < 0.6
    assert tp.sd[-2] > 0.05 and tp.sd[-1] == 0.0  # at speed until the last interval, then at rest
    rv, ra = limit_ratios(tp, v, a)
    assert rv <= 1.0 and ra <= 1.02  # as above: 2 ms finite differences


def test_forward_pass_on_a_straight_line_accelerates_at_the_limit():
    """q(s) = s u (q'' = 0): from rest, x = sd^2 grows by 2 ds u_max with u_max = min a / |u|,
    up to the controllable sets' top."""
    import toppra as ta

    from planner.timing import forward_pass

    u = np.array([0.6, -0.8])
    s = np.linspace(0.0, 1.0, 11)
    spline = ta.SplineInterpolator(s, s[:, None] * u)
    a = np.array([3.0, 2.0])
    K = np.stack([np.zeros(11), np.full(11, 1.5)], axis=1)
    sd = forward_pass(spline, s, K, a)
    x = np.minimum(2 * s * min(a / np.abs(u)), 1.5)  # u_max = 2.5: 5 s, capped at 1.5
    np.testing.assert_allclose(sd**2, x, atol=1e-9)


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
    need = robot.body_radius
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


# A lift's follow as the planner sent it to the timing (suite rigid_002, a test trial): 35 waypoints,
# rad. The exact forward pass alone left its path speed at ~0 across a grid segment near its end.
_STALLED_LIFT_Q = [
    [0.018457, 0.979722, 0.013107, -1.373086, -0.097525, 2.348902, 0.962756],
    [0.017943, 0.979792, 0.013773, -1.372969, -0.098299, 2.348796, 0.963153],
    [0.017585, 0.979746, 0.014263, -1.372976, -0.099033, 2.348715, 0.963539],
    [0.017838, 0.979393, 0.014129, -1.373085, -0.099956, 2.348376, 0.964062],
    [0.018840, 0.978490, 0.013324, -1.373371, -0.101760, 2.347541, 0.965110],
    [0.020861, 0.976848, 0.011606, -1.373893, -0.104745, 2.346034, 0.966857],
    [0.024097, 0.974338, 0.008803, -1.374690, -0.109134, 2.343729, 0.969420],
    [0.028676, 0.970884, 0.004804, -1.375784, -0.115075, 2.340540, 0.972864],
    [0.034666, 0.966465, -0.000440, -1.377177, -0.122652, 2.336423, 0.977202],
    [0.042078, 0.961105, -0.006926, -1.378857, -0.131889, 2.331370, 0.982402],
    [0.050872, 0.954869, -0.014605, -1.380800, -0.142756, 2.325409, 0.988391],
    [0.060964, 0.947857, -0.023387, -1.382975, -0.155175, 2.318599, 0.995066],
    [0.072233, 0.940193, -0.033148, -1.385345, -0.169020, 2.311032, 1.002301],
    [0.084524, 0.932017, -0.043739, -1.387873, -0.184133, 2.302821, 1.009952],
    [0.097655, 0.923480, -0.054990, -1.390523, -0.200316, 2.294103, 1.017871],
    [0.111425, 0.914733, -0.066719, -1.393263, -0.217349, 2.285030, 1.025913],
    [0.125616, 0.905927, -0.078735, -1.396061, -0.234985, 2.275763, 1.033938],
    [0.140005, 0.897202, -0.090847, -1.398888, -0.252965, 2.266467, 1.041818],
    [0.154362, 0.888689, -0.102865, -1.401718, -0.271015, 2.257303, 1.049441],
    [0.168461, 0.880506, -0.114606, -1.404521, -0.288860, 2.248422, 1.056710],
    [0.182085, 0.872756, -0.125894, -1.407267, -0.306225, 2.239963, 1.063545],
    [0.195027, 0.865527, -0.136569, -1.409920, -0.322843, 2.232045, 1.069879],
    [0.207099, 0.858895, -0.146485, -1.412445, -0.338465, 2.224768, 1.075662],
    [0.218134, 0.852917, -0.155514, -1.414803, -0.352863, 2.218208, 1.080855],
    [0.227992, 0.847639, -0.163551, -1.416956, -0.365840, 2.212421, 1.085432],
    [0.236566, 0.843087, -0.170514, -1.418869, -0.377237, 2.207438, 1.089377],
    [0.243785, 0.839275, -0.176352, -1.420513, -0.386944, 2.203272, 1.092687],
    [0.249618, 0.836197, -0.181046, -1.421867, -0.394905, 2.199912, 1.095373],
    [0.254084, 0.833827, -0.184613, -1.422924, -0.401126, 2.197326, 1.097458],
    [0.257249, 0.832118, -0.187110, -1.423690, -0.405685, 2.195458, 1.098985],
    [0.259240, 0.831002, -0.188642, -1.424186, -0.408737, 2.194230, 1.100015],
    [0.260241, 0.830377, -0.189361, -1.424453, -0.410524, 2.193532, 1.100632],
    [0.260506, 0.830116, -0.189474, -1.424549, -0.411376, 2.193224, 1.100949],
    [0.259894, 0.829991, -0.188626, -1.424525, -0.412272, 2.193015, 1.101375],
    [0.259446, 0.829994, -0.188016, -1.424347, -0.412762, 2.192675, 1.101599],
]  # fmt: skip


def test_a_lift_whose_path_speed_stalls_is_timed_in_a_second_and_a_stalled_timing_is_refused(monkeypatch):
    """Crossed at its ends' ~0 speed, one grid segment of this path took 629,536 s, and sampling
    that every 2 ms for the limit check asked for 2.3 GiB (the bench's worker was killed for
    memory). Sped up and braked through (``_stop_and_go``) it takes 0.73 s; a timing that still
    stalls is refused with the duration it would take, before anything is allocated."""
    import planner.timing as timing

    q = np.asarray(_STALLED_LIFT_Q)
    v = np.array([1.0875, 1.0875, 1.0875, 1.0875, 1.305, 1.305, 1.305])
    a = np.array([7.5, 3.75, 5.0, 6.25, 7.5, 10.0, 10.0])
    tp = parameterize(q, v, a)
    assert tp.duration < 1.0, tp.duration  # 0.73 s
    ratio_v, ratio_a = limit_ratios(tp, v, a)
    assert ratio_v <= 1.0 and ratio_a <= 1.0
    monkeypatch.setattr(timing, "_stop_and_go", lambda g, sd, accel: (g, sd))
    with pytest.raises(ChordError, match=r"would take 1\.5\de\+06 s .* over the 600 s"):
        parameterize(q, v, a)
