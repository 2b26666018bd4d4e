"""Per-part error of a generated flow against the scene's ground truth: points (mm) and rotation (deg).

Each movable object's flow points are split into the links of its asset record (nearest link
surface, ``flowgen.parts``); for every link, Kabsch from frame 0 to each frame on our points and on
the matched ground-truth points gives the rotation error, the quantity the planner and the sim
judge (a thin banana rolled 10 deg moves its points only a few mm).

    python benchmarks/flow_part_error.py RUN/flow.npz SCENE/scene.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from core.flow import ObjectFlow
from core.scene import Scene
from flowgen.parts import object_parts
from planner.rigid import kabsch


def _angle_deg(R: np.ndarray) -> np.ndarray:  # [..., 3, 3]
    return np.degrees(np.arccos(np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("flow", type=Path)
    ap.add_argument("scene", type=Path)
    args = ap.parse_args()
    sc = Scene.load(args.scene)
    ref, ours = ObjectFlow.load(sc.reference.flow), ObjectFlow.load(args.flow)
    print(
        "object/part        points  err mean mm  err last mm  rot err mean deg  rot err last deg  true rot deg"
    )
    for obj in sc.movable_objects:
        f = ours.object_points(obj.name).astype(np.float64)  # [T, n, 3]
        r = ref.object_points(obj.name).astype(np.float64)
        _, match = cKDTree(r[0]).query(f[0])
        r = r[:, match]
        parts = object_parts(obj)
        labels = np.zeros(f.shape[1], dtype=np.int64) if parts is None else parts.label(f[0])
        names = ("body",) if parts is None else parts.names
        for k, name in enumerate(names):
            sel = labels == k
            if sel.sum() < 3:
                continue
            T_ours = kabsch(np.broadcast_to(f[0, sel], f[:, sel].shape), f[:, sel])
            T_ref = kabsch(np.broadcast_to(r[0, sel], r[:, sel].shape), r[:, sel])
            rot = _angle_deg(T_ours[:, :3, :3] @ T_ref[:, :3, :3].swapaxes(-1, -2))  # [T]
            err = 1000 * np.linalg.norm(f[:, sel] - r[:, sel], axis=-1).mean(axis=1)  # [T]
            print(f"{obj.name + '/' + name:18s} {sel.sum():6d} {err.mean():12.1f} {err[-1]:12.1f} "
                  f"{rot.mean():17.1f} {rot[-1]:17.1f} {_angle_deg(T_ref[-1, :3, :3]):13.1f}")  # fmt: skip


if __name__ == "__main__":
    run()
