"""The streaming loop: send a checked trajectory tick by tick, stop at the first sign of trouble.

Every tick reads the state first, then decides, then sends: fault (protective/emergency stop,
reflex), stale state, a missed deadline, the duration watchdog (1.1 x planned + 0.5 s), the path
tolerance, Ctrl-C/SIGTERM, and any exception each end the run with ``robot.stop()`` and a reason
code; nothing is sent after it. After the last waypoint the final target is held until every joint
is within the goal tolerance. Every tick is logged; the log is written even when the run fails.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from real.backends.fake import SimClock, WallClock
from real.log import ExecutionLog
from real.robot import Robot

log = logging.getLogger(__name__)


class Outcome:
    """Reason codes of an execution's end."""

    COMPLETED = "completed"
    FAULT = "robot_fault"
    STALE_STATE = "stale_state"
    DEADLINE = "deadline_missed"
    DURATION = "duration_watchdog"
    PATH_TOLERANCE = "path_tolerance"
    GOAL_TOLERANCE = "goal_tolerance"
    INTERRUPTED = "interrupted"
    EXCEPTION = "exception"


@dataclass(frozen=True)
class ExecutionConfig:
    """Watchdogs and tolerances of the streaming loop."""

    path_tolerance: float = 0.1  # rad, max |q_meas - previous q_cmd| per joint while moving
    goal_tolerance: float = 0.01  # rad, every joint within this of the final waypoint to finish
    stale_after: float = 0.05  # s, a state stamp that has not advanced this long is stale
    max_lateness: float = 0.025  # s, a tick starting later than this past its deadline stops the run
    duration_factor: float = 1.1  # the run (including settling) may last factor x planned ...
    duration_margin: float = 0.5  # ... + this many seconds

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not v > 0:
                raise ValueError(f"ExecutionConfig.{k} is {v}, expected > 0")


@dataclass
class ExecutionResult:
    success: bool
    reason: str  # an Outcome code
    message: str
    ticks: int  # control ticks run
    sends: int  # targets sent
    log: ExecutionLog


def interpolate(
    t: np.ndarray,  # [M] s, strictly increasing
    q: np.ndarray,  # [M, J] rad
    tq: float,  # s
) -> tuple[np.ndarray, np.ndarray]:
    """(q [J], dq [J]) at time ``tq``: linear between waypoints, held (zero velocity) outside."""
    if tq <= t[0]:
        return q[0].copy(), np.zeros(q.shape[1])
    if tq >= t[-1]:
        return q[-1].copy(), np.zeros(q.shape[1])
    i = int(np.searchsorted(t, tq, side="right")) - 1
    w = (tq - t[i]) / (t[i + 1] - t[i])
    dq = (q[i + 1] - q[i]) / (t[i + 1] - t[i])
    return (1 - w) * q[i] + w * q[i + 1], dq


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks every tick (main thread only)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, frame: Any) -> None:
            self.signal = signum

        try:
            for s in old:
                signal.signal(s, handler)
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def execute(
    robot: Robot,
    t: np.ndarray,  # [M] s, the (possibly slowed) timeline
    q: np.ndarray,  # [M, J] rad, a trajectory that passed pre-flight
    config: ExecutionConfig = ExecutionConfig(),
    *,
    meta: dict[str, Any] | None = None,  # recorded in the log (plan hash, backend, ...)
    clock: SimClock | WallClock | None = None,
    stop_request: _StopRequest | None = None,
) -> ExecutionResult:
    """Stream ``q`` to ``robot`` at its control period; returns how it ended (never raises for a fault).

    ``robot`` must be connected. On any failure ``robot.stop()`` is called before returning.
    """
    clock = clock if clock is not None else getattr(robot, "clock", None) or WallClock()
    t = np.asarray(t, dtype=float)
    q = np.asarray(q, dtype=float)
    period = robot.control_period
    T = float(t[-1])
    budget = config.duration_factor * T + config.duration_margin
    elog = ExecutionLog(joint_names=robot.limits.joint_names)
    elog.meta.update(meta or {})
    elog.meta.update(
        robot=robot.limits.model,
        backend=type(robot).__name__,
        control_period=period,
        planned_duration=T,
        execution_config=asdict(config),
    )
    stop_request = stop_request or _StopRequest()
    reason, message = Outcome.EXCEPTION, "did not start"
    k = 0
    sends = 0
    q_prev_cmd: np.ndarray | None = None
    with stop_request.installed():
        start = clock.now()
        last_stamp, last_change = None, start
        try:
            while True:
                now = clock.now()
                elapsed = now - start
                late = now - (start + k * period)
                if stop_request.signal is not None:
                    reason, message = (
                        Outcome.INTERRUPTED,
                        f"signal {signal.Signals(stop_request.signal).name}",
                    )
                    break
                if k > 0 and late > config.max_lateness:
                    reason = Outcome.DEADLINE
                    message = f"tick {k} started {1000 * late:.1f} ms late (limit {1000 * config.max_lateness:.0f} ms)"
                    break
                state = robot.read_state()
                if state.fault:
                    reason, message = Outcome.FAULT, f"robot reports {state.fault!r} at tick {k}"
                    break
                if state.stamp != last_stamp:
                    last_stamp, last_change = state.stamp, now
                elif now - last_change > config.stale_after:
                    reason = Outcome.STALE_STATE
                    message = f"robot state stamp {state.stamp} unchanged for {now - last_change:.3f} s (limit {config.stale_after} s)"
                    break
                tq = min(k * period, T)
                q_cmd, dq_cmd = interpolate(t, q, tq)
                moving = k * period < T
                if q_prev_cmd is not None and moving:
                    err = np.abs(state.q - q_prev_cmd)
                    j = int(np.argmax(err))
                    if err[j] > config.path_tolerance:
                        reason = Outcome.PATH_TOLERANCE
                        message = (
                            f"joint {robot.limits.joint_names[j]} is {err[j]:.4f} rad from its command at t={tq:.3f} s "
                            f"(path tolerance {config.path_tolerance} rad)"
                        )
                        elog.append(elapsed, tq, q_cmd, None, state.q, state.dq, state.stamp)
                        break
                goal_err = np.abs(state.q - q[-1])
                if not moving and goal_err.max() <= config.goal_tolerance:
                    elog.append(elapsed, tq, q_cmd, None, state.q, state.dq, state.stamp)
                    reason = Outcome.COMPLETED
                    message = f"reached the goal within {goal_err.max():.4f} rad after {elapsed:.3f} s (planned {T:.3f} s)"
                    break
                if elapsed > budget:
                    j = int(np.argmax(goal_err))
                    if moving:
                        reason = Outcome.DURATION
                        message = f"{elapsed:.3f} s elapsed at plan time {tq:.3f} s; watchdog {budget:.3f} s"
                    else:
                        reason = Outcome.GOAL_TOLERANCE
                        message = (
                            f"joint {robot.limits.joint_names[j]} still {goal_err[j]:.4f} rad from the goal after "
                            f"{elapsed:.3f} s (tolerance {config.goal_tolerance} rad, watchdog {budget:.3f} s)"
                        )
                    elog.append(elapsed, tq, q_cmd, None, state.q, state.dq, state.stamp)
                    break
                sent = robot.send_action(q_cmd, dq_cmd)
                sends += 1
                elog.append(elapsed, tq, q_cmd, sent, state.q, state.dq, state.stamp)
                q_prev_cmd = q_cmd
                k += 1
                clock.sleep(start + k * period - clock.now())
        except Exception as e:
            reason, message = Outcome.EXCEPTION, f"{type(e).__name__}: {e} at tick {k}"
            log.exception("execution: stopping on an exception")
        finally:
            success = reason == Outcome.COMPLETED
            if not success:
                # Stop first, log after: the arm must not wait on bookkeeping.
                robot.stop()
                log.error("execution stopped (%s): %s", reason, message)
            else:
                log.info("execution completed: %s", message)
    elog.meta.update(success=success, reason=reason, message=message, ticks=k, sends=sends)
    return ExecutionResult(success, reason, message, k, sends, elog)
