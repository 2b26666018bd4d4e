"""UFACTORY xArm / Lite6 through ``xarm-python-sdk`` (``xarm.wrapper.XArmAPI``), always in radians.

Streaming uses servo mode (mode 1) and ``set_servo_angle_j``. A non-zero SDK return code, an
error code on the arm or a stopped/error state ends the run; ``clean_error`` and ``clean_warn``
are never called (clearing is a person's job at the robot).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from core.errors import ChordError, MissingDependencyError
from real.limits import RobotLimits, limits_for
from real.robot import Robot, RobotState

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


class XArmRobot(Robot):
    """An xArm at ``address`` streamed in servo mode."""

    control_period = 0.01  # s

    def __init__(self, address: str, model: str = "xarm6", limits: RobotLimits | None = None):
        super().__init__(limits or limits_for(model), address)
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
