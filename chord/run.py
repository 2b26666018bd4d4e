"""``chord run``: the whole chain on one scene (flow -> plan -> sim verdict -> recording) and a summary.

Each stage is the stage's own command function (``chord flow``, ``chord plan``, ``chord sim``,
``chord view``) called in turn on one output folder; this module only sequences them, times them,
turns a stage's failure into one line naming the stage (``StageError``) and summarises the run::

    OUT/flow.npz, config.json, run.log, checkpoints/, preview.mp4   chord flow
    OUT/plan.npz, plan.config.json                                   chord plan
    OUT/sim.json (and the verdict in plan.npz's meta.validation)      chord sim
    OUT/recording.rrd, plots/                                        chord view
    OUT/summary.json                                                 this module: the summary's numbers
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import tyro

from core.errors import ChordError, ContractError
from core.record import RunRecord
from flowgen.config import FlowConfig
from flowgen.generate import FlowSummary, WanOptions

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


def run(
    scene: tyro.conf.Positional[Path | None] = None,
    out: Path | None = None,
    task: str = "",
    resume: bool = False,
    judge: Literal["flow", "reference"] = "flow",
    wan: Annotated[WanOptions, tyro.conf.OmitArgPrefixes, tyro.conf.AvoidSubcommands] = WanOptions(),
    config: Annotated[FlowConfig, tyro.conf.OmitArgPrefixes, tyro.conf.AvoidSubcommands] = FlowConfig(),
) -> None:
    """Run the whole chain on one scene: 4D flow, plan, PyBullet verdict, rerun recording, summary.

    Calls `chord flow` (default `--prior video`: fits the scene's reference RGB-D video on a CPU;
    `--prior wan --model-dir DIR` distils from Wan 2.2 on a GPU), `chord plan`, `chord sim` (judged
    against the generated flow's own goal, or with --judge reference the scene's ground truth) with the
    verdict written into plan.npz, and `chord view` (OUT/recording.rrd and OUT/plots/), all into OUT,
    then prints where the outputs are, the flow's error against the ground truth, the plan report,
    the sim result, seconds per stage and how to look at it (also in OUT/summary.json). A failing
    stage stops the run with one line naming it; exit status 1 also when the plan fails in sim.

    Example: chord run scenes/pick_banana/scene.yaml --out runs/pick_banana

    Args:
        scene: the scene spec (YAML); or leave it out and give --task.
        out: output folder of the run.
        task: build this task scene (pick_banana, lower_lamp, close_laptop) under OUT/scenes/ first
            (kept if already there) and run on it.
        resume: continue a killed run in OUT: the flow resumes from its newest checkpoint with the
            config recorded there; the later stages run again.
        judge: what the sim's success is judged against: "flow", the generated flow's own goal (the
            plan did what the flow asked; the flow's distance from the ground truth is reported beside
            it), or "reference", the scene's ground-truth flow (flow and execution errors together).
        wan: the Wan 2.2 prior's model folder and speed options (as `chord flow`; --prior wan only).
        config: the flow optimisation (as `chord flow`; defaults: the prior's).
    """
    from core.scene import Scene

    if out is None:
        raise ChordError("give --out DIR, e.g. `chord run scenes/pick_banana/scene.yaml --out runs/banana`")
    if (scene is None) == (not task):
        raise ChordError(
            "give a SCENE or --task NAME (not both), e.g. `chord run --task pick_banana --out runs/banana`"
        )
    from flowgen.generate import check_prior_options

    check_prior_options(config.prior, wan)  # before any stage runs
    seconds: dict[str, float] = {}
    if task:
        scene = out / "scenes" / task / "scene.yaml"
        if not scene.is_file():
            from assets.tasks import build_task

            run_stage("assets", seconds, build_task, task, scene.parent)
    assert scene is not None
    sc = run_stage("scene", seconds, Scene.load, scene)
    reference = sc.reference.flow if sc.reference is not None else None

    flow = _flow_stage(scene, out, wan, resume, config, seconds)
    flow_path = flow.flow_path
    errors = [asdict(e) for e in flow.errors]

    from chord.cli.plan import plan

    plan_path = out / "plan.npz"
    tee = io.StringIO()
    with redirect_stdout(tee):
        run_stage("plan", seconds, plan, flow_path, scene=scene, out=plan_path)
    plan_lines = tee.getvalue().splitlines()
    print(tee.getvalue(), end="")

    sim_path = out / "sim.json"
    goal = reference if judge == "reference" else None
    if judge == "reference" and reference is None:
        raise ChordError(f"--judge reference: scene {sc.name!r} has no reference flow")
    run_stage("sim", seconds, _judge, plan_path, scene, flow_path, goal, sim_path)
    verdict = json.loads(sim_path.read_text())

    from chord.viz.run import record_run, write_plots

    recording, plots = out / "recording.rrd", out / "plots"
    run_stage("view", seconds, record_run, out, recording)
    run_stage("plots", seconds, write_plots, out, plots)

    summary = {
        "scene": str(scene),
        "out": str(out),
        "prior": flow.prior,
        "flow_error": errors,
        "plan": plan_lines[0] if plan_lines else "",
        "sim": {k: verdict.get(k) for k in ("success", "cause", "reason")},
        "sim_judged_against": "reference flow" if goal is not None else "generated flow's own goal",
        "tracking_mean_mm": _mm(verdict.get("metrics", {}).get("track_position_mean_m")),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "recording": str(recording),
        "plots": str(plots),
        "preview": next((str(p) for p in (out / "preview.mp4", out / "preview.gif") if p.exists()), None),
    }
    from core.atomic import write_text_atomic

    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary, sc.name))
    if not verdict.get("success"):
        raise SystemExit(1)


def _flow_stage(
    scene: Path, out: Path, wan: WanOptions, resume: bool, config: FlowConfig, seconds: dict[str, float]
) -> FlowSummary:
    from flowgen.generate import generate_flow, resume_flow

    if resume and RunRecord.exists(out):
        try:
            recorded = RunRecord.load(out).scene
        except ContractError as e:
            raise StageError("flow", ChordError(f"--resume: {e}")) from e
        if recorded.resolve() != scene.resolve():
            raise StageError("flow", ChordError(f"--resume: {out} holds a run of {recorded}, not of {scene}"))
        return run_stage("flow", seconds, resume_flow, out)
    return run_stage("flow", seconds, generate_flow, scene, out, config, wan=wan)


def _judge(plan_path: Path, scene: Path, flow_path: Path, reference: Path | None, sim_path: Path) -> bool:
    """``chord sim`` with the verdict written to plan.npz and sim.json; returns success."""
    from chord.cli.sim import sim

    try:
        if reference is not None:
            sim(plan_path, scene, planned_from=flow_path, write_verdict=True, out=sim_path)
        else:
            sim(plan_path, scene, flow=flow_path, write_verdict=True, out=sim_path)
    except SystemExit as e:
        # chord sim exits 1 on a failed plan: a verdict, not a stage error; the summary reports it.
        if e.code != 1 or not sim_path.is_file():
            raise
        return False
    return True


def _mm(metres: float | None) -> float | None:
    return None if metres is None else 1000 * metres


def format_summary(s: dict[str, Any], scene_name: str) -> str:
    """The closing summary of ``chord run`` from its summary.json record."""
    out = Path(s["out"])
    sec = s["seconds"]
    lines = [
        "",
        f"chord run: {scene_name}: {'SUCCESS' if s['sim']['success'] else 'FAILURE'} in "
        f"{sum(sec.values()):.0f} s",
        f"  outputs  {out}/: flow.npz, preview, plan.npz, sim.json, recording.rrd, plots/, summary.json",
    ]
    if s["flow_error"]:
        for e in s["flow_error"]:
            lines.append(
                f"  flow     {e['name']}: {e['mean_mm']:.1f} mm mean, {e['final_mm']:.1f} mm at the last frame "
                f"from the ground truth (which moves it {e['motion_mm']:.0f} mm); prior {s['prior']}"
            )
    else:
        lines.append(f"  flow     no ground truth in the scene to compare with; prior {s['prior']}")
    lines.append(f"  plan     {s['plan']}")
    sim_line = "SUCCESS" if s["sim"]["success"] else f"FAILURE ({s['sim']['cause']})"
    tracking = "" if s["tracking_mean_mm"] is None else f"; tracking {s['tracking_mean_mm']:.1f} mm mean"
    lines.append(
        f"  sim      {sim_line} against the {s['sim_judged_against']}: {s['sim']['reason']}{tracking}"
    )
    lines.append("  seconds  " + ", ".join(f"{k} {v:.1f}" for k, v in sec.items()))
    look = f"`rerun {s['recording']}`, plots in {s['plots']}/"
    if s["preview"]:
        look = f"open {s['preview']}, " + look
    lines.append(f"  look     {look}")
    return "\n".join(lines)
