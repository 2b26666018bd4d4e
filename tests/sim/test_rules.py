"""The judging rules, one by one, with hand-made measurements on both sides of each limit (and NaN)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import ChordError
from sim import rules as R
from sim.evaluate import blame

CFG = R.EvalConfig()  # 20 mm / 15 deg, joint 10 %, slip 20 mm, IK 5 mm / 2 deg, limits 1e-3 rad
NAN = float("nan")


def test_plan_fk_passes_within_and_fails_beyond_its_tolerances():
    ok = R.check_plan_fk(0.004, 1.9, CFG)
    assert ok.passed and ok.value == (0.004, 1.9) and ok.limit == (0.005, 2.0)
    far = R.check_plan_fk(0.006, 0.0, CFG)
    assert not far.passed
    assert far.reason == "plan joints miss its own ee_pose by 6.0 mm / 0.0 deg (tolerance 5.0 mm / 2.0 deg)"
    assert not R.check_plan_fk(0.0, 2.1, CFG).passed
    assert not R.check_plan_fk(NAN, 0.0, CFG).passed
    assert not R.check_plan_fk(0.0, NAN, CFG).passed


def test_joint_limits():
    assert R.check_joint_limits(0.0, CFG).passed
    assert R.check_joint_limits(0.0009, CFG).passed
    over = R.check_joint_limits(0.0011, CFG)
    assert not over.passed and over.reason == "plan joints exceed the URDF limits by 0.0011 rad"
    assert (over.value, over.limit) == (0.0011, 1e-3)
    assert not R.check_joint_limits(NAN, CFG).passed


def test_grasped_needs_one_step_of_contact():
    held = R.check_grasped(3, "grasp", "box/base", 1.234)
    assert held.passed and held.value == 3.0 and held.limit == 1.0
    missed = R.check_grasped(0, "grasp", "box/base", 1.234)
    assert not missed.passed
    assert missed.reason == "both fingers never closed on box/base at the grasp (t = 1.23 s)"
    push = R.check_grasped(0, "push", "laptop/lid", 0.0)
    assert not push.passed and push.reason.startswith("the arm never touched laptop/lid")
    assert R.check_grasped(1, "push", "laptop/lid", 0.0).passed


def test_no_table_contact_names_the_links_and_first_time():
    t = np.arange(6) * 0.5
    clean = R.check_no_table_contact(np.zeros(6, bool), t, [])
    assert clean.passed and clean.value == 0.0
    hit = R.check_no_table_contact(np.array([0, 0, 1, 1, 0, 1], bool), t, ["panda_leftfinger"])
    assert not hit.passed and hit.value == 3.0
    assert hit.reason == "arm links ['panda_leftfinger'] hit the table at t = 1.00 s"


def test_held_needs_small_slip_and_fingers_on_at_the_end():
    assert R.check_held(0.019, True, CFG).passed
    slipped = R.check_held(0.021, True, CFG)
    assert not slipped.passed and slipped.value == 0.021 and slipped.limit == 0.02
    assert slipped.reason == (
        "part dropped: it moved 21.0 mm in the tool frame while held (tolerance 20 mm), "
        "fingers on it at the last frame: True"
    )
    assert not R.check_held(0.0, False, CFG).passed  # let go before the last frame
    assert not R.check_held(NAN, True, CFG).passed


def test_held_says_when_the_fingers_let_go_never_while_held():
    closing = R.check_held(0.058, False, CFG, lost_at_s=1.90, track_start_s=2.00)
    assert not closing.passed
    assert closing.reason == (
        "part dropped: the fingers lost contact with it on closing (t = 1.90 s, before the track began at "
        "2.00 s); by then and after, it moved 58.0 mm in the tool frame (tolerance 20 mm)"
    )
    later = R.check_held(0.03, False, CFG, lost_at_s=2.75, track_start_s=2.00)
    assert "at t = 2.75 s, 0.75 s into the track" in later.reason
    for r in (closing, later, R.check_held(0.0, False, CFG)):
        assert "while held" not in r.reason


def test_joint_goal_is_within_a_fraction_of_the_flow_range():
    # Goal 1.0 rad over a 1.2 rad range: tolerance 0.12 rad.
    ok = R.check_joint_goal(0.89, 1.0, 1.2, CFG, "hinge")
    assert ok.passed and ok.value == pytest.approx(0.11) and ok.limit == pytest.approx(0.12)
    short = R.check_joint_goal(0.87, 1.0, 1.2, CFG, "hinge", {"slide": 0.2})
    assert not short.passed and short.value == pytest.approx(0.13)
    assert short.reason == (
        "joint hinge moved 0.870, flow's goal 1.000 (error 0.130 > tolerance 0.120); "
        "other joints moved instead: {'slide': 0.2}"
    )
    assert not R.check_joint_goal(1.13, 1.0, 1.2, CFG, "hinge").passed  # overshoot counts too
    assert not R.check_joint_goal(NAN, 1.0, 1.2, CFG).passed
    assert not R.check_joint_goal(1.0, 1.0, NAN, CFG).passed  # no tolerance: nothing passes


@pytest.mark.parametrize(
    "check", [R.check_rigid_goal, R.check_parent_in_place, R.check_planned_track, R.check_flows_agree]
)
def test_pose_rules_use_the_position_and_angle_tolerances(check):
    ok = check(0.019, 14.9, CFG)
    assert ok.passed and ok.value == (0.019, 14.9) and ok.limit == (0.02, 15.0)
    assert not check(0.021, 0.0, CFG).passed
    assert not check(0.0, 15.1, CFG).passed
    assert not check(NAN, 0.0, CFG).passed
    assert not check(0.0, NAN, CFG).passed
    assert not check(math.inf, 0.0, CFG).passed


def test_pose_rule_reasons_keep_their_wording():
    assert R.check_rigid_goal(0.07, 0.0, CFG).reason == (
        "part ends 70.0 mm / 0.0 deg from the flow's final pose (tolerance 20 mm / 15 deg)"
    )
    assert R.check_parent_in_place(0.03, 2.0, CFG, "laptop/base").reason == (
        "laptop/base (the part's parent) ends 30.0 mm / 2.0 deg from where the flow leaves it "
        "(tolerance 20 mm / 15 deg)"
    )
    assert R.check_planned_track(0.05, 1.0, CFG).reason.startswith(
        "the planned tool path carries the part off the flow's track by 50.0 mm / 1.0 deg"
    )
    assert R.check_flows_agree(0.03, 0.0, CFG).reason.startswith(
        "the planning flow's final pose of the part is 30.0 mm / 0.0 deg from the goal flow's"
    )


def test_a_tighter_config_moves_the_limit():
    tight = R.EvalConfig(position_tolerance=0.01, angle_tolerance_deg=5.0, slip_tolerance=0.005)
    assert R.check_rigid_goal(0.015, 1.0, CFG).passed and not R.check_rigid_goal(0.015, 1.0, tight).passed
    assert R.check_rigid_goal(0.0, 10.0, CFG).passed and not R.check_rigid_goal(0.0, 10.0, tight).passed
    assert R.check_held(0.01, True, CFG).passed and not R.check_held(0.01, True, tight).passed


def test_first_failure_keeps_the_order():
    a, b = R.check_grasped(1, "grasp", "p", 0.0), R.check_held(0.5, True, CFG)
    c = R.check_rigid_goal(1.0, 0.0, CFG)
    assert R.first_failure([a, b, c]) is b
    assert R.first_failure([a]) is None


def test_blame_goes_to_the_earliest_stage_already_wrong():
    fk = R.check_plan_fk(0.01, 0.0, CFG)
    drop = R.check_held(0.5, False, CFG)
    miss = R.check_grasped(0, "grasp", "box/base", 0.0)
    off_track = R.check_planned_track(0.05, 0.0, CFG)
    on_track = R.check_planned_track(0.001, 0.0, CFG)
    assert blame(fk, drop, "flows differ", off_track) == ("IK", fk.reason)
    assert blame(None, None, "flows differ", off_track) == (None, "")
    assert blame(None, drop, "flows differ", off_track) == (
        "flow",
        f"flows differ; in simulation: {drop.reason}",
    )
    assert blame(None, drop, None, off_track) == ("IK", f"{off_track.reason}; in simulation: {drop.reason}")
    assert blame(None, drop, None, on_track) == ("execution", drop.reason)
    assert blame(None, miss, None, None) == ("grasp", miss.reason)


@pytest.mark.parametrize(
    "field, value",
    [
        ("position_tolerance", 0.0),
        ("angle_tolerance_deg", -1.0),
        ("joint_tolerance_fraction", NAN),
        ("slip_tolerance", math.inf),
        ("ik_position_tolerance", 0.0),
        ("ik_angle_tolerance_deg", NAN),
        ("ik_limit_tolerance", -1e-3),
        ("grasp_window", NAN),
        ("joint_axis_tolerance_deg", 0.0),
        ("joint_offset_tolerance", NAN),
    ],
)
def test_eval_config_refuses_out_of_range_values(field, value):
    with pytest.raises(ChordError, match=rf"EvalConfig\.{field} is {value!r}, expected a finite number"):
        R.EvalConfig(**{field: value})


def test_eval_config_accepts_edge_values():
    cfg = R.EvalConfig(ik_limit_tolerance=0.0, grasp_window=0.0, position_tolerance=1e-6)
    assert (cfg.ik_limit_tolerance, cfg.grasp_window, cfg.position_tolerance) == (0.0, 0.0, 1e-6)
