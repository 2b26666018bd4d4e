"""The seed's baseline, "video flow": 3D flow from 2D point tracks on the reference video.

The task's reference motion (``reference/motion.json``) is replayed and rendered from the scene
camera (TinyRenderer: colour and depth, as :mod:`assets.reference` renders the reference
video). Points are picked on each object's pixels in the first frame, tracked frame to frame by
pyramidal Lucas-Kanade (OpenCV) with a forward-backward check, and lifted to 3D with the rendered
depth under the tracked pixel. Classical tracking drifts, loses points under occlusion and lifts
points at depth edges onto the wrong surface: those are the baseline's errors, kept as they are.

A track is kept only if it lives through the whole video: the tracker never lost it (status and
forward-backward check) and it stayed on its own object's pixels (the object masks a video
segmenter would give). A lost track has no position after it is lost, and freezing it where it
was last seen (an earlier version did) invents a static point on a moving part: on the laptop,
whose lid's tracks are all lost as it turns edge-on, that made the lid look still. An object
with fewer than ``min_tracks`` whole-video tracks keeps all of its tracks instead, each frozen
where it was lost and marked not visible from then on, so the flow still names every object.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from core import __version__
from core.errors import ChordError, MissingDependencyError
from core.flow import ObjectFlow
from core.names import safe_child
from core.scene import Scene

log = logging.getLogger(__name__)

# Bumped when the baseline's output changes, so a cached video flow of an older version is redone.
VERSION = 2


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "the video-flow baseline needs OpenCV: `pip install opencv-python-headless`"
        ) from e
    return cv2


def load_motion(path: Path):
    """A reference ``motion.json`` (assets.reference.Motion.to_json) as a Motion."""
    from assets.reference import Motion

    if not path.is_file():
        raise ChordError(
            f"{path}: reference motion not found (the video-flow baseline replays it to render depth)"
        )
    doc = json.loads(path.read_text(encoding="utf-8"))
    return Motion(
        np.asarray(doc["times"], dtype=float),
        {k: np.asarray(v, dtype=float) for k, v in doc["poses"].items()},
        {k: {j: np.asarray(v, dtype=float) for j, v in d.items()} for k, d in doc["joints"].items()},
    )


def backproject(cam, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """World points [..., 3] of pixels uv [..., 2] (continuous, pixel centres at +0.5) at depth [...] m."""
    x = (uv[..., 0] - cam.cx) / cam.fx * depth
    y = (uv[..., 1] - cam.cy) / cam.fy * depth
    p = np.stack([x, y, depth], axis=-1)
    T = cam.T_world_cam.matrix()
    return p @ T[:3, :3].T + T[:3, 3]


def track_points(
    gray: np.ndarray,  # [T, H, W] uint8
    start: np.ndarray,  # [N, 2] float32 pixel positions (OpenCV: pixel centres at integers)
    win: int = 21,
    levels: int = 3,
    fb_tolerance: float = 1.0,  # pixels: forward-backward error above this loses the point
) -> tuple[np.ndarray, np.ndarray]:
    """Chain pyramidal LK over frames: positions [T, N, 2] and alive [T, N] bool."""
    cv2 = _cv2()
    T = len(gray)
    pos = np.empty((T, len(start), 2), np.float32)
    alive = np.zeros((T, len(start)), bool)
    pos[0], alive[0] = start, True
    params = dict(
        winSize=(win, win),
        maxLevel=levels,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    )
    for t in range(1, T):
        prev = pos[t - 1].reshape(-1, 1, 2)
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], prev, None, **params)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t - 1], nxt, None, **params)
        fb = np.linalg.norm(back.reshape(-1, 2) - pos[t - 1], axis=1)
        ok = alive[t - 1] & (st.ravel() == 1) & (st2.ravel() == 1) & (fb < fb_tolerance)
        pos[t] = np.where(ok[:, None], nxt.reshape(-1, 2), pos[t - 1])
        alive[t] = ok
    return pos, alive


def select_tracks(
    visible: np.ndarray,  # [T, N] bool: tracked and on its own object at frame t
    object_index: np.ndarray,  # [N] int, the object each track started on
    num_objects: int,
    min_tracks: int,
) -> tuple[np.ndarray, list[int]]:
    """Tracks to keep [N] bool, and each object's count of whole-video tracks.

    A track is kept if it is visible in every frame; an object with fewer than ``min_tracks``
    such tracks keeps all of its tracks (so the flow still names it).
    """
    whole = visible.all(axis=0)
    keep = whole.copy()
    counts = []
    for i in range(num_objects):
        mine = object_index == i
        counts.append(int(whole[mine].sum()))
        if counts[-1] < min_tracks:
            keep |= mine
    return keep, counts


def video_flow(
    scene: Scene,
    resolution: tuple[int, int] = (416, 232),  # pixels (width, height) of the rendered reference
    points_per_object: int = 1500,
    seed: int = 0,
    min_tracks: int = 8,  # an object with fewer whole-video tracks keeps its lost ones (frozen)
) -> ObjectFlow:
    """The reference motion's flow as a 2D tracker plus rendered depth sees it (prior ``"video"``).

    Only tracks alive and on their object in every frame are kept (see the module docstring).
    Raises ChordError if the scene has no reference flow or motion, or an object has no URDF or
    no pixels in the first frame.
    """
    from assets.reference import render_motion

    cv2 = _cv2()
    if scene.reference is None or scene.reference.flow is None:
        raise ChordError(
            f"scene {scene.name!r} has no reference flow: the baseline needs its reference motion"
        )
    motion = load_motion(Path(scene.reference.flow).parent / "motion.json")
    urdfs = {}
    for o in scene.objects:
        if o.urdf is None:
            raise ChordError(
                f"scene object {o.name!r} has no urdf: the baseline renders the reference with it"
            )
        urdfs[o.name] = Path(o.urdf)
    W, H = resolution
    rendered = render_motion(urdfs, motion, scene.camera, W, H, scene.table_height)
    cam = rendered.camera
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rendered.rgb])
    rng = np.random.default_rng(seed)
    starts, index = [], []
    for i, name in enumerate(urdfs):
        mask = (rendered.labels[0] == i).astype(np.uint8)
        if mask.sum() < 4:
            raise ChordError(
                f"object {name!r} covers {int(mask.sum())} pixels in the first frame; nothing to track"
            )
        # Corners track best; fill up with random mask pixels so every object gets its share.
        corners = cv2.goodFeaturesToTrack(gray[0], points_per_object, 0.01, 2, mask=mask)
        pts = np.zeros((0, 2), np.float32) if corners is None else corners.reshape(-1, 2)
        need = points_per_object - len(pts)
        if need > 0:
            rows, cols = np.nonzero(mask)
            pick = rng.choice(len(rows), need, replace=need > len(rows))
            pts = np.concatenate([pts, np.stack([cols[pick], rows[pick]], 1).astype(np.float32)])
        starts.append(pts[:points_per_object])
        index.append(np.full(len(starts[-1]), i, np.int32))
    start = np.concatenate(starts)
    pos, alive = track_points(gray, start)
    cols = np.clip(np.round(pos[..., 0]).astype(int), 0, W - 1)
    rows = np.clip(np.round(pos[..., 1]).astype(int), 0, H - 1)
    T = len(pos)
    depth = rendered.depth[np.arange(T)[:, None], rows, cols]  # [T, N]
    points = backproject(cam, pos.astype(np.float64) + 0.5, depth)
    obj = np.concatenate(index)
    on_object = rendered.labels[np.arange(T)[:, None], rows, cols] == obj[None]
    visible = alive & on_object
    keep, counts = select_tracks(visible, obj, len(urdfs), min_tracks)
    kept = dict(zip(urdfs, counts, strict=True))
    # A lost point that is kept stays where it was last lifted (the tracker has nothing newer).
    for t in range(1, T):
        lost = ~visible[t]
        points[t, lost] = points[t - 1, lost]
    visible = np.minimum.accumulate(visible, axis=0)
    log.info(
        "video flow %s: %d tracks, whole-video tracks kept per object %s, %.0f%% still tracked at the last frame",
        scene.name, len(obj), kept, 100 * alive[-1].mean(),
    )  # fmt: skip
    return ObjectFlow(
        points=points[:, keep].astype(np.float32),
        object_index=obj[keep],
        times=motion.times.astype(np.float32),
        object_names=tuple(urdfs),
        fps=float(scene.fps),
        prior="video",
        prompt=scene.prompt,
        camera=cam.to_dict(),
        visible=visible[:, keep],
        provenance={
            "method": "pyramidal Lucas-Kanade (OpenCV) on the rendered reference video, lifted with rendered depth",
            "resolution": [W, H],
            "points_per_object": points_per_object,
            "whole_video_tracks": kept,
            "seed": seed,
            "version": VERSION,
            "chord": __version__,
            "opencv": cv2.__version__,
        },
    )


def cached_video_flow(scene: Scene, folder: Path) -> Path:
    """``folder/<scene>.npz``: the scene's video flow, computed on first use."""
    path = safe_child(folder, f"{scene.name}.npz")  # the scene's name stays a name inside folder
    if path.is_file() and ObjectFlow.load(path).provenance.get("version") == VERSION:
        return path
    if path.is_file():
        log.info("%s: made by an older video-flow baseline; redoing it", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    video_flow(scene).save(path)
    return path
