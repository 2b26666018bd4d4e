"""Import an RGB-D recording into a scene's reference: frames, depth and per-object masks.

A recording folder holds::

    camera.yaml (or camera.json)  width, height, fx, fy, cx, cy (pixels), world_from_camera (4x4,
                                  OpenCV axes: x right, y down, z forward), optional fps, near, far
    frames/00000.png ...          RGB frames (PNG or JPG, natural order), or video.mp4 instead
    depth/00000.png ...           one per frame: 16-bit PNG in millimetres, or .npy float in metres;
                                  0 (or NaN in .npy) means no reading

The user's scene file gives the known objects (meshes) and their poses at frame 0. The masks are
made from geometry and depth alone, never from a simulator's segmentation:

1. the table: a RANSAC plane fit of frame 0's depth (world frame); its points are kept out of
   the tracking, and a plane far from the scene's table height says the camera pose or the depth
   scale is off (a warning);
2. every frame: each rigid piece (a whole object, or each link of an articulated one built by
   ``chord assets``) is tracked by ICP (point-to-plane with point-to-point rows) of its
   camera-facing surface points against the depth points near where it was in the previous
   frame that lie nearer to it than to any other piece, seeded with a constant-velocity guess
   and damped towards its last pose (frame 0 is seeded with the scene's pose and refined the
   same way);
3. each piece's mesh is rasterised at its tracked pose (z-buffer over all pieces): an object's pixels
   where it is in front and the recorded depth lies within ``depth_tol`` of its rendered depth
   are its mask. The agreement of a frame is that mask's share of the object's rendered,
   depth-valid silhouette; a low one (a lost track, or something the scene lacks, such as a
   hand, in front) is warned about.

Written under ``out`` (atomically, the whole folder at once): ``scene.yaml`` (the scene's objects
at their refined frame-0 poses, the recording's camera, frames and fps) and ``reference/``:
``frames/``, ``video.mp4``, ``masks.npz``, ``depth.npz`` (core.rgbd formats) and ``import.json``
(per-frame agreement, mask sizes and tracked poses).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from assets.config import RecordingConfig
from assets.reference import write_video
from core.atomic import atomic_dir, write_text_atomic
from core.contract import read_yaml_file
from core.errors import ChordError, ContractError
from core.scene import (
    FPS_RANGE,
    MAX_FRAMES,
    MAX_IMAGE_SIDE,
    Camera,
    Pose,
    Reference,
    Scene,
    SceneObject,
    _check_camera,
)

log = logging.getLogger(__name__)

CAMERA_FILES = ("camera.yaml", "camera.json")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_FILE = "video.mp4"
DEPTH_PNG_SCALE = 0.001  # metres per unit of a 16-bit depth PNG (millimetres)
# What one recording may take in memory, checked from the file headers before any pixel is read:
# per pixel and frame 3 B of RGB, 4 B of depth, 2 B of labels and ~8 B of working buffers. 4 GiB
# holds 41 frames at 4096x4096 px and the full MAX_FRAMES at 1280x720.
MAX_RECORDING_BYTES = 4 * 1024**3
BYTES_PER_PIXEL = 3 + 4 + 2 + 8
# world_from_camera is a rigid transform when R^T R is the identity and the last row is
# (0, 0, 0, 1) to this tolerance (a pose printed with 4-5 significant digits passes).
RIGID_TOL = 1e-3
# A track needs this many point pairs in a frame; fewer and the object keeps its previous pose.
MIN_PAIRS = 10
# The table plane of frame 0: found when it holds at least this share of the depth pixels (a
# tabletop view is mostly table), and warned about when it is this far from the scene's table
# (a camera pose off by a few cm, or depth in the wrong unit, moves it further).
MIN_TABLE_FRACTION = 0.05
TABLE_HEIGHT_TOL = 0.02  # m
TABLE_TILT_TOL_DEG = 5.0
IMPORT_SCHEMA = "chord.rgbd_import"
IMPORT_VERSION = 1


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


# -- reading the recording ----------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """A recording read from its folder."""

    rgb: np.ndarray  # [T, H, W, 3] uint8
    depth: np.ndarray  # [T, H, W] float32, metres along the optical axis, NaN where no reading
    camera: Camera  # at the frames' resolution, T_world_cam from world_from_camera
    fps: float | None  # from the camera file, if given
    folder: Path


def read_camera(path: Path) -> tuple[Camera, float | None]:
    """Read a recording's camera file: intrinsics (pixels), world_from_camera, optional fps/near/far.

    Raises ContractError naming the file and the field: a missing or non-numeric field, a
    world_from_camera that is not a 4x4 rigid transform, intrinsics outside core.scene's ranges.
    """
    doc = read_yaml_file(path, what="a camera file")
    if not isinstance(doc, dict):
        raise ContractError("document", f"is {type(doc).__name__}, expected a mapping of camera fields", path)
    allowed = ("width", "height", "fx", "fy", "cx", "cy", "world_from_camera", "fps", "near", "far")
    for key in doc:
        if key not in allowed:
            raise ContractError(str(key), f"unknown key; expected one of {list(allowed)}", path)

    def number(key: str, default: Any = ...) -> float:
        if key not in doc or doc[key] is None:
            if default is ...:
                raise ContractError(key, "missing", path)
            return default
        v = doc[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ContractError(key, f"is {v!r}, expected a finite number", path)
        return float(v)

    sizes = {}
    for key in ("width", "height"):
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_IMAGE_SIDE:
            raise ContractError(key, f"is {v!r}, expected an integer from 1 to {MAX_IMAGE_SIDE} pixels", path)
        sizes[key] = v
    T = _rigid(doc.get("world_from_camera"), path)
    fps = number("fps", None)
    if fps is not None and not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise ContractError(
            "fps", f"is {fps:g}, expected {FPS_RANGE[0]:g} to {FPS_RANGE[1]:g} frames per second", path
        )
    camera = Camera(
        fx=number("fx"),
        fy=number("fy"),
        cx=number("cx"),
        cy=number("cy"),
        T_world_cam=Pose.from_matrix(T),
        width=sizes["width"],
        height=sizes["height"],
        near=number("near", 0.01),
        far=number("far", 10.0),
    )
    # One validation of a camera, core.scene's: focal lengths, principal point, clip planes, pose.
    _check_camera(camera, lambda key, message: ContractError(key.removeprefix("camera."), message, path))
    return camera, fps


def _rigid(value: Any, path: Path) -> np.ndarray:
    """world_from_camera as a [4, 4] float array; ContractError unless it is a rigid transform."""
    try:
        T = np.array(value, dtype=float)
    except (TypeError, ValueError):
        T = None
    if T is None or T.shape != (4, 4):
        raise ContractError(
            "world_from_camera", f"is {str(value)[:60]}, expected a 4x4 matrix (list of 4 rows)", path
        )
    if not np.isfinite(T).all():
        raise ContractError("world_from_camera", "holds non-finite values, expected a rigid transform", path)
    R = T[:3, :3]
    ortho = float(np.abs(R.T @ R - np.eye(3)).max())
    bottom = float(np.abs(T[3] - [0, 0, 0, 1]).max())
    det = float(np.linalg.det(R))
    if ortho > RIGID_TOL or bottom > RIGID_TOL or det < 0:
        raise ContractError(
            "world_from_camera",
            f"is not a rigid transform: R^T R differs from I by {ortho:.3g}, det(R) {det:.3g}, last row "
            f"{T[3].tolist()}; expected a rotation (to {RIGID_TOL:g}) and last row [0, 0, 0, 1]",
            path,
        )
    # Re-orthonormalise within the tolerance so the pose's quaternion is exact.
    U, _, Vt = np.linalg.svd(R)
    T[:3, :3] = U @ Vt
    T[3] = [0, 0, 0, 1]
    return T


def _frame_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in suffixes), key=_natural_key)
    if not files:
        raise ChordError(f"{what} folder {str(folder)!r} holds no {'/'.join(suffixes)} files")
    return files


def _check_budget(frames: int, width: int, height: int, where: Path) -> None:
    if frames > MAX_FRAMES:
        raise ChordError(f"{where}: {frames} frames, expected at most {MAX_FRAMES}")
    need = frames * width * height * BYTES_PER_PIXEL
    if need > MAX_RECORDING_BYTES:
        raise ChordError(
            f"{where}: {frames} frames of {width}x{height} px need ~{need / 2**30:.1f} GiB, more than "
            f"{MAX_RECORDING_BYTES / 2**30:.0f} GiB; use fewer frames or a lower resolution"
        )


def _image_size(path: Path, what: str) -> tuple[int, int, str]:
    """(width, height, PIL mode) from the file's header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size[0], im.size[1], im.mode
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ChordError(f"{what} {str(path)!r} cannot be read as an image ({e})") from e


def _read_frames(folder: Path, camera: Camera, camera_path: Path) -> np.ndarray:
    """[T, H, W, 3] uint8 from frames/ (PNG/JPG) or video.mp4, sizes checked before decoding."""
    from PIL import Image

    frames_dir, video = folder / "frames", folder / VIDEO_FILE
    if frames_dir.is_dir() and video.exists():
        raise ChordError(f"{folder}: holds both frames/ and {VIDEO_FILE}; keep one")
    W, H = camera.width, camera.height

    def fits(w: int, h: int, where: str) -> None:
        if (w, h) != (W, H):
            raise ChordError(
                f"{where} is {w}x{h} px, but {camera_path.name} gives width x height {W}x{H}; "
                "the intrinsics must be those of the recorded images"
            )

    if frames_dir.is_dir():
        files = _frame_files(frames_dir, FRAME_SUFFIXES, "frames")
        for f in files:
            w, h, _ = _image_size(f, "frame")
            fits(w, h, f"frame {str(f)!r}")
        _check_budget(len(files), W, H, frames_dir)
        rgb = np.empty((len(files), H, W, 3), np.uint8)
        for t, f in enumerate(files):
            with Image.open(f) as im:
                rgb[t] = np.asarray(im.convert("RGB"))
        return rgb
    if not video.is_file():
        raise ChordError(f"{folder}: no frames: expected a frames/ folder of PNG/JPG images or {VIDEO_FILE}")
    import imageio.v2 as imageio

    # The frame count of a video is known only once decoded: stop at the first frame over budget.
    _check_budget(1, W, H, video)
    most = min(MAX_FRAMES, MAX_RECORDING_BYTES // (W * H * BYTES_PER_PIXEL))
    frames = []
    try:
        with imageio.get_reader(video) as reader:
            for frame in reader:
                frame = np.asarray(frame)
                fits(frame.shape[1], frame.shape[0], f"video {str(video)!r}")
                if len(frames) == most:
                    _check_budget(most + 1, W, H, video)  # raises, naming the limit it passed
                frames.append(frame[..., :3].astype(np.uint8))
    except (OSError, ValueError, RuntimeError) as e:
        raise ChordError(f"video {str(video)!r} cannot be decoded ({e})") from e
    if not frames:
        raise ChordError(f"video {str(video)!r} has no frames")
    _check_budget(len(frames), W, H, video)
    return np.stack(frames)


def _read_depth(folder: Path, count: int, camera: Camera, frames_where: Path) -> np.ndarray:
    """[T, H, W] float32 metres (NaN: no reading) from depth/ (16-bit PNG mm or .npy m)."""
    from PIL import Image

    depth_dir = folder / "depth"
    if not depth_dir.is_dir():
        raise ChordError(f"{folder}: no depth/ folder (16-bit PNG in mm or .npy in m, one per frame)")
    files = _frame_files(depth_dir, (".png", ".npy"), "depth")
    kinds = {f.suffix.lower() for f in files}
    if len(kinds) > 1:
        raise ChordError(f"depth folder {str(depth_dir)!r} mixes .png and .npy files; use one kind")
    if len(files) != count:
        raise ChordError(f"{depth_dir}: {len(files)} depth maps, but {frames_where} holds {count} frames")
    W, H = camera.width, camera.height
    for f in files:  # every header first: nothing is allocated for a folder that cannot be read
        if f.suffix.lower() == ".npy":
            try:
                arr = np.load(f, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise ChordError(f"depth {str(f)!r} cannot be read as a .npy array ({e})") from e
            shape, ok = arr.shape, arr.dtype.kind == "f"
            del arr
            if not ok:
                raise ChordError(f"depth {str(f)!r} is not floating point; expected float metres in .npy")
        else:
            w, h, mode = _image_size(f, "depth")
            if mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise ChordError(
                    f"depth {str(f)!r} has PIL mode {mode!r}, expected a 16-bit PNG in millimetres"
                )
            shape = (h, w)
        if tuple(shape) != (H, W):
            raise ChordError(
                f"depth {str(f)!r} is {list(shape)} (rows, columns), expected [{H}, {W}] like the frames"
            )
    depth = np.empty((count, H, W), np.float32)
    for t, f in enumerate(files):
        if f.suffix.lower() == ".npy":
            d = np.load(f, allow_pickle=False).astype(np.float32)
        else:
            with Image.open(f) as im:
                d = np.asarray(im, dtype=np.float32) * DEPTH_PNG_SCALE
        d[~np.isfinite(d) | (d <= 0)] = np.nan
        if not np.isfinite(d).any():
            raise ChordError(f"depth {str(f)!r} holds no valid reading (every pixel is 0 or non-finite)")
        depth[t] = d
    return depth


def read_recording(folder: str | Path) -> Recording:
    """Read a recording folder (see the module docstring); raises ChordError naming the file and field."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ChordError(f"recording {str(folder)!r} is not a folder")
    present = [folder / n for n in CAMERA_FILES if (folder / n).exists()]
    if len(present) != 1:
        raise ChordError(
            f"{folder}: expected one camera file, {' or '.join(CAMERA_FILES)}; found "
            f"{[p.name for p in present] or 'none'}"
        )
    camera, fps = read_camera(present[0])
    rgb = _read_frames(folder, camera, present[0])
    where = folder / ("frames" if (folder / "frames").is_dir() else VIDEO_FILE)
    if len(rgb) < 2:
        raise ChordError(f"{where}: {len(rgb)} frame, expected at least 2")
    depth = _read_depth(folder, len(rgb), camera, where)
    return Recording(rgb, depth, camera, fps, folder)


# -- geometry -----------------------------------------------------------------------------------
def render_depth(
    vertices: np.ndarray, faces: np.ndarray, camera: Camera, chunk: int = 2_000_000
) -> np.ndarray:
    """Rasterise a triangle mesh's depth: [H, W] float64 metres along the optical axis, inf where empty.

    ``vertices`` [V, 3] world metres, ``faces`` [F, 3]. Pixel (i, j) is sampled at its centre
    (j + 0.5, i + 0.5), the convention of core.scene's pinhole and assets.bullet.project; depth is
    interpolated perspective-correctly (1/z is linear on the image). Triangles with a vertex
    closer than the near plane are dropped (nothing on a table is that close to the camera).
    ``chunk`` bounds the (triangle, pixel) pairs tested at once.
    """
    W, H = camera.width, camera.height
    T_cam_world = np.linalg.inv(camera.T_world_cam.matrix())
    p = vertices @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = camera.fx * p[:, 0] / z + camera.cx
        v = camera.fy * p[:, 1] / z + camera.cy
    tri = faces[(z[faces] > camera.near).all(axis=1)]
    out = np.full(H * W, np.inf)
    if len(tri) == 0:
        return out.reshape(H, W)
    U, V, Z = u[tri], v[tri], z[tri]  # [F, 3]
    c0 = np.clip(np.ceil(U.min(1) - 0.5), 0, W).astype(np.int64)
    c1 = np.clip(np.floor(U.max(1) - 0.5), -1, W - 1).astype(np.int64)
    r0 = np.clip(np.ceil(V.min(1) - 0.5), 0, H).astype(np.int64)
    r1 = np.clip(np.floor(V.max(1) - 0.5), -1, H - 1).astype(np.int64)
    w, h = c1 - c0 + 1, r1 - r0 + 1
    area = (U[:, 1] - U[:, 0]) * (V[:, 2] - V[:, 0]) - (U[:, 2] - U[:, 0]) * (V[:, 1] - V[:, 0])
    keep = (w > 0) & (h > 0) & (np.abs(area) > 1e-12)
    idx = np.flatnonzero(keep)
    counts = (w * h)[idx]
    ends = np.cumsum(counts)
    start = 0
    while start < len(idx):
        stop = max(start + 1, int(np.searchsorted(ends, (ends[start - 1] if start else 0) + chunk, "right")))
        f = idx[start:stop]
        n = counts[start:stop]
        fi = np.repeat(f, n)
        k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        col = c0[fi] + k % w[fi]
        row = r0[fi] + k // w[fi]
        px, py = col + 0.5, row + 0.5
        a = area[fi]
        b0 = ((U[fi, 1] - px) * (V[fi, 2] - py) - (U[fi, 2] - px) * (V[fi, 1] - py)) / a
        b1 = ((U[fi, 2] - px) * (V[fi, 0] - py) - (U[fi, 0] - px) * (V[fi, 2] - py)) / a
        b2 = 1.0 - b0 - b1
        inside = (b0 >= -1e-9) & (b1 >= -1e-9) & (b2 >= -1e-9)
        inv_z = b0 / Z[fi, 0] + b1 / Z[fi, 1] + b2 / Z[fi, 2]
        np.minimum.at(out, (row * W + col)[inside], 1.0 / inv_z[inside])
        start = stop
    return out.reshape(H, W)


def back_project(depth: np.ndarray, camera: Camera, mask: np.ndarray) -> np.ndarray:
    """World points [N, 3] of the pixels in ``mask`` [H, W] (centres at +0.5), from ``depth`` [H, W] metres."""
    rows, cols = np.nonzero(mask)
    z = depth[rows, cols].astype(float)
    x = (cols + 0.5 - camera.cx) / camera.fx * z
    y = (rows + 0.5 - camera.cy) / camera.fy * z
    T = camera.T_world_cam.matrix()
    return np.stack([x, y, z], axis=1) @ T[:3, :3].T + T[:3, 3]


@dataclass(frozen=True)
class TablePlane:
    """The table found in frame 0's depth: n . x = offset (world, n up), and how well it fits."""

    normal: tuple[float, float, float]
    offset: float  # m
    height: float  # m, the plane's z at the world origin's x, y
    tilt_deg: float  # angle between its normal and world z
    inlier_fraction: float  # of frame 0's depth-valid pixels


def fit_table(points: np.ndarray, tol: float, trials: int, seed: int) -> TablePlane | None:
    """RANSAC plane of the most points [N, 3] within ``tol`` m, refined by least squares; None if < 3 points."""
    if len(points) < 3:
        return None
    rng = np.random.default_rng(seed)
    sample = points if len(points) <= 20_000 else points[rng.choice(len(points), 20_000, replace=False)]
    best, best_n, best_d = -1, None, 0.0
    for _ in range(trials):
        a, b, c = sample[rng.choice(len(sample), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n = n / norm
        count = int((np.abs(sample @ n - n @ a) < tol).sum())
        if count > best:
            best, best_n, best_d = count, n, float(n @ a)
    if best_n is None:
        return None
    inl = points[np.abs(points @ best_n - best_d) < tol]
    centre = inl.mean(axis=0)
    n = np.linalg.svd(inl - centre, full_matrices=False)[2][2]
    n = n if n[2] >= 0 else -n
    d = float(n @ centre)
    height = d / n[2] if abs(n[2]) > 1e-9 else float("nan")
    inliers = float((np.abs(points @ n - d) < tol).mean())
    tilt = math.degrees(math.acos(min(1.0, abs(float(n[2])))))
    return TablePlane(tuple(float(x) for x in n), d, float(height), tilt, inliers)


def _skew(v: np.ndarray) -> np.ndarray:
    """[N, 3, 3] cross-product matrices of vectors [N, 3]."""
    z = np.zeros(len(v))
    return np.stack(
        [
            np.stack([z, -v[:, 2], v[:, 1]], 1),
            np.stack([v[:, 2], z, -v[:, 0]], 1),
            np.stack([-v[:, 1], v[:, 0], z], 1),
        ],
        1,
    )


def _rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation vector [3] (axis times angle, rad) of a rotation matrix [3, 3]."""
    angle = math.acos(float(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))
    if angle < 1e-9:
        return np.zeros(3)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if math.pi - angle < 1e-6:  # half a turn: the axis from R + I (w above vanishes)
        col = (R + np.eye(3))[:, int(np.argmax(np.diag(R)))]
        return angle * col / np.linalg.norm(col)
    return angle * w / (2 * math.sin(angle))


def _step(
    P: np.ndarray, N: np.ndarray, Q: np.ndarray, point_weight: float, moved: np.ndarray | None = None
) -> np.ndarray:
    """One Gauss-Newton step [4, 4] moving model points P [n, 3] (normals N) onto their pairs Q [n, 3].

    Point-to-plane rows ((p - q) . n) converge in a few steps where point-to-point ones crawl;
    point-to-point rows of weight ``point_weight`` keep the step defined along flat or straight
    surfaces, which the plane rows leave free. Rotation is about the pairs' centroid (conditioning).
    ``moved`` [4, 4] is the motion so far from the anchor pose: the damping rows hold the total
    motion (so far plus this step), not the step alone, near the anchor.
    """
    c = P.mean(axis=0)
    X = P - c
    A_plane = np.concatenate([np.cross(X, N), N], axis=1)  # [n, 6]: d/d(omega, v) of (p - q) . n
    b_plane = -((P - Q) * N).sum(axis=1)
    A_point = np.concatenate([-_skew(X), np.broadcast_to(np.eye(3), (len(X), 3, 3))], axis=2).reshape(-1, 6)
    b_point = (Q - P).reshape(-1)
    # Damping: moving away from the anchor costs DAMPING^2 of what moving every pair as far would.
    # Observable motion barely feels it, but a symmetric object (a cylinder about its axis) no
    # longer wanders with the depth noise in the directions its pairs do not see (measured on
    # the pick-banana recording with 3 mm noise: the mug's turn about its axis reached 35 deg by
    # frame 10 with each step damped on its own, 68 deg with the total damped towards the
    # constant-velocity guess, 6-8 deg towards the last pose; 0.1 instead of 0.02 also pulled the
    # moving banana 4 mm back towards its last pose).
    r = float(np.sqrt((X**2).sum(axis=1).mean()))
    A_damp = DAMPING * math.sqrt(len(X)) * np.diag([r, r, r, 1.0, 1.0, 1.0])
    so_far = np.zeros(6)
    if moved is not None:  # the motion so far as a twist about the same centre c
        so_far[:3] = _rotvec(moved[:3, :3])
        c0 = np.linalg.solve(moved[:3, :3], c - moved[:3, 3])  # where c was before the motion
        so_far[3:] = c - c0
    A = np.concatenate([A_plane, point_weight * A_point, A_damp])
    b = np.concatenate([b_plane, point_weight * b_point, -A_damp @ so_far])
    x = np.linalg.lstsq(A, b, rcond=None)[0]
    omega, v = x[:3], x[3:]
    angle = float(np.linalg.norm(omega))
    K = _skew(omega[None] / max(angle, 1e-12))[0]
    R = np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, c + v - R @ c
    return T


# Weight of the point-to-point rows against the point-to-plane ones in each ICP step.
POINT_WEIGHT = 0.2
DAMPING = 0.02


def icp(
    points: np.ndarray,  # [M, 3] model surface points, object frame
    normals: np.ndarray,  # [M, 3] their outward normals
    T_init: np.ndarray,  # [4, 4] T_world_obj to start from
    observed: np.ndarray,  # [N, 3] world depth points near the object
    eye: np.ndarray,  # [3] camera centre, world
    config: RecordingConfig,
    anchor: np.ndarray | None = None,  # [4, 4] the pose the damping holds it near (default T_init)
) -> tuple[np.ndarray, int]:
    """Rigid ICP of the model's camera-facing points onto ``observed`` (point-to-plane + point-to-point).

    Each observed point pairs with its nearest camera-facing model point within a gate that
    shrinks from ``icp_gate`` to ``depth_tol`` (the far pairs of the first iterations pull the
    model in, the near ones of the last keep other surfaces out). Returns T_world_obj and the
    number of pairs of the last iteration (0: no usable pairs, the pose is T_init).
    """
    from scipy.spatial import cKDTree

    T = T_init.copy()
    pairs = 0
    for k in range(config.icp_iterations):
        P = points @ T[:3, :3].T + T[:3, 3]
        N = normals @ T[:3, :3].T
        front = ((eye - P) * N).sum(axis=1) > 0
        if front.sum() < 3 or len(observed) < MIN_PAIRS:
            return T_init.copy(), 0
        gate = max(config.depth_tol, config.icp_gate * 0.8**k)
        dist, nearest = cKDTree(P[front]).query(observed, distance_upper_bound=gate)
        ok = np.isfinite(dist)
        pairs = int(ok.sum())
        if pairs < MIN_PAIRS:
            return T_init.copy(), 0
        idx = nearest[ok]
        moved = T @ np.linalg.inv(T_init if anchor is None else anchor)
        dT = _step(P[front][idx], N[front][idx], observed[ok], POINT_WEIGHT, moved)
        T = dT @ T
        if np.linalg.norm(dT[:3, 3]) < 1e-5 and np.abs(dT[:3, :3] - np.eye(3)).max() < 1e-5:
            break
    return T, pairs


# -- the import ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectTrack:
    """One object followed through the recording."""

    name: str
    agreement: np.ndarray  # [T] share of the rendered depth-valid silhouette in the mask (NaN: not in view)
    pixels: np.ndarray  # [T] int, mask size
    poses: np.ndarray  # [T, 4, 4] tracked T_world_obj
    lost: tuple[int, ...]  # frames where ICP found too few pairs and the pose was kept
    first_correction: tuple[float, float]  # (mm, deg) from the scene's pose to the refined frame-0 pose
    # Articulated objects (links in the asset record): link name -> [T, 4, 4], the pose of the
    # object frame that puts the link's rest mesh where it was tracked; the root's is ``poses``.
    link_poses: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    """What ``import_recording`` wrote and how well the masks agree with the depth."""

    scene: Path  # the written scene.yaml
    frames: int
    width: int  # pixels
    height: int  # pixels
    tracks: tuple[ObjectTrack, ...]
    table: TablePlane | None
    warnings: tuple[str, ...]


def _pieces(obj: SceneObject) -> list[tuple[str, Any]]:
    """The rigid pieces tracked for ``obj``: (name, mesh in the object frame at rest, metres).

    An articulated object built by ``chord assets`` (asset.json beside its URDF, two or more links)
    gives one piece per link, its mesh from the record, so a moving lid is followed on its own;
    any other object is one piece, its whole mesh. Link poses are tracked independently (no joint
    model): the masks need where each piece is, not the joint values.
    """
    from core.asset import read_record
    from core.mesh import load_mesh, object_mesh

    folder = None if obj.urdf is None else Path(obj.urdf).parent
    if folder is not None and (folder / "asset.json").is_file():
        links = read_record(folder).get("links", [])
        if len(links) >= 2:
            return [(str(lk["name"]), load_mesh(folder / lk["mesh"])) for lk in links]
    return [(obj.name, object_mesh(obj))]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    from scipy.ndimage import maximum_filter

    return maximum_filter(mask, size=2 * radius + 1) if radius > 0 else mask


def _ranges(frames: list[int]) -> str:
    out, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            out.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(out)


def _check_out(out: Path, keep: list[Path]) -> None:
    """Refuse an ``out`` that holds something other than a scene, or holds the inputs (it is replaced)."""
    root = out.resolve()
    for p in keep:
        p = p.resolve()
        if p == root or root in p.parents:
            raise ChordError(
                f"--out {str(out)!r} holds the input {str(p)!r}; it is replaced whole, choose another folder"
            )
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "scene.yaml").is_file())):
        raise ChordError(
            f"--out {str(out)!r} exists and is not a scene folder (no scene.yaml); refusing to replace it"
        )


@dataclass(frozen=True)
class _Tracked:
    """Per-frame results of the tracking (pieces: whole objects or links; T frames)."""

    poses: np.ndarray  # [P, T, 4, 4] per piece: T_world_obj that puts its rest mesh where it was seen
    labels: np.ndarray  # [T, H, W] int16: object index or -1
    agreement: np.ndarray  # [O, T]: mask / depth-valid silhouette, NaN out of view
    pixels: np.ndarray  # [O, T] int: mask sizes
    lost: list[list[int]]  # per piece: frames with too few ICP pairs


def _track(
    rec: Recording,
    scene: Scene,
    pieces: list[tuple[int, str, Any]],  # (object index, name, mesh in the object frame)
    models: list[tuple[np.ndarray, np.ndarray]],  # per piece: surface points, normals (object frame)
    table: TablePlane | None,
    config: RecordingConfig,
) -> _Tracked:
    """Follow every piece through the recording (ICP) and label each frame's pixels (module docstring)."""
    from scipy.spatial import cKDTree

    T_frames, H, W = rec.depth.shape
    cam = rec.camera
    owner = np.array([i for i, _, _ in pieces])
    eye = np.asarray(cam.T_world_cam.position, dtype=float)
    valid = np.isfinite(rec.depth)
    n_obj, n_pc = len(scene.objects), len(pieces)
    poses = np.empty((n_pc, T_frames, 4, 4))  # per piece: T_world_obj of the piece's rest mesh
    agreement = np.full((n_obj, T_frames), np.nan)
    pixels = np.zeros((n_obj, T_frames), np.int64)
    labels = np.full((T_frames, H, W), -1, np.int16)
    lost: list[list[int]] = [[] for _ in range(n_pc)]
    init = [scene.objects[i].pose.matrix() for i in owner]

    def render(Ts: list[np.ndarray]) -> np.ndarray:
        return np.stack(
            [
                render_depth(m.vertices @ T[:3, :3].T + T[:3, 3], np.asarray(m.faces), cam)
                for (_, _, m), T in zip(pieces, Ts, strict=True)
            ]
        )

    rendered = render(init)
    front = rendered.argmin(axis=0)
    prev_masks = [(front == k) & np.isfinite(rendered[k]) for k in range(n_pc)]
    for t in tqdm(range(T_frames), desc="import", unit="frame", leave=False):
        d = rec.depth[t]
        usable = valid[t].copy()
        if table is not None:
            X = back_project(d, cam, valid[t])
            on_table = np.abs(X @ np.asarray(table.normal) - table.offset) < config.plane_tol
            usable[valid[t]] = ~on_table
        # Pixels a piece still explains where it was last frame are no other piece's to pair with;
        # pixels where the depth changed (something moved in) are open to every piece.
        still = [m & (np.abs(d - r) < config.depth_tol) for m, r in zip(prev_masks, rendered, strict=True)]
        seeds = []
        for k in range(n_pc):
            if t == 0:
                seeds.append(init[k])
            elif t == 1:
                seeds.append(poses[k, 0])
            else:  # constant velocity: the last frame's motion once more
                seeds.append((poses[k, t - 1] @ np.linalg.inv(poses[k, t - 2])) @ poses[k, t - 1])
        trees = [cKDTree(pts @ T[:3, :3].T + T[:3, 3]) for (pts, _), T in zip(models, seeds, strict=True)]
        current = []
        for k, (pts, nrm) in enumerate(models):
            seed = seeds[k]
            if t == 0 and not config.refine_first:
                current.append(seed)
                continue
            near = (
                rendered[k][prev_masks[k]] if prev_masks[k].any() else rendered[k][np.isfinite(rendered[k])]
            )
            z = float(near.min()) if near.size else 1.0
            radius = math.ceil(config.icp_gate * max(cam.fx, cam.fy) / max(z, cam.near)) + 1
            region = _dilate(prev_masks[k], radius) & usable
            for j in range(n_pc):
                if j != k:
                    region &= ~still[j]
            observed = back_project(d, cam, region)
            if n_pc > 1 and len(observed):
                # A depth point nearer another piece's guessed surface is that piece's: a lid
                # closing onto its base must not pair with the base's points, nor they with it.
                own = trees[k].query(observed)[0]
                other = np.min([trees[j].query(observed)[0] for j in range(n_pc) if j != k], axis=0)
                observed = observed[own <= other]
            # Damped towards the last pose, not the constant-velocity guess: a direction the depth
            # does not see (a cylinder's turn) would otherwise keep its last drift's speed.
            anchor = init[k] if t == 0 else poses[k, t - 1]
            T_new, pairs = icp(pts, nrm, seed, observed, eye, config, anchor)
            if pairs == 0:
                lost[k].append(t)
                T_new = init[k] if t == 0 else poses[k, t - 1]
            current.append(T_new)
        poses[:, t] = np.stack(current)
        rendered = render(current)
        zmin = rendered.min(axis=0)
        front = rendered.argmin(axis=0)
        seen = np.isfinite(zmin) & valid[t]
        agrees = seen & (np.abs(d - zmin) < config.depth_tol)
        for k in range(n_pc):
            piece = (front == k) & seen
            prev_masks[k] = (piece & agrees) if (piece & agrees).any() else piece
        front_obj = owner[front]
        for i in range(n_obj):
            sil = (front_obj == i) & seen
            mask = sil & agrees
            labels[t][mask] = i
            pixels[i, t] = int(mask.sum())
            if sil.any():
                agreement[i, t] = mask.sum() / sil.sum()

    return _Tracked(poses, labels, agreement, pixels, lost)


def import_recording(
    recording: str | Path,  # the recording folder
    scene_path: str | Path,  # the user's scene.yaml: objects, meshes, frame-0 poses, prompt
    out: str | Path,  # the scene folder to write (replaced whole if it holds a scene)
    config: RecordingConfig = RecordingConfig(),
) -> ImportResult:
    """Turn an RGB-D recording into a scene with a reference video, depth and automatic masks.

    Raises ChordError (naming the file and field) for a malformed recording, before any output
    is written; nothing is written unless everything succeeds.
    """
    from core.mesh import sample_surface
    from core.rgbd import save_depth, save_masks

    recording, out = Path(recording), Path(out)
    scene = Scene.load(scene_path)
    _check_out(out, [recording, Path(scene_path)])
    rec = read_recording(recording)
    T_frames, H, W = rec.depth.shape
    cam = rec.camera
    fps = float(config.fps or rec.fps or scene.fps)
    # The output scene is checked now (frames, duration, camera), not after the tracking.
    replace(scene, camera=cam, frames=T_frames, fps=fps, reference=None, path=None)
    pieces = [(i, name, mesh) for i, o in enumerate(scene.objects) for name, mesh in _pieces(o)]
    models = []
    for k, (_, _, m) in enumerate(pieces):
        pts, nrm, _ = sample_surface(m, config.model_points, seed=config.seed + k)
        models.append((pts, nrm))
    warnings: list[str] = []

    first = np.isfinite(rec.depth[0])
    table = fit_table(
        back_project(rec.depth[0], cam, first), config.plane_tol, config.plane_trials, config.seed
    )
    if table is None or table.inlier_fraction < MIN_TABLE_FRACTION:
        warnings.append(
            "no table plane found in frame 0's depth; table points are not kept out of the tracking"
        )
        table = None
    elif table.tilt_deg > TABLE_TILT_TOL_DEG or abs(table.height - scene.table_height) > TABLE_HEIGHT_TOL:
        warnings.append(
            f"the table plane in frame 0 is at z={table.height:.3f} m, tilted {table.tilt_deg:.1f} deg, but "
            f"the scene's table is at z={scene.table_height:g} m and level: check world_from_camera and the depth units"
        )

    tracked = _track(rec, scene, pieces, models, table, config)
    poses, labels, agreement, pixels, lost = (
        tracked.poses,
        tracked.labels,
        tracked.agreement,
        tracked.pixels,
        tracked.lost,
    )
    n_pc = len(pieces)
    owner = np.array([i for i, _, _ in pieces])
    init = [scene.objects[i].pose.matrix() for i in owner]
    tracks = []
    for i, o in enumerate(scene.objects):
        mine = [k for k in range(n_pc) if owner[k] == i]
        root = mine[0]  # the first link is the root (core.asset); a rigid object is one piece
        dT = np.linalg.inv(init[root]) @ poses[root, 0]
        corr = (
            1000 * float(np.linalg.norm(poses[root, 0][:3, 3] - init[root][:3, 3])),
            math.degrees(math.acos(np.clip((np.trace(dT[:3, :3]) - 1) / 2, -1.0, 1.0))),
        )
        lost_frames = sorted({t for k in mine for t in lost[k]})
        links = {pieces[k][1]: poses[k] for k in mine} if len(mine) > 1 else {}
        tracks.append(
            ObjectTrack(o.name, agreement[i], pixels[i], poses[root], tuple(lost_frames), corr, links)
        )
        low = [t for t in range(T_frames) if not agreement[i, t] >= config.warn_agreement]
        if low:
            worst = int(np.nanargmin(agreement[i])) if np.isfinite(agreement[i]).any() else low[0]
            warnings.append(
                f"{o.name}: mask agrees with the depth on less than {config.warn_agreement:.0%} of its silhouette "
                f"(or is out of view) in frames {_ranges(low)}; lowest {np.nan_to_num(agreement[i, worst]):.2f} at frame {worst}"
            )
        for k in mine:
            if lost[k]:
                what = o.name if len(mine) == 1 else f"{o.name} link {pieces[k][1]!r}"
                warnings.append(
                    f"{what}: track lost (too few depth points) in frames {_ranges(lost[k])}; pose kept"
                )
    # Returned, not logged: the caller shows them (chord prints each once, as a warning line).
    log.info("import %s: %d frames %dx%d, %d warning(s)", recording, T_frames, W, H, len(warnings))

    with atomic_dir(out) as tmp:
        ref = tmp / "reference"
        ref.mkdir()
        write_video(rec.rgb, ref / "frames", ref / "video.mp4", fps)
        names = [o.name for o in scene.objects]
        save_masks(ref / "masks.npz", labels, names, cam)
        save_depth(ref / "depth.npz", rec.depth, cam)
        report = {
            "schema": IMPORT_SCHEMA,
            "version": IMPORT_VERSION,
            "recording": str(recording.resolve()),
            "scene": str(Path(scene_path).resolve()),
            "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "table": None if table is None else table.__dict__,
            "objects": {
                tr.name: {
                    "agreement": [None if not math.isfinite(a) else round(float(a), 4) for a in tr.agreement],
                    "pixels": tr.pixels.tolist(),
                    "lost_frames": list(tr.lost),
                    "first_correction_mm_deg": list(tr.first_correction),
                    "poses": tr.poses.round(6).tolist(),
                    "link_poses": {n: v.round(6).tolist() for n, v in tr.link_poses.items()},
                }
                for tr in tracks
            },
            "warnings": warnings,
        }
        write_text_atomic(ref / "import.json", json.dumps(report, indent=1))
        objects = [
            replace(
                o,
                pose=Pose.from_matrix(tracks[i].poses[0]),
                mesh=None if o.mesh is None else Path(o.mesh).resolve(),
                urdf=None if o.urdf is None else Path(o.urdf).resolve(),
            )
            for i, o in enumerate(scene.objects)
        ]
        new = replace(
            scene,
            objects=tuple(objects),
            camera=cam,
            frames=T_frames,
            fps=fps,
            reference=Reference(flow=None, video=out / "reference" / "video.mp4"),
            path=None,
        )
        # Paths are written relative to the final folder: the reference lives inside it.
        text = yaml.safe_dump(new.to_dict(out), sort_keys=False, default_flow_style=None)
        write_text_atomic(tmp / "scene.yaml", text)
    return ImportResult(out / "scene.yaml", T_frames, W, H, tuple(tracks), table, tuple(warnings))
