"""``chord sim`` (validate one plan in PyBullet) and ``chord bench`` (success-rate benchmark)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from core.names import check_output_dir, check_output_file
from flowgen.config import FlowConfig
from sim.bench import BenchConfig
from sim.rules import EvalConfig
from sim.world import SimConfig

if TYPE_CHECKING:
    from sim.evaluate import SimResult


def sim(
    plan: tyro.conf.Positional[Path],
    scene: Path,
    flow: Path | None = None,
    planned_from: Path | None = None,
    write_verdict: bool = False,
    out: Path | None = None,
    rerun: Path | None = None,
    robot: str | None = None,
    robot_urdf: Path | None = None,
    config: Annotated[SimConfig, tyro.conf.OmitArgPrefixes] = SimConfig(),
    eval_config: Annotated[EvalConfig, tyro.conf.OmitArgPrefixes] = EvalConfig(),
) -> None:
    """Execute a plan in PyBullet and judge it against the scene's ground truth, else the flow's goal.

    Loads the scene's URDFs and the arm (at the plan's base pose), settles the objects, runs the
    plan as the arm's controller would (a joint impedance with the robot's stiffness, torque-limited
    joints, force-limited fingers; --arm-control position: PyBullet's position servo), then checks
    the manipulated part's pose at the flow's last frame (rigid: --position-tolerance and
    --angle-tolerance-deg; articulated: the joint within --joint-tolerance-fraction of the flow's
    range), that the grasp held, and that the arm never touched the table. When the scene names a
    ground truth (reference.truth, as `chord assets suite` writes) the final pose and joint values
    are the truth's, not the flow's; the output says which judged. Exit status 1 if the
    plan fails. With --write-verdict the verdict is stored in the plan's meta.validation (its
    content hash is unchanged). Every physics setting and threshold is an option below.

    Example: chord sim runs/banana/plan.npz --scene scenes/pick_banana/scene.yaml --write-verdict

    Args:
        plan: plan.npz to execute.
        scene: scene spec (YAML) with a URDF for every object.
        flow: flow.npz whose goal judges the plan; default: the scene's reference flow.
        planned_from: flow.npz the plan was made from, when it is not FLOW (e.g. a generated flow
            judged against the reference); a failure whose planning flow moves the part elsewhere
            is blamed on the flow.
        write_verdict: write the verdict into PLAN's meta.validation (atomically).
        out: also write the full result as JSON here.
        rerun: also write a rerun recording (.rrd) of the scene, the plan and the verdict.
        robot: the arm: default the registered robot the plan names (panda, fr3, xarm6, ur5); for your
            own arm, the YAML file describing it (docs/robots.md), whose name must be the plan's.
        robot_urdf: the arm's URDF in place of its entry's. A plan file never chooses the file the
            simulator loads.
        config: how the plan is simulated.
        eval_config: success thresholds.
    """
    from sim.api import validate_plan

    # Outputs first: an unwritable one fails now, not after the simulation.
    for option, path in (
        ("--out", out),
        ("--rerun", rerun),
        ("PLAN (--write-verdict)", plan if write_verdict else None),
    ):
        if path is not None:
            check_output_file(path, option)
    result = validate_plan(
        plan, scene, flow, planned_from, config, eval_config, write_verdict, out, robot_urdf, robot
    )
    if rerun is not None:
        _record(rerun, plan, scene, result, config, eval_config)
    status = "SUCCESS" if result.success else f"FAILURE ({result.cause})"
    print(f"{plan}: {status}: {result.reason}")
    if result.judged_by == "truth":
        print("judged by the truth: the scene's recorded ground truth (reference.truth)")
    else:
        print("judged by the flow's own goal: the scene has no ground truth (reference.truth)")
    if result.track_position_mean_m is not None:
        print(
            f"tracking of {result.object_name}/{result.part_link}: mean {1000 * result.track_position_mean_m:.1f} mm "
            f"/ {result.track_angle_mean_deg:.1f} deg, max {1000 * result.track_position_max_m:.1f} mm / "
            f"{result.track_angle_max_deg:.1f} deg over {len(result.frame_times_s or [])} flow frames; "
            f"simulated {result.sim_seconds:.1f} s at {result.physics_hz:.0f} Hz in {result.wall_s:.1f} s"
        )
    if write_verdict:
        print(f"verdict written to {plan} (meta.validation)")
    if not result.success:
        raise SystemExit(1)


def _record(
    path: Path, plan: Path, scene: Path, result: SimResult, config: SimConfig, eval_config: EvalConfig
) -> None:
    """The stage's rerun recording: the scene, the plan and the verdict."""
    from chord.viz.plan import log_plan
    from chord.viz.record import open_recording
    from chord.viz.scene import log_scene
    from chord.viz.sim import log_sim_result
    from core.plan import Plan
    from core.scene import Scene
    from sim.evaluate import verdict

    p = Plan.load(plan)
    with open_recording(path) as rec:
        log_scene(rec, Scene.load(scene))
        log_plan(rec, p)
        log_sim_result(rec, verdict(result, p, config, eval_config))


def bench(
    scenes: tyro.conf.Positional[list[Path]] = [],  # noqa: B006 - tyro reads the default
    out: Path = Path("runs/bench"),
    tasks_dir: Path | None = None,
    config: Annotated[BenchConfig, tyro.conf.OmitArgPrefixes] = BenchConfig(),
    full: bool = False,
    flow_dir: Path | None = None,
    prior: Literal["video", "wan"] | None = None,
    model_dir: Path | None = None,
    flow_config: Annotated[FlowConfig, tyro.conf.AvoidSubcommands] = FlowConfig(),
    suite: Path | None = None,
    split: str | None = None,  # checked by SuiteSelection: a one-line error, not a usage box
    limit: int | None = None,
    only: tuple[str, ...] = (),
) -> None:
    """Success-rate benchmark: randomised trials per task, planned and simulated in parallel processes.

    Each trial perturbs object poses, friction and mass (every seed recorded), plans with the
    planner and judges the plan in PyBullet against the task's reference flow. Prints a table like
    the seed's Table 1 (successes/trials per task, rows "video flow" and "ours"), Wilson 95%
    intervals, mean tracking error and failures by stage; writes OUT/results.jsonl (resumable),
    summary.json, table.txt and success.png. Default scenes: the three tasks, built under
    OUT/tasks with `chord assets tasks` if absent. With --full the whole chain runs: each task's
    flow is generated once by `chord flow` (video-fit prior on the task's reference video) into
    OUT/flows/<task>/ (a finished flow there is reused, a killed one resumed) and "ours" plans from it.
    With --flow-dir DIR "ours" plans from flows you generated elsewhere (e.g. Wan flows made on a
    GPU), laid out as DIR/<task>/flow.npz (the scene's name; a `chord flow --out DIR/<task>` run).
    The randomisation and run options are sim.bench.BenchConfig's (defaults there).

    With --suite DIR (a suite written by `chord assets suite --out DIR`) every task of --split is
    planned from its ground-truth flow (or DIR/<task>/flow.npz of --flow-dir), run for --trials
    randomised trials (method "ours") and judged against the task's recorded ground truth; it
    prints one table by category (tasks, trials, success rate, failures by stage: flow, IK, grasp,
    execution, error) and writes OUT/suite_bench.json and OUT/suite_table.txt beside results.jsonl,
    e.g. `chord bench --suite runs/suite --split test --trials 8 --out runs/bench_suite`. With
    --suite and --full each task's flow is first made by the video fit into OUT/flows/<task>/ (reused
    or resumed as above): the whole chain on tasks nobody tuned by hand.

    Example: chord bench --out runs/bench --trials 8 --flow-noise-mm 0 5 10 (or --full for the whole chain)

    Args:
        scenes: scene.yaml files with a reference flow; default: the three task scenes.
        out: output folder.
        tasks_dir: folder of task scenes (<task>/scene.yaml); built there if missing.
        config: what the benchmark randomises and how it runs.
        full: plan "ours" (and "rigid") from flows generated by the flow stage, not the reference flows.
        flow_dir: plan "ours" (and "rigid") from DIR/<task>/flow.npz, flows generated elsewhere.
        prior: with --full, the flow prior (overrides --flow-config.prior): "video" fits each task's
            reference RGB-D video on a CPU; "wan" distils from Wan 2.2 (needs --model-dir and a GPU).
        model_dir: with --full --prior wan, the local Wan 2.2 diffusers folder (checked before any work).
        flow_config: with --full, the flow optimisation (as `chord flow`; defaults: the video-fit prior's).
        suite: run the task suite in this folder (its suite.json) instead of scenes, judged by its ground truth.
        split: with --suite, the tasks to run: train, test or all (default all).
        limit: with --suite, at most this many tasks of each category (a short run; default every task).
        only: with --suite, only these categories or task ids (e.g. --only knob door_002).
    """
    from core.errors import ChordError
    from core.lock import run_lock
    from sim.bench import BENCH_FOLDERS, check_flow_kind, format_table, run_bench, task_scenes, user_flows

    if suite is not None:
        if prior is not None:
            flow_config = dataclasses.replace(flow_config, prior=prior)
        _bench_suite(
            suite, split, limit, only, out, config, flow_dir, list(scenes), full, tasks_dir, flow_config,
            model_dir,
        )  # fmt: skip
        return
    if split is not None or limit is not None or only:
        raise ChordError("bench: --split, --limit and --only choose the tasks of --suite DIR; add --suite")
    if full and flow_dir is not None:
        raise ChordError(
            "bench: give --full (generate the flows) or --flow-dir (flows made elsewhere), not both"
        )
    if not full and (prior is not None or model_dir is not None):
        raise ChordError("bench: --prior and --model-dir choose how --full generates flows; add --full")
    check_output_dir(out, "--out")
    if tasks_dir is not None:
        check_output_dir(tasks_dir, "--tasks-dir")
    check_flow_kind(out, full)
    if full:
        from chord.bench_full import check_flow_prior, generated_flows

        if prior is not None:
            flow_config = dataclasses.replace(flow_config, prior=prior)
        check_flow_prior(flow_config, model_dir)  # before any task scene or flow is made
    # OUT's lock for the whole bench (the task scenes and flows are made under OUT too); run_bench
    # takes it again.
    with run_lock(out, "chord bench", sweep=BENCH_FOLDERS):
        scenes = list(scenes) or task_scenes(tasks_dir or out / "tasks")
        flows = None
        if flow_dir is not None:
            flows = user_flows(scenes, flow_dir)  # "rigid" follows "ours" (run_bench)
        if full:
            from chord.cli.flow import summary_lines

            generated = generated_flows(scenes, out / "flows", flow_config, model_dir)
            flows = generated.flows
            for summary in generated.made.values():
                print("\n".join(summary_lines(summary)))
        records = run_bench(scenes, out, config, flows=flows)
    print(format_table(records))
    print(f"results: {out / 'results.jsonl'}, plot: {out / 'success.png'}")


def _bench_suite(
    suite: Path,
    split: str | None,
    limit: int | None,
    only: tuple[str, ...],
    out: Path,
    config: BenchConfig,
    flow_dir: Path | None,
    scenes: list[Path],
    full: bool,
    tasks_dir: Path | None,
    flow_config: FlowConfig,
    model_dir: Path | None,
) -> None:
    """``chord bench --suite``: check the options and OUT, make the flows (--full), run
    sim.suite_bench, print the table."""
    from core.errors import ChordError
    from core.lock import run_lock
    from sim.bench import BENCH_FOLDERS, check_flow_kind, user_flows
    from sim.suite_bench import SuiteSelection, run_suite_bench

    given = [name for name, on in (("SCENES", scenes), ("--tasks-dir", tasks_dir)) if on]
    if given:
        raise ChordError(f"bench --suite runs the suite's own tasks; drop {given}")
    if full and flow_dir is not None:
        raise ChordError(
            "bench: give --full (generate the flows) or --flow-dir (flows made elsewhere), not both"
        )
    selection = SuiteSelection(suite, split or "all", limit, tuple(only))
    check_output_dir(out, "--out")  # outputs first: an unwritable OUT fails before any work
    check_flow_kind(out, full)
    if full:
        from chord.bench_full import check_flow_prior

        check_flow_prior(flow_config, model_dir)  # before any flow is made
    with run_lock(out, "chord bench", sweep=BENCH_FOLDERS):
        entries = selection.entries()
        flows = None
        if flow_dir is not None:
            flows = user_flows([e.scene for e in entries], flow_dir)
        if full:
            from chord.bench_full import generated_flows
            from chord.cli.flow import summary_lines

            generated = generated_flows([e.scene for e in entries], out / "flows", flow_config, model_dir)
            flows = generated.flows
            for summary in generated.made.values():
                print("\n".join(summary_lines(summary)))
        flows_from = "generated" if full else None if flows is None else "user"
        result = run_suite_bench(selection, out, config, flows, flows_from)
    print(result.table)
    print(f"results: {out / 'results.jsonl'}, table: {result.table_path}, record: {result.record_path}")
