"""Plans made for the xArm6 and the UR5, each planned, validated in PyBullet, pre-flighted and streamed
through its own backend against a fake of that backend's protocol; and refused on another arm.

The xArm's SDK (``XArmAPI``) and UR's RTDE interfaces are autospecced mocks whose joints follow the
commands (tests/real/test_backends.py); the UR5's Robotiq gripper is the loopback URCap socket
(tests/real/robotiq_server.py). The streams run on simulated time.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from core.plan import Plan
from core.robots import ROBOTS
from real.limits import limits_for
from real.preflight import Reason, SafetyConfig
from real.session import prepare, run_session

rtde_control = pytest.importorskip("rtde_control", reason="ur-rtde not installed (pip install 'chord[ur]')")
rtde_receive = pytest.importorskip("rtde_receive")
xarm_wrapper = pytest.importorskip(
    "xarm.wrapper", reason="xarm-python-sdk not installed (pip install 'chord[xarm]')"
)

CFG = SafetyConfig(slowdown=2.0)


def _ur_model_missing() -> bool:
    from core.errors import ChordError
    from core.robots import example_robot_data_dir

    try:
        example_robot_data_dir()
    except ChordError:
        return True
    return False


pytestmark = pytest.mark.skipif(_ur_model_missing(), reason="the UR5's model: pip install 'chord[ur-model]'")


@pytest.fixture(scope="module")
def arm_plans(box_task, tmp_path_factory) -> dict[str, Path]:
    """The box task's lift planned for each 6-joint arm, validated in PyBullet (verdict written)."""
    from planner.api import plan_file
    from planner.config import PlannerConfig, RobotConfig
    from sim.api import validate_plan

    d = tmp_path_factory.mktemp("arm_plans")
    out = {}
    for name in ("xarm6", "ur5"):
        plan_path = plan_file(
            box_task.flow, box_task.scene, d / f"{name}.npz", PlannerConfig(robot=RobotConfig(name=name))
        ).plan_path
        result = validate_plan(plan_path, box_task.scene, write_verdict=True)
        assert result.success, result.reason
        out[name] = plan_path
    return out


def test_the_plans_name_their_arm_and_its_joints(arm_plans):
    for name, path in arm_plans.items():
        plan = Plan.load(path)
        assert plan.robot == name and plan.joint_names == ROBOTS[name].arm_joints and plan.q.shape[1] == 6
        # the simulator's record says which arm it ran, and how it drove it (a position servo)
        assert plan.validation["metrics"]["robot"] == name
        assert plan.validation["metrics"]["arm_control"] == "position"
        # timed under the arm's jerk limits (x accel_scale 0.5): TOPP-RA alone reached 4.2 x that
        assert 0.0 < plan.report["peak_jerk_fraction_of_limit"] <= 0.5 * 1.01


def _session(robot, plan, box_task, tmp_path, name, confirmed):
    spec = ROBOTS[name]
    limits = robot.limits
    with prepare(plan, limits, scene_path=box_task.scene, flow_path=box_task.flow, robot=spec) as checkers:
        with robot:
            return run_session(
                robot,
                plan,
                CFG,
                lambda request: confirmed.append(request) or True,
                kinematics=checkers.kinematics,
                collision=checkers.collision,
                sim=checkers.sim,
                arm=spec,
                approach=False,
                execute=True,
                log_path=tmp_path / f"{name}.npz",
            )


def test_an_xarm6_plan_runs_through_the_xarm_sdk(arm_plans, box_task, tmp_path):
    from real.backends.fake import SimClock
    from real.backends.xarm import XArmRobot
    from tests.real.test_backends import _xarm_with_gripper

    plan = Plan.load(arm_plans["xarm6"])
    width = float(plan.gripper.min()) + 0.01  # the box: the plan squeezes 1 cm below its width
    XA = _xarm_with_gripper(plan.q[0], object_pulses=round(width * 10000), pulses=850)
    confirmed: list = []
    with mock.patch.object(xarm_wrapper, "XArmAPI", XA), mock.patch("real.backends.xarm.time.sleep"):
        robot = XArmRobot("192.168.1.200")
        robot.clock = SimClock()
        out = _session(robot, plan, box_task, tmp_path, "xarm6", confirmed)
    assert out.success and out.executed, out.message
    report = out.reports[0][1]
    assert report.ok and Reason.ROBOT not in report.reasons
    assert [c.message for c in report.checks if c.code == Reason.ROBOT] == [
        "made for 'xarm6', the arm driven (xarm6)"
    ]
    assert [r.robot for r in confirmed] == ["xarm6"]  # a person confirmed the motion
    arm = XA.return_value
    sent = np.array([c.args[0] for c in arm.set_servo_angle_j.call_args_list])
    # every command on the plan's path, in radians, ending at its last waypoint
    assert all(c.kwargs == {"is_radian": True} for c in arm.set_servo_angle_j.call_args_list)
    np.testing.assert_allclose(sent[-1], plan.q[-1], atol=1e-4)
    assert len(sent) >= len(plan.t)  # streamed at the arm's rate over the 2x slowed timeline
    # the gripper closed on the box through the SDK, at the plan's squeeze width
    pulses = [c.args[0] for c in arm.set_gripper_position.call_args_list]
    assert round(float(plan.gripper.min()) * 10000) in pulses


def _ur_following(q0):
    """Autospecced RTDE interfaces whose measured joints follow servoJ."""
    from tests.real.test_backends import _strict

    C = mock.create_autospec(_strict(rtde_control.RTDEControlInterface))
    R = mock.create_autospec(_strict(rtde_receive.RTDEReceiveInterface))
    c, r = C.return_value, R.return_value
    state = {"q": list(map(float, q0))}

    def servo(q, *args):
        state["q"] = list(q)
        return True

    c.setWatchdog.return_value = True
    c.servoJ.side_effect = servo
    c.isProgramRunning.return_value = True
    r.getActualQ.side_effect = lambda: list(state["q"])
    r.getActualQd.return_value = [0.0] * 6
    ticks = itertools.count()
    r.getTimestamp.side_effect = lambda: next(ticks) * 0.002
    r.isProtectiveStopped.return_value = False
    r.isEmergencyStopped.return_value = False
    return C, R


def test_a_ur5_plan_runs_through_rtde_and_the_robotiq_socket(arm_plans, box_task, tmp_path):
    from real.backends.fake import SimClock
    from real.backends.ur import URRobot
    from tests.real.robotiq_server import FakeURCap

    class PickedURCap(FakeURCap):
        """The box between the fingers until they open: then it stays where it was put."""

        def _advance(self) -> None:
            if self.object_position is not None and self.registers["PRE"] < self._pos - 0.5:
                self.object_position = None
            super()._advance()

    plan = Plan.load(arm_plans["ur5"])
    C, R = _ur_following(plan.q[0])
    # the box stops the fingers at its width (register 0 open .. 230 closed over 85 mm)
    box = float(plan.gripper.min()) + 0.01
    with (
        # the fingers move on the wall clock, 100x fast: a full stroke in under 10 ms, while the
        # stream (on simulated time) spends its 1.2 s gripper dwell in 150 ticks of socket requests
        PickedURCap(object_position=round((0.085 - box) / 0.085 * 230), rate=100.0) as urcap,
        mock.patch.object(rtde_control, "RTDEControlInterface", C),
        mock.patch.object(rtde_receive, "RTDEReceiveInterface", R),
    ):
        robot = URRobot("127.0.0.1", model="ur5", gripper_port=urcap.port)
        robot.clock = SimClock()
        out = _session(robot, plan, box_task, tmp_path, "ur5", [])
        requests = list(urcap.requests)
    assert out.success and out.executed, out.message
    c = C.return_value
    np.testing.assert_allclose(c.servoJ.call_args.args[0], plan.q[-1], atol=1e-4)
    assert c.servoJ.call_count == c.kickWatchdog.call_count
    assert any(r.startswith("SET POS") for r in requests)  # the gripper was commanded through the URCap


@pytest.mark.parametrize(("made_for", "driven"), [("xarm6", "ur5"), ("ur5", "panda"), ("xarm6", "fr3")])
def test_a_plan_for_one_arm_is_refused_on_another(arm_plans, made_for, driven):
    from real.session import dry_run

    plan = Plan.load(arm_plans[made_for])
    limits = limits_for(ROBOTS[driven].limits_model)
    report = dry_run(plan, limits, CFG, None)
    assert Reason.ROBOT in report.reasons
    msg = next(c.message for c in report.checks if c.code == Reason.ROBOT)
    assert f"made for {made_for!r}" in msg and f"the arm driven is a {limits.model!r}" in msg
    # the robot rule gates the others: nothing about the motion is judged for the wrong arm
    assert {c.code for c in report.checks if c.passed is None} >= {Reason.VELOCITY_LIMIT, Reason.WORKSPACE}


def test_chord_real_refuses_a_backend_of_another_arm_and_replays_on_the_fake(
    arm_plans, box_task, capsys, monkeypatch
):
    import real.backends.fake
    from chord.cli.main import main

    # the fake arm on simulated time: the replay checks the same, without waiting the plan's seconds
    monkeypatch.setattr(real.backends.fake, "WallClock", real.backends.fake.SimClock)

    path = str(arm_plans["xarm6"])
    common = ["--scene", str(box_task.scene), "--flow", str(box_task.flow), "--slowdown", "2"]
    assert main(["real", path, "--backend", "franka", "--host", "172.16.0.2", *common]) == 1
    err = capsys.readouterr().err
    assert "the plan was made for 'xarm6'" in err and "--backend xarm" in err
    assert main(["real", path, "--backend", "fake", "--model", "panda", *common]) == 1
    assert "--model panda is not the plan's robot 'xarm6'" in capsys.readouterr().err
    # the fake arm with each arm's own limit table and gripper replays its plan
    for name, path in arm_plans.items():
        width = float(Plan.load(path).gripper.min()) + 0.01
        argv = [
            "real",
            str(path),
            "--backend",
            "fake",
            "--execute",
            "--fake-object-width",
            f"{width}",
            *common,
        ]
        rc = main(argv)
        out = capsys.readouterr().out
        assert rc == 0, out
        assert f"on {ROBOTS[name].limits_model}:" in out and "done: " in out
