"""Franka Panda / FR3 through ``franky`` (PyPI ``franky-control``), which wraps libfranka.

Each tick preempts the running motion with a new joint target (franky's asynchronous motions
take over seamlessly); franky's Ruckig generator keeps the 1 kHz command within the robot's
velocity/acceleration/jerk limits times ``dynamics_factor``. libfranka's own watchdogs stay in
force underneath: its 1 kHz loop aborts on missed packets (``communication_constraints_violation``)
and the robot's reflexes stop it on collisions and limit violations. A reflex shows up as robot
mode ``Reflex`` or a motion exception; either ends the run. ``recover_from_errors`` is never called.
"""

from __future__ import annotations

import logging

import numpy as np

from core.errors import MissingDependencyError
from real.limits import RobotLimits, limits_for
from real.robot import Robot, RobotState

log = logging.getLogger(__name__)

# Robot modes in which streaming may go on; anything else (Reflex, UserStopped, Guiding,
# AutomaticErrorRecovery, Other) is reported as a fault.
_OK_MODES = ("Idle", "Move")


def _franky():
    try:
        import franky
    except ImportError as e:
        raise MissingDependencyError(
            "the Franka backend needs franky: `pip install 'chord[franka]'` (PyPI package franky-control)"
        ) from e
    return franky


class FrankaRobot(Robot):
    """A Franka arm at ``address`` (the FCI IP), model "panda" or "fr3"."""

    control_period = 0.02  # s, one new franky target per tick

    def __init__(
        self,
        address: str,
        model: str = "panda",
        dynamics_factor: float = 0.25,  # franky's relative dynamics factor (0, 1]: scales its vel/acc/jerk
        realtime: bool = True,  # False only for franky-sim or a non-RT test machine
        limits: RobotLimits | None = None,
    ):
        if model not in ("panda", "fr3"):
            raise ValueError(f"FrankaRobot model is {model!r}, expected 'panda' or 'fr3'")
        if not 0.0 < dynamics_factor <= 1.0:
            raise ValueError(f"dynamics_factor is {dynamics_factor}, expected a fraction in (0, 1]")
        super().__init__(limits or limits_for(model), address)
        self.dynamics_factor = dynamics_factor
        self.realtime = realtime
        self._robot = None

    def _connect(self) -> None:
        franky = _franky()
        rt = franky.RealtimeConfig.Enforce if self.realtime else franky.RealtimeConfig.Ignore
        self._franky = franky
        self._robot = franky.Robot(
            self.address, relative_dynamics_factor=self.dynamics_factor, realtime_config=rt
        )

    def _disconnect(self) -> None:
        self._robot = None

    def _read_state(self) -> RobotState:
        r = self._robot
        fault = None
        try:
            r.poll_motion()  # re-raises an exception of the background motion (e.g. a reflex)
        except Exception as e:
            fault = f"motion aborted: {type(e).__name__}: {e}"
        s = r.state
        mode = s.robot_mode.name
        if fault is None and mode not in _OK_MODES:
            fault = f"robot mode {mode}, errors: {s.current_errors}"
        return RobotState(
            q=np.array(s.q, dtype=float), dq=np.array(s.dq, dtype=float), stamp=s.time.to_sec(), fault=fault
        )

    def _send(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        f = self._franky
        motion = f.JointMotion(f.JointState(q), return_when_finished=False)
        self._robot.move(motion, asynchronous=True)
        return q

    def _stop(self) -> None:
        r = self._robot
        try:
            r.stop()
        finally:
            try:
                r.join_motion(timeout=1.0)
            except Exception as e:  # the preempted motion reports its abort here; expected
                log.info("franka: motion ended on stop: %s", e)
