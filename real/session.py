"""A session on an arm: pre-flight a plan (and the approach to it), get confirmation, stream, log.

The library side of ``chord real``. These functions take a plan, the SafetyConfig and (for a
session) a connected robot, and return what happened; they never print or read stdin. The
typed confirmation is a callback the caller passes (``Confirm``); it is asked before anything
moves on a hardware backend, and a simulated arm needs none. What was checked is what runs: the
plan and the approach move are streamed on the timeline pre-flight checked, stretched by
``SafetyConfig.slowdown``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from real.approach import plan_approach
from real.execute import ExecutionConfig, ExecutionResult
from real.execute import execute as stream
from real.kinematics import ArmKinematics
from real.limits import RobotLimits
from real.preflight import PreflightRefusedError, PreflightReport, Reason, SafetyConfig, preflight
from real.robot import Robot

log = logging.getLogger(__name__)

# Labels of the reports a session produces, in the order they can occur.
PLAN = "plan"
APPROACH = "approach move"
PLAN_AFTER_APPROACH = "plan after the approach"


@dataclass(frozen=True)
class ConfirmRequest:
    """What a person is asked to confirm before a motion runs on a real arm."""

    word: str  # what they must type back: "APPROACH", or the robot's address for the plan itself
    what: str  # the motion in words, e.g. "plan 1a2b3c4d5e6f ('pick the banana', 3.0 s)"
    robot: str  # the arm's model key, e.g. "panda"
    address: str  # the arm's host/IP


# Asked before each motion on hardware: return True to move; return False or raise
# (e.g. ChordError with what was typed) and nothing moves.
Confirm = Callable[[ConfirmRequest], bool]
# Called with (label, report) as each pre-flight completes, so a person sees it before confirming.
OnReport = Callable[[str, PreflightReport], None]


@dataclass
class ExecutionOutcome:
    """How a session on an arm ended."""

    success: bool  # cleared pre-flight and, when executing, the plan ran to completion
    executed: bool  # the plan itself was streamed to the arm (False: dry run, refused, approach failed)
    message: str  # one line: the refusal, why the run stopped, or how it completed (with the log path)
    reports: list[tuple[str, PreflightReport]] = field(default_factory=list)  # (label, report) in order
    log_path: Path | None = None  # the plan's execution log, once the plan ran
    approach_log_path: Path | None = None  # the approach move's execution log, once it ran
    result: ExecutionResult | None = None  # the last stream's result (the approach's if it stopped)


def dry_run(
    plan: Any,  # core.plan.Plan
    limits: RobotLimits,
    config: SafetyConfig,
    kinematics: ArmKinematics | None,
) -> PreflightReport:
    """Pre-flight ``plan`` offline (no robot): every rule but ``start_state``, which is skipped.

    A report with no refusal is as far as an offline check goes; ``report.ok`` stays False
    because the start state is unknown.
    """
    return preflight(plan, limits, kinematics, config, None)


def default_log_path(
    plan_path: Path,
    plan_sha256: str,
    now: datetime.datetime | None = None,  # UTC time in the name; default: now
) -> Path:
    """``<plan dir>/real_logs/<hash[:12]>_<UTC time>.npz``: where a session's log goes by default."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return Path(plan_path).parent / "real_logs" / f"{plan_sha256[:12]}_{now:%Y%m%dT%H%M%SZ}.npz"


def run_session(
    robot: Robot,  # connected (inside its ``with`` block); the caller disconnects it
    plan: Any,  # core.plan.Plan, sim-validated
    config: SafetyConfig,
    confirm: Confirm,
    *,
    kinematics: ArmKinematics | None,
    approach: bool,  # if the arm is off the plan's start (and that is all), plan an approach move
    execute: bool,  # False: pre-flight only (with the robot's state), nothing moves
    log_path: Path,  # the plan's execution log; the approach's goes beside it as <stem>_approach.npz
    meta: dict[str, Any] | None = None,  # extra fields for the logs (e.g. plan_path)
    execution: ExecutionConfig = ExecutionConfig(),
    on_report: OnReport | None = None,
) -> ExecutionOutcome:
    """Pre-flight ``plan`` against ``robot`` and, with ``execute`` and confirmation, run it.

    Order: pre-flight the plan at the robot's state; if ``approach`` and the only refusal is
    ``start_state``, plan and pre-flight a slow approach move. Without ``execute`` stop there.
    Otherwise: confirm and run the approach, pre-flight the plan again from where the arm ended,
    confirm and run the plan. Each run's log is written (atomically) even when the run fails.
    Refusals and stops are returned (``success`` False), not raised; an exception from
    ``confirm`` propagates, with nothing moved by that step.
    """
    limits = robot.limits
    sha = plan.content_hash()
    meta = {"plan_sha256": sha, "safety_config": asdict(config), "slowdown": config.slowdown, **(meta or {})}
    out = ExecutionOutcome(success=False, executed=False, message="")

    def record(label: str, report: PreflightReport) -> PreflightReport:
        out.reports.append((label, report))
        if on_report is not None:
            on_report(label, report)
        return report

    def end(success: bool, message: str) -> ExecutionOutcome:
        out.success, out.message = success, message
        return out

    report = record(PLAN, preflight(plan, limits, kinematics, config, robot.read_state().q))
    move = None
    if approach and report.reasons == [Reason.START_STATE]:
        ap = plan_approach(robot.read_state().q, np.asarray(plan.q)[0], limits, kinematics, config)
        record(APPROACH, ap.report)
        if not ap.report.ok:
            return end(False, str(PreflightRefusedError(ap.report)))
        move = ap.move
    elif not report.ok:
        return end(False, str(PreflightRefusedError(report)))
    if not execute:
        return end(True, "dry run: nothing moved")

    if move is not None:
        t_move = np.asarray(move.t) * config.slowdown
        request = ConfirmRequest(
            "APPROACH", f"a {t_move[-1]:.1f} s approach move to the plan's start", limits.model, robot.address
        )
        if not _confirmed(robot, confirm, request):
            return end(False, "the approach move was not confirmed; nothing moved")
        res = stream(robot, t_move, move.q, execution, meta={**meta, "approach": True})
        out.result = res
        out.approach_log_path = res.log.save(log_path.with_name(log_path.stem + "_approach.npz"))
        if not res.success:
            return end(False, f"approach stopped ({res.reason}): {res.message}; log {out.approach_log_path}")
        report = record(
            PLAN_AFTER_APPROACH, preflight(plan, limits, kinematics, config, robot.read_state().q)
        )
        if not report.ok:
            return end(False, str(PreflightRefusedError(report)))

    t_plan = np.asarray(plan.t) * config.slowdown
    request = ConfirmRequest(
        robot.address, f"plan {sha[:12]} ({plan.task!r}, {t_plan[-1]:.1f} s)", limits.model, robot.address
    )
    if not _confirmed(robot, confirm, request):
        return end(False, "the plan was not confirmed; nothing moved")
    res = stream(robot, t_plan, plan.q, execution, meta=meta)
    out.result, out.executed = res, True
    out.log_path = res.log.save(log_path)
    if not res.success:
        return end(False, f"stopped ({res.reason}): {res.message}; log {out.log_path}")
    return end(True, f"done: {res.message}; {len(res.log)} ticks logged to {out.log_path}")


def _confirmed(robot: Robot, confirm: Confirm, request: ConfirmRequest) -> bool:
    """Ask ``confirm`` on a hardware backend; a simulated arm goes ahead without asking."""
    if not robot.is_hardware:
        log.info("%s on a simulated backend: no confirmation needed", request.what)
        return True
    return confirm(request) is True
