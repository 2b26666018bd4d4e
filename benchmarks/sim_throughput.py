"""Benchmark trials per minute per core: simulation alone, and whole bench trials (perturb, plan, simulate).

Runs in one process (one core): PyBullet is single-threaded, so the bench's throughput on N cores
is about N times these numbers. Builds the task scene under --work if absent.

    python benchmarks/sim_throughput.py --task pick_banana --trials 5
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per trial, as the bench's workers run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="pick_banana")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "chord_sim_throughput")
    ap.add_argument("--physics-hz", type=float, default=240.0)
    ap.add_argument("--substeps", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from assets.tasks import build_task
    from core.flow import ObjectFlow
    from core.scene import Scene
    from planner.pipeline import PlannerConfig, plan_flow
    from sim.bench import BenchConfig, Trial, run_trial, trial_seed
    from sim.evaluate import simulate
    from sim.world import SimConfig

    scene_path = args.work / args.task / "scene.yaml"
    if not scene_path.is_file():
        build_task(args.task, scene_path.parent)
    scene = Scene.load(scene_path)
    flow = ObjectFlow.load(scene.reference.flow)
    cfg = BenchConfig(trials=args.trials, physics_hz=args.physics_hz, substeps=args.substeps, workers=1)
    plan = plan_flow(flow, scene, PlannerConfig(base_pose=cfg.base_pose)).plan
    # The bench's trials stand the arm where this plan placed it (BenchConfig.base_pose None: once per task).
    cfg = replace(cfg, base_pose=tuple(plan.base_pose))
    sim_cfg = SimConfig(physics_hz=args.physics_hz, substeps=args.substeps)

    t0 = time.perf_counter()
    results = [simulate(plan, scene, flow, sim_cfg) for _ in range(args.trials)]
    sim_s = (time.perf_counter() - t0) / args.trials
    ok = sum(r.success for r in results)
    simulated = results[0].sim_seconds
    print(
        f"{args.task}: simulation only: {sim_s:.2f} s per trial ({simulated:.1f} s of robot time at "
        f"{args.physics_hz:g} Hz x {args.substeps} substeps, {simulated / sim_s:.1f}x real time), "
        f"{60 / sim_s:.1f} trials/min/core; {ok}/{args.trials} succeeded"
    )

    trials = [
        Trial(
            scene.name,
            str(scene_path),
            "ours",
            str(scene.reference.flow),
            0.0,
            i,
            trial_seed(0, scene.name, i),
            cfg,
        )
        for i in range(args.trials)
    ]
    t0 = time.perf_counter()
    recs = [run_trial(t) for t in trials]
    full_s = (time.perf_counter() - t0) / args.trials
    plan_s = sum(r.get("planning_time_s", 0.0) for r in recs) / args.trials
    ok = sum(bool(r["success"]) for r in recs)
    causes = [r["cause"] for r in recs if not r["success"]]
    print(
        f"{args.task}: whole trial (perturb + plan + simulate): {full_s:.2f} s per trial (planning "
        f"{plan_s:.2f} s), {60 / full_s:.1f} trials/min/core; {ok}/{args.trials} succeeded, failures {causes}"
    )


if __name__ == "__main__":
    main()
