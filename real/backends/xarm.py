"""UFACTORY xArm / Lite6 through ``xarm-python-sdk`` (``xarm.wrapper.XArmAPI``), always in radians.

Streaming uses servo mode (mode 1) and ``set_servo_angle_j``. A non-zero SDK return code, an
error code on the arm or a stopped/error state ends the run; ``clean_error`` and ``clean_warn``
are never called (clearing is a person's job at the robot).

The xArm Gripper is driven through the same ``XArmAPI`` connection: ``set_gripper_position``
(pulses, 850 = 85 mm open, without waiting) and ``get_gripper_position`` / ``get_gripper_status``.
The SDK sets its position and speed, not its grasp force (the gripper's own, in its limit table).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from core.errors import ChordError, MissingDependencyError
from real.limits import XARM_GRIPPER, GripperLimits, RobotLimits, limits_for
from real.robot import Gripper, GripperState, Robot, RobotState

log = logging.getLogger(__name__)

_SERVO_MODE = 1
_STATE_READY = 0
_STATE_STOP = 4


def _xarm():
    try:
        from xarm.wrapper import XArmAPI
    except ImportError as e:
        raise MissingDependencyError(
            "the xArm backend needs the xArm SDK: `pip install 'chord[xarm]'` (PyPI package xarm-python-sdk)"
        ) from e
    return XArmAPI


_PULSES_PER_M = 850 / 0.085  # the xArm Gripper's position unit: 850 pulses = 85 mm open
_GRIPPER_SPEED_RPM = 1500  # the SDK's unit (r/min, 1000-5000): a moderate finger speed
_GRIPPER_MOVING = 1  # get_gripper_status: status & 0x03 == 1 while moving


class XArmGripper(Gripper):
    """The xArm Gripper on the arm's own SDK connection (``api()`` returns the connected XArmAPI)."""

    def __init__(self, api, limits: GripperLimits = XARM_GRIPPER):  # api: Callable[[], XArmAPI]
        super().__init__(limits)
        self._api = api
        self._last_position: float | None = None

    def _call(self, what: str, code: int) -> None:
        if code != 0:
            raise ChordError(f"xarm gripper: {what} returned code {code}")

    def _connect(self) -> None:
        arm = self._api()
        self._call("set_gripper_mode", arm.set_gripper_mode(0))
        self._call("set_gripper_enable", arm.set_gripper_enable(True))
        self._call("set_gripper_speed", arm.set_gripper_speed(_GRIPPER_SPEED_RPM))

    def _disconnect(self) -> None:
        pass  # the arm's connection is closed by the arm

    def _move(self, width: float) -> None:
        pulses = round(width * _PULSES_PER_M)
        self._call(
            "set_gripper_position",
            self._api().set_gripper_position(pulses, wait=False, speed=_GRIPPER_SPEED_RPM),
        )

    def _grasp(self, width: float, force: float) -> None:
        # Closing with the gripper's own force (the limit table allows no other): a position command
        # below the object's width, which the fingers stop on.
        self._move(width)

    def _read(self) -> GripperState:
        arm = self._api()
        code, position = arm.get_gripper_position()
        if code != 0:
            return GripperState(float("nan"), False, f"get_gripper_position returned code {code}")
        code, err = arm.get_gripper_err_code()
        if code == 0 and err:
            return GripperState(float(position) / _PULSES_PER_M, False, f"gripper error code {err}")
        code, status = arm.get_gripper_status()
        if code == 0:
            moving = (status & 0x03) == _GRIPPER_MOVING
        else:  # older gripper firmware has no status: moving while the reading still changes
            moving = self._last_position is None or abs(position - self._last_position) > 1
        self._last_position = position
        return GripperState(width=float(position) / _PULSES_PER_M, moving=moving)


class XArmRobot(Robot):
    """An xArm at ``address`` streamed in servo mode, with its xArm Gripper."""

    control_period = 0.01  # s

    def __init__(
        self,
        address: str,
        model: str = "xarm6",
        limits: RobotLimits | None = None,
        gripper: bool = True,  # drive the xArm Gripper too
    ):
        super().__init__(
            limits or limits_for(model), address, XArmGripper(lambda: self._arm) if gripper else None
        )
        self._arm = None

    def _connect(self) -> None:
        XArmAPI = _xarm()
        arm = XArmAPI(self.address, is_radian=True)
        self._arm = arm
        if arm.has_err_warn:
            # Refuse here rather than clear: the base class reports it as a fault too.
            return
        for what, code in (
            ("motion_enable", arm.motion_enable(enable=True)),
            ("set_mode", arm.set_mode(_SERVO_MODE)),
            ("set_state", arm.set_state(state=_STATE_READY)),
        ):
            if code != 0:
                raise ChordError(f"xarm at {self.address}: {what} returned code {code}")
        time.sleep(0.1)  # the controller needs a moment to enter servo mode

    def _disconnect(self) -> None:
        if self._arm is not None:
            self._arm.disconnect()
        self._arm = None

    def _read_state(self) -> RobotState:
        arm = self._arm
        code, angles = arm.get_servo_angle(is_radian=True)
        fault = None
        if code != 0:
            fault = f"get_servo_angle returned code {code}"
        elif arm.has_err_warn or arm.error_code != 0:
            fault = f"error code {arm.error_code}, warn code {arm.warn_code}"
        elif self._connected and arm.state == _STATE_STOP:
            fault = "arm state 4 (stopped)"
        q = np.array(angles[: self.limits.dof], dtype=float)
        # The SDK has no state timestamp: the receive time stands in, so staleness shows up as a
        # read error or an unchanged reading caught by the path/goal checks.
        return RobotState(q=q, dq=None, stamp=time.monotonic(), fault=fault)

    def _send(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        angles = [float(x) for x in q]
        code = self._arm.set_servo_angle_j(angles, is_radian=True)
        if code != 0:
            raise ChordError(f"xarm at {self.address}: set_servo_angle_j returned code {code}")
        return np.array(angles)

    def _stop(self) -> None:
        self._arm.set_state(state=_STATE_STOP)
