"""Video-fit accuracy and CPU time on the three task scenes (issue 6's measurement).

Builds the task scenes at 208x116 (``chord assets tasks``), runs ``chord flow`` with the video
prior's defaults on each reference video, RGB-D and RGB-only, and prints the flow's endpoint error
against the ground-truth flow over the movable object's points (mean over frames, and last frame).

    python benchmarks/video_fit.py [--out runs/video_fit] [--tasks pick_banana lower_lamp close_laptop]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from chord.cli.main import main as chord
from core.flow import ObjectFlow
from core.scene import Scene
from flowgen.evaluate import flow_error


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/video_fit"))
    ap.add_argument("--tasks", nargs="+", default=["pick_banana", "lower_lamp", "close_laptop"])
    ap.add_argument("--iterations", type=int, default=None, help="default: the video fit's (600)")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    scenes = args.out / "scenes"
    if chord(["assets", "tasks", "--out", str(scenes), "--only", *args.tasks]) != 0:
        raise SystemExit("building the task scenes failed")
    rows = []
    for task in args.tasks:
        scene_path = scenes / task / "scene.yaml"
        scene = Scene.load(scene_path)
        reference = ObjectFlow.load(scene.reference.flow)
        for mode, extra in (("RGB-D", []), ("RGB", ["--no-depth"])):
            out = args.out / f"{task}_{mode}"
            it = [] if args.iterations is None else ["--iterations", str(args.iterations)]
            t0 = time.perf_counter()
            if chord(["flow", str(scene_path), "--out", str(out), "--device", "cpu", *extra, *it]) != 0:
                raise SystemExit(f"chord flow failed on {task} ({mode})")
            seconds = time.perf_counter() - t0
            for e in flow_error(
                ObjectFlow.load(out / "flow.npz"), reference, [o.name for o in scene.movable_objects]
            ):
                rows.append((task, mode, e.name, e.mean_mm, e.final_mm, e.motion_mm, seconds))
    print("\ntask          input  object  mean err mm  final err mm  reference motion mm  seconds")
    for task, mode, name, mean, final, motion, seconds in rows:
        print(f"{task:13s} {mode:6s} {name:7s} {mean:11.1f} {final:13.1f} {motion:20.1f} {seconds:8.0f}")


if __name__ == "__main__":
    run()
