"""A fake arm with fault injection: a first-order joint tracker on a simulated or real clock; a fake gripper.

Used by the tests (protective stop at tick k, stale state, an exception mid-stream, a late tick)
and by ``chord real --backend fake`` to rehearse a plan end to end without hardware. The fake
gripper moves its fingers at a constant speed and stops on an object of ``object_width`` if one
is between them (``None``: the hand is empty and closes all the way).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from core.errors import ChordError
from real.limits import FRANKA_HAND, PANDA, GripperLimits, RobotLimits
from real.robot import Gripper, GripperState, Robot, RobotState


class SimClock:
    """A clock that only moves when slept on: deterministic, instant tests of timed loops."""

    def __init__(self, start: float = 0.0):
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += max(0.0, dt)


class WallClock:
    """The real monotonic clock, with the same interface as SimClock."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, dt: float) -> None:
        if dt > 0:
            time.sleep(dt)


@dataclass
class Faults:
    """Faults to inject, each at a send index k (0-based); None = never."""

    protective_stop_at: int | None = None  # from send k on, the state reports a protective stop
    stale_from: int | None = None  # from send k on, the state stamp stops advancing
    raise_at: int | None = None  # send k raises RuntimeError (an SDK error mid-stream)
    stall_at: int | None = None  # send k blocks for stall_s (a missed deadline)
    stall_s: float = 0.1  # s


@dataclass
class Event:
    kind: str  # "send" or "stop"
    index: int  # sends made before this event
    q: np.ndarray | None = field(default=None)  # [J] rad for "send"


@dataclass
class GripperCommand:
    kind: str  # "move" or "grasp"
    width: float  # m
    force: float | None  # N for "grasp"
    at: float  # s, the clock's time when it was sent


class FakeGripper(Gripper):
    """Fingers that move at ``speed`` m/s toward the commanded width and stop on an object."""

    def __init__(
        self,
        limits: GripperLimits = FRANKA_HAND,
        width: float = 0.04,  # m, initial opening
        object_width: float | None = None,  # m, an object between the fingers; None = empty hand
        speed: float | None = None,  # m/s; default: the table's
        clock: SimClock | WallClock | None = None,
    ):
        super().__init__(limits)
        if object_width is not None and not (
            isinstance(object_width, (int, float)) and limits.min_width < object_width <= limits.max_width
        ):
            raise ChordError(
                f"fake gripper: object_width is {object_width!r}, expected a width in "
                f"({limits.min_width}, {limits.max_width}] m (or none: an empty hand)"
            )
        if not (
            isinstance(width, (int, float, np.floating)) and limits.min_width <= width <= limits.max_width
        ):
            raise ChordError(
                f"fake gripper: width is {width!r}, expected [{limits.min_width}, {limits.max_width}] m"
            )
        self.width = float(width)
        self.target = self.width
        self.object_width = object_width
        self.speed = limits.speed if speed is None else speed
        self.clock = clock if clock is not None else WallClock()
        self.commands: list[GripperCommand] = []
        self._last = self.clock.now()

    def _connect(self) -> None:
        self._last = self.clock.now()

    def _disconnect(self) -> None:
        pass

    def _advance(self) -> None:
        now = self.clock.now()
        step = self.speed * (now - self._last)
        self._last = now
        goal = self.target
        if self.object_width is not None and goal < self.object_width <= self.width:
            goal = self.object_width  # closing onto the object: the fingers stop on it
        self.width = (
            goal if abs(goal - self.width) <= step else self.width + step * np.sign(goal - self.width)
        )

    def _command(self, kind: str, width: float, force: float | None) -> None:
        self._advance()
        self.commands.append(GripperCommand(kind, width, force, self.clock.now()))
        self.target = width

    def _move(self, width: float) -> None:
        self._command("move", width, None)

    def _grasp(self, width: float, force: float) -> None:
        self._command("grasp", width, force)

    def _read(self) -> GripperState:
        self._advance()
        goal = self.target
        if self.object_width is not None and goal < self.object_width <= self.width + 1e-12:
            goal = self.object_width
        return GripperState(width=self.width, moving=abs(goal - self.width) > 1e-9)


class FakeRobot(Robot):
    """A kinematic arm whose joints follow the last target with time constant ``lag`` (s)."""

    is_hardware = False

    def __init__(
        self,
        limits: RobotLimits = PANDA,
        address: str = "fake",
        q0: np.ndarray | None = None,  # [J] rad, initial joints; default mid-range
        control_period: float = 0.01,  # s
        lag: float = 0.0,  # s, first-order time constant; 0 = reaches each target at once
        clock: SimClock | WallClock | None = None,
        faults: Faults | None = None,
        gripper: Gripper | None = None,  # e.g. FakeGripper on the same clock; None = no gripper
    ):
        super().__init__(limits, address, gripper)
        lo, hi = np.asarray(limits.lower), np.asarray(limits.upper)
        self.q = 0.5 * (lo + hi) if q0 is None else np.array(q0, dtype=float)
        if self.q.shape != (limits.dof,) or not np.isfinite(self.q).all():
            raise ChordError(f"fake arm: q0 is {self.q.tolist()}, expected {limits.dof} finite joints")
        self.target = self.q.copy()
        self.control_period = control_period
        self.lag = lag
        self.clock = clock if clock is not None else WallClock()
        self.faults = faults or Faults()
        self.events: list[Event] = []
        self.sends = 0
        self._last = self.clock.now()
        self._stamp = self._last

    def _connect(self) -> None:
        self._last = self.clock.now()

    def _disconnect(self) -> None:
        pass

    def _advance(self) -> None:
        now = self.clock.now()
        dt = now - self._last
        self._last = now
        alpha = 1.0 if self.lag <= 0 else 1.0 - math.exp(-dt / self.lag)
        self.q = self.q + alpha * (self.target - self.q)
        f = self.faults
        if f.stale_from is None or self.sends < f.stale_from:
            self._stamp = now

    def _read_state(self) -> RobotState:
        self._advance()
        f = self.faults
        fault = (
            "protective stop"
            if f.protective_stop_at is not None and self.sends >= f.protective_stop_at
            else None
        )
        dq = np.zeros_like(self.q)
        return RobotState(q=self.q.copy(), dq=dq, stamp=self._stamp, fault=fault)

    def _send(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        f = self.faults
        if f.raise_at is not None and self.sends == f.raise_at:
            raise RuntimeError(f"injected SDK error at send {self.sends}")
        if f.stall_at is not None and self.sends == f.stall_at:
            self.clock.sleep(f.stall_s)
        self.events.append(Event("send", self.sends, q.copy()))
        self.sends += 1
        self._advance()
        if self.faults.protective_stop_at is None or self.sends <= self.faults.protective_stop_at:
            self.target = q.copy()
        return q.copy()

    def _stop(self) -> None:
        self.events.append(Event("stop", self.sends))
        self._advance()
        self.target = self.q.copy()
