"""``chord check``: validate scene, flow, plan and truth files and summarise each valid one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tyro

from core.contract import npz_schema
from core.errors import ChordError, ContractError


def check(paths: tyro.conf.Positional[list[Path]]) -> None:
    """Validate scene (.yaml), flow, plan and truth (.npz) files against their contracts.

    Prints a one-line summary of each valid file; stops at the first invalid one with a message
    naming the file, the field and the bad value (exit status 1).

    Example: chord check scenes/pick_banana/scene.yaml runs/banana/flow.npz runs/banana/plan.npz
    """
    if not paths:
        raise ChordError("give at least one file to check, e.g. `chord check scene.yaml`")
    for path in paths:
        print(f"{path}: {describe(path)}")


def describe(path: Path) -> str:
    """Load ``path`` with the reader its contents call for and summarise it; raises ContractError."""
    from core.scene import Scene

    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        from core.mesh import check_scene_geometry

        s = Scene.load(path)
        warnings = check_scene_geometry(s)  # loads the meshes: objects in the table, a camera inside one
        movable = [o.name for o in s.movable_objects]
        return (
            f"scene {s.name!r} v1: {len(s.objects)} object(s) {s.object_names}, movable {movable}, "
            f"{s.frames} frames at {s.camera.width}x{s.camera.height}, prompt {s.prompt!r}"
            + (f"; {len(warnings)} warning(s) above" if warnings else "")
        )
    if path.suffix.lower() == ".npz":
        schema = npz_schema(path)
        if schema == "chord.flow":
            from core.flow import ObjectFlow

            f = ObjectFlow.load(path)
            moved = np.linalg.norm(f.points[-1] - f.points[0], axis=-1)
            return (
                f"flow v1: T={f.num_frames} frames over {float(f.times[-1] - f.times[0]):.2f} s, "
                f"N={f.num_points} points on {list(f.object_names)}, prior {f.prior!r}, "
                f"largest displacement {1000 * float(moved.max()):.1f} mm"
            )
        if schema == "chord.plan":
            from core.plan import Plan

            p = Plan.load(path)
            verdict = "not validated" if p.validation is None else f"validation {p.validation}"
            return (
                f"plan v1: {len(p.t)} waypoints over {p.duration:.2f} s, {p.num_joints} joints of "
                f"{p.robot!r}, task {p.task!r}, {verdict}"
            )
        if schema == "chord.truth":
            from core.truth import Truth

            g = Truth.load(path)
            joints = [f"{o}/{j}" for o, j in zip(g.joint_objects, g.joint_names, strict=True)]
            return (
                f"truth v1: T={g.num_frames} frames over {float(g.times[-1] - g.times[0]):.2f} s, "
                f"poses of {list(g.object_names)}, joints {joints}"
            )
        raise ContractError(
            "meta.schema", f"is {schema!r}, expected 'chord.flow', 'chord.plan' or 'chord.truth'", path
        )
    raise ContractError(
        "file", f"has suffix {path.suffix!r}; expected .yaml/.yml/.json (scene) or .npz", path
    )
