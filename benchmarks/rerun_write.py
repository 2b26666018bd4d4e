"""Time writing a rerun recording of a flow: 7,500 points x 41 frames (the seed's |S| and T).

Usage: python benchmarks/rerun_write.py [--points 7500] [--frames 41] [--repeats 5]

Prints, per repeat, the seconds to open the .rrd, log the flow (line strips for 1,000 tracks
per object + every point at every frame on the `frame` timeline) and close it, plus the file size;
then reads it back with rerun's reader and checks the frame count. Goal: under a few seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from chord.viz.flow import log_flow
from chord.viz.readback import read_recording
from chord.viz.record import open_recording
from core.flow import ObjectFlow


def make_flow(n: int, T: int, seed: int = 0) -> ObjectFlow:
    rng = np.random.default_rng(seed)
    p0 = rng.normal(scale=0.04, size=(n, 3)) + np.array([0.5, 0.0, 0.05])
    lift = np.linspace(0, 0.15, T)[:, None, None] * [0, 0, 1]
    pts = (p0[None] + lift + rng.normal(scale=1e-4, size=(T, n, 3))).astype(np.float32)
    oi = np.zeros(n, np.int32)
    oi[n // 2 :] = 1
    return ObjectFlow(pts, oi, (np.arange(T) / 16).astype(np.float32), ("a", "b"), 16.0, "benchmark")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=7500)
    ap.add_argument("--frames", type=int, default=41)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    flow = make_flow(args.points, args.frames)
    import rerun  # noqa: F401 - import time is not write time

    times = []
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "flow.rrd"
        for k in range(args.repeats):
            t0 = time.perf_counter()
            with open_recording(path) as rec:
                log_flow(rec, flow, parts=np.arange(args.points) % 3)
            times.append(time.perf_counter() - t0)
            print(f"repeat {k}: {times[-1]:.3f} s, {path.stat().st_size / 1e6:.2f} MB")
        t0 = time.perf_counter()
        r = read_recording(path)
        read_s = time.perf_counter() - t0
        frames = r["/world/flow/a/points"].time_range("frame")
    print(
        f"{args.points} points x {args.frames} frames: write median {np.median(times):.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}); read back {read_s:.3f} s, frames {frames}"
    )


if __name__ == "__main__":
    main()
