"""real.session: the library side of ``chord real``, on the fake arm with a simulated clock."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import numpy as np
import pytest

from core.errors import ChordError
from real.approach import plan_approach
from real.backends.fake import FakeGripper, FakeRobot, Faults, SimClock
from real.kinematics import kinematics_for
from real.limits import FRANKA_HAND, PANDA
from real.log import ExecutionLog
from real.preflight import Reason, SafetyConfig
from real.session import (
    APPROACH,
    PLAN,
    PLAN_AFTER_APPROACH,
    ConfirmRequest,
    default_log_path,
    dry_run,
    run_session,
)
from tests.real.plans import READY, make_plan, min_jerk, passing_resim, safe_plan

KIN = kinematics_for(PANDA)
CFG = SafetyConfig()
OFF = np.array([0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0])  # rad: the arm 0.05 rad off the plan's start
# What pre-flight checks with in these sessions: the collision model with the box task's scene, and
# a passing re-simulation verdict (the re-simulation itself: test_revalidate, test_cli).
CHECKS: dict = {}


@pytest.fixture(autouse=True)
def _checks(box_collision_model):
    CHECKS.update(collision=box_collision_model, sim=passing_resim())


def _robot(q0=READY, hardware=False, object_width=None, **kw) -> FakeRobot:
    clock = SimClock()
    hand = FakeGripper(FRANKA_HAND, width=0.04, object_width=object_width, clock=clock)
    robot = FakeRobot(PANDA, address="172.16.0.2", q0=q0, clock=clock, gripper=hand, **kw)
    robot.is_hardware = hardware
    return robot


def _sends(robot: FakeRobot) -> int:
    return sum(e.kind == "send" for e in robot.events)


def _session(robot, tmp_path: Path, plan=None, config=CFG, confirm=None, **kw):
    kw = {"approach": False, "execute": True, **kw}
    with robot:
        return run_session(
            robot,
            plan or safe_plan(),
            config,
            confirm or (lambda request: pytest.fail(f"asked to confirm {request} on a simulated arm")),
            kinematics=KIN,
            log_path=tmp_path / "run.npz",
            **CHECKS,
            **kw,
        )


def test_dry_run_checks_everything_but_the_start_state():
    report = dry_run(safe_plan(), PANDA, CFG, KIN, **CHECKS)
    assert report.reasons == [] and not report.ok
    assert [c.code for c in report.checks if c.passed is None] == [Reason.START_STATE]


def test_default_log_path_sits_beside_the_plan():
    now = datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
    path = default_log_path(Path("runs/banana/plan.npz"), "0123456789abcdef" * 4, now)
    assert path == Path("runs/banana/real_logs/0123456789ab_20250304T050607Z.npz")


def test_without_execute_nothing_moves_and_no_log_is_written(tmp_path):
    robot = _robot()
    out = _session(robot, tmp_path, execute=False)
    assert out.success and not out.executed and out.message == "dry run: nothing moved"
    assert [label for label, _ in out.reports] == [PLAN] and out.reports[0][1].ok
    assert _sends(robot) == 0 and not list(tmp_path.iterdir())


def test_a_refused_plan_is_returned_not_raised_and_nothing_moves(tmp_path):
    t, q = min_jerk(READY, READY + np.array([0, 0, 0, 0, 0, 0, 2.0]), 3.0)
    robot = _robot()
    out = _session(robot, tmp_path, plan=make_plan(t, q))
    assert not out.success and not out.executed
    assert out.message.startswith("refused before moving (velocity_limit)")
    assert out.log_path is None and _sends(robot) == 0 and not list(tmp_path.iterdir())


def test_off_the_start_without_approach_is_refused(tmp_path):
    robot = _robot(q0=READY + OFF)
    out = _session(robot, tmp_path, approach=True, config=dataclasses.replace(CFG, start_tolerance=0.1))
    assert out.success  # within a 0.1 rad start tolerance: no approach needed, the plan runs
    assert [label for label, _ in out.reports] == [PLAN]
    robot = _robot(q0=READY + OFF)
    out = _session(robot, tmp_path)
    assert not out.success and "(start_state)" in out.message and _sends(robot) == 0


def test_execute_with_approach_runs_both_and_logs_both(tmp_path):
    robot = _robot(q0=READY + OFF)
    out = _session(robot, tmp_path, approach=True, meta={"plan_path": "p.npz"})
    assert out.success and out.executed, out.message
    assert [label for label, _ in out.reports] == [PLAN, APPROACH, PLAN_AFTER_APPROACH]
    assert out.reports[0][1].reasons == [Reason.START_STATE] and out.reports[2][1].ok
    assert out.message.startswith("done: reached the goal") and str(out.log_path) in out.message
    assert out.log_path == tmp_path / "run.npz" and out.approach_log_path == tmp_path / "run_approach.npz"
    run, appr = ExecutionLog.load(out.log_path), ExecutionLog.load(out.approach_log_path)
    assert run.meta["success"] and run.meta["plan_path"] == "p.npz" and "approach" not in run.meta
    assert appr.meta["approach"] is True and appr.meta["plan_sha256"] == safe_plan().content_hash()
    np.testing.assert_allclose(run.array("q_meas")[-1], safe_plan().q[-1], atol=1e-6)


def test_slowdown_stretches_what_runs_as_it_stretched_what_was_checked(tmp_path):
    cfg = dataclasses.replace(CFG, slowdown=2.0)
    out = _session(_robot(q0=READY + OFF), tmp_path, approach=True, config=cfg)
    assert out.success, out.message
    plan_t = ExecutionLog.load(out.log_path).meta["planned_duration"]
    appr_t = ExecutionLog.load(out.approach_log_path).meta["planned_duration"]
    assert plan_t == pytest.approx(2 * safe_plan().duration)
    move = plan_approach(READY + OFF, READY, PANDA, KIN, CFG, collision=CHECKS["collision"]).move
    assert appr_t == pytest.approx(2 * move.t[-1])


def test_hardware_asks_after_showing_the_report_and_before_each_motion(tmp_path):
    events = []

    def confirm(request: ConfirmRequest) -> bool:
        events.append(f"confirm {request.word}: {request.what} on {request.robot} at {request.address}")
        events.append(f"sends so far {_sends(robot)}")
        return True

    robot = _robot(q0=READY + OFF, hardware=True)
    out = _session(
        robot, tmp_path, approach=True, confirm=confirm, on_report=lambda label, r: events.append(label)
    )
    assert out.success, out.message
    approach_sends = ExecutionLog.load(out.approach_log_path).meta["sends"]
    sha = safe_plan().content_hash()[:12]
    assert events == [
        PLAN,
        APPROACH,
        "confirm APPROACH: a 1.0 s approach move to the plan's start on panda at 172.16.0.2",
        "sends so far 0",
        PLAN_AFTER_APPROACH,
        f"confirm 172.16.0.2: plan {sha} ('test move', 3.0 s) on panda at 172.16.0.2",
        f"sends so far {approach_sends}",
    ]


def test_a_plan_not_confirmed_does_not_move(tmp_path):
    robot = _robot(hardware=True)
    out = _session(robot, tmp_path, confirm=lambda request: False)
    assert not out.success and not out.executed and "not confirmed; nothing moved" in out.message
    assert _sends(robot) == 0 and out.log_path is None


def test_a_refusing_confirm_callback_propagates_with_nothing_moved(tmp_path):
    def typed_wrong(request):
        raise ChordError("confirmation typed 'yes'")

    robot = _robot(q0=READY + OFF, hardware=True)
    with pytest.raises(ChordError, match="typed 'yes'"):
        _session(robot, tmp_path, approach=True, confirm=typed_wrong)
    assert _sends(robot) == 0 and robot.stopped


def test_a_fault_mid_plan_is_returned_with_its_log(tmp_path):
    robot = _robot(faults=Faults(protective_stop_at=40))
    out = _session(robot, tmp_path)
    assert not out.success and out.executed
    assert out.message.startswith("stopped (robot_fault): robot reports 'protective stop'")
    assert out.result.sends == 40 and ExecutionLog.load(out.log_path).meta["reason"] == "robot_fault"


def test_an_approach_the_checks_refuse_never_runs(tmp_path):
    # The approach is checked with the same config: a table above the arm refuses it too.
    robot = _robot(q0=READY + OFF)
    cfg = dataclasses.replace(CFG, table_z=0.5)
    out = _session(robot, tmp_path, approach=True, config=cfg)
    assert not out.success
    assert [label for label, _ in out.reports] == [PLAN]  # not only start_state: no approach planned
    # 0.5 rad away, the approach runs at 10% of the velocity limit: over a 9% speed scale, which
    # the plan itself (0.19 rad/s peak on joint 1, limit 0.09 x 2.175) stays under.
    far = READY + 10 * OFF
    robot = _robot(q0=far)
    out = _session(robot, tmp_path, approach=True, config=dataclasses.replace(CFG, speed_scale=0.09))
    assert [label for label, _ in out.reports] == [PLAN, APPROACH]
    assert out.reports[0][1].reasons == [Reason.START_STATE]
    assert out.reports[1][1].reasons == [Reason.VELOCITY_LIMIT]
    assert not out.success and "refused before moving" in out.message and _sends(robot) == 0


def test_plan_approach_ends_at_the_plans_start_and_waives_only_validation():
    ap = plan_approach(READY + OFF, READY, PANDA, KIN, CFG, collision=CHECKS["collision"], gripper_width=0.04)
    assert ap.report.ok, ap.report.format()
    np.testing.assert_allclose(ap.move.q[0], READY + OFF)
    np.testing.assert_allclose(ap.move.q[-1], READY)
    waived = [c.code for c in ap.report.checks if c.message.startswith("waived")]
    assert waived == [Reason.NOT_VALIDATED, Reason.HASH_MISMATCH, Reason.FLOW_MISMATCH, Reason.SIM_FAILED]
    np.testing.assert_array_equal(ap.move.gripper, 0.04)  # the fingers where they are: not commanded


def test_the_arm_moving_while_the_operator_types_stops_the_first_command(tmp_path):
    # Pre-flight saw the arm at the plan's start; then, while the confirmation was being typed,
    # something pushed joint 2 by 0.5 rad. Tick 0 reads the arm again: nothing is sent.
    robot = _robot(hardware=True)

    def typing(request: ConfirmRequest) -> bool:
        robot.q = robot.q + np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0])
        robot.target = robot.q.copy()
        return True

    out = _session(robot, tmp_path, confirm=typing)
    assert out.reports[0][1].ok  # the arm was at the start when pre-flight read it
    assert not out.success and not out.executed
    assert out.message.startswith("refused before moving (start_state): joint panda_joint2 is at")
    assert "|diff| 0.5000 > 0.01 rad" in out.message and "nothing sent" in out.message
    assert _sends(robot) == 0 and robot.stopped
    log = ExecutionLog.load(out.log_path)
    assert log.meta["reason"] == "start_moved" and log.meta["sends"] == 0


def test_the_arm_moving_before_the_approach_stops_it_too(tmp_path):
    robot = _robot(q0=READY + OFF, hardware=True)

    def typing(request: ConfirmRequest) -> bool:
        robot.q = robot.q + 0.2
        robot.target = robot.q.copy()
        return True

    out = _session(robot, tmp_path, approach=True, confirm=typing)
    assert not out.success and out.message.startswith("refused before moving (start_state)")
    assert _sends(robot) == 0


def test_a_plan_that_grasps_nothing_stops_before_lifting(tmp_path, box_task):
    # The box plan on the fake arm with an empty hand: the fingers close to the commanded width.
    from core.plan import Plan

    plan = Plan.load(box_task.plan)
    cfg = dataclasses.replace(CFG, slowdown=2.0)
    robot = _robot(q0=plan.q[0])
    robot.gripper.width = float(plan.gripper[0])
    out = _session(robot, tmp_path, plan=plan, config=cfg)
    assert not out.success and out.message.startswith("stopped (grasp_failed): gripper stopped at")
    # With the box in the hand the same plan completes, its grasp checked.
    robot = _robot(q0=plan.q[0], object_width=0.04)
    robot.gripper.width = float(plan.gripper[0])
    out = _session(robot, tmp_path, plan=plan, config=cfg)
    assert out.success, out.message
    assert [c.kind for c in robot.gripper.commands] == ["grasp", "move"]  # close on the box, open at the end
    log = ExecutionLog.load(out.log_path)
    assert [e["ok"] for e in log.meta["gripper_events"] if "verify" in e] == [True]
    assert log.meta["grasp_force"] == 20.0
