"""Build the code-made task suite and check every task: seen, at rest, joints holding; timed.

Run: OMP_NUM_THREADS=1 python benchmarks/suite_check.py --out /tmp/suite [--split test]
Per task: build seconds, the fraction of frames in which the moving object has visible flow
points, the mean fraction of its points visible, the largest base drift of any object (mm) and
the largest joint slip (rad or m) after 2 s of simulation from rest. Quote the output (docs/assets.md
"Task suite"), do not assert on it: tests/assets/test_suite.py asserts on a sample.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from assets.config import SUITE_PER_CATEGORY


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="all")
    ap.add_argument("--per-category", type=int, default=SUITE_PER_CATEGORY)
    args = ap.parse_args()

    from assets.bullet import World
    from assets.suite import SuiteConfig, build_suite
    from core.flow import ObjectFlow
    from core.scene import Scene

    start = time.perf_counter()
    result = build_suite(args.out, SuiteConfig(split=args.split, per_category=args.per_category))
    print(f"built {len(result.tasks)} tasks in {time.perf_counter() - start:.0f} s")
    print(
        f"{'task':12s} {'split':5s} {'build s':>7s} {'seen':>5s} {'visible':>7s} {'drift mm':>8s} {'slip':>7s}"
    )
    for t in result.tasks:
        scene = Scene.load(t.scene)
        flow = ObjectFlow.load(scene.reference.flow)
        vis = flow.visible[:, flow.object_mask(scene.movable_objects[0].name)]
        with World() as world:
            for o in scene.objects:
                world.add(o.name, o.urdf, o.pose.matrix())
            q0 = {o.name: world.joint_values(o.name) for o in scene.objects}
            world.step(480)
            drift = max(
                float(np.linalg.norm(world.pose(o.name)[:3, 3] - o.pose.matrix()[:3, 3]))
                for o in scene.objects
            )
            slip = max(
                [
                    abs(v - q0[o.name][j])
                    for o in scene.objects
                    for j, v in world.joint_values(o.name).items()
                ],
                default=0.0,
            )
        print(
            f"{t.id:12s} {t.split:5s} {t.seconds:7.2f} {vis.any(axis=1).mean():5.2f} {vis.mean():7.2f} "
            f"{1000 * drift:8.2f} {slip:7.4f}"
        )


if __name__ == "__main__":
    main()
