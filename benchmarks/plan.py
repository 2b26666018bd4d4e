"""Time `plan_flow` on 41-frame synthetic flows of ~5k points (goal: under 2 s on this CPU).

Run: python benchmarks/plan.py [--points 5000] [--repeats 3] [--noise 0.0] [--outliers 0.0]
Prints one line per case: the first (cold: imports toppra/matplotlib) and the median of the
warm runs (wall clock, and CPU time of this process: steadier on a shared machine), the time
per stage, and the plan's quality figures. Quote the output; do not assert.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--frames", type=int, default=41)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--noise", type=float, default=0.0, help="per-axis Gaussian noise, metres")
    ap.add_argument("--outliers", type=float, default=0.0, help="fraction of outlier trajectories")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from planner import synthetic
    from planner.pipeline import plan_flow
    from planner.robot import Robot

    robot = Robot()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"setup (imports + Panda model): {time.perf_counter() - t0:.2f} s; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}"
    )
    cases = {
        "rigid pick (box + obstacle)": synthetic.rigid_pick,
        "hinged lid (push shut)": synthetic.hinged_lid,
        "drawer (grasp handle)": synthetic.drawer,
    }
    for name, gen in cases.items():
        sf = gen(T=args.frames, n=args.points, noise=args.noise, outliers=args.outliers)
        times, cpu, result = [], [], None
        for _ in range(1 + args.repeats):
            t, c = time.perf_counter(), time.process_time()
            result = plan_flow(sf.flow, robot=robot)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        r = result.report
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["time_breakdown_s"].items())
        print(
            f"{name}: T={sf.flow.num_frames} N={sf.flow.num_points}: cold {times[0]:.2f} s, warm median "
            f"{np.median(times[1:]):.2f} s (CPU {np.median(cpu[1:]):.2f} s; {stages}); {r['grasp']['kind']}, tracking "
            f"{r['tracking']['sampled_position_max_mm']:.2f} mm / {r['tracking']['sampled_rotation_max_deg']:.2f} deg, "
            f"limit margin {r['joint_limit_margin_rad']:.3f} rad, peak speed "
            f"{100 * r['peak_speed_fraction_of_limit']:.0f}% of limit, duration {r['duration_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
