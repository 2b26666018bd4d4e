"""A fake arm with fault injection: a first-order joint tracker on a simulated or real clock.

Used by the tests (protective stop at tick k, stale state, an exception mid-stream, a late tick)
and by ``chord real --backend fake`` to rehearse a plan end to end without hardware.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from real.limits import PANDA, RobotLimits
from real.robot import Robot, RobotState


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
    ):
        super().__init__(limits, address)
        lo, hi = np.asarray(limits.lower), np.asarray(limits.upper)
        self.q = 0.5 * (lo + hi) if q0 is None else np.array(q0, dtype=float)
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
