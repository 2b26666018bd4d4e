"""``chord run``'s work: the whole chain on one scene, composed from the stages' library functions.

:func:`run_chain` calls, in turn and into one output folder::

    flowgen.generate.generate_flow / resume_flow   OUT/flow.npz, config.json, run.log, checkpoints/, preview.mp4
    planner.api.plan_file                         OUT/plan.npz, plan.config.json
    sim.api.validate_plan                         OUT/sim.json (and the verdict in plan.npz's meta.validation)
    chord.viz.run.record_run, write_plots         OUT/recording.rrd, plots/
    this module                                   OUT/summary.json

and returns a :class:`ChainSummary`. It times each stage and turns a stage's failure into one line
naming the stage (:class:`StageError`). The command line (``chord run``) is ``chord.cli.run``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from core.atomic import write_text_atomic
from core.errors import ChordError, ContractError
from core.lock import run_lock
from core.names import safe_child
from core.record import RunRecord
from flowgen.config import FlowConfig
from flowgen.generate import FlowSummary, WanOptions
from planner.config import PlannerConfig
from sim.rules import EvalConfig
from sim.world import SimConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


class StageError(ChordError):
    """A stage of ``chord run`` failed; the message is one line that starts with the stage's name."""

    def __init__(self, stage: str, cause: BaseException):
        self.stage = stage
        self.cause = cause
        text = " ".join(str(cause).split())  # one line, however the stage phrased it
        if not isinstance(cause, ChordError):
            # An unexpected exception: its type is part of what the user needs to report it.
            text = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
        super().__init__(f"{stage}: {text}")


def run_stage(name: str, seconds: dict[str, float], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call one stage; returns its result and records its wall time in ``seconds``.

    Raises StageError (a ChordError, so ``chord`` prints it as one line) from any exception of the
    stage, chained to it so that ``--verbose`` shows the stage's own traceback. KeyboardInterrupt
    and SystemExit pass through.
    """
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        raise StageError(name, e) from e
    finally:
        seconds[name] = time.perf_counter() - t0


@dataclass(frozen=True)
class ChainConfig:
    """Everything ``chord run`` can be told besides the scene and the output folder."""

    flow: FlowConfig = field(default_factory=FlowConfig)  # the flow optimisation (as chord flow)
    wan: WanOptions = field(default_factory=WanOptions)  # the Wan prior's folder and options
    planner: PlannerConfig = field(default_factory=PlannerConfig)  # as chord plan
    sim: SimConfig = field(default_factory=SimConfig)  # as chord sim
    eval: EvalConfig = field(default_factory=EvalConfig)  # the sim's success tolerances, as chord sim
    # What the sim's success is judged against where the scene has no recorded ground truth
    # (reference.truth, which decides whenever it is there): "flow", the generated flow's own goal
    # (the plan did what the flow asked; the flow's distance from the ground truth is reported
    # beside it), or "reference", the scene's reference flow (flow and execution errors together).
    judge: Literal["flow", "reference"] = "flow"
    # Choose the grasp by trying the best few in PyBullet under ``sim`` (sim.grasp_trial), as
    # `chord plan` does by default; False: by the planner's geometric score alone.
    sim_grasp: bool = True
    # Continue a killed run in OUT: the flow resumes from its newest checkpoint with the settings
    # recorded there; the later stages run again.
    resume: bool = False


@dataclass(frozen=True)
class ChainSummary:
    """What one ``chord run`` made: where everything is and the numbers behind the verdict."""

    scene: Path  # the scene spec run on
    scene_name: str
    out: Path  # the output folder
    flow: FlowSummary  # the flow stage's summary (with its error against the reference, if any)
    plan_line: str  # the plan's one-line report (planner.api.PlanReport.summary)
    success: bool  # the sim verdict
    cause: str | None  # the failing stage in the sim's terms (None on success)
    reason: str  # the verdict in one line
    judged_against: str  # "scene's ground truth", "generated flow's own goal" or "reference flow"
    tracking_mean_mm: float | None  # mean tracking error of the manipulated part in the sim
    seconds: dict[str, float]  # wall time per stage
    recording: Path
    plots: Path

    def to_json(self) -> dict[str, Any]:
        """The summary.json record."""
        return {
            "scene": str(self.scene),
            "out": str(self.out),
            "prior": self.flow.prior,
            "flow_error": [asdict(e) for e in self.flow.errors],
            "plan": self.plan_line,
            "sim": {"success": self.success, "cause": self.cause, "reason": self.reason},
            "sim_judged_against": self.judged_against,
            "tracking_mean_mm": self.tracking_mean_mm,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "recording": str(self.recording),
            "plots": str(self.plots),
            "preview": None if self.flow.preview is None else str(self.flow.preview),
        }


def task_scene(task: str, out: Path, seconds: dict[str, float]) -> Path:
    """OUT/scenes/<task>/scene.yaml, built there first unless it exists.

    Raises ChordError for a task that is not one of assets.tasks.TASKS (before any path is made
    of its name).
    """
    from assets.tasks import TASKS, build_task

    if task not in TASKS:  # the assets stage's own refusal, before a path is made of the name
        raise StageError("assets", ChordError(f"task {task!r} is unknown; expected one of {sorted(TASKS)}"))
    scene = safe_child(out / "scenes", task) / "scene.yaml"
    if not scene.is_file():
        run_stage("assets", seconds, build_task, task, scene.parent)
    return scene


# OUT and the sub-folders chord run writes: a killed run's temporary files there are removed when
# OUT's lock is taken (core.lock).
CHAIN_FOLDERS = ("", "checkpoints", "scenes", "plots")


def run_chain(
    scene: Path, out: Path, config: ChainConfig = ChainConfig(), seconds: dict[str, float] | None = None
) -> ChainSummary:
    """Flow, plan, sim verdict, recording and plots of ``scene`` into ``out``; writes OUT/summary.json.

    Raises ChordError before any stage for Wan options with another prior or --judge reference on
    a scene without a reference flow, FolderBusyError when another process holds OUT (core.lock),
    and StageError (one line naming the stage) when a stage fails. A plan that fails in sim is a
    summary with ``success`` False, not an error.
    """
    with run_lock(out, "chord run", sweep=CHAIN_FOLDERS):
        return _run_chain(scene, out, config, seconds)


def _run_chain(scene: Path, out: Path, config: ChainConfig, seconds: dict[str, float] | None) -> ChainSummary:
    from core.scene import Scene
    from flowgen.generate import check_prior_options

    check_prior_options(config.flow.prior, config.wan)
    seconds = {} if seconds is None else seconds
    sc = run_stage("scene", seconds, Scene.load, scene)
    reference = sc.reference.flow if sc.reference is not None else None
    if config.judge == "reference" and reference is None:
        raise ChordError(f"--judge reference: scene {sc.name!r} has no reference flow")

    flow = _flow_stage(scene, out, config, seconds)

    from planner.api import plan_file

    plan_path = out / "plan.npz"
    from sim.grasp_trial import SimGraspJudge

    judge = SimGraspJudge(config.sim) if config.sim_grasp else None
    planned = run_stage(
        "plan", seconds, plan_file, flow.flow_path, scene, plan_path, config.planner, judge=judge
    )

    from sim.api import validate_plan

    sim_path = out / "sim.json"
    goal, planned_from = (
        (reference, flow.flow_path) if config.judge == "reference" else (flow.flow_path, None)
    )
    result = run_stage(
        "sim", seconds, validate_plan, plan_path, scene, goal, planned_from, config.sim, config.eval,
        write_verdict=True, out_json=sim_path, robot=config.planner.robot.name,
        robot_urdf=Path(config.planner.robot.urdf) if config.planner.robot.urdf else None,
    )  # fmt: skip

    from chord.viz.run import record_run, write_plots

    recording, plots = out / "recording.rrd", out / "plots"
    run_stage("view", seconds, record_run, out, recording)
    run_stage("plots", seconds, write_plots, out, plots)

    track = result.track_position_mean_m
    summary = ChainSummary(
        scene=scene,
        scene_name=sc.name,
        out=out,
        flow=flow,
        plan_line=planned.report.summary(plan_path),
        success=result.success,
        cause=result.cause,
        reason=result.reason,
        judged_against=_judged_against(result.judged_by, config.judge),
        tracking_mean_mm=None if track is None else 1000 * track,
        seconds=dict(seconds),
        recording=recording,
        plots=plots,
    )
    write_text_atomic(out / "summary.json", json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def _judged_against(judged_by: str, judge: str) -> str:
    """What decided the sim's verdict, in words: a scene's recorded ground truth decides whenever
    the scene has one (sim.api.validate_plan), whatever ``judge`` asked; else the goal flow did."""
    if judged_by == "truth":
        return "scene's ground truth"
    return "reference flow" if judge == "reference" else "generated flow's own goal"


def _flow_stage(scene: Path, out: Path, config: ChainConfig, seconds: dict[str, float]) -> FlowSummary:
    from flowgen.generate import generate_flow, resume_flow

    if config.resume and RunRecord.exists(out):
        try:
            recorded = RunRecord.load(out).scene
        except ContractError as e:
            raise StageError("flow", ChordError(f"--resume: {e}")) from e
        if recorded.resolve() != scene.resolve():
            raise StageError("flow", ChordError(f"--resume: {out} holds a run of {recorded}, not of {scene}"))
        return run_stage("flow", seconds, resume_flow, out)
    return run_stage("flow", seconds, generate_flow, scene, out, config.flow, wan=config.wan)
