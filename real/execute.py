"""The streaming loop: send a checked trajectory tick by tick, stop at the first sign of trouble.

Every tick reads the state first, then decides, then sends: fault (protective/emergency stop,
reflex, a non-finite reading), stale state, a missed deadline, the duration watchdog (1.1 x
planned + 0.5 s, plus the time held for the gripper), the path tolerance, Ctrl-C/SIGTERM, and any
exception each end the run with ``robot.stop()`` and a reason code; nothing is sent after it.
Tick 0 also re-reads where the arm is: if it moved off the trajectory's start since pre-flight
(e.g. while the operator typed the confirmation), nothing is sent. After the last waypoint the
final target is held until every joint is within the goal tolerance.

The gripper follows the plan's ``gripper`` widths: each stretch where the width changes is one
command (closing: a grasp with the grasp force; opening: a move), sent when the stretch starts.
When a closing stretch ends, the arm holds still (pre-flight makes sure it is at rest there)
until the fingers stop, and the measured width must show an object between them: above the
commanded width (the fingers stopped early, on something) and below the width they closed from.
Otherwise the run stops before the arm lifts. While the object is held, a width at the commanded
closing width means it slipped out, and the run stops. Every tick is logged with the commanded
and measured gripper width; the log is written even when the run fails.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from core.errors import ChordError
from real.backends.fake import SimClock, WallClock
from real.gripper import GripperEvent, gripper_events
from real.log import ExecutionLog
from real.preflight import SafetyConfig
from real.robot import GripperState, Robot

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
    START_MOVED = "start_moved"  # the arm is no longer at the trajectory's start: nothing sent
    GRIPPER_FAULT = "gripper_fault"  # the gripper reported an error, or did not settle in time
    GRASP_FAILED = "grasp_failed"  # the fingers closed on nothing (or did not close): the arm does not lift
    GRASP_LOST = "grasp_lost"  # the held object slipped out of the fingers


@dataclass(frozen=True)
class ExecutionConfig:
    """Watchdogs and tolerances of the streaming loop. Raises ChordError for a value that is not finite and > 0."""

    path_tolerance: float = 0.1  # rad, max |q_meas - previous q_cmd| per joint while moving
    goal_tolerance: float = 0.01  # rad, every joint within this of the final waypoint to finish
    stale_after: float = 0.05  # s, a state stamp that has not advanced this long is stale
    max_lateness: float = 0.025  # s, a tick starting later than this past its deadline stops the run
    duration_factor: float = 1.1  # the run (including settling) may last factor x planned ...
    duration_margin: float = 0.5  # ... + this many seconds
    start_tolerance: float = SafetyConfig.start_tolerance  # rad, tick 0: max |q_meas - q[0]| per joint
    gripper_tolerance: float = 0.005  # m, the fingers are "at" a commanded opening within this
    grasp_margin: float = 0.002  # m, a grasp stops this far above its commanded width and below its start
    gripper_timeout: float = 3.0  # s, longest the arm holds still waiting for the fingers to stop

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
                raise ChordError(f"ExecutionConfig.{f.name} is {v!r}, expected a finite number > 0")


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


class _GripperTrack:
    """Where the run stands with the plan's gripper commands (see the module docstring)."""

    def __init__(
        self, robot: Robot, t: np.ndarray, widths: np.ndarray, force: float, config: ExecutionConfig
    ):
        self.robot, self.t, self.widths, self.force, self.config = robot, t, widths, force, config
        self.events = gripper_events(t, widths)
        self.next = 0  # index of the first event not yet commanded
        self.active: GripperEvent | None = None  # commanded, not yet finished
        self.started = False  # the initial opening was checked (and commanded if needed)
        self.held_since: float | None = None  # clock time the arm started holding for the fingers
        self.holding_object: GripperEvent | None = None  # the verified close now holding an object
        self.record: list[dict[str, Any]] = []  # commands and verdicts, for the log's meta

    def width_at(self, tp: float) -> float:
        return float(np.interp(tp, self.t, self.widths))

    def step(self, tp: float, now: float, g: GripperState) -> tuple[bool, str | None, str | None]:
        """(hold the arm this tick, stop reason, stop message) at plan time ``tp`` with reading ``g``."""
        cfg = self.config
        if g.fault:
            return False, Outcome.GRIPPER_FAULT, f"gripper reports {g.fault!r} at plan time {tp:.3f} s"
        if not self.started:
            w0 = float(self.widths[0])
            if abs(g.width - w0) > cfg.gripper_tolerance:
                if self.held_since is None:
                    self.robot.gripper.move(w0)
                    self.record.append(
                        {"command": "move", "width": w0, "plan_time": 0.0, "why": "start width"}
                    )
                    self.held_since = now
                return self._wait(now, f"opening to the plan's start width {1000 * w0:.1f} mm", g)
            self.started, self.held_since = True, None
        if self.holding_object is not None and (self.active is None or self.active is self.holding_object):
            ev = self.holding_object
            if g.width <= ev.width_to + 0.5 * cfg.grasp_margin:
                return (
                    False,
                    Outcome.GRASP_LOST,
                    (
                        f"gripper at {1000 * g.width:.1f} mm at plan time {tp:.3f} s, its commanded {1000 * ev.width_to:.1f} mm: "
                        "the object slipped out"
                    ),
                )
        if self.active is None and self.next < len(self.events) and tp >= self.events[self.next].t_start:
            ev = self.active = self.events[self.next]
            self.next += 1
            if ev.closing:
                self.robot.gripper.grasp(ev.width_to, self.force)
                self.holding_object = None
            else:
                self.robot.gripper.move(ev.width_to)
                self.holding_object = None
            self.record.append(
                {"command": "grasp" if ev.closing else "move", "width": ev.width_to,
                 "force": self.force if ev.closing else None, "plan_time": tp}
            )  # fmt: skip
        ev = self.active
        if ev is None or tp < ev.t_end:
            return False, None, None
        if g.moving:
            if self.held_since is None:
                self.held_since = now
            return self._wait(
                now, f"the gripper {'closing' if ev.closing else 'opening'} to {1000 * ev.width_to:.1f} mm", g
            )
        self.held_since = None
        self.active = None
        if ev.closing:
            lo, hi = ev.width_to + cfg.grasp_margin, ev.width_from - cfg.grasp_margin
            verdict = lo < g.width < hi
            self.record.append(
                {"verify": "grasp", "width": g.width, "range": [lo, hi], "ok": verdict, "plan_time": tp}
            )
            if not verdict:
                why = "closed on nothing" if g.width <= lo else "did not close"
                return (
                    False,
                    Outcome.GRASP_FAILED,
                    (
                        f"gripper stopped at {1000 * g.width:.1f} mm at plan time {tp:.3f} s ({why}): a grasp stops on the "
                        f"object between {1000 * lo:.1f} and {1000 * hi:.1f} mm; the arm does not lift"
                    ),
                )
            self.holding_object = ev
        elif abs(g.width - ev.width_to) > cfg.gripper_tolerance:
            return (
                False,
                Outcome.GRIPPER_FAULT,
                (
                    f"gripper opened to {1000 * g.width:.1f} mm at plan time {tp:.3f} s, commanded {1000 * ev.width_to:.1f} mm"
                ),
            )
        return False, None, None

    def _wait(self, now: float, what: str, g: GripperState) -> tuple[bool, str | None, str | None]:
        assert self.held_since is not None
        if now - self.held_since > self.config.gripper_timeout:
            return (
                False,
                Outcome.GRIPPER_FAULT,
                (
                    f"waited {now - self.held_since:.2f} s for {what} (timeout {self.config.gripper_timeout} s); "
                    f"it is at {1000 * g.width:.1f} mm"
                ),
            )
        return True, None, None


@contextlib.contextmanager
def _no_garbage_collection() -> Iterator[None]:
    """Python's cyclic garbage collector off while streaming.

    A full collection stops the process: in one holding the planner and the simulator (torch,
    pinocchio, PyBullet) it took 127-149 ms, measured during a UR5 plan's stream at 125 Hz, five
    times the 25 ms a tick may start late. Reference counting still frees everything that is not
    in a cycle; the collector runs again when the stream ends. (No collection before the stream
    either: it would cost the same 0.1 s at every start.)
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def execute(
    robot: Robot,
    t: np.ndarray,  # [M] s, the (possibly slowed) timeline
    q: np.ndarray,  # [M, J] rad, a trajectory that passed pre-flight
    config: ExecutionConfig = ExecutionConfig(),
    *,
    gripper: np.ndarray | None = None,  # [M] m, the plan's gripper widths; None: the gripper is not used
    grasp_force: float | None = None,  # N; None: the gripper's rated force
    meta: dict[str, Any] | None = None,  # recorded in the log (plan hash, backend, ...)
    clock: SimClock | WallClock | None = None,
    stop_request: _StopRequest | None = None,
) -> ExecutionResult:
    """Stream ``q`` (and the gripper widths) to ``robot`` at its control period; returns how it ended.

    Never raises for a fault. ``robot`` must be connected (with a gripper when ``gripper`` is
    given). On any failure ``robot.stop()`` is called before returning.
    """
    clock = clock if clock is not None else getattr(robot, "clock", None) or WallClock()
    t = np.asarray(t, dtype=float)
    q = np.asarray(q, dtype=float)
    period = robot.control_period
    T = float(t[-1])
    elog = ExecutionLog(joint_names=robot.limits.joint_names)
    elog.meta.update(meta or {})
    elog.meta.update(
        robot=robot.limits.model,
        backend=type(robot).__name__,
        control_period=period,
        planned_duration=T,
        execution_config=asdict(config),
    )
    track: _GripperTrack | None = None
    if gripper is not None:
        if robot.gripper is None:
            raise ChordError(f"{robot.limits.model} at {robot.address} has no gripper; the plan commands one")
        force = robot.gripper.limits.rated_force if grasp_force is None else float(grasp_force)
        track = _GripperTrack(robot, t, np.asarray(gripper, dtype=float), force, config)
        elog.meta.update(gripper=robot.gripper.limits.model, grasp_force=force)
    stop_request = stop_request or _StopRequest()
    reason, message = Outcome.EXCEPTION, "did not start"
    k = 0
    sends = 0
    kp = 0  # plan ticks: advances every tick except while the arm holds for the gripper
    held = 0.0  # s, total time held for the gripper (extends the duration watchdog)
    q_prev_cmd: np.ndarray | None = None
    with stop_request.installed(), _no_garbage_collection():
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
                if k == 0:
                    off = np.abs(state.q - q[0])
                    j = int(np.argmax(off))
                    if not off[j] <= config.start_tolerance:
                        reason = Outcome.START_MOVED
                        message = (
                            f"joint {robot.limits.joint_names[j]} is at {state.q[j]:.4f} rad, the trajectory starts at "
                            f"{q[0][j]:.4f} rad (|diff| {off[j]:.4f} > {config.start_tolerance} rad): the arm moved "
                            "since pre-flight; nothing sent"
                        )
                        break
                tp = kp * period  # s, plan time (a product, not a running sum: no drift)
                hold, grip_cmd, grip_meas = False, math.nan, math.nan
                if track is not None:
                    g = robot.gripper.read()
                    grip_cmd, grip_meas = track.width_at(tp), g.width
                    hold, stop_reason, stop_message = track.step(tp, now, g)
                    if stop_reason is not None:
                        reason, message = stop_reason, stop_message
                        q_hold, _ = interpolate(t, q, tp)
                        elog.append(
                            elapsed, tp, q_hold, None, state.q, state.dq, state.stamp, grip_cmd, grip_meas
                        )
                        break
                tq = min(tp, T)
                q_cmd, dq_cmd = interpolate(t, q, tq)
                if hold:
                    dq_cmd = np.zeros_like(dq_cmd)
                moving = tp < T
                if q_prev_cmd is not None and moving:
                    err = np.abs(state.q - q_prev_cmd)
                    j = int(np.argmax(err))
                    if not err[j] <= config.path_tolerance:
                        reason = Outcome.PATH_TOLERANCE
                        message = (
                            f"joint {robot.limits.joint_names[j]} is {err[j]:.4f} rad from its command at t={tq:.3f} s "
                            f"(path tolerance {config.path_tolerance} rad)"
                        )
                        elog.append(
                            elapsed, tq, q_cmd, None, state.q, state.dq, state.stamp, grip_cmd, grip_meas
                        )
                        break
                goal_err = np.abs(state.q - q[-1])
                gripper_done = track is None or (track.active is None and track.next == len(track.events))
                if not moving and gripper_done and goal_err.max() <= config.goal_tolerance:
                    elog.append(elapsed, tq, q_cmd, None, state.q, state.dq, state.stamp, grip_cmd, grip_meas)
                    reason = Outcome.COMPLETED
                    message = f"reached the goal within {goal_err.max():.4f} rad after {elapsed:.3f} s (planned {T:.3f} s)"
                    break
                budget = config.duration_factor * T + config.duration_margin + held
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
                    elog.append(elapsed, tq, q_cmd, None, state.q, state.dq, state.stamp, grip_cmd, grip_meas)
                    break
                sent = robot.send_action(q_cmd, dq_cmd)
                sends += 1
                elog.append(elapsed, tq, q_cmd, sent, state.q, state.dq, state.stamp, grip_cmd, grip_meas)
                q_prev_cmd = q_cmd
                k += 1
                if hold:
                    held += period
                else:
                    kp += 1
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
    if track is not None:
        elog.meta.update(gripper_events=track.record)
    elog.meta.update(success=success, reason=reason, message=message, ticks=k, sends=sends)
    return ExecutionResult(success, reason, message, k, sends, elog)
