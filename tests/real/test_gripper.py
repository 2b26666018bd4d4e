"""The gripper in the streaming loop (fake arm and fake gripper on one simulated clock).

A pick: the arm comes down, holds still while the fingers close on a 4 cm object, lifts. The
loop sends one grasp, holds the arm until the fingers stop, checks from the measured width that
they stopped on the object, and only then lets the arm lift; an empty hand, a jammed gripper or
an object slipping out stops the run before (or as soon as) it matters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import ChordError
from real.backends.fake import FakeGripper, FakeRobot, SimClock
from real.execute import ExecutionConfig, Outcome, execute
from real.gripper import gripper_events
from real.limits import FRANKA_HAND, PANDA
from real.log import ExecutionLog
from real.robot import GripperState, RobotStoppedError
from tests.real.gripper_plans import DOWN, HOLD, OBJECT, OPEN, pick
from tests.real.plans import READY


def _robot(object_width=OBJECT, width=OPEN, gripper_cls=FakeGripper, **kw):
    clock = SimClock()
    hand = gripper_cls(FRANKA_HAND, width=width, object_width=object_width, clock=clock, **kw)
    return FakeRobot(PANDA, q0=READY, clock=clock, gripper=hand)


def _sent(robot) -> np.ndarray:
    return np.array([e.q for e in robot.events if e.kind == "send"])


def test_gripper_events_are_the_stretches_where_the_width_changes():
    t, _, g, ph = pick()
    (ev,) = gripper_events(t, g)
    assert ev.closing and ev.t_start == pytest.approx(ph["close_start"]) and ev.t_end == pytest.approx(1.6)
    assert (ev.width_from, ev.width_to) == (pytest.approx(OPEN), pytest.approx(HOLD))
    back = np.concatenate([g, np.linspace(HOLD, OPEN, 10)])
    events = gripper_events(np.arange(len(back)) * 0.01, back)
    assert [e.closing for e in events] == [True, False] and events[1].width_to == pytest.approx(OPEN)
    assert gripper_events(t, np.full(len(t), 0.04)) == []


def test_a_pick_grasps_checks_the_width_then_lifts(tmp_path):
    t, q, g, ph = pick()
    robot = _robot()
    with robot:
        res = execute(robot, t, q, gripper=g)
    assert res.success, res.message
    cmds = robot.gripper.commands
    assert [(c.kind, c.width, c.force) for c in cmds] == [
        ("grasp", pytest.approx(HOLD), FRANKA_HAND.rated_force)
    ]
    assert cmds[0].at == pytest.approx(ph["close_start"], abs=0.011)  # sent when the stretch starts
    log = res.log
    grip_cmd, grip_meas = log.array("grip_cmd"), log.array("grip_meas")
    assert np.isfinite(grip_cmd).all() and np.isfinite(grip_meas).all()  # every tick: commanded and measured
    assert grip_cmd[0] == pytest.approx(OPEN) and grip_cmd[-1] == pytest.approx(HOLD)
    assert grip_meas[-1] == pytest.approx(OBJECT)  # stopped on the object, not at the commanded 30 mm
    verdicts = [e for e in log.meta["gripper_events"] if "verify" in e]
    assert len(verdicts) == 1 and verdicts[0]["ok"] and verdicts[0]["width"] == pytest.approx(OBJECT)
    # The fingers close at 50 mm/s: 20 mm take 0.4 s, within the plan's 0.6 s: no hold was needed.
    assert res.sends == round(t[-1] / robot.control_period)
    np.testing.assert_allclose(log.array("q_meas")[-1], q[-1], atol=1e-5)
    back = ExecutionLog.load(log.save(tmp_path / "pick.npz"))
    np.testing.assert_array_equal(back.array("grip_meas"), grip_meas)


def test_an_empty_hand_stops_before_the_arm_lifts():
    t, q, g, ph = pick()
    robot = _robot(object_width=None)
    with robot:
        res = execute(robot, t, q, gripper=g)
    assert res.reason == Outcome.GRASP_FAILED and "closed on nothing" in res.message
    assert "30.0 mm" in res.message and "the arm does not lift" in res.message
    sent = _sent(robot)
    # Nothing was sent past the grasp pose: every command after the close began is that pose.
    after_close = sent[round(ph["close_start"] / robot.control_period) :]
    np.testing.assert_allclose(after_close, np.tile(READY + DOWN, (len(after_close), 1)), atol=1e-12)
    assert robot.stopped and robot.events[-1].kind == "stop"
    with pytest.raises(RobotStoppedError):
        robot.gripper.move(OPEN)  # the stop latches the gripper too; its grip is not released


class _Slow(FakeGripper):
    """Fingers at 10 mm/s: the close takes 2 s where the plan gives it 0.6 s."""

    def __init__(self, *a, **kw):
        super().__init__(*a, speed=0.01, **kw)


def test_a_slow_gripper_holds_the_arm_still_until_it_stops():
    t, q, g, ph = pick()
    robot = _robot(gripper_cls=_Slow)
    with robot:
        res = execute(robot, t, q, gripper=g)
    assert res.success, res.message
    period = robot.control_period
    held = res.sends - round(t[-1] / period)
    # 20 mm at 10 mm/s: 2 s from the close's start, 1.4 s longer than planned
    assert held * period == pytest.approx(1.4, abs=0.03)
    sent = _sent(robot)
    k0 = round(ph["close_end"] / period)
    np.testing.assert_allclose(sent[k0 : k0 + held], np.tile(READY + DOWN, (held, 1)), atol=1e-12)
    assert res.log.array("grip_meas")[k0 + held] == pytest.approx(OBJECT)


class _Jammed(FakeGripper):
    """Reports the fingers still and where they were: a gripper that never closed."""

    def _read(self) -> GripperState:
        return GripperState(width=OPEN, moving=False)


def test_a_gripper_that_did_not_close_stops_the_run():
    t, q, g, _ = pick()
    robot = _robot(gripper_cls=_Jammed)
    with robot:
        res = execute(robot, t, q, gripper=g)
    assert res.reason == Outcome.GRASP_FAILED and "did not close" in res.message


class _Stuck(FakeGripper):
    """Never gets there and never says it stopped."""

    def _read(self) -> GripperState:
        return GripperState(width=0.05, moving=True)


def test_a_gripper_that_never_stops_times_out():
    t, q, g, _ = pick()
    robot = _robot(gripper_cls=_Stuck)
    with robot:
        res = execute(robot, t, q, ExecutionConfig(gripper_timeout=0.5), gripper=g)
    assert res.reason == Outcome.GRIPPER_FAULT and "timeout 0.5 s" in res.message


class _Slipping(FakeGripper):
    """The object slips out 0.5 s into the lift."""

    def _read(self) -> GripperState:
        if self.clock.now() > 2.1:
            self.object_width = None
        return super()._read()


def test_an_object_slipping_out_during_the_lift_stops_the_run():
    t, q, g, _ = pick()
    robot = _robot(gripper_cls=_Slipping)
    with robot:
        res = execute(robot, t, q, gripper=g)
    assert res.reason == Outcome.GRASP_LOST and "slipped out" in res.message
    assert 2.1 < res.log.array("t")[-1] < 2.5  # within a few ticks of the slip (fingers at 50 mm/s)


def test_the_fingers_are_opened_to_the_plans_start_width_before_the_arm_moves():
    t, q, g, _ = pick()
    robot = _robot(width=0.0)  # closed: the plan starts open at 60 mm
    with robot:
        res = execute(robot, t, q, gripper=g)
    assert res.success, res.message
    first = robot.gripper.commands[0]
    assert (first.kind, first.width, first.at) == ("move", pytest.approx(OPEN), 0.0)
    # The arm waits at the start until the fingers are within 5 mm of 60 mm: 55 mm at 50 mm/s, 1.1 s.
    tol = ExecutionConfig().gripper_tolerance
    held = round((OPEN - tol) / FRANKA_HAND.speed / robot.control_period)
    sent = _sent(robot)
    np.testing.assert_allclose(sent[: held + 1], np.tile(READY, (held + 1, 1)))  # the arm stays at the start
    assert (sent[held + 2] != READY).any()  # then it goes
    meas = res.log.array("grip_meas")
    assert meas[0] == 0.0 and meas[held] == pytest.approx(OPEN - tol) and meas[-1] == pytest.approx(OBJECT)


class _Faulty(FakeGripper):
    def _read(self) -> GripperState:
        return GripperState(width=math.nan, moving=False)


def test_a_non_finite_gripper_reading_is_a_fault():
    t, q, g, _ = pick()
    robot = _robot(gripper_cls=_Faulty)
    with robot:
        res = execute(robot, t, q, gripper=g)
    assert res.reason == Outcome.GRIPPER_FAULT and "not finite" in res.message and res.sends == 0


def test_a_robot_without_a_gripper_refuses_a_gripper_track():
    t, q, g, _ = pick()
    robot = FakeRobot(PANDA, q0=READY, clock=SimClock())
    with robot, pytest.raises(ChordError, match="has no gripper"):
        execute(robot, t, q, gripper=g)
    assert _sent(robot).size == 0


@pytest.mark.parametrize(
    ("width", "force"), [(0.5, 20.0), (-0.01, 20.0), (math.nan, 20.0), (0.03, 500.0), (0.03, math.nan)]
)
def test_out_of_range_gripper_commands_are_never_sent(width, force):
    hand = FakeGripper(FRANKA_HAND, width=0.04, clock=SimClock())
    with pytest.raises(ValueError, match="nothing sent"):
        hand.grasp(width, force)
    with pytest.raises(ValueError, match="nothing sent"):
        hand.move(width if force == 20.0 else 0.5)
    assert hand.commands == []


@pytest.mark.parametrize("bad", [math.nan, 0.0, 0.2, -1.0])
def test_a_fake_object_width_out_of_range_is_refused(bad):
    with pytest.raises(ChordError, match="object_width"):
        FakeGripper(FRANKA_HAND, object_width=bad)
