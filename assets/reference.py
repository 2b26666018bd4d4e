"""Ground truth for a task scene: a reference motion, its dense flow, and a PyBullet-rendered video.

A :class:`Motion` gives, for each of T frames, every object's pose T_world_obj and joint values
(0 = rest). From it come

- ``flow.npz`` (:class:`core.flow.ObjectFlow`, prior ``"ground_truth"``): surface points sampled
  on every object's link meshes at rest, moved rigidly with their link; per-point visibility from
  the rendered depth and segmentation;
- the reference video, rendered by PyBullet's TinyRenderer from the scene camera with the motion
  replayed kinematically (no dynamics): PNG frames, an MP4, and per-object masks (``masks.npz``,
  schema ``chord.masks``: ``labels`` int16 [T, H, W], object index or -1, names in meta) and
  the depth buffer (``depth.npz``, schema ``chord.depth``: ``depth`` float32 [T, H, W] metres),
  which makes the reference an RGB-D video.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from assets.bullet import World, project, scaled_camera
from core import __version__
from core.asset import Asset
from core.atomic import atomic_write
from core.mesh import MIN_POINTS_PER_PART, POOL_FACTOR, allocate_part_samples, sample_surface
from core.scene import Camera

if TYPE_CHECKING:
    from core.truth import Truth

log = logging.getLogger(__name__)

VISIBLE_DEPTH_TOL = 0.01  # m: a point is visible if it lies within this of the rendered surface


def minimum_jerk(t: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile s(t) = 10t^3 - 15t^4 + 6t^5 for t in [0, 1] (clipped outside)."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    return t**3 * (10 - 15 * t + 6 * t * t)


@dataclass(frozen=True)
class Motion:
    """Per-frame poses and joint values of every object in a scene."""

    times: np.ndarray  # [T] seconds
    poses: dict[str, np.ndarray]  # object name -> [T, 4, 4] T_world_obj
    joints: dict[str, dict[str, np.ndarray]]  # object name -> joint name -> [T] rad or m (0 = rest)

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def joint_values(self, name: str, t: int) -> dict[str, float]:
        return {j: float(v[t]) for j, v in self.joints.get(name, {}).items()}

    def to_json(self) -> str:
        return json.dumps(
            {
                "times": self.times.tolist(),
                "poses": {k: v.tolist() for k, v in self.poses.items()},
                "joints": {k: {j: v.tolist() for j, v in d.items()} for k, d in self.joints.items()},
            }
        )


def motion_truth(assets: dict[str, Asset], motion: Motion, fps: float, provenance: dict) -> Truth:
    """The ground truth of ``motion`` (core.truth): every object's pose and every non-fixed
    joint's value per frame, 0 for a joint the motion leaves at rest."""
    from core.truth import Truth

    joints = {
        name: {
            j.name: (j.type, motion.joints.get(name, {}).get(j.name, np.zeros(motion.num_frames)))
            for j in asset.joints
            if j.type != "fixed"
        }
        for name, asset in assets.items()
    }
    poses = {name: motion.poses[name] for name in assets}
    return Truth.from_matrices(motion.times, fps, poses, joints, provenance)


@dataclass(frozen=True)
class SurfaceSamples:
    """Points sampled on an object's surface at rest, and the link each belongs to."""

    points: np.ndarray  # [n, 3] object frame at rest, metres
    link: np.ndarray  # [n] int, index into asset.links


def sample_asset(
    asset: Asset, count: int, seed: int, min_points_per_part: int = MIN_POINTS_PER_PART
) -> SurfaceSamples:
    """``count`` points on the object's outer surface at rest, each tagged with its link: uniform by
    area within each link, every link at least ``min_points_per_part`` of them and the rest by
    area (``core.mesh.allocate_part_samples``, as a generated flow's export spreads its points).

    Articulated objects are sampled on the union of their links (``asset.mesh()``), so no point
    lies on a face buried inside another link; each point belongs to the link whose surface is
    nearest to it: first by dense samples of each link, then, where two links' samples are about
    as near (a frame's inner face 3 mm from a door's edge), by the exact distance to their faces.
    """
    mesh = asset.mesh()
    if len(asset.links) == 1:
        points, _, _ = sample_surface(mesh, count, seed=seed)
        return SurfaceSamples(points, np.zeros(len(points), dtype=int))
    points, _, _ = sample_surface(mesh, POOL_FACTOR * count, seed=seed)
    from scipy.spatial import cKDTree
    from trimesh.proximity import closest_point_naive

    dist = np.empty((len(points), len(asset.links)))
    spacing = 0.0
    for i, lk in enumerate(asset.links):
        p, _, _ = sample_surface(lk.mesh, 20_000, seed=seed + 1 + i)
        tree = cKDTree(np.concatenate([p, lk.mesh.vertices]))
        # Every point lies on some link, within that link's sample spacing of its samples: a link
        # farther than a few centimetres is not in question (and a bounded query is fast).
        dist[:, i] = tree.query(points, distance_upper_bound=0.02)[0]
        spacing = max(spacing, float(np.median(tree.query(p[:2000], k=2)[0][:, 1])))
    lost = ~np.isfinite(dist.min(axis=1))
    if lost.any():  # (not expected: a point is on the union of the links)
        dist[lost] = np.stack(
            [cKDTree(lk.mesh.vertices).query(points[lost])[0] for lk in asset.links], axis=1
        )
    link = dist.argmin(axis=1)
    # The dense samples place a point on a link to within their spacing: where another link's
    # samples are as near, the faces decide. Only for the points kept (the faces are slow for the
    # whole pool); the kept set is drawn again with their tags until it keeps no unchecked point.
    two = np.sort(dist, axis=1)[:, :2]
    unsure = two[:, 1] - two[:, 0] < 2.0 * spacing
    while True:
        keep = allocate_part_samples(link, count, min_points_per_part)
        check = keep[unsure[keep]]
        if not len(check):
            return SurfaceSamples(points[keep], link[keep])
        first, second = np.argsort(dist[check], axis=1)[:, :2].T  # the two links in question
        exact = np.full((len(check), len(asset.links)), np.inf)
        for i, lk in enumerate(asset.links):
            rows = np.flatnonzero((first == i) | (second == i))
            for chunk in np.array_split(rows, max(1, len(rows) // 256)):
                if len(chunk):
                    exact[chunk, i] = closest_point_naive(lk.mesh, points[check[chunk]])[1]
        link[check] = exact.argmin(axis=1)
        unsure[check] = False


def flow_points(assets: dict[str, Asset], samples: dict[str, SurfaceSamples], motion: Motion) -> np.ndarray:
    """[T, N, 3] world positions of every object's samples (objects in ``assets`` order)."""
    out = []
    for name, asset in assets.items():
        s = samples[name]
        P = np.empty((motion.num_frames, len(s.points), 3))
        homog = np.concatenate([s.points, np.ones((len(s.points), 1))], axis=1)
        for t in range(motion.num_frames):
            M = asset.link_motions(motion.joint_values(name, t))
            for i, lk in enumerate(asset.links):
                sel = s.link == i
                T = motion.poses[name][t] @ M[lk.name]
                P[t, sel] = (homog[sel] @ T.T)[:, :3]
        out.append(P)
    return np.concatenate(out, axis=1)


@dataclass(frozen=True)
class Rendered:
    """The reference video and what it shows."""

    rgb: np.ndarray  # [T, H, W, 3] uint8
    labels: np.ndarray  # [T, H, W] int16, object index or -1 (table, background)
    depth: np.ndarray  # [T, H, W] float32, metres along the optical axis
    camera: Camera  # the camera at the video's resolution


def render_motion(
    urdfs: dict[str, Path],  # object name -> model.urdf
    motion: Motion,
    camera: Camera,  # the scene camera (any resolution)
    width: int,  # pixels
    height: int,  # pixels
    table_height: float = 0.0,  # m
) -> Rendered:
    """Replay ``motion`` kinematically in PyBullet and render it with TinyRenderer."""
    cam = scaled_camera(camera, width, height)
    names = list(urdfs)
    T = motion.num_frames
    rgb = np.empty((T, height, width, 3), np.uint8)
    labels = np.full((T, height, width), -1, np.int16)
    depth = np.empty((T, height, width), np.float32)
    with World(table_height) as world:
        for name in names:
            world.add(name, urdfs[name], motion.poses[name][0], fixed=True)
        body_label = {world.bodies[n]: i for i, n in enumerate(names)}
        for t in tqdm(range(T), desc="render", unit="frame", leave=False):
            for name in names:
                world.set_pose(name, motion.poses[name][t])
                world.set_joints(name, motion.joint_values(name, t))
            frame = world.render(cam)
            rgb[t] = frame.rgb
            depth[t] = frame.depth
            for body, i in body_label.items():
                labels[t][frame.segmentation == body] = i
    return Rendered(rgb, labels, depth, cam)


def visibility(points: np.ndarray, object_index: np.ndarray, rendered: Rendered) -> np.ndarray:
    """[T, N] bool: point t, n is in the image, on its own object's pixels, and not occluded.

    points [T, N, 3] world; object_index [N].
    """
    cam = rendered.camera
    uv, z = project(cam, points)
    T, N = z.shape
    col = np.floor(uv[..., 0]).astype(np.int64)
    row = np.floor(uv[..., 1]).astype(np.int64)
    inside = (z > cam.near) & (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
    c, r = np.clip(col, 0, cam.width - 1), np.clip(row, 0, cam.height - 1)
    t_idx = np.broadcast_to(np.arange(T)[:, None], (T, N))
    seen_depth = rendered.depth[t_idx, r, c]
    seen_label = rendered.labels[t_idx, r, c]
    return inside & (np.abs(seen_depth - z) < VISIBLE_DEPTH_TOL) & (seen_label == object_index[None, :])


def write_video(rgb: np.ndarray, folder: Path, mp4: Path, fps: float) -> None:
    """Frames [T, H, W, 3] uint8 -> ``folder/00000.png``... and an H.264 ``mp4`` (atomic files)."""
    import imageio.v2 as imageio

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(rgb):
        with atomic_write(folder / f"{t:05d}.png") as f:
            imageio.imwrite(f, frame, format="png")
    tmp = mp4.with_name(f".{mp4.name}.tmp.mp4")
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, quality=8) as w:
            for frame in rgb:
                w.append_data(frame)
        tmp.replace(mp4)
    finally:
        tmp.unlink(missing_ok=True)


def provenance(task: str, description: str) -> dict[str, object]:
    return {
        "producer": "chord assets tasks",
        "chord_version": __version__,
        "task": task,
        "motion": description,
    }
