"""The UR and xArm backends against their real SDK classes' signatures (mocked: no arm here).

ur_rtde is a pybind11 extension: ``create_autospec`` cannot see its argument lists, so the
signatures are parsed from the docstrings pybind11 writes and a strict facade class is autospecced.
"""

from __future__ import annotations

import inspect
import itertools
from unittest import mock

import numpy as np
import pytest

from real.backends.fake import SimClock
from real.execute import Outcome, execute
from real.limits import UR5E, XARM6

rtde_control = pytest.importorskip("rtde_control", reason="ur-rtde not installed (pip install 'chord[ur]')")
rtde_receive = pytest.importorskip("rtde_receive")
xarm_wrapper = pytest.importorskip(
    "xarm.wrapper", reason="xarm-python-sdk not installed (pip install 'chord[xarm]')"
)


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += 1 if ch in "[(<" else (-1 if ch in "])>" else 0)
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*out, cur.strip()] if cur.strip() else out


def _pybind_signature(func) -> inspect.Signature | None:
    """The first signature line pybind11 writes into a method's docstring (None if it has none)."""
    first = next((line for line in (func.__doc__ or "").splitlines() if "(" in line and ") ->" in line), None)
    if first is None:
        return None
    inner = first[first.index("(") + 1 : first.rindex(") ->")]
    params = []
    for p in _split_top(inner):
        name = p.split(":")[0].strip()
        default = inspect.Parameter.empty if " = " not in p else object()
        params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    return inspect.Signature(params)


def _strict(cls):
    """A plain class whose methods carry ``cls``'s pybind11 signatures, for create_autospec."""
    attrs = {}
    for name, member in vars(cls).items():
        if name.startswith("__") and name != "__init__":
            continue
        sig = _pybind_signature(member) if callable(member) else None
        if sig is not None:

            def f(*a, **k):
                pass

            f.__signature__ = sig
            attrs[name] = f
    return type(f"Strict{cls.__name__}", (), attrs)


def test_signature_parser_reads_servoj():
    sig = _pybind_signature(rtde_control.RTDEControlInterface.servoJ)
    assert list(sig.parameters) == ["self", "arg0", "arg1", "arg2", "arg3", "arg4", "arg5"]
    spec = mock.create_autospec(_strict(rtde_control.RTDEControlInterface), instance=True)
    with pytest.raises(TypeError):
        spec.servoJ([0.0] * 6, 0.0)  # too few arguments: the strict spec catches it


def _ur_mocks(protective_at: int | None = None):
    C = mock.create_autospec(_strict(rtde_control.RTDEControlInterface))
    R = mock.create_autospec(_strict(rtde_receive.RTDEReceiveInterface))
    c, r = C.return_value, R.return_value
    c.setWatchdog.return_value = True
    c.servoJ.return_value = True
    c.isProgramRunning.return_value = True
    q0 = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0])
    r.getActualQ.return_value = list(q0)
    r.getActualQd.return_value = [0.0] * 6
    ticks = itertools.count()
    r.getTimestamp.side_effect = lambda: next(ticks) * 0.002
    reads = itertools.count()
    r.isProtectiveStopped.side_effect = lambda: protective_at is not None and next(reads) >= protective_at
    r.isEmergencyStopped.return_value = False
    return C, R, q0


def test_ur_backend_streams_servoj_with_watchdog_and_stops():
    from real.backends.ur import URRobot

    C, R, q0 = _ur_mocks()
    with (
        mock.patch.object(rtde_control, "RTDEControlInterface", C),
        mock.patch.object(rtde_receive, "RTDEReceiveInterface", R),
    ):
        robot = URRobot("192.168.1.10", gripper=False)
        t = np.linspace(0, 0.08, 11)
        q = np.tile(q0, (11, 1))  # holds still: the mocked arm does not move
        robot.control_period = 0.008
        with robot:
            res = execute(robot, t, q, clock=SimClock())
    c = C.return_value
    C.assert_called_once_with("192.168.1.10")
    R.assert_called_once_with("192.168.1.10")
    c.setWatchdog.assert_called_once_with(20.0)
    assert res.success, res.message
    assert c.servoJ.call_count == res.sends == c.kickWatchdog.call_count
    args = c.servoJ.call_args.args
    assert args[0] == pytest.approx(list(q0)) and args[3:] == (0.008, 0.1, 300.0)
    c.servoStop.assert_called_once_with(2.0)
    c.stopScript.assert_called_once_with()
    c.disconnect.assert_called_once_with()


def test_ur_protective_stop_stops_and_sends_nothing_after():
    from real.backends.ur import URRobot

    C, R, q0 = _ur_mocks(protective_at=6)
    c = C.return_value
    order = []
    c.servoJ.side_effect = lambda *a: order.append("servoJ") or True
    c.servoStop.side_effect = lambda *a: order.append("servoStop") or True
    with (
        mock.patch.object(rtde_control, "RTDEControlInterface", C),
        mock.patch.object(rtde_receive, "RTDEReceiveInterface", R),
    ):
        robot = URRobot("192.168.1.10", gripper=False)
        t = np.linspace(0, 0.8, 101)
        with robot:
            res = execute(robot, t, np.tile(q0, (101, 1)), clock=SimClock())
    assert res.reason == Outcome.FAULT and "protective stop" in res.message
    assert order[-1] == "servoStop" and order.count("servoStop") == 1
    assert order.count("servoJ") == res.sends == 5  # read 0 is the connect check


def _xarm_mock(q0, error_code=0):
    XA = mock.create_autospec(xarm_wrapper.XArmAPI)
    arm = XA.return_value
    arm.get_servo_angle.return_value = (0, [*q0, 0.0])  # the SDK pads to 7 joints
    arm.set_servo_angle_j.return_value = 0
    for name in ("motion_enable", "set_mode", "set_state"):
        getattr(arm, name).return_value = 0
    arm.has_err_warn = error_code != 0
    arm.error_code = error_code
    arm.warn_code = 0
    arm.state = 0
    return XA


def test_xarm_backend_uses_radians_and_servo_mode():
    from real.backends.xarm import XArmRobot

    q0 = np.array([0.0, -0.5, -0.8, 0.0, 1.2, 0.0])
    XA = _xarm_mock(q0)
    with mock.patch.object(xarm_wrapper, "XArmAPI", XA), mock.patch("real.backends.xarm.time.sleep"):
        robot = XArmRobot("192.168.1.200", gripper=False)
        with robot:
            res = execute(robot, np.linspace(0, 0.1, 11), np.tile(q0, (11, 1)), clock=SimClock())
    arm = XA.return_value
    XA.assert_called_once_with("192.168.1.200", is_radian=True)
    arm.set_mode.assert_called_once_with(1)
    assert res.success and arm.set_servo_angle_j.call_count == res.sends
    for call in arm.set_servo_angle_j.call_args_list:
        assert call.kwargs == {"is_radian": True} and call.args[0] == pytest.approx(list(q0))
    arm.set_state.assert_called_with(state=4)
    arm.clean_error.assert_not_called()
    arm.clean_warn.assert_not_called()


def test_xarm_with_an_error_is_refused_not_cleared():
    from real.backends.xarm import XArmRobot

    XA = _xarm_mock(np.zeros(6), error_code=22)
    with mock.patch.object(xarm_wrapper, "XArmAPI", XA), pytest.raises(Exception, match="error code 22"):
        with XArmRobot("192.168.1.200", gripper=False):
            pass
    arm = XA.return_value
    arm.clean_error.assert_not_called()
    arm.set_servo_angle_j.assert_not_called()


def test_limit_tables_match_the_sdk_robots():
    assert UR5E.dof == 6 and XARM6.dof == 6


# -- the xArm Gripper through the SDK ----------------------------------------------------------


def _xarm_with_gripper(q0, object_pulses=None, pulses=600, step=5):
    """An autospecced XArmAPI whose joints follow set_servo_angle_j and whose gripper moves ``step``
    pulses per reading toward its target, stopping at ``object_pulses`` (an object) when closing."""
    XA = _xarm_mock(q0)
    arm = XA.return_value
    s = {"q": [*q0, 0.0], "pos": pulses, "target": pulses}

    def servo(angles, **kw):
        s["q"] = [*angles, 0.0]
        return 0

    def set_position(pos, wait=False, speed=None, **kw):
        assert wait is False  # never block the streaming loop
        s["target"] = pos
        return 0

    def goal():
        obj = object_pulses
        return obj if obj is not None and s["target"] < obj <= s["pos"] else s["target"]

    def read_position(**kw):
        g = goal()
        s["pos"] = g if abs(g - s["pos"]) <= step else s["pos"] + step * np.sign(g - s["pos"])
        return 0, s["pos"]

    arm.set_servo_angle_j.side_effect = servo
    arm.get_servo_angle.side_effect = lambda **kw: (0, list(s["q"]))
    for name in ("set_gripper_mode", "set_gripper_enable", "set_gripper_speed"):
        getattr(arm, name).return_value = 0
    arm.set_gripper_position.side_effect = set_position
    arm.get_gripper_position.side_effect = read_position
    arm.get_gripper_status.side_effect = lambda: (0, 1 if s["pos"] != goal() else 0)
    arm.get_gripper_err_code.return_value = (0, 0)
    return XA


@pytest.mark.parametrize("object_pulses", [400, None])
def test_xarm_gripper_closes_through_the_sdk_and_is_checked(object_pulses):
    from real.backends.xarm import XArmRobot
    from tests.real.gripper_plans import pick

    q0 = np.array([0.0, -0.5, -0.8, 0.0, 1.2, 0.0])
    t, q, g, _ = pick(q0, np.array([0.0, 0.05, 0.0, 0.0, 0.05, 0.0]))
    XA = _xarm_with_gripper(q0, object_pulses)
    with mock.patch.object(xarm_wrapper, "XArmAPI", XA), mock.patch("real.backends.xarm.time.sleep"):
        robot = XArmRobot("192.168.1.200")
        with robot:
            res = execute(robot, t, q, gripper=g, clock=SimClock())
    arm = XA.return_value
    arm.set_gripper_mode.assert_called_once_with(0)
    arm.set_gripper_enable.assert_called_once_with(True)
    arm.set_gripper_speed.assert_called_once_with(1500)
    # one command: close to 30 mm (300 pulses), without waiting, at the configured speed
    assert arm.set_gripper_position.call_args_list == [mock.call(300, wait=False, speed=1500)]
    arm.clean_gripper_error.assert_not_called()
    if object_pulses:
        assert res.success, res.message
        assert res.log.array("grip_meas")[-1] == pytest.approx(0.04)
    else:
        assert res.reason == Outcome.GRASP_FAILED and "30.0 mm" in res.message


def test_xarm_gripper_error_code_stops_the_run():
    from real.backends.xarm import XArmRobot
    from tests.real.gripper_plans import pick

    q0 = np.array([0.0, -0.5, -0.8, 0.0, 1.2, 0.0])
    t, q, g, _ = pick(q0, np.zeros(6))
    XA = _xarm_with_gripper(q0, 400)
    XA.return_value.get_gripper_err_code.return_value = (0, 9)
    with mock.patch.object(xarm_wrapper, "XArmAPI", XA), mock.patch("real.backends.xarm.time.sleep"):
        with XArmRobot("192.168.1.200") as robot:
            res = execute(robot, t, q, gripper=g, clock=SimClock())
    assert res.reason == Outcome.GRIPPER_FAULT and "gripper error code 9" in res.message and res.sends == 0


def test_franka_does_not_replan_a_target_its_running_motion_already_holds():
    """A hold (the same target tick after tick, e.g. while the hand closes) is one JointMotion:
    re-planning a zero-length move each tick failed franky's generator on franky-sim (-111)."""
    from types import SimpleNamespace

    from real.backends.franky import FrankaRobot

    moves = []
    robot = FrankaRobot("127.0.0.1", model="fr3", realtime=False)
    robot._franky = SimpleNamespace(
        JointState=lambda q: tuple(q), JointMotion=lambda state, return_when_finished: state
    )
    robot._robot = SimpleNamespace(move=lambda motion, asynchronous: moves.append(motion))
    q = np.linspace(0.0, 0.6, 7)
    for target in (q, q, q.copy(), q + 1e-6, q + 1e-6, q):
        assert np.array_equal(robot._send(target, np.zeros(7)), target)
    assert moves == [tuple(q), tuple(q + 1e-6), tuple(q)]
    robot._disconnect()  # a new session starts without a held target
    robot._robot = SimpleNamespace(move=lambda motion, asynchronous: moves.append(motion))
    robot._send(q, np.zeros(7))
    assert len(moves) == 4
