"""Time `chord assets`: the three task scenes at a video resolution, and V-HACD on a scan.

Run: python benchmarks/assets_tasks.py [--resolution 208x116]
Prints one line per measurement; quote the output, do not assert on it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resolution", default="208x116")
    ap.add_argument("--points-per-object", type=int, default=4000)
    args = ap.parse_args()

    import pybullet_data

    from assets.collision import VhacdSettings
    from assets.intake import IntakeConfig, intake_scan
    from assets.tasks import TASKS, build_task, parse_resolution
    from assets.urdf import write_asset

    res = parse_resolution(args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CHORD_CACHE"] = str(Path(tmp) / "cache")  # cold V-HACD cache
        total = time.perf_counter()
        for name in TASKS:
            t = time.perf_counter()
            build_task(name, Path(tmp) / name, res, args.points_per_object)
            print(f"task {name} at {args.resolution}: {time.perf_counter() - t:.2f} s")
        print(f"all three tasks: {time.perf_counter() - total:.2f} s")
        duck = Path(pybullet_data.getDataPath()) / "duck.obj"
        for resolution in (20_000, 100_000):
            asset, _ = intake_scan(duck, IntakeConfig(scale=0.05, up="+y"))
            for label in ("cold", "cached"):
                t = time.perf_counter()
                write_asset(asset, Path(tmp) / f"duck_{resolution}", VhacdSettings(resolution=resolution))
                print(
                    f"duck write_asset, V-HACD resolution {resolution} ({label}): {time.perf_counter() - t:.2f} s"
                )


if __name__ == "__main__":
    main()
