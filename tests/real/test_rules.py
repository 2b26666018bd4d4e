"""One pre-flight rule at a time: a case on each side of its limit, and NaN, which never passes.

The trajectories are built so the quantity a rule checks is a known multiple (0.99 or 1.01) of its
limit: a constant velocity for the velocity rule, a parabola for acceleration, a cubic for jerk
(finite differences of those are exact), and hand-placed frame positions for the cartesian rules.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from real.limits import FR3, FRANKA_HAND, PANDA, XARM_GRIPPER
from real.preflight import (
    CheckResult,
    PreflightReport,
    Reason,
    Rule,
    SafetyConfig,
    check_acceleration,
    check_final_at_rest,
    check_finite,
    check_grasp_force,
    check_gripper_at_rest,
    check_gripper_width,
    check_hash,
    check_jerk,
    check_joint_limits,
    check_joint_names,
    check_link_speed,
    check_sample_gap,
    check_scene_collision,
    check_self_collision,
    check_start_at_rest,
    check_start_state,
    check_table,
    check_tcp_speed,
    check_time,
    check_validated,
    check_velocity,
    check_workspace,
    preflight,
    run_rules,
)
from tests.real.plans import READY, safe_plan

NAN = float("nan")
SHA = "ab" * 32
DT = 0.01  # s, waypoint spacing of the synthetic trajectories
BELOW, ABOVE = 0.99, 1.01  # multiples of a limit: just inside, just outside


def _passes(r: CheckResult, code: str) -> None:
    assert r.code == code and r.passed is True, r


def _refused(r: CheckResult, code: str, *words: str) -> None:
    assert r.code == code and r.passed is False, r
    for w in words:
        assert w in r.message, r.message


def _with_nan(a: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    a = np.array(a, dtype=float)
    a[index] = np.nan
    return a


def _poly(j: int, coeff: float, power: int, duration: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(t [M], q [M, 7]): READY with joint ``j`` moved by coeff * t**power."""
    t = np.linspace(0.0, duration, round(duration / DT) + 1)
    q = np.tile(READY, (len(t), 1))
    q[:, j] += coeff * t**power
    return t, q


# -- validation record -----------------------------------------------------------------------


def test_validated_needs_success_true_from_a_named_simulator():
    _passes(check_validated({"success": True, "simulator": "pybullet"}), Reason.NOT_VALIDATED)
    _refused(check_validated({"success": False, "simulator": "pybullet"}), Reason.NOT_VALIDATED, "False")
    _refused(check_validated({"success": True}), Reason.NOT_VALIDATED, "simulator=None")
    _refused(check_validated(None), Reason.NOT_VALIDATED, "run it in sim first")
    _refused(check_validated({"success": NAN, "simulator": "pybullet"}), Reason.NOT_VALIDATED, "nan")
    _refused(check_validated({"success": True, "simulator": NAN}), Reason.NOT_VALIDATED, "nan")


def test_hash_must_equal_the_plans_own():
    _passes(check_hash({"plan_sha256": SHA}, SHA), Reason.HASH_MISMATCH)
    _refused(check_hash({"plan_sha256": SHA[:-1] + "c"}, SHA), Reason.HASH_MISMATCH, SHA)
    _refused(check_hash({"plan_sha256": NAN}, SHA), Reason.HASH_MISMATCH, "nan")
    skipped = check_hash(None, SHA)  # no record: not_validated refuses the plan
    assert skipped.passed is None and skipped.code == Reason.HASH_MISMATCH


# -- contract re-checks -----------------------------------------------------------------------


def test_finite_names_the_first_bad_value():
    p = safe_plan()
    arrays = {"t": p.t, "q": p.q, "gripper": p.gripper, "ee_pose": p.ee_pose}
    _passes(check_finite(arrays), Reason.NONFINITE)
    _refused(
        check_finite({**arrays, "q": _with_nan(p.q, (3, 2))}),
        Reason.NONFINITE,
        "q[3, 2] is nan; 1 non-finite value(s) in q",
    )
    grip = np.array(p.gripper)
    grip[[7, 9]] = np.inf
    _refused(check_finite({**arrays, "gripper": grip}), Reason.NONFINITE, "gripper[7] is inf; 2 non-finite")


def test_joint_names_must_match_in_order():
    _passes(check_joint_names(PANDA.joint_names, PANDA), Reason.JOINT_NAMES)
    swapped = list(PANDA.joint_names)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    _refused(check_joint_names(swapped, PANDA), Reason.JOINT_NAMES, "names and order")
    _refused(check_joint_names(PANDA.joint_names, FR3), Reason.JOINT_NAMES, "fr3 joints")
    _refused(check_joint_names([*PANDA.joint_names[:6], NAN], PANDA), Reason.JOINT_NAMES, "nan")


def test_time_starts_at_zero_and_strictly_increases():
    t = np.arange(11) * DT
    _passes(check_time(t), Reason.TIME_NOT_INCREASING)
    barely = t.copy()
    barely[5] = barely[4] + 1e-9  # still increasing: passes
    _passes(check_time(barely), Reason.TIME_NOT_INCREASING)
    flat = t.copy()
    flat[5] = flat[4]  # one step of zero: refused
    _refused(check_time(flat), Reason.TIME_NOT_INCREASING, "t[4]=0.04 s, t[5]=0.04 s")
    _refused(check_time(t + 1e-3), Reason.TIME_NOT_INCREASING, "t[0]=0.001")
    _refused(check_time(t[:1]), Reason.TIME_NOT_INCREASING)
    _refused(check_time(_with_nan(t, (5,))), Reason.TIME_NOT_INCREASING, "t[5] is nan")


def test_sample_gap_at_most_max_gap():
    t = np.arange(11) * 0.05
    t[6:] += 0.05 - 0.001  # one gap of 0.099 s
    _passes(check_sample_gap(t, 0.1), Reason.SAMPLE_GAP)
    t[6:] += 0.002  # that gap is now 0.101 s
    _refused(check_sample_gap(t, 0.1), Reason.SAMPLE_GAP, "0.101 s between waypoints 5 and 6")
    _refused(check_sample_gap(_with_nan(t, (3,)), 0.1), Reason.SAMPLE_GAP, "t[3] is nan")
    _refused(check_sample_gap(np.arange(11) * 0.05, NAN), Reason.SAMPLE_GAP)


# -- joint space -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "code", "first"),
    [
        (check_start_at_rest, Reason.START_NOT_AT_REST, True),
        (check_final_at_rest, Reason.FINAL_NOT_AT_REST, False),
    ],
)
def test_at_rest_ends(check, code, first):
    s, rest = 0.25, 0.01
    allowed = rest + 0.5 * s * PANDA.acceleration[0] * DT  # rad/s over one segment, joint 1
    t = np.arange(101) * DT

    def step(speed: float) -> np.ndarray:  # joint 1 moves at `speed` over the end segment only
        q = np.tile(READY, (len(t), 1))
        if first:
            q[1:, 0] += speed * DT
        else:
            q[-1, 0] += speed * DT
        return q

    _passes(check(t, step(BELOW * allowed), PANDA, s, rest), code)
    _refused(check(t, step(ABOVE * allowed), PANDA, s, rest), code, "panda_joint1", f"{allowed:.4g} rad/s")
    _refused(check(t, _with_nan(step(0.0), (0 if first else -1, 2)), PANDA, s, rest), code, "is nan")
    _refused(check(t, step(0.0), PANDA, s, NAN), code)


def test_joint_limits_with_margin():
    margin = 0.05
    lo6 = PANDA.lower[5]  # panda_joint6, -0.0175 rad
    t, q = _poly(5, 0.0, 0)
    q[:, 5] = lo6 + margin + 1e-3
    _passes(check_joint_limits(t, q, PANDA, margin), Reason.JOINT_LIMIT)
    q[4, 5] = lo6 + margin - 1e-3
    _refused(check_joint_limits(t, q, PANDA, margin), Reason.JOINT_LIMIT, "panda_joint6", "t=0.040 s")
    q[:, 5] = lo6 + margin + 1e-3
    _refused(check_joint_limits(t, _with_nan(q, (4, 5)), PANDA, margin), Reason.JOINT_LIMIT, "q[4, 5] is nan")
    _refused(check_joint_limits(t, q, PANDA, NAN), Reason.JOINT_LIMIT)


def test_joint_limits_refuse_a_plan_of_another_arm():
    t, q = _poly(0, 0.0, 0)
    _refused(check_joint_limits(t, q[:, :6], PANDA, 0.05), Reason.JOINT_LIMIT, "expected [11, 7]")


@pytest.mark.parametrize(
    ("check", "code", "power", "field"),
    [
        (check_velocity, Reason.VELOCITY_LIMIT, 1, "velocity"),  # q = v t
        (check_acceleration, Reason.ACCELERATION_LIMIT, 2, "acceleration"),  # q = a t^2 / 2
        (check_jerk, Reason.JERK_LIMIT, 3, "jerk"),  # q = j t^3 / 6
    ],
)
def test_scaled_derivative_limits(check, code, power, field):
    s, j = 0.25, 6  # panda_joint7
    limit = s * getattr(PANDA, field)[j]
    coeff = 1.0 / math.factorial(power)
    _passes(check(*_poly(j, BELOW * limit * coeff, power), PANDA, s), code)
    t, q = _poly(j, ABOVE * limit * coeff, power)
    _refused(check(t, q, PANDA, s), code, "panda_joint7", f"= {limit:.4g}")
    # the same plan passes at a speed scale that leaves room for it
    _passes(check(t, q, PANDA, 1.02 * s), code)
    _refused(check(t, _with_nan(q, (5, j)), PANDA, s), code, "q[5, 6] is nan")
    _refused(check(_with_nan(t, (5,)), q, PANDA, s), code, "t[5] is nan")
    _refused(check(t, q, PANDA, NAN), code)


def test_acceleration_and_jerk_need_enough_waypoints_to_exist():
    t, q = np.array([0.0, DT]), np.stack([READY, READY + 1e-3])
    assert check_acceleration(t, q, PANDA, 0.25).passed is True
    t3, q3 = np.append(t, 2 * DT), np.vstack([q, q[-1:] + 1e-3])
    assert check_jerk(t3, q3, PANDA, 0.25).passed is True
    assert "too few waypoints" in check_jerk(t3, q3, PANDA, 0.25).message
    # ...but a single waypoint cannot be checked at all
    _refused(check_velocity(t[:1], q[:1], PANDA, 0.25), Reason.VELOCITY_LIMIT, "at least 2")


# -- cartesian (frame positions given directly: the rules do not need a robot model) -------------

FRAMES = ("link", "tool")


def _frames(link_xyz, tool_xyz, n: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(t [n], points [n, 2, 3]) with the link and the tool standing still."""
    t = np.arange(n) * DT
    p = np.tile(np.array([link_xyz, tool_xyz], dtype=float), (n, 1, 1))
    return t, p


def test_workspace_box():
    lo, hi = (-0.9, -0.9, -0.1), (0.9, 0.9, 1.2)
    t, p = _frames((0.3, 0.0, 0.5), (0.9 - 1e-3, 0.0, 0.3))
    _passes(check_workspace(t, p, FRAMES, lo, hi), Reason.WORKSPACE)
    p[7, 1, 0] = 0.9 + 1e-3
    _refused(check_workspace(t, p, FRAMES, lo, hi), Reason.WORKSPACE, "tool", "t=0.070 s", "by 0.0010 m")
    _refused(check_workspace(t, _with_nan(p, (3, 0, 2)), FRAMES, lo, hi), Reason.WORKSPACE, "is nan")
    t, p = _frames((0.3, 0.0, 0.5), (0.5, 0.0, 0.3))
    _refused(check_workspace(t, p, FRAMES, lo, (0.9, NAN, 1.2)), Reason.WORKSPACE)


def test_table_clearance_of_links_and_tool():
    z, link_c, tcp_c = 0.1, 0.03, 0.005
    t, p = _frames((0.3, 0.0, z + link_c + 1e-4), (0.5, 0.0, z + tcp_c + 1e-4))
    _passes(check_table(t, p, FRAMES, z, link_c, tcp_c), Reason.TABLE)
    low_tool = p.copy()
    low_tool[2, 1, 2] = z + tcp_c - 1e-4
    _refused(check_table(t, low_tool, FRAMES, z, link_c, tcp_c), Reason.TABLE, "tool at z=0.1049")
    low_link = p.copy()
    low_link[2, 0, 2] = z + link_c - 1e-4  # above the tool's clearance, below the link's
    _refused(check_table(t, low_link, FRAMES, z, link_c, tcp_c), Reason.TABLE, "link at z=0.1299")
    _refused(check_table(t, _with_nan(p, (2, 1, 2)), FRAMES, z, link_c, tcp_c), Reason.TABLE, "is nan")
    _refused(check_table(t, p, FRAMES, NAN, link_c, tcp_c), Reason.TABLE)


@pytest.mark.parametrize(
    ("check", "code", "moving", "still"),
    [(check_tcp_speed, Reason.TCP_SPEED, 1, 0), (check_link_speed, Reason.LINK_SPEED, 0, 1)],
)
def test_cartesian_speed_caps(check, code, moving, still):
    cap = 0.25

    def moving_at(speed: float, other: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        t, p = _frames((0.3, 0.0, 0.5), (0.5, 0.0, 0.3))
        p[:, moving, 0] += speed * t
        p[:, still, 1] += other * t  # the frame this rule does not look at
        return t, p

    _passes(check(*moving_at(BELOW * cap, other=10 * cap), FRAMES, cap, True), code)
    t, p = moving_at(ABOVE * cap)
    _refused(check(t, p, FRAMES, cap, True), code, FRAMES[moving], "first-run cap of 0.25 m/s")
    _refused(check(t, p, FRAMES, 0.1, False), code, "above the cap of 0.1 m/s")
    _refused(check(t, _with_nan(p, (4, moving, 0)), FRAMES, cap, True), code, "is nan")
    _refused(check(_with_nan(t, (4,)), p, FRAMES, cap, True), code, "t[4] is nan")
    _refused(check(*moving_at(0.0), FRAMES, NAN, True), code)


def test_start_state_within_tolerance():
    tol = 0.01
    here = READY.copy()
    here[3] += BELOW * tol
    _passes(check_start_state(here, READY, PANDA, tol), Reason.START_STATE)
    here[3] = READY[3] + ABOVE * tol
    _refused(check_start_state(here, READY, PANDA, tol), Reason.START_STATE, "panda_joint4", "approach")
    _refused(check_start_state(_with_nan(READY, (2,)), READY, PANDA, tol), Reason.START_STATE, "nan")
    _refused(check_start_state(READY, _with_nan(READY, (2,)), PANDA, tol), Reason.START_STATE, "nan")
    _refused(check_start_state(READY, READY, PANDA, NAN), Reason.START_STATE)
    _refused(check_start_state(READY[:6], READY, PANDA, tol), Reason.START_STATE, "not 7 finite joints")
    offline = check_start_state(None, READY, PANDA, tol)
    assert offline.passed is None and "offline" in offline.message


# -- composition --------------------------------------------------------------------------------


def test_preflight_runs_every_rule_once_in_order():
    report = preflight(safe_plan(), PANDA, None, SafetyConfig(), READY)
    assert [c.code for c in report.checks] == list(Reason.ALL)
    skipped = [c.code for c in report.checks if c.passed is None]
    assert skipped == [
        Reason.WORKSPACE,  # no FK
        Reason.TABLE,
        Reason.TCP_SPEED,
        Reason.LINK_SPEED,
        Reason.SELF_COLLISION,  # no collision model
        Reason.SCENE_COLLISION,
        Reason.FLOW_MISMATCH,  # no re-simulation verdict
        Reason.SIM_FAILED,
    ]


def test_run_rules_skips_what_depends_on_a_failure_and_names_it():
    calls = []

    def rule(code, passed, needs=()):
        return Rule(code, lambda: calls.append(code) or CheckResult(code, passed, code), needs=needs)

    report = run_rules(
        [
            rule("a", False),
            rule("b", True, needs=("a",)),
            rule("c", True, needs=("a", "b")),
            rule("d", True),
            Rule("e", lambda: CheckResult("e", True, ""), unavailable="no robot"),
        ],
        PreflightReport(plan_sha256=SHA, robot="panda"),
    )
    assert calls == ["a", "d"]  # the skipped rules are never evaluated
    assert [(c.code, c.passed, c.message) for c in report.checks] == [
        ("a", False, "a"),
        ("b", None, "skipped: depends on a"),
        ("c", None, "skipped: depends on a"),  # b was skipped because of a: name a
        ("d", True, "d"),
        ("e", None, "skipped: no robot"),
    ]


def test_run_rules_refuses_a_check_that_answers_for_another_rule():
    with pytest.raises(AssertionError, match="rule x returned a y result"):
        run_rules([Rule("x", lambda: CheckResult("y", True, ""))], PreflightReport(SHA, "panda"))


# -- the gripper ------------------------------------------------------------------------------


def test_gripper_width_within_the_hands_range():
    t = np.arange(5) * DT
    hand = FRANKA_HAND
    _passes(check_gripper_width(t, np.full(5, BELOW * hand.max_width), hand), Reason.GRIPPER_WIDTH)
    _passes(check_gripper_width(t, np.zeros(5), hand), Reason.GRIPPER_WIDTH)
    _refused(
        check_gripper_width(t, np.full(5, ABOVE * hand.max_width), hand), Reason.GRIPPER_WIDTH, "0.0808 m"
    )
    _refused(
        check_gripper_width(t, np.array([0.04, 0.04, 1e6, 0.04, 0.04]), hand),
        Reason.GRIPPER_WIDTH,
        "1e+06 m at t=0.020 s",
    )
    _refused(check_gripper_width(t, np.full(5, -1e-6), hand), Reason.GRIPPER_WIDTH, "[0.0, 0.08]")
    _refused(
        check_gripper_width(t, _with_nan(np.full(5, 0.04), (2,)), hand),
        Reason.GRIPPER_WIDTH,
        "gripper[2] is nan",
    )
    _refused(
        check_gripper_width(_with_nan(t, (1,)), np.full(5, 0.04), hand), Reason.GRIPPER_WIDTH, "t[1] is nan"
    )
    _refused(check_gripper_width(t, np.full(4, 0.04), hand), Reason.GRIPPER_WIDTH, "one per waypoint")


def test_grasp_force_within_the_hands_range():
    hand = FRANKA_HAND
    _passes(check_grasp_force(None, hand), Reason.GRASP_FORCE)  # the rated 20 N
    _passes(check_grasp_force(hand.max_force, hand), Reason.GRASP_FORCE)
    _refused(check_grasp_force(ABOVE * hand.max_force, hand), Reason.GRASP_FORCE, "70.7 N is outside")
    _refused(check_grasp_force(0.99 * hand.min_force, hand), Reason.GRASP_FORCE)
    _refused(check_grasp_force(NAN, hand), Reason.GRASP_FORCE, "nan")
    _refused(check_grasp_force(float("inf"), hand), Reason.GRASP_FORCE, "inf")
    # The xArm Gripper's force is its own: only that value can be asked for.
    _passes(check_grasp_force(30.0, XARM_GRIPPER), Reason.GRASP_FORCE)
    _refused(check_grasp_force(20.0, XARM_GRIPPER), Reason.GRASP_FORCE, "[30.0, 30.0] N")


def test_the_arm_is_at_rest_while_the_gripper_moves():
    t = np.arange(21) * DT
    grip = np.concatenate(
        [np.full(5, 0.06), np.linspace(0.06, 0.03, 11), np.full(5, 0.03)]
    )  # closes t=0.04..0.14
    still = np.tile(READY, (21, 1))
    _passes(check_gripper_at_rest(t, still, grip, PANDA, 0.01), Reason.GRIPPER_WHILE_MOVING)
    creep = still.copy()
    creep[:, 3] += np.arange(21) * DT * BELOW * 0.01  # 0.0099 rad/s: at rest
    _passes(check_gripper_at_rest(t, creep, grip, PANDA, 0.01), Reason.GRIPPER_WHILE_MOVING)
    creep[:, 3] = READY[3] + np.arange(21) * DT * ABOVE * 0.01  # 0.0101 rad/s
    _refused(
        check_gripper_at_rest(t, creep, grip, PANDA, 0.01),
        Reason.GRIPPER_WHILE_MOVING,
        "panda_joint4 moves at 0.0101 rad/s",
    )
    # Moving outside the gripper's stretch is fine.
    outside = still.copy()
    outside[16:, 0] += np.arange(5) * 0.01
    _passes(check_gripper_at_rest(t, outside, grip, PANDA, 0.01), Reason.GRIPPER_WHILE_MOVING)
    _refused(
        check_gripper_at_rest(t, still, _with_nan(grip, (7,)), PANDA, 0.01),
        Reason.GRIPPER_WHILE_MOVING,
        "nan",
    )
    _refused(check_gripper_at_rest(t, still, grip, PANDA, NAN), Reason.GRIPPER_WHILE_MOVING)


# -- collisions (the models are tested in test_preflight; here: what the rules refuse on their own) --


class _NeverTouches:
    """A collision model that finds nothing: the rules must still refuse what they cannot evaluate."""

    has_scene = True

    def __init__(self) -> None:
        self.self_pairs = [(0, 1)]
        self.objects: dict = {}

    def self_collision(self, q, widths, clearance):
        return None

    def scene_collision(self, q, widths, grasp_start, clearance):
        return None


@pytest.mark.parametrize("check", [check_self_collision, check_scene_collision])
def test_collision_rules_refuse_nan_in_any_input(check):
    t = np.arange(11) * DT
    q = np.tile(READY, (11, 1))
    w = np.full(11, 0.04)
    model = _NeverTouches()
    code = Reason.SELF_COLLISION if check is check_self_collision else Reason.SCENE_COLLISION
    _passes(check(t, q, w, PANDA, model, 0.005, 0.004, 0.01), code)
    _refused(check(t, _with_nan(q, (3, 1)), w, PANDA, model, 0.005, 0.004, 0.01), code, "q[3, 1] is nan")
    _refused(check(t, q, _with_nan(w, (4,)), PANDA, model, 0.005, 0.004, 0.01), code, "gripper[4] is nan")
    _refused(check(_with_nan(t, (2,)), q, w, PANDA, model, 0.005, 0.004, 0.01), code, "t[2] is nan")
    _refused(check(t, q, w, PANDA, model, NAN, 0.004, 0.01), code, "clearance is nan")


def test_a_table_z_of_nan_never_passes_the_table_rule():
    # What `--table-z nan` reached before SafetyConfig refused it: the rule refuses on its own too.
    p = safe_plan()
    from real.kinematics import kinematics_for

    kin = kinematics_for(PANDA)
    r = check_table(p.t, kin.points(p.q), kin.frame_names, NAN, 0.03, 0.005)
    assert r.passed is False and "nan" in r.message
