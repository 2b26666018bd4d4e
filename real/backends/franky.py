"""Franka Panda / FR3 through ``franky`` (PyPI ``franky-control``), which wraps libfranka.

Each tick preempts the running motion with a new joint target (franky's asynchronous motions
take over seamlessly); franky's Ruckig generator keeps the 1 kHz command within the robot's
velocity/acceleration/jerk limits times ``dynamics_factor``. libfranka's own watchdogs stay in
force underneath: its 1 kHz loop aborts on missed packets (``communication_constraints_violation``)
and the robot's reflexes stop it on collisions and limit violations. A reflex shows up as robot
mode ``Reflex`` or a motion exception; either ends the run. ``recover_from_errors`` is never called.

The Franka Hand is franky's ``Gripper`` (libfranka's gripper connection to the same address):
``move_async`` / ``grasp_async`` start a motion and return a future, so the arm keeps streaming
while the fingers move; the width is read from the gripper's state.
"""

from __future__ import annotations

import logging

import numpy as np

from core.errors import MissingDependencyError
from real.limits import FRANKA_HAND, GripperLimits, RobotLimits, limits_for
from real.robot import Gripper, GripperState, Robot, RobotState

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


class FrankaGripper(Gripper):
    """The Franka Hand at ``address`` through franky's ``Gripper``: asynchronous commands, measured width."""

    def __init__(self, address: str, limits: GripperLimits = FRANKA_HAND):
        super().__init__(limits)
        self.address = address
        self._gripper = None
        self._future = None  # the running command's franky BoolFuture
        self._fault: str | None = None  # a failed command's error, reported on every later read

    def _connect(self) -> None:
        self._gripper = _franky().Gripper(self.address)

    def _disconnect(self) -> None:
        self._gripper = self._future = None

    def _move(self, width: float) -> None:
        self._future = self._gripper.move_async(width, self.limits.speed)

    def _grasp(self, width: float, force: float) -> None:
        # The tolerances accept any stop between fully closed and fully open: whether the fingers
        # closed on an object is decided from the measured width (real.execute), not by libfranka.
        lim = self.limits
        self._future = self._gripper.grasp_async(
            width, lim.speed, force, epsilon_inner=width - lim.min_width, epsilon_outer=lim.max_width
        )

    def _read(self) -> GripperState:
        moving = False
        if self._future is not None:
            moving = not self._future.wait(0.0)
            if not moving:
                future, self._future = self._future, None  # a future's result is read once
                try:
                    future.get()
                except Exception as e:  # libfranka's CommandException: the motion failed
                    self._fault = f"gripper command failed: {type(e).__name__}: {e}"
        return GripperState(width=float(self._gripper.width), moving=moving, fault=self._fault)


class FrankaRobot(Robot):
    """A Franka arm at ``address`` (the FCI IP), model "panda" or "fr3", with its Franka Hand."""

    control_period = 0.02  # s, one new franky target per tick

    def __init__(
        self,
        address: str,
        model: str = "panda",
        dynamics_factor: float = 0.25,  # franky's relative dynamics factor (0, 1]: scales its vel/acc/jerk
        realtime: bool = True,  # False only for franky-sim or a non-RT test machine
        limits: RobotLimits | None = None,
        gripper: bool = True,  # connect the Franka Hand too
    ):
        if model not in ("panda", "fr3"):
            raise ValueError(f"FrankaRobot model is {model!r}, expected 'panda' or 'fr3'")
        if not 0.0 < dynamics_factor <= 1.0:
            raise ValueError(f"dynamics_factor is {dynamics_factor}, expected a fraction in (0, 1]")
        super().__init__(limits or limits_for(model), address, FrankaGripper(address) if gripper else None)
        self.dynamics_factor = dynamics_factor
        self.realtime = realtime
        self._robot = None
        self._last_target: np.ndarray | None = None  # the target the running motion holds

    def _connect(self) -> None:
        franky = _franky()
        rt = franky.RealtimeConfig.Enforce if self.realtime else franky.RealtimeConfig.Ignore
        self._franky = franky
        self._robot = franky.Robot(
            self.address, relative_dynamics_factor=self.dynamics_factor, realtime_config=rt
        )

    def _disconnect(self) -> None:
        self._robot = None
        self._last_target = None

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
        # A target equal to the one the running motion already holds is not sent again: the motion
        # (return_when_finished=False) keeps holding it, and re-planning a zero-length move from the
        # arm's tiny residual velocity can fail in franky's trajectory generator ("Motion planner
        # failed with error code -111", seen on franky-sim while the arm held still for a grasp).
        if self._last_target is not None and np.array_equal(q, self._last_target):
            return q
        f = self._franky
        motion = f.JointMotion(f.JointState(q), return_when_finished=False)
        self._robot.move(motion, asynchronous=True)
        self._last_target = np.array(q, dtype=float)
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
