"""``chord run``: the whole chain on one scene (chord.run.run_chain), then its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro

from chord.run import CHAIN_FOLDERS, ChainConfig, ChainSummary
from core.errors import ChordError
from core.lock import run_lock
from core.names import check_output_dir
from flowgen.config import FlowConfig
from flowgen.generate import WanOptions
from planner.config import PlannerConfig
from sim.rules import EvalConfig
from sim.world import SimConfig

Flat = tyro.conf.OmitArgPrefixes
Group = tyro.conf.AvoidSubcommands


def run(
    scene: tyro.conf.Positional[Path | None] = None,
    out: Path | None = None,
    task: str = "",
    resume: bool = ChainConfig.resume,
    judge: Literal["flow", "reference"] = ChainConfig.judge,
    wan: Annotated[WanOptions, Flat, Group] = WanOptions(),
    config: Annotated[FlowConfig, Flat, Group] = FlowConfig(),
    planner: Annotated[PlannerConfig, Group] = PlannerConfig(),
    sim: Annotated[SimConfig, Group] = SimConfig(),
    eval: Annotated[EvalConfig, Group] = EvalConfig(),
    sim_grasp: bool = ChainConfig.sim_grasp,
) -> None:
    """Run the whole chain on one scene: 4D flow, plan, PyBullet verdict, rerun recording, summary.

    The flow (default `--prior video`: fits the scene's reference RGB-D video on a CPU; `--prior wan
    --model-dir DIR` distils from Wan 2.2 on a GPU), the plan (as `chord plan`, options under
    --planner.), the PyBullet verdict (as `chord sim`, options under --sim. and --eval.; judged
    by the scene's recorded ground truth where it has one, else against the generated flow's own
    goal, or with --judge reference the scene's reference flow)
    written into plan.npz, and the rerun recording (OUT/recording.rrd) and plots (OUT/plots/), all
    into OUT; then prints where the outputs are, the flow's error against the ground truth, the plan
    report, the sim result, seconds per stage and how to look at it (also in OUT/summary.json). A
    failing stage stops the run with one line naming it; exit status 1 also when the plan fails in sim.

    Example: chord run scenes/pick_banana/scene.yaml --out runs/pick_banana

    Args:
        scene: the scene spec (YAML); or leave it out and give --task.
        out: output folder of the run.
        task: build this task scene (pick_banana, lower_lamp, close_laptop) under OUT/scenes/ first
            (kept if already there) and run on it.
        resume: continue a killed run in OUT: the flow resumes from its newest checkpoint with the
            config recorded there; the later stages run again.
        judge: what the sim's success is judged against where the scene has no recorded ground
            truth (reference.truth decides whenever it is there): "flow", the generated flow's own
            goal (the plan did what the flow asked; the flow's distance from the ground truth is
            reported beside it), or "reference", the scene's reference flow (flow and execution
            errors together).
        wan: the Wan 2.2 prior's model folder and speed options (as `chord flow`; --prior wan only).
        config: the flow optimisation (as `chord flow`; defaults: the prior's).
        planner: the planner's settings (as `chord plan`).
        sim: the simulator's settings (as `chord sim`).
        eval: the sim's success tolerances (as `chord sim`).
        sim_grasp: choose the grasp by trying the best few in PyBullet (as `chord plan`);
            --no-sim-grasp: by the planner's geometric score alone.
    """
    from chord.run import run_chain, task_scene
    from flowgen.generate import check_prior_options

    if out is None:
        raise ChordError("give --out DIR, e.g. `chord run scenes/pick_banana/scene.yaml --out runs/banana`")
    if (scene is None) == (not task):
        raise ChordError(
            "give a SCENE or --task NAME (not both), e.g. `chord run --task pick_banana --out runs/banana`"
        )
    check_prior_options(config.prior, wan)  # before any stage runs
    check_output_dir(out, "--out")
    seconds: dict[str, float] = {}
    chain = ChainConfig(
        flow=config,
        wan=wan,
        planner=planner,
        sim=sim,
        eval=eval,
        judge=judge,
        resume=resume,
        sim_grasp=sim_grasp,
    )
    with run_lock(out, "chord run", sweep=CHAIN_FOLDERS):  # the task scene is built under OUT too
        if task:
            scene = task_scene(task, out, seconds)
        assert scene is not None
        summary = run_chain(scene, out, chain, seconds)
    print(format_summary(summary))
    if not summary.success:
        raise SystemExit(1)


def format_summary(s: ChainSummary) -> str:
    """The closing summary of ``chord run``."""
    sec = s.seconds
    lines = [
        "",
        f"chord run: {s.scene_name}: {'SUCCESS' if s.success else 'FAILURE'} in {sum(sec.values()):.0f} s",
        f"  outputs  {s.out}/: flow.npz, preview, plan.npz, sim.json, recording.rrd, plots/, summary.json",
    ]
    for e in s.flow.errors:
        lines.append(
            f"  flow     {e.name}: {e.mean_mm:.1f} mm mean, {e.final_mm:.1f} mm at the last frame "
            f"from the ground truth (which moves it {e.motion_mm:.0f} mm); prior {s.flow.prior}"
        )
    if not s.flow.errors:
        lines.append(f"  flow     no ground truth in the scene to compare with; prior {s.flow.prior}")
    lines.append(f"  plan     {s.plan_line}")
    sim_line = "SUCCESS" if s.success else f"FAILURE ({s.cause})"
    tracking = "" if s.tracking_mean_mm is None else f"; tracking {s.tracking_mean_mm:.1f} mm mean"
    lines.append(f"  sim      {sim_line} against the {s.judged_against}: {s.reason}{tracking}")
    # From the values summary.json records (rounded to 0.01 s), so the two never disagree in the
    # last digit (3.6501 s is 3.65 there, printed 3.6, not 3.7).
    lines.append("  seconds  " + ", ".join(f"{k} {round(v, 2):.1f}" for k, v in sec.items()))
    look = f"`rerun {s.recording}`, plots in {s.plots}/"
    if s.flow.preview is not None:
        look = f"open {s.flow.preview}, " + look
    lines.append(f"  look     {look}")
    return "\n".join(lines)
