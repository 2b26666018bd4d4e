"""``chord sim`` (validate one plan in PyBullet) and ``chord bench`` (success-rate benchmark)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Annotated, Literal

import tyro

from flowgen.config import FlowConfig

log = logging.getLogger(__name__)


def sim(
    plan: tyro.conf.Positional[Path],
    scene: Path,
    flow: Path | None = None,
    planned_from: Path | None = None,
    write_verdict: bool = False,
    out: Path | None = None,
    physics_hz: float = 240.0,
    substeps: int = 2,
    friction: float | None = None,
    mass_scale: float = 1.0,
    gui: bool = False,
    rerun: Path | None = None,
) -> None:
    """Execute a plan in PyBullet and judge it against the flow's goal (success, failing stage, errors).

    Loads the scene's URDFs and the arm (at the plan's base pose), settles the objects, runs the
    plan under position control with torque-limited joints and a 70 N gripper, then checks the
    manipulated part's pose at the flow's last frame (rigid: 2 cm / 15 deg; articulated: joint
    within 10% of the flow's range), that the grasp held, and that the arm never touched the table.
    Exit status 1 if the plan fails. With --write-verdict the verdict is stored in the plan's
    meta.validation (its content hash is unchanged).

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
        physics_hz: control and physics steps per second (at least 240).
        substeps: PyBullet sub-steps per step (the solver runs at physics_hz x substeps).
        friction: lateral friction of every object; default: the URDFs'.
        mass_scale: multiplies the mass of every movable object.
        gui: show PyBullet's GUI (needs a display).
        rerun: also write a rerun recording (.rrd) of the scene, the plan and the verdict.
    """
    from core.atomic import write_text_atomic
    from core.errors import ChordError
    from core.flow import ObjectFlow
    from core.plan import Plan
    from core.scene import Scene
    from sim.evaluate import simulate, verdict, with_verdict
    from sim.world import SimConfig

    p = Plan.load(plan)
    sc = Scene.load(scene)
    if flow is None:
        if sc.reference is None or sc.reference.flow is None:
            raise ChordError(
                f"{scene}: the scene has no reference flow; pass --flow FLOW.npz to judge against"
            )
        flow = sc.reference.flow
    f = ObjectFlow.load(flow)
    try:
        cfg = SimConfig(
            physics_hz=physics_hz, substeps=substeps, object_friction=friction, mass_scale=mass_scale, gui=gui
        )
    except ValueError as e:
        raise ChordError(str(e)) from e
    planning = ObjectFlow.load(planned_from) if planned_from is not None else None
    result = simulate(p, sc, f, cfg, planning_flow=planning)
    if out is not None:
        write_text_atomic(out, json.dumps(verdict(result, p, cfg), indent=2) + "\n")
    if write_verdict:
        with_verdict(p, result, cfg).save(plan)
    if rerun is not None:
        from chord.viz.plan import log_plan
        from chord.viz.record import open_recording
        from chord.viz.scene import log_scene
        from chord.viz.sim import log_sim_result

        with open_recording(rerun) as rec:
            log_scene(rec, sc)
            log_plan(rec, p)
            log_sim_result(rec, verdict(result, p, cfg))
    status = "SUCCESS" if result.success else f"FAILURE ({result.cause})"
    print(f"{plan}: {status}: {result.reason}")
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


def bench(
    scenes: tyro.conf.Positional[list[Path]] = [],  # noqa: B006 - tyro reads the default
    out: Path = Path("runs/bench"),
    tasks_dir: Path | None = None,
    trials: int = 8,
    seed: int = 0,
    methods: tuple[str, ...] = ("ours", "video_flow", "rigid"),
    flow_noise_mm: tuple[float, ...] = (0.0,),
    position_noise: float = 0.02,
    yaw_noise_deg: float = 10.0,
    friction_range: tuple[float, float] = (0.6, 1.0),
    mass_scale_range: tuple[float, float] = (0.8, 1.2),
    base_pose: tuple[float, float, float, float, float, float, float] = (-0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
    workers: int = 0,
    geometry: str = "mesh",
    full: bool = False,
    flow_dir: Path | None = None,
    prior: Literal["video", "wan"] | None = None,
    model_dir: Path | None = None,
    flow_config: Annotated[FlowConfig, tyro.conf.AvoidSubcommands] = FlowConfig(),
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

    Example: chord bench --out runs/bench --trials 8 --flow-noise-mm 0 5 10 (or --full for the whole chain)

    Args:
        scenes: scene.yaml files with a reference flow; default: the three task scenes.
        out: output folder.
        tasks_dir: folder of task scenes (<task>/scene.yaml); built there if missing.
        trials: trials per task, method and noise level.
        seed: master seed (each trial's seed derives from it).
        methods: "ours" (the task's flow), "video_flow" (tracked from the reference video) and/or
            "rigid" (ablation on articulated tasks: the task's flow fitted as rigid whole objects).
        flow_noise_mm: noise levels (per-axis std, mm) added to the planning flow; one row each.
        position_noise: objects shift uniformly within +-this (m) in x and y.
        yaw_noise_deg: objects turn uniformly within +-this about z.
        friction_range: object friction, uniform in [low, high].
        mass_scale_range: movable objects' mass factor, uniform in [low, high].
        base_pose: robot base in the world, xyz (m) + quaternion wxyz.
        workers: parallel processes; 0 = one per CPU core.
        geometry: grasp and collision surfaces for every method: "mesh" (the scene's meshes carried by
            the flow's parts; a one-view video flow has no far side to grasp) or "flow" (its own points).
        full: plan "ours" (and "rigid") from flows generated by the flow stage, not the reference flows.
        flow_dir: plan "ours" (and "rigid") from DIR/<task>/flow.npz, flows generated elsewhere.
        prior: with --full, the flow prior (overrides --flow-config.prior): "video" fits each task's
            reference RGB-D video on a CPU; "wan" distils from Wan 2.2 (needs --model-dir and a GPU).
        model_dir: with --full --prior wan, the local Wan 2.2 diffusers folder (checked before any work).
        flow_config: with --full, the flow optimisation (as `chord flow`; defaults: the video-fit prior's).
    """
    from core.errors import ChordError
    from sim.bench import BenchConfig, format_table, run_bench

    if not scenes:
        from assets.tasks import TASKS, build_task

        root = tasks_dir or out / "tasks"
        scenes = []
        for name in TASKS:
            path = root / name / "scene.yaml"
            if not path.is_file():
                log.info("building task scene %s under %s", name, root)
                build_task(name, root / name)
            scenes.append(path)
    cfg = BenchConfig(
        trials=trials,
        seed=seed,
        methods=tuple(methods),
        flow_noise=tuple(v / 1000 for v in flow_noise_mm),
        position_noise=position_noise,
        yaw_noise_deg=yaw_noise_deg,
        friction_range=tuple(friction_range),
        mass_scale_range=tuple(mass_scale_range),
        base_pose=tuple(base_pose),
        workers=workers,
        geometry=geometry,
    )
    _check_mode(out, full)
    flows = None
    if full and flow_dir is not None:
        raise ChordError(
            "bench: give --full (generate the flows) or --flow-dir (flows made elsewhere), not both"
        )
    if flow_dir is not None:
        from sim.bench import user_flows

        flows = user_flows(list(scenes), flow_dir)  # "rigid" follows "ours" (run_bench)
    if not full and (prior is not None or model_dir is not None):
        raise ChordError("bench: --prior and --model-dir choose how --full generates flows; add --full")
    if full:
        from chord.bench_full import check_flow_prior, generated_flows

        if prior is not None:
            flow_config = dataclasses.replace(flow_config, prior=prior)
        check_flow_prior(flow_config, model_dir)
        from chord.cli.flow import summary_lines

        generated = generated_flows(list(scenes), out / "flows", flow_config, model_dir)
        flows = generated.flows
        for summary in generated.made.values():
            print("\n".join(summary_lines(summary)))
    records = run_bench(list(scenes), out, cfg, flows=flows)
    print(format_table(records))
    print(f"results: {out / 'results.jsonl'}, plot: {out / 'success.png'}")


def _check_mode(out: Path, full: bool) -> None:
    """Refuse to mix trials planned from reference and generated flows in one results.jsonl.

    Trial keys do not name the planning flow, so resuming a bench of the other kind would silently
    reuse its records. Raises ChordError naming OUT.
    """
    from core.errors import ChordError

    if not (out / "results.jsonl").is_file():
        return
    was_full = (out / "flows").is_dir()
    if was_full != full:
        kind = "generated (--full)" if was_full else "reference"
        raise ChordError(
            f"bench: {out} holds results planned from {kind} flows; "
            f"choose another --out for a bench {'with' if full else 'without'} --full"
        )
