"""The Robotiq URCap socket client (UR arms' gripper) against a loopback fake of the protocol."""

from __future__ import annotations

import itertools
import time
from unittest import mock

import numpy as np
import pytest

from core.errors import ChordError
from real.backends.fake import SimClock
from real.backends.robotiq import RobotiqSocketGripper
from real.execute import Outcome, execute
from real.limits import ROBOTIQ_2F85
from tests.real.gripper_plans import pick
from tests.real.robotiq_server import FakeURCap

UR_Q0 = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0])
UR_DOWN = np.array([0.0, 0.05, -0.05, 0.0, 0.0, 0.0])


def _client(server: FakeURCap, **kw) -> RobotiqSocketGripper:
    return RobotiqSocketGripper("127.0.0.1", server.port, timeout=0.5, **kw)


def test_units_map_onto_the_registers():
    g = RobotiqSocketGripper("127.0.0.1")
    assert g.position_of(ROBOTIQ_2F85.max_width) == 0 and g.position_of(0.0) == 255
    assert g.width_of(0) == pytest.approx(0.085) and g.width_of(255) == pytest.approx(0.0)
    assert g.width_of(g.position_of(0.04)) == pytest.approx(0.04, abs=0.085 / 255)
    calibrated = RobotiqSocketGripper("127.0.0.1", open_position=3, closed_position=228)
    assert calibrated.position_of(0.085) == 3 and calibrated.position_of(0.0) == 228


def test_connect_reads_the_status_and_a_grasp_is_one_set_line():
    with FakeURCap() as server:
        g = _client(server)
        g.connect()
        g.grasp(0.02, force=50.0)
        g.disconnect()
    assert server.requests[:2] == ["GET STA", "GET FLT"]
    # 20 mm -> 195; 50 mm/s of 20-150 -> 59; 50 N of 20-235 -> 36
    assert server.requests[2] == "SET POS 195 SPE 59 FOR 36 GTO 1"


def test_the_fingers_stop_on_an_object_and_say_so():
    obj = RobotiqSocketGripper("127.0.0.1").position_of(0.04)
    with FakeURCap(object_position=obj, rate=20.0) as server:
        g = _client(server)
        g.connect()
        g.grasp(0.02, force=50.0)
        # The fake's fingers move on the wall clock: wait up to 10 s (seconds on a loaded machine),
        # not a number of reads, which a busy machine can spend before the fingers get anywhere.
        deadline = time.monotonic() + 10.0
        while True:
            state = g.read()
            if not state.moving or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        g.disconnect()
    assert not state.moving and state.fault is None
    assert state.width == pytest.approx(0.04, abs=0.001)  # stopped on the object, above the 20 mm asked
    assert server.registers["OBJ"] == 2  # the URCap's "object detected while closing"


@pytest.mark.parametrize(
    ("server_kw", "match"),
    [
        ({"active": False}, r"gripper not active \(STA 0\); activate it from the URCap"),
        ({"fault": 7}, r"gripper fault FLT 7"),
        ({"reply_override": {"GET STA": "STA three"}}, r"'GET STA' got 'STA three', expected"),
        ({"reply_override": {"GET STA": "POS 3"}}, r"'GET STA' got 'POS 3'"),
    ],
)
def test_a_gripper_that_cannot_be_used_is_refused_at_connect(server_kw, match):
    with FakeURCap(**server_kw) as server:
        g = _client(server)
        with pytest.raises(ChordError, match=match):
            g.connect()
        g.disconnect()


def test_a_set_that_is_not_acknowledged_raises():
    with FakeURCap(reply_override={"SET POS 0 SPE 59 FOR 0 GTO 1": "nak"}) as server:
        g = _client(server)
        g.connect()
        with pytest.raises(ChordError, match="expected 'ack'"):
            g.move(0.085)


def test_nothing_listening_is_a_one_line_error():
    with FakeURCap() as server:
        port = server.port
    with pytest.raises(ChordError, match="cannot connect .* Robotiq URCap"):
        RobotiqSocketGripper("127.0.0.1", port, timeout=0.2).connect()


def _ur_arm_that_follows():
    """ur_rtde mocks whose measured joints follow the last servoJ target."""
    import rtde_control
    import rtde_receive

    from tests.real.test_backends import _strict

    C = mock.create_autospec(_strict(rtde_control.RTDEControlInterface))
    R = mock.create_autospec(_strict(rtde_receive.RTDEReceiveInterface))
    c, r = C.return_value, R.return_value
    state = {"q": list(UR_Q0)}
    c.setWatchdog.return_value = True
    c.isProgramRunning.return_value = True
    c.servoJ.side_effect = lambda q, *a: state.update(q=list(q)) or True
    r.getActualQ.side_effect = lambda: state["q"]
    r.getActualQd.return_value = [0.0] * 6
    ticks = itertools.count()
    r.getTimestamp.side_effect = lambda: next(ticks) * 0.002
    r.isProtectiveStopped.return_value = False
    r.isEmergencyStopped.return_value = False
    return rtde_control, rtde_receive, C, R


@pytest.mark.parametrize("with_object", [True, False])
def test_a_ur_pick_grasps_through_the_urcap_socket(with_object):
    pytest.importorskip("rtde_control", reason="ur-rtde not installed (pip install 'chord[ur]')")
    from real.backends.ur import URRobot

    rtde_control, rtde_receive, C, R = _ur_arm_that_follows()
    t, q, g, _ = pick(UR_Q0, UR_DOWN)
    helper = RobotiqSocketGripper("127.0.0.1")
    obj = helper.position_of(0.04) if with_object else None
    with (
        FakeURCap(position=helper.position_of(float(g[0])), object_position=obj, rate=20.0) as server,
        mock.patch.object(rtde_control, "RTDEControlInterface", C),
        mock.patch.object(rtde_receive, "RTDEReceiveInterface", R),
    ):
        robot = URRobot("127.0.0.1", gripper_port=server.port)
        with robot:
            res = execute(robot, t, q, gripper=g, clock=SimClock())
    grasps = [r for r in server.requests if r.startswith("SET POS")]
    assert grasps == [f"SET POS {helper.position_of(0.03)} SPE 59 FOR 36 GTO 1"]  # rated 50 N
    if with_object:
        assert res.success, res.message
        assert res.log.array("grip_meas")[-1] == pytest.approx(0.04, abs=0.001)
    else:
        assert res.reason == Outcome.GRASP_FAILED and "closed on nothing" in res.message
        lifted = np.array(C.return_value.servoJ.call_args.args[0])
        np.testing.assert_allclose(
            lifted, UR_Q0 + UR_DOWN, atol=1e-9
        )  # the last target: still at the grasp pose
