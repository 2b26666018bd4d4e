"""One interface for every arm: connect, read state, stream joint targets, stop.

A ``Robot`` is a context manager: leaving the block (normally, by exception, by Ctrl-C) calls
``stop()`` and then ``disconnect()``. ``stop()`` latches: once called, ``send_action`` raises and
nothing more reaches the arm until a new session is opened. No backend ever clears a protective
or emergency stop: a person does that at the robot (pendant, Desk), then starts a new session.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass

import numpy as np

from core.errors import ChordError
from real.limits import RobotLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RobotState:
    """One reading of the arm."""

    q: np.ndarray  # [J] rad, measured joint positions
    dq: np.ndarray | None  # [J] rad/s, measured joint velocities (None if the SDK has none)
    stamp: float  # s, the robot's own clock; a stamp that stops advancing means stale state
    fault: str | None = None  # protective/emergency stop, reflex or error text; None when fine


class RobotStoppedError(ChordError):
    """``send_action`` after ``stop()``: the session is over, nothing is sent."""


class Robot(abc.ABC):
    """Base class of the backends: the public methods enforce the stop latch and shapes."""

    is_hardware: bool = True  # a hardware backend needs typed confirmation and a TTY
    control_period: float = 0.01  # s, the streaming period this backend is driven at

    def __init__(self, limits: RobotLimits, address: str):
        self.limits = limits
        self.address = address  # host/IP, shown and typed back at confirmation
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

    def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self._disconnect()

    def read_state(self) -> RobotState:
        return self._read_state()

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
