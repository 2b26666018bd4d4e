"""``chord real``: pre-flight a sim-validated plan, and on typed confirmation replay it on an arm.

Parses the flags (the pre-flight thresholds come from ``real.preflight.SafetyConfig``), builds the
backend, calls ``real.session`` and prints; the typed confirmation at the terminal lives here, as
the callback the session asks before anything moves on hardware.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TextIO

import tyro

from core.errors import ChordError
from real.preflight import PreflightReport, SafetyConfig
from real.session import PLAN, ConfirmRequest

log = logging.getLogger(__name__)


def confirm(request: ConfirmRequest, read: Callable[[str], str] = input, stdin: TextIO | None = None) -> bool:
    """Ask the person at the terminal to type ``request.word``; True when they did.

    Raises ChordError (nothing moves) when stdin is not a TTY or something else was typed.
    """
    stdin = sys.stdin if stdin is None else stdin
    if not stdin.isatty():
        raise ChordError(
            f"{request.what} on a real arm needs a person at a terminal: stdin is not a TTY; refusing"
        )
    typed = read(
        f"About to run {request.what} on {request.robot} at {request.address}. Type {request.word!r} to move: "
    )
    if typed.strip() != request.word:
        raise ChordError(f"confirmation typed {typed.strip()!r}, expected {request.word!r}; nothing moved")
    return True


def _print_report(label: str, report: PreflightReport) -> None:
    print(report.format() if label == PLAN else f"{label}:\n{report.format()}")


def real(
    plan: tyro.conf.Positional[Path | None] = None,
    backend: Literal["none", "fake", "franka", "ur", "xarm"] = "none",
    host: str = "",
    model: str = "",
    scene: Path | None = None,
    flow: Path | None = None,
    robot: str | None = None,
    robot_urdf: Path | None = None,
    execute: bool = False,
    approach: bool = False,
    log_path: Path | None = None,
    replay_log: Path | None = None,
    realtime: bool = True,
    fake_offset: float = 0.0,
    fake_object_width: float | None = None,
    safety: Annotated[SafetyConfig, tyro.conf.OmitArgPrefixes] = SafetyConfig(),
) -> None:
    """Check a sim-validated plan against the arm's limits (dry run by default) and replay it on the arm.

    The default is a dry run: it prints the pre-flight report and moves nothing. --backend none checks
    offline (no robot state); a robot backend also reads where the arm is. The plan is re-simulated in
    PyBullet here, in --scene against --flow, before anything moves (its own validation record is not
    trusted); without them nothing moves. --execute moves the arm and its gripper after typed confirmation
    at a terminal (the robot's host; no flag skips it). --approach adds a separate, slow approach move,
    confirmed on its own, when the arm is not at the plan's start. Every run writes a log of commanded vs
    measured joints and gripper widths that --replay-log replays in PyBullet.

    Example: chord real runs/banana/plan.npz --scene runs/banana/scene.yaml --flow runs/banana/flow.npz --backend franka --host 172.16.0.2 --execute

    Args:
        plan: a sim-validated plan.npz.
        backend: none (offline dry run), fake (simulated arm), franka (franky), ur (ur_rtde), xarm.
        host: the robot's IP or hostname (franka, ur, xarm).
        model: limit table (panda, fr3, ur5, ur5e, xarm6); default: the plan's robot's (its registry
            entry's). One that is not the plan's robot's is refused.
        scene: the scene the plan was made in: the plan is re-simulated there, and checked for collisions with it.
        flow: the plan's goal flow (the one it was planned from or judged against), for the re-simulation.
        robot: the arm: default the registered robot the plan names (panda, fr3, xarm6, ur5); for your
            own arm, the YAML file describing it (docs/robots.md), whose name must be the plan's.
        robot_urdf: the arm's URDF in place of its entry's, for the FK, collision check and
            re-simulation. A plan file never chooses this file.
        execute: move the arm (after typed confirmation); without it, a dry run.
        approach: if the arm is not at the plan's start, plan a separate slow approach move.
        log_path: where the execution log goes (default: beside the plan, in real_logs/).
        replay_log: replay this execution log in PyBullet (against --table-z) and report; nothing else is done.
        realtime: franka: enforce a real-time kernel (turn off only for franky-sim).
        fake_offset: fake backend: start the simulated arm this many rad off the plan's start.
        fake_object_width: fake backend: an object this wide (m) between the fingers; default: an empty hand.
        safety: pre-flight thresholds (docs/real.md, "Safety model").
    """
    from real.limits import limits_for
    from real.log import ExecutionLog

    if replay_log is not None:
        from real.replay import replay_in_sim

        print(replay_in_sim(ExecutionLog.load(replay_log), table_z=safety.table_z).format())
        return
    if plan is None:
        raise ChordError("give a plan.npz (or --replay-log LOG), e.g. `chord real runs/banana/plan.npz`")

    from core.plan import Plan
    from real.backends import make_robot
    from real.preflight import PreflightRefusedError
    from real.session import default_log_path, dry_run, prepare, run_session
    from sim.world import robot_for

    if not (math.isfinite(fake_offset) and abs(fake_offset) <= math.pi):  # the fake hand checks its width
        raise ChordError(f"--fake-offset is {fake_offset!r}, expected {-math.pi:g} to {math.pi:g} rad")
    p = Plan.load(plan)
    arm = robot_for(p.robot, robot, robot_urdf)
    if backend not in ("none", "fake") and arm.backend != backend:
        raise ChordError(
            f"the plan was made for {arm.name!r}, which `chord real` drives with --backend {arm.backend or '(none)'}, "
            f"not {backend}: refusing (plan for this arm with `chord plan --robot`)"
        )
    if not (model or arm.limits_model):
        raise ChordError(f"robot {arm.name!r} names no limit table (limits_model): give --model")
    if model and arm.limits_model and model != arm.limits_model:
        raise ChordError(
            f"--model {model} is not the plan's robot {arm.name!r} (limit table {arm.limits_model}): refusing"
        )
    limits = limits_for(model or arm.limits_model)
    if scene is None and flow is None:
        print("not re-simulating: no --scene/--flow given; nothing will move without them")
    with prepare(p, limits, scene_path=scene, flow_path=flow, robot=arm) as checkers:
        if backend == "none":
            if execute:
                raise ChordError("--execute needs a robot: pass --backend fake|franka|ur|xarm and --host")
            report = dry_run(
                p,
                limits,
                safety,
                checkers.kinematics,
                collision=checkers.collision,
                sim=checkers.sim,
                arm=arm,
            )
            print(report.format())
            if report.refused:
                raise PreflightRefusedError(report)
            print("dry run (offline): nothing moved; the start-state check needs a robot backend")
            return

        if backend == "fake":
            from real.backends.fake import FakeGripper, WallClock
            from real.limits import gripper_for

            clock = WallClock()  # one clock for the arm and the hand
            hand_limits = gripper_for(limits.gripper)
            # The simulated hand starts where the plan starts, as far as the hand can open: a plan
            # outside the hand's range is pre-flight's to refuse (gripper_width), by name.
            w0 = float(p.gripper[0])
            w0 = hand_limits.max_width if not math.isfinite(w0) else w0
            hand = FakeGripper(
                hand_limits,
                width=min(max(w0, hand_limits.min_width), hand_limits.max_width),
                object_width=fake_object_width,
                clock=clock,
            )
            robot = make_robot("fake", limits=limits, q0=p.q[0] + fake_offset, gripper=hand, clock=clock)
        else:
            if not host:
                raise ChordError(f"--backend {backend} needs --host (the robot's IP)")
            kwargs = {"address": host, "model": limits.model}
            if backend == "franka":
                kwargs.update(dynamics_factor=safety.speed_scale, realtime=realtime)
            robot = make_robot(backend, **kwargs)

        log_path = log_path or default_log_path(plan, p.content_hash())
        with robot:
            outcome = run_session(
                robot,
                p,
                safety,
                confirm,
                kinematics=checkers.kinematics,
                collision=checkers.collision,
                sim=checkers.sim,
                arm=arm,
                approach=approach,
                execute=execute,
                log_path=log_path,
                meta={"plan_path": str(plan)},
                on_report=_print_report,
            )
    if not outcome.success:
        raise ChordError(outcome.message)
    print(
        outcome.message
        if execute
        else f"{outcome.message}; add --execute to move (typed confirmation follows)"
    )
