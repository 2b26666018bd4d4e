"""``chord real``: pre-flight a sim-validated plan, and on typed confirmation replay it on an arm."""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import tyro

from core.errors import ChordError

log = logging.getLogger(__name__)

DEFAULT_MODEL = {"none": "panda", "fake": "panda", "franka": "panda", "ur": "ur5e", "xarm": "xarm6"}


def confirm(robot, word: str, what: str, read: Callable[[str], str] = input, stdin=None) -> None:
    """Ask the operator to type ``word`` before ``what`` runs on hardware; raises ChordError otherwise."""
    if not robot.is_hardware:
        log.info("%s on a simulated backend: no confirmation needed", what)
        return
    stdin = sys.stdin if stdin is None else stdin
    if not stdin.isatty():
        raise ChordError(f"{what} on a real arm needs a person at a terminal: stdin is not a TTY; refusing")
    typed = read(f"About to run {what} on {robot.limits.model} at {robot.address}. Type {word!r} to move: ")
    if typed.strip() != word:
        raise ChordError(f"confirmation typed {typed.strip()!r}, expected {word!r}; nothing moved")


def real(
    plan: tyro.conf.Positional[Path | None] = None,
    backend: Literal["none", "fake", "franka", "ur", "xarm"] = "none",
    host: str = "",
    model: str = "",
    execute: bool = False,
    approach: bool = False,
    speed_scale: float = 0.25,
    first_run: bool = True,
    slowdown: float = 1.0,
    table_z: float = 0.0,
    workspace_min: tuple[float, float, float] = (-0.9, -0.9, -0.1),
    workspace_max: tuple[float, float, float] = (0.9, 0.9, 1.2),
    log_path: Path | None = None,
    replay_log: Path | None = None,
    realtime: bool = True,
    fake_offset: float = 0.0,
) -> None:
    """Check a sim-validated plan against the arm's limits (dry run by default) and replay it on the arm.

    The default is a dry run: it prints the pre-flight report and moves nothing. --backend none checks
    offline (no robot state); a robot backend also reads where the arm is. --execute moves the arm after
    typed confirmation at a terminal (the robot's host; no flag skips it). --approach adds a separate, slow
    approach move, confirmed on its own, when the arm is not at the plan's start. Every run writes a log
    of commanded vs measured joints that --replay-log replays in PyBullet.

    Example: chord real runs/banana/plan.npz --backend franka --host 172.16.0.2 --execute

    Args:
        plan: a sim-validated plan.npz.
        backend: none (offline dry run), fake (simulated arm), franka (franky), ur (ur_rtde), xarm.
        host: the robot's IP or hostname (franka, ur, xarm).
        model: limit table: panda, fr3, ur5e, xarm6 (default per backend).
        execute: move the arm (after typed confirmation); without it, a dry run.
        approach: if the arm is not at the plan's start, plan a separate slow approach move.
        speed_scale: fraction (0, 1] of the joint velocity/acceleration/jerk limits the plan may use.
        first_run: cap tool and link speed at 0.25 m/s.
        slowdown: stretch the plan's timeline by this factor (>= 1) before checking and running.
        table_z: table height in the robot base frame, metres.
        workspace_min: base-frame workspace box corner, metres.
        workspace_max: base-frame workspace box corner, metres.
        log_path: where the execution log goes (default: beside the plan, in real_logs/).
        replay_log: replay this execution log in PyBullet and report; nothing else is done.
        realtime: franka: enforce a real-time kernel (turn off only for franky-sim).
        fake_offset: fake backend: start the simulated arm this many rad off the plan's start.
    """
    from real.log import ExecutionLog

    if replay_log is not None:
        from real.replay import replay_in_sim

        print(replay_in_sim(ExecutionLog.load(replay_log), table_z=table_z).format())
        return
    if plan is None:
        raise ChordError("give a plan.npz (or --replay-log LOG), e.g. `chord real runs/banana/plan.npz`")

    import numpy as np

    from core.plan import Plan
    from real.approach import ApproachMove, approach_trajectory
    from real.backends import make_robot
    from real.execute import execute as run_stream
    from real.kinematics import kinematics_for
    from real.limits import limits_for
    from real.preflight import PreflightRefusedError, Reason, SafetyConfig, preflight

    limits = limits_for(model or DEFAULT_MODEL[backend])
    safety = SafetyConfig(
        speed_scale=speed_scale,
        first_run=first_run,
        slowdown=slowdown,
        table_z=table_z,
        workspace_min=workspace_min,
        workspace_max=workspace_max,
    )
    kin = kinematics_for(limits)
    p = Plan.load(plan)
    sha = p.content_hash()

    if backend == "none":
        if execute:
            raise ChordError("--execute needs a robot: pass --backend fake|franka|ur|xarm and --host")
        report = preflight(p, limits, kin, safety, None)
        print(report.format())
        if report.refused:
            raise PreflightRefusedError(report)
        print("dry run (offline): nothing moved; the start-state check needs a robot backend")
        return

    if backend == "fake":
        robot = make_robot("fake", limits=limits, q0=p.q[0] + fake_offset)
    else:
        if not host:
            raise ChordError(f"--backend {backend} needs --host (the robot's IP)")
        kwargs = {"address": host, "model": limits.model}
        if backend == "franka":
            kwargs.update(dynamics_factor=speed_scale, realtime=realtime)
        robot = make_robot(backend, **kwargs)

    log_path = log_path or plan.parent / "real_logs" / (
        f"{sha[:12]}_{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}.npz"
    )
    meta = {"plan_sha256": sha, "plan_path": str(plan), "safety_config": asdict(safety), "slowdown": slowdown}
    with robot:
        report = preflight(p, limits, kin, safety, robot.read_state().q)
        print(report.format())
        move = None
        if approach and report.reasons == [Reason.START_STATE]:
            t_a, q_a = approach_trajectory(robot.read_state().q, p.q[0], limits)
            move = ApproachMove(t_a, q_a, limits.joint_names)
            areport = preflight(move, limits, kin, safety, robot.read_state().q, require_validation=False)
            print("approach move:\n" + areport.format())
            areport.raise_if_refused()
        elif not report.ok:
            raise PreflightRefusedError(report)
        if not execute:
            print("dry run: nothing moved; add --execute to move (typed confirmation follows)")
            return
        if move is not None:
            confirm(robot, "APPROACH", f"a {move.t[-1]:.1f} s approach move to the plan's start")
            res = run_stream(robot, move.t, move.q, meta={**meta, "approach": True})
            apath = res.log.save(log_path.with_name(log_path.stem + "_approach.npz"))
            if not res.success:
                raise ChordError(f"approach stopped ({res.reason}): {res.message}; log {apath}")
            report = preflight(p, limits, kin, safety, robot.read_state().q)
            print(report.format())
            report.raise_if_refused()
        confirm(robot, robot.address, f"plan {sha[:12]} ({p.task!r}, {p.duration * slowdown:.1f} s)")
        res = run_stream(robot, np.asarray(p.t) * slowdown, p.q, meta=meta)
        path = res.log.save(log_path)
    if not res.success:
        raise ChordError(f"stopped ({res.reason}): {res.message}; log {path}")
    print(f"done: {res.message}; {len(res.log)} ticks logged to {path}")
