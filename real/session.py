"""A session on an arm: pre-flight a plan (and the approach to it), get confirmation, stream, log.

The library side of ``chord real``. These functions take a plan, the SafetyConfig and (for a
session) a connected robot, and return what happened; they never print or read stdin. The
typed confirmation is a callback the caller passes (``Confirm``); it is asked before anything
moves on a hardware backend, and a simulated arm needs none. What was checked is what runs: the
plan and the approach move are streamed on the timeline pre-flight checked, stretched by
``SafetyConfig.slowdown``, the plan with its gripper widths.

``prepare`` builds what pre-flight checks with besides the limit tables (``Checkers``): the FK
model, the collision model (with the scene, when one is given) and the re-simulation of the plan
in PyBullet (``real.revalidate``), which runs once, before anything moves, and only for a plan
that passes every other check. Right before the first
command the streaming loop reads the arm again and sends nothing if it moved off the start since
pre-flight (e.g. while the operator typed the confirmation).
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ChordError
from core.robots import RobotSpec
from real.approach import plan_approach
from real.collision import CollisionModel, collision_for
from real.execute import ExecutionConfig, ExecutionResult, Outcome
from real.execute import execute as stream
from real.kinematics import ArmKinematics, kinematics_for
from real.limits import RobotLimits
from real.preflight import (
    CheckResult,
    PreflightRefusedError,
    PreflightReport,
    Reason,
    SafetyConfig,
    preflight,
)
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
# The re-simulation's (flow_mismatch, sim_failed) results, or the function that gives them.
SimVerdict = tuple[CheckResult, CheckResult] | Callable[[], tuple[CheckResult, CheckResult]]


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


@dataclass
class Checkers:
    """What pre-flight evaluates a plan with, besides the limit tables. ``close`` frees the collision world."""

    kinematics: ArmKinematics | None  # FK of the tool and link frames
    collision: CollisionModel | None = None  # self-collision, and the scene's when built with one
    # (flow_mismatch, sim_failed), or the function that re-simulates once and returns them (pre-flight
    # calls it only for a plan its other rules pass); None: not re-simulated
    sim: SimVerdict | None = None

    def close(self) -> None:
        if self.collision is not None:
            self.collision.close()

    def __enter__(self) -> Checkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare(
    plan: Any,  # core.plan.Plan, the object that will be checked and streamed
    limits: RobotLimits,
    *,
    scene_path: Path | None = None,  # scene spec: collision with the scene, and the re-simulation
    flow_path: Path | None = None,  # the plan's goal flow, for the re-simulation
    # the arm (its registry entry or YAML file, --robot-urdf applied); None: the limit table's
    robot: RobotSpec | None = None,
) -> Checkers:
    """Build the FK model, the collision model and the re-simulation verdict for ``plan`` on this arm.

        Without ``scene_path`` and ``flow_path`` the plan is not re-simulated (pre-flight then skips
        ``flow_mismatch`` and ``sim_failed``, and nothing will move); giving one without the other is
        a ChordError. An arm with no model here (the UR5e) has no collision model unless
        ``robot`` describes it (``self_collision`` is then skipped). The re-simulation takes seconds:
    ``Checkers.sim`` runs it when pre-flight first asks, which it does only for a plan that passes
    its other rules.
    """
    if (scene_path is None) != (flow_path is None):
        raise ChordError(
            "give both --scene and --flow (the plan is re-simulated in that scene against that flow)"
        )
    from core.scene import Scene

    scene = Scene.load(scene_path) if scene_path is not None else None
    kinematics = kinematics_for(limits, robot)
    collision = None
    if robot is not None or limits.kinematics.startswith("robot:"):
        collision = collision_for(
            limits, plan.joint_names, robot=robot, base_pose=plan.base_pose, scene=scene
        )
    checkers = Checkers(kinematics, collision)
    if scene_path is not None:
        from real.revalidate import revalidate

        # Re-simulated when pre-flight first asks, once: a plan refused for its own faults is not.
        checkers.sim = functools.cache(lambda: revalidate(plan, scene_path, flow_path, robot=robot))
    return checkers


def dry_run(
    plan: Any,  # core.plan.Plan
    limits: RobotLimits,
    config: SafetyConfig,
    kinematics: ArmKinematics | None,
    *,
    collision: CollisionModel | None = None,
    sim: SimVerdict | None = None,
    arm: RobotSpec | None = None,  # the arm --robot describes; None: the registry entry plan.robot names
) -> PreflightReport:
    """Pre-flight ``plan`` offline (no robot): every rule but ``start_state``, which is skipped.

    A report with no refusal is as far as an offline check goes; ``report.ok`` stays False
    because the start state is unknown.
    """
    return preflight(plan, limits, kinematics, config, None, collision=collision, sim=sim, arm=arm)


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
    collision: CollisionModel | None = None,  # self-collision (and the scene's): Checkers.collision
    sim: SimVerdict | None = None,  # the re-simulation verdict: Checkers.sim
    arm: RobotSpec | None = None,  # the arm --robot describes; None: the registry entry plan.robot names
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
    confirm and run the plan with its gripper widths. Right before each first command the arm's
    state is read again: if it moved off the start since pre-flight, nothing is sent. Each run's
    log is written (atomically) even when the run fails. Refusals and stops are returned
    (``success`` False), not raised; an exception from ``confirm`` propagates, with nothing moved
    by that step. Raises ChordError if ``robot`` has no gripper (every plan commands one).
    """
    limits = robot.limits
    if robot.gripper is None:
        raise ChordError(
            f"{limits.model} at {robot.address} has no gripper; a plan's gripper widths need one"
        )
    sha = plan.content_hash()
    meta = {"plan_sha256": sha, "safety_config": asdict(config), "slowdown": config.slowdown, **(meta or {})}
    out = ExecutionOutcome(success=False, executed=False, message="")
    execution = replace(execution, start_tolerance=config.start_tolerance)
    checks = {"collision": collision, "gripper": robot.gripper.limits, "arm": arm}

    def record(label: str, report: PreflightReport) -> PreflightReport:
        out.reports.append((label, report))
        if on_report is not None:
            on_report(label, report)
        return report

    def end(success: bool, message: str) -> ExecutionOutcome:
        out.success, out.message = success, message
        return out

    report = record(
        PLAN, preflight(plan, limits, kinematics, config, robot.read_state().q, sim=sim, **checks)
    )
    move = None
    if approach and report.reasons == [Reason.START_STATE]:
        ap = plan_approach(
            robot.read_state().q,
            np.asarray(plan.q)[0],
            limits,
            kinematics,
            config,
            collision=collision,
            gripper_width=robot.gripper.read().width,
        )
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
        if res.reason == Outcome.START_MOVED:
            return end(
                False, f"refused before moving (start_state): {res.message}; log {out.approach_log_path}"
            )
        if not res.success:
            return end(False, f"approach stopped ({res.reason}): {res.message}; log {out.approach_log_path}")
        report = record(
            PLAN_AFTER_APPROACH,
            preflight(plan, limits, kinematics, config, robot.read_state().q, sim=sim, **checks),
        )
        if not report.ok:
            return end(False, str(PreflightRefusedError(report)))

    t_plan = np.asarray(plan.t) * config.slowdown
    request = ConfirmRequest(
        robot.address, f"plan {sha[:12]} ({plan.task!r}, {t_plan[-1]:.1f} s)", limits.model, robot.address
    )
    if not _confirmed(robot, confirm, request):
        return end(False, "the plan was not confirmed; nothing moved")
    res = stream(
        robot, t_plan, plan.q, execution, gripper=plan.gripper, grasp_force=config.grasp_force, meta=meta
    )
    out.result, out.executed = res, res.sends > 0
    out.log_path = res.log.save(log_path)
    if res.reason == Outcome.START_MOVED:
        return end(False, f"refused before moving (start_state): {res.message}; log {out.log_path}")
    if not res.success:
        return end(False, f"stopped ({res.reason}): {res.message}; log {out.log_path}")
    return end(True, f"done: {res.message}; {len(res.log)} ticks logged to {out.log_path}")


def _confirmed(robot: Robot, confirm: Confirm, request: ConfirmRequest) -> bool:
    """Ask ``confirm`` on a hardware backend; a simulated arm goes ahead without asking."""
    if not robot.is_hardware:
        log.info("%s on a simulated backend: no confirmation needed", request.what)
        return True
    return confirm(request) is True
