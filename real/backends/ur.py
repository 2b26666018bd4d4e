"""Universal Robots arms through ``ur_rtde`` (PyPI ``ur-rtde``): ``servoJ`` streaming with its watchdog.

The RTDE watchdog (``setWatchdog``) makes the controller stop the arm by itself if our loop stops
kicking it for longer than 1 / min_frequency, so a hung Python process cannot leave the arm
following a stale target. Protective and emergency stops are read from ``RTDEReceiveInterface``
and end the run; they are never cleared from here. The gripper is a Robotiq 2F on the tool flange,
driven through the Robotiq URCap's socket on the controller (``real.backends.robotiq``).
"""

from __future__ import annotations

import logging

import numpy as np

from core.errors import ChordError, MissingDependencyError
from real.backends.robotiq import PORT, RobotiqSocketGripper
from real.limits import RobotLimits, limits_for
from real.robot import Robot, RobotState

log = logging.getLogger(__name__)


def _rtde():
    try:
        import rtde_control
        import rtde_receive
    except ImportError as e:
        raise MissingDependencyError(
            "the UR backend needs ur_rtde: `pip install 'chord[ur]'` (PyPI package ur-rtde)"
        ) from e
    return rtde_control, rtde_receive


class URRobot(Robot):
    """A UR arm at ``address`` streamed with servoJ at ``control_period``."""

    control_period = 0.008  # s, 125 Hz: the CB3/e-Series RTDE minimum that servoJ interpolates

    def __init__(
        self,
        address: str,
        model: str = "ur5e",
        lookahead_time: float = 0.1,  # s, servoJ smoothing window [0.03, 0.2]
        gain: float = 300.0,  # servoJ proportional gain [100, 2000]
        watchdog_hz: float = 20.0,  # controller stops the arm if not kicked this often
        stop_deceleration: float = 2.0,  # rad/s^2, servoStop deceleration
        limits: RobotLimits | None = None,
        gripper: bool = True,  # connect the Robotiq gripper through the URCap socket
        gripper_port: int = PORT,
    ):
        hand = RobotiqSocketGripper(address, gripper_port) if gripper else None
        super().__init__(limits or limits_for(model), address, hand)
        if not 0.03 <= lookahead_time <= 0.2:
            raise ValueError(f"lookahead_time is {lookahead_time} s, servoJ accepts [0.03, 0.2]")
        if not 100 <= gain <= 2000:
            raise ValueError(f"gain is {gain}, servoJ accepts [100, 2000]")
        self.lookahead_time = lookahead_time
        self.gain = gain
        self.watchdog_hz = watchdog_hz
        self.stop_deceleration = stop_deceleration
        self._c = self._r = None

    def _connect(self) -> None:
        rtde_control, rtde_receive = _rtde()
        self._r = rtde_receive.RTDEReceiveInterface(self.address)
        self._c = rtde_control.RTDEControlInterface(self.address)
        if not self._c.setWatchdog(self.watchdog_hz):
            raise ChordError(
                f"ur at {self.address}: could not enable the RTDE watchdog at {self.watchdog_hz} Hz"
            )

    def _disconnect(self) -> None:
        for iface in (self._c, self._r):
            if iface is not None:
                iface.disconnect()
        self._c = self._r = None

    def _read_state(self) -> RobotState:
        r = self._r
        fault = None
        if r.isEmergencyStopped():
            fault = "emergency stop"
        elif r.isProtectiveStopped():
            fault = "protective stop"
        elif not self._c.isProgramRunning():
            fault = "control script not running (stopped by the controller)"
        return RobotState(
            q=np.array(r.getActualQ(), dtype=float),
            dq=np.array(r.getActualQd(), dtype=float),
            stamp=float(r.getTimestamp()),
            fault=fault,
        )

    def _send(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        c = self._c
        target = [float(x) for x in q]
        # speed and acceleration are unused by servoJ; the time is our control period.
        if not c.servoJ(target, 0.0, 0.0, self.control_period, self.lookahead_time, self.gain):
            raise ChordError(f"ur at {self.address}: servoJ rejected the target {target}")
        c.kickWatchdog()
        return np.array(target)

    def _stop(self) -> None:
        c = self._c
        try:
            c.servoStop(self.stop_deceleration)
        finally:
            c.stopScript()
