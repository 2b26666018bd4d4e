"""The three task scenes of the seed — pick banana, lower lamp, close laptop — with ground truth.

:func:`build_task` writes one scene folder::

    scene.yaml                 the scene spec (meshes + cousin parameters, URDFs, camera, prompt,
                               reference: {flow, video})
    assets/<object>/           mesh.ply, model.urdf, asset.json, ... (assets.urdf)
    reference/flow.npz         ground-truth ObjectFlow (prior "ground_truth")
    reference/video.mp4        TinyRenderer video of the reference motion (and frames/*.png)
    reference/masks.npz        per-object masks of every frame (chord.masks)
    reference/motion.json      per-frame object poses and joint values (0 = rest)
    reference/truth.npz        the same as a checked contract (core.truth, chord.truth v1)

World frame: metres, z up, table top at z = 0. Every motion starts and ends at rest (minimum jerk).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assets.reference import (
    Motion,
    flow_points,
    minimum_jerk,
    motion_truth,
    provenance,
    render_motion,
    sample_asset,
    visibility,
    write_video,
)
from assets.urdf import write_asset
from core.asset import Asset, rotation, translation
from core.atomic import atomic_dir, write_text_atomic
from core.cousins import (
    BananaParams,
    BoxParams,
    CylinderParams,
    LampParams,
    LaptopParams,
    build_cousin,
    params_to_dict,
)
from core.errors import ChordError
from core.lock import run_lock, sweep_debris
from core.names import check_name, safe_child
from core.rgbd import save_depth, save_masks
from core.scene import Camera, Pose, Reference, Scene, SceneObject

log = logging.getLogger(__name__)

FRAMES = 41
FPS = 16.0
WIDTH, HEIGHT = 832, 464  # the scene camera (Wan 2.2's resolution)
MOTION_WINDOW = (0.1, 0.9)  # the motion runs over this fraction of the clip; rest before and after


@dataclass(frozen=True)
class TaskObject:
    """An object of a task scene."""

    name: str
    params: Any  # cousin parameters (core.cousins)
    position: tuple[float, float]  # m, x and y on the table (world)
    yaw_deg: float = 0.0  # rotation about world z
    movable: bool = False  # whether the prompt moves it

    def T_world_obj(self, table_height: float = 0.0) -> np.ndarray:
        return translation((*self.position, table_height)) @ rotation((0, 0, 1), math.radians(self.yaw_deg))


@dataclass(frozen=True)
class Task:
    """A task scene and its reference motion."""

    name: str
    prompt: str
    objects: tuple[TaskObject, ...]
    eye: tuple[float, float, float]  # camera position, world m
    target: tuple[float, float, float]  # camera look-at point, world m
    fov_y_deg: float  # vertical field of view
    description: str  # the reference motion in words (recorded in the flow's provenance)
    # (task, assets, s) -> {object: (T_world_obj, {joint: value})} at motion progress s in [0, 1]
    motion: Callable[[Task, dict[str, Asset], float], dict[str, tuple[np.ndarray, dict[str, float]]]] = field(
        repr=False
    )
    negative_prompt: str = "static, still image, blurry, distorted objects"

    def object(self, name: str) -> TaskObject:
        return next(o for o in self.objects if o.name == name)

    def camera(self) -> Camera:
        return Camera.from_look_at(self.eye, self.target, (0.0, 0.0, 1.0), self.fov_y_deg, WIDTH, HEIGHT)


def _rest(task: Task) -> dict[str, tuple[np.ndarray, dict[str, float]]]:
    return {o.name: (o.T_world_obj(), {}) for o in task.objects}


BANANA_LIFT = 0.15  # m
BANANA_TILT_DEG = 10.0  # about the banana's long axis while it rises
LAMP_LOWER_DEG = 30.0  # head rotation, downwards
LAPTOP_OPEN_DEG, LAPTOP_CLOSED_DEG = 100.0, 5.0


def _pick_banana(task: Task, assets: dict[str, Asset], s: float):
    out = _rest(task)
    T0 = task.object("banana").T_world_obj()
    com = np.append(assets["banana"].mesh().center_mass, 1.0)
    # Lift straight up with a slight roll about the long (x) axis through the centre of mass.
    pivot = (T0 @ com)[:3]
    R = translation(pivot) @ rotation(T0[:3, 0], math.radians(BANANA_TILT_DEG) * s) @ translation(-pivot)
    out["banana"] = (translation((0, 0, BANANA_LIFT * s)) @ R @ T0, {})
    return out


def _lower_lamp(task: Task, assets: dict[str, Asset], s: float):
    out = _rest(task)
    out["lamp"] = (out["lamp"][0], {"head": math.radians(LAMP_LOWER_DEG) * s})
    return out


def _close_laptop(task: Task, assets: dict[str, Asset], s: float):
    out = _rest(task)
    out["laptop"] = (out["laptop"][0], {"hinge": math.radians(LAPTOP_CLOSED_DEG - LAPTOP_OPEN_DEG) * s})
    return out


TASKS: dict[str, Task] = {
    "pick_banana": Task(
        "pick_banana",
        "a hand picks up the banana",
        (
            TaskObject("banana", BananaParams(), (0.0, 0.0), yaw_deg=-20.0, movable=True),
            TaskObject("mug", CylinderParams(radius=0.04, height=0.1, color=(0.85, 0.85, 0.8)), (-0.08, 0.2)),
        ),
        eye=(0.42, -0.2, 0.3),
        target=(-0.01, 0.06, 0.09),
        fov_y_deg=35.0,
        description=f"banana lifted {BANANA_LIFT} m, rolled {BANANA_TILT_DEG} deg, minimum jerk",
        motion=_pick_banana,
    ),
    "lower_lamp": Task(
        "lower_lamp",
        "the desk lamp lowers its head",
        (
            TaskObject("lamp", LampParams(), (-0.1, -0.05), movable=True),
            TaskObject(
                "book", BoxParams(size=(0.2, 0.14, 0.03), color=(0.7, 0.15, 0.15)), (0.15, 0.2), yaw_deg=15.0
            ),
        ),
        eye=(0.33, -0.78, 0.42),
        target=(0.03, 0.04, 0.16),
        fov_y_deg=35.0,
        description=f"lamp head joint rotated {LAMP_LOWER_DEG} deg downwards, minimum jerk",
        motion=_lower_lamp,
    ),
    "close_laptop": Task(
        "close_laptop",
        "the laptop lid closes",
        (
            TaskObject(
                "laptop", LaptopParams(opening_deg=LAPTOP_OPEN_DEG), (0.0, 0.0), yaw_deg=25.0, movable=True
            ),
            TaskObject("mug", CylinderParams(radius=0.04, height=0.1, color=(0.2, 0.45, 0.3)), (-0.12, 0.3)),
        ),
        eye=(0.55, -0.32, 0.38),
        target=(-0.02, 0.03, 0.07),
        fov_y_deg=35.0,
        description=f"laptop lid closed from {LAPTOP_OPEN_DEG} to {LAPTOP_CLOSED_DEG} deg, minimum jerk",
        motion=_close_laptop,
    ),
}


def reference_motion(task: Task, assets: dict[str, Asset], frames: int = FRAMES, fps: float = FPS) -> Motion:
    """The task's motion sampled at ``frames`` frames: rest, minimum-jerk move, rest."""
    times = np.arange(frames) / fps
    lo, hi = MOTION_WINDOW
    progress = minimum_jerk((np.linspace(0, 1, frames) - lo) / (hi - lo))
    poses = {o.name: np.empty((frames, 4, 4)) for o in task.objects}
    joints: dict[str, dict[str, np.ndarray]] = {o.name: {} for o in task.objects}
    for t, s in enumerate(progress):
        for name, (T, q) in task.motion(task, assets, float(s)).items():
            poses[name][t] = T
            for j, v in q.items():
                joints[name].setdefault(j, np.zeros(frames))[t] = v
    return Motion(times, poses, joints)


def parse_resolution(text: str) -> tuple[int, int]:
    """``"208x116"`` -> (208, 116); raises ChordError naming the value."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ChordError(f"resolution is {text!r}, expected WIDTHxHEIGHT such as 208x116") from None
    if w < 8 or h < 8 or w > 4096 or h > 4096 or w % 2 or h % 2:
        raise ChordError(f"resolution is {text!r}, expected even WIDTH and HEIGHT from 8 to 4096 pixels")
    return w, h


def build_task(
    task: Task | str,
    out: str | Path,  # the scene folder (replaced if it holds a previous scene.yaml)
    resolution: tuple[int, int] = (208, 116),  # reference video pixels (width, height)
    points_per_object: int = 4000,
    seed: int = 0,
) -> Path:
    """Write the task scene, its assets and its reference flow and video; returns scene.yaml's path.

    The folder is built beside ``out`` and renamed into place, under the lock of ``out``'s parent
    (core.lock): a second process building there gets a one-line error, and the half-built folder
    of a killed build (``.<task>.<random>.tmp/``) is removed when the parent is next locked.
    Raises ChordError for an unknown task or an ``out`` that holds something else.
    """
    if isinstance(task, str):
        if task not in TASKS:
            raise ChordError(f"task {task!r} is unknown; expected one of {sorted(TASKS)}")
        task = TASKS[task]
    check_name("task name", task.name)
    if points_per_object < 1:
        raise ChordError(f"points_per_object is {points_per_object}, expected at least 1")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "scene.yaml").is_file())):
        raise ChordError(f"{out}: exists and is not a scene folder (no scene.yaml); refusing to overwrite it")
    with run_lock(out.parent, "chord assets tasks"):
        # Also the half-built task folders of chord versions whose temporaries lacked ".tmp".
        sweep_debris(out.parent, old_names=tuple(TASKS))
        with atomic_dir(out) as tmp:
            _build(task, tmp, resolution, points_per_object, seed)
    return out / "scene.yaml"


def _build(task: Task, out: Path, resolution: tuple[int, int], points_per_object: int, seed: int) -> None:
    from core.flow import ObjectFlow

    assets = {o.name: build_cousin(o.params, o.name) for o in task.objects}
    files = {name: write_asset(a, safe_child(out / "assets", name)) for name, a in assets.items()}
    motion = reference_motion(task, assets)
    camera = task.camera()
    samples = {
        name: sample_asset(a, points_per_object, seed + 1000 * i)
        for i, (name, a) in enumerate(assets.items())
    }
    points = flow_points(assets, samples, motion)
    object_index = np.concatenate(
        [np.full(len(samples[n].points), i, np.int32) for i, n in enumerate(assets)]
    )
    rendered = render_motion({n: f.urdf for n, f in files.items()}, motion, camera, *resolution)
    ref = out / "reference"
    ref.mkdir()
    flow = ObjectFlow(
        points=points.astype(np.float32),
        object_index=object_index,
        times=motion.times.astype(np.float32),
        object_names=tuple(assets),
        fps=FPS,
        prior="ground_truth",
        prompt=task.prompt,
        camera=camera.to_dict(),
        visible=visibility(points, object_index, rendered),
        provenance=provenance(task.name, task.description),
    )
    flow.save(ref / "flow.npz")
    write_video(rendered.rgb, ref / "frames", ref / "video.mp4", FPS)
    save_masks(ref / "masks.npz", rendered.labels, list(assets), rendered.camera)
    save_depth(ref / "depth.npz", rendered.depth, rendered.camera)
    write_text_atomic(ref / "motion.json", motion.to_json())
    motion_truth(assets, motion, FPS, flow.provenance).save(ref / "truth.npz")
    objects = [
        SceneObject(
            name=o.name,
            pose=Pose.from_matrix(o.T_world_obj()),
            mesh=files[o.name].mesh,
            cousin=params_to_dict(o.params),
            urdf=files[o.name].urdf,
            movable=o.movable,
        )
        for o in task.objects
    ]
    scene = Scene(
        name=task.name,
        prompt=task.prompt,
        negative_prompt=task.negative_prompt,
        objects=tuple(objects),
        camera=camera,
        frames=FRAMES,
        fps=FPS,
        reference=Reference(flow=ref / "flow.npz", video=ref / "video.mp4", truth=ref / "truth.npz"),
    )
    scene.save(out / "scene.yaml")
    vis = flow.visible.mean()
    log.info("%s: %d points, %.0f%% visible, video %dx%d", task.name, flow.num_points, 100 * vis, *resolution)


def build_all(
    out: str | Path, resolution: tuple[int, int] = (208, 116), points_per_object: int = 4000
) -> list[Path]:
    """Build every task scene under ``out/<task>/``; returns the scene.yaml paths."""
    return [build_task(t, safe_child(out, name), resolution, points_per_object) for name, t in TASKS.items()]
