"""One interface for every arm: connect, read state, stream joint targets, stop; and its gripper.

A ``Robot`` is a context manager: leaving the block (normally, by exception, by Ctrl-C) calls
``stop()`` and then ``disconnect()``. ``stop()`` latches: once called, ``send_action`` raises and
nothing more reaches the arm (or its gripper) until a new session is opened. No backend ever
clears a protective or emergency stop: a person does that at the robot (pendant, Desk), then
starts a new session.

A robot carries its ``Gripper`` (``robot.gripper``, None for an arm without one), connected and
disconnected with it. Gripper commands start a motion and return at once (the arm keeps being
streamed meanwhile); ``Gripper.read`` says where the fingers are and whether they still move.
Stopping the arm does not open or stop the gripper: a grip that holds an object keeps holding it.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass

import numpy as np

from core.errors import ChordError
from real.limits import GripperLimits, RobotLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RobotState:
    """One reading of the arm."""

    q: np.ndarray  # [J] rad, measured joint positions
    dq: np.ndarray | None  # [J] rad/s, measured joint velocities (None if the SDK has none)
    stamp: float  # s, the robot's own clock; a stamp that stops advancing means stale state
    fault: str | None = None  # protective/emergency stop, reflex or error text; None when fine


class RobotStoppedError(ChordError):
    """``send_action`` (or a gripper command) after ``stop()``: the session is over, nothing is sent."""


@dataclass(frozen=True)
class GripperState:
    """One reading of the gripper."""

    width: float  # m, measured finger opening (NaN if the reading failed)
    moving: bool  # a commanded motion is still under way
    fault: str | None = None  # the gripper's error text; None when fine


class Gripper(abc.ABC):
    """Base class of the gripper backends: the public methods enforce the limits and the stop latch."""

    def __init__(self, limits: GripperLimits):
        self.limits = limits
        self._stopped = False
        self._connected = False

    def connect(self) -> None:
        self._connect()
        self._connected = True

    def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self._disconnect()

    def latch(self) -> None:
        """Refuse every later command (the arm's session stopped); the current grip is kept."""
        self._stopped = True

    def move(self, width: float) -> None:
        """Start moving the fingers to ``width`` (m) at the table's speed; returns at once."""
        self._check("move", width)
        self._move(float(width))

    def grasp(
        self,
        width: float,  # m, the commanded closing width (the fingers stop earlier on an object)
        force: float,  # N, grasp force, within [limits.min_force, limits.max_force]
    ) -> None:
        """Start closing to ``width`` with ``force``; returns at once. Stops on an object."""
        self._check("grasp", width)
        lim = self.limits
        if not (isinstance(force, (int, float)) and lim.min_force <= force <= lim.max_force):
            raise ValueError(
                f"{lim.model}: grasp force {force!r} N outside [{lim.min_force}, {lim.max_force}] N; nothing sent"
            )
        self._grasp(float(width), float(force))

    def read(self) -> GripperState:
        """The measured opening; a non-finite reading comes back as a fault."""
        state = self._read()
        if not np.isfinite(state.width) and state.fault is None:
            return GripperState(
                state.width, state.moving, f"gripper width reading {state.width!r} is not finite"
            )
        return state

    def _check(self, what: str, width: float) -> None:
        if self._stopped:
            raise RobotStoppedError(f"{self.limits.model}: gripper {what} after stop(); nothing sent")
        lim = self.limits
        if not (isinstance(width, (int, float, np.floating)) and lim.min_width <= width <= lim.max_width):
            raise ValueError(
                f"{lim.model}: gripper width {width!r} m outside [{lim.min_width}, {lim.max_width}] m; nothing sent"
            )

    @abc.abstractmethod
    def _connect(self) -> None: ...

    @abc.abstractmethod
    def _disconnect(self) -> None: ...

    @abc.abstractmethod
    def _move(self, width: float) -> None: ...

    @abc.abstractmethod
    def _grasp(self, width: float, force: float) -> None: ...

    @abc.abstractmethod
    def _read(self) -> GripperState: ...


class Robot(abc.ABC):
    """Base class of the backends: the public methods enforce the stop latch and shapes."""

    is_hardware: bool = True  # a hardware backend needs typed confirmation and a TTY
    control_period: float = 0.01  # s, the streaming period this backend is driven at

    def __init__(self, limits: RobotLimits, address: str, gripper: Gripper | None = None):
        self.limits = limits
        self.address = address  # host/IP, shown and typed back at confirmation
        self.gripper = gripper  # connected after the arm, disconnected before it
        self._stopped = False
        self._connected = False

    # -- the interface --------------------------------------------------------------------
    def connect(self) -> None:
        """Open the SDK session; refuses (ChordError) if the arm reports a fault."""
        self._connect()
        self._connected = True
        state = self.read_state()
        if state.fault:
            raise ChordError(
                f"{self.limits.model} at {self.address} reports {state.fault!r}: clear it at the robot "
                "by hand (chord never auto-recovers) and start again"
            )
        if self.gripper is not None:
            self.gripper.connect()

    def disconnect(self) -> None:
        if self.gripper is not None:
            self.gripper.disconnect()
        if self._connected:
            self._connected = False
            self._disconnect()

    def read_state(self) -> RobotState:
        """The arm's state; joints that are not J finite numbers come back as a fault (never trusted)."""
        state = self._read_state()
        q = np.asarray(state.q, dtype=float)
        if state.fault is None and (q.shape != (self.limits.dof,) or not np.isfinite(q).all()):
            return RobotState(
                q,
                state.dq,
                state.stamp,
                f"joint reading {q.tolist()} is not {self.limits.dof} finite numbers",
            )
        return state

    def send_action(
        self,
        q: np.ndarray,  # [J] rad, joint position target for the next period
        dq: np.ndarray,  # [J] rad/s, the target's velocity (feed-forward where the SDK takes it)
    ) -> np.ndarray:  # [J] rad, what was really sent
        """Stream one joint target; returns the target as sent. Raises RobotStoppedError after stop()."""
        if self._stopped:
            raise RobotStoppedError(f"{self.limits.model}: send_action after stop(); nothing sent")
        q = np.asarray(q, dtype=float)
        if q.shape != (self.limits.dof,) or not np.isfinite(q).all():
            raise ValueError(f"send_action: q must be {self.limits.dof} finite joints, got {q!r}")
        return np.asarray(self._send(q, np.asarray(dq, dtype=float)), dtype=float)

    def stop(self) -> None:
        """Halt motion now and latch; safe to call more than once and before connect."""
        first = not self._stopped
        self._stopped = True
        if self.gripper is not None:
            self.gripper.latch()
        if self._connected and first:
            log.info("%s: stop", self.limits.model)
            self._stop()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def __enter__(self) -> Robot:
        try:
            self.connect()
        except BaseException:
            self.disconnect()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.disconnect()

    # -- backend hooks --------------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> None: ...

    @abc.abstractmethod
    def _disconnect(self) -> None: ...

    @abc.abstractmethod
    def _read_state(self) -> RobotState: ...

    @abc.abstractmethod
    def _send(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def _stop(self) -> None: ...
