"""The flow optimisation in a recording: loss curves, Gaussians, control points, images, preview video."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from chord.viz.record import FRAME, ITERATION, Recording, color, safe_name
from core.errors import ChordError
from core.transforms import matrix_to_quat, wxyz_to_xyzw

log = logging.getLogger(__name__)


def read_run_log(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``run.log`` (one JSON object per line with ``iteration``) -> key -> (iterations [K], values [K]).

    Non-numeric and non-finite values are skipped; a torn last line (an interrupted run) is
    ignored; resumed runs that re-log an iteration keep the last value. Raises ChordError for a
    missing file or a line (other than the last) that is not a JSON object with an ``iteration``.
    """
    path = Path(path)
    if not path.is_file():
        raise ChordError(f"run log {str(path)!r} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    series: dict[str, dict[int, float]] = {}
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            it = int(rec["iteration"])
        except (json.JSONDecodeError, RecursionError, KeyError, TypeError, ValueError) as e:
            if n == len(lines) - 1:
                log.warning("%s: ignoring a torn last line", path)
                continue
            raise ChordError(f"{path}: line {n + 1} is not a JSON object with an 'iteration' ({e})") from e
        for k, v in rec.items():
            if (
                k != "iteration"
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
            ):
                series.setdefault(k, {})[it] = float(v)
    return {
        k: (np.array(sorted(d), np.int64), np.array([d[i] for i in sorted(d)], np.float64))
        for k, d in series.items()
    }


def log_losses(
    rec: Recording, series: dict[str, tuple[np.ndarray, np.ndarray]], entity: str = "plots/train"
) -> list[str]:
    """Log each series as Scalars on the ``iteration`` timeline at ``<entity>/<key>``; returns the keys."""
    import rerun as rr

    for k, (its, vals) in series.items():
        rec.send_columns(
            f"{entity}/{safe_name(k)}",
            [rr.TimeColumn(ITERATION, sequence=its)],
            rr.Scalars.columns(scalars=vals),
        )
    return sorted(series)


def log_gaussians(
    rec: Recording,
    means: np.ndarray,  # [N, 3] world metres
    colors: np.ndarray | None = None,  # [N, 3] RGB in [0, 1] (None: by object)
    object_index: np.ndarray | None = None,  # [N] int
    entity: str = "world/gaussians",
    radius: float = 0.002,  # metres
) -> None:
    """Log Gaussians as coloured points (static): their centres with their colours."""
    import rerun as rr

    means = np.asarray(means, np.float32)
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"log_gaussians: means has shape {means.shape}, expected [N, 3]")
    if colors is not None:
        c = (255 * np.clip(np.asarray(colors, float), 0, 1)).round().astype(np.uint8)
    elif object_index is not None:
        c = np.stack([color(i) for i in np.asarray(object_index)])
    else:
        c = None
    rec.log(entity, rr.Points3D(means, colors=c, radii=radius), static=True)


def covariance_axes(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # cov: [K, 3, 3]
    """Half-sizes [K, 3] (one standard deviation) and rotations [K, 3, 3] of covariance ellipsoids."""
    w, V = np.linalg.eigh(np.asarray(cov, float))
    V = V * np.where(np.linalg.det(V) < 0, -1.0, 1.0)[:, None, None]  # proper rotations
    return np.sqrt(np.clip(w, 0, None)), V


def log_control_points(
    rec: Recording,
    positions: np.ndarray,  # [K, 3] world metres
    covariances: np.ndarray | None = None,  # [K, 3, 3] m^2 (None: isotropic from `scales`)
    scales: np.ndarray | None = None,  # [K] or [K, 3] metres (std dev), used without covariances
    object_index: np.ndarray | None = None,  # [K] int, colours by object
    entity: str = "world/control_points",
) -> None:
    """Log control points as ellipsoids (one standard deviation of Sigma_k) plus their centres.

    Raises ValueError when neither ``covariances`` nor ``scales`` is given or shapes disagree.
    """
    import rerun as rr

    p = np.asarray(positions, float)
    K = len(p)
    if covariances is not None:
        half, R = covariance_axes(np.asarray(covariances, float).reshape(K, 3, 3))
        quats = wxyz_to_xyzw(matrix_to_quat(R))
    elif scales is not None:
        half = np.broadcast_to(np.asarray(scales, float).reshape(K, -1), (K, 3))
        quats = np.tile([0.0, 0.0, 0.0, 1.0], (K, 1))
    else:
        raise ValueError("log_control_points: give covariances [K, 3, 3] or scales [K]")
    cols = None if object_index is None else np.stack([color(i) for i in np.asarray(object_index)])
    rec.log(
        entity,
        rr.Ellipsoids3D(
            centers=p,
            half_sizes=half,
            quaternions=quats,
            colors=cols,
            fill_mode=rr.components.FillMode.MajorWireframe,
        ),
        static=True,
    )
    rec.log(f"{entity}/centres", rr.Points3D(p, colors=cols, radii=0.003), static=True)


def log_image(
    rec: Recording, entity: str, rgb: np.ndarray, frame: int | None = None
) -> None:  # rgb: [H, W, 3]
    """Log an image (uint8, or float in [0, 1]); static, or at ``frame`` on the frame timeline."""
    import rerun as rr

    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        img = (255 * np.clip(img.astype(float), 0, 1)).round().astype(np.uint8)
    if frame is None:
        rec.log(entity, rr.Image(img), static=True)
    else:
        rec.stream.set_time(FRAME, sequence=int(frame))
        rec.log(entity, rr.Image(img))
        rec.reset_time()


def log_frames(rec: Recording, entity: str, frames: np.ndarray) -> None:  # frames: [T, H, W, 3]
    """Log rendered frames, frame t at ``frame`` = t."""
    for t, f in enumerate(np.asarray(frames)):
        log_image(rec, entity, f, frame=t)


def log_preview(rec: Recording, path: str | Path, entity: str = "camera/preview", fps: float = 16.0) -> int:
    """Log a flowgen preview: an MP4 as a rerun video asset (frames on ``frame``), or a GIF's frames
    as images. Returns the number of frames referenced."""
    import rerun as rr

    path = Path(path)
    if path.suffix.lower() == ".mp4":
        try:
            video = rr.AssetVideo(path=path)
            stamps = video.read_frame_timestamps_nanos()
        except (RuntimeError, ValueError, OSError) as e:
            log.warning("preview %s not logged as video (%s)", path, e)
            return 0
        rec.log(entity, video, static=True)
        rec.send_columns(
            entity,
            [rr.TimeColumn(FRAME, sequence=np.arange(len(stamps)))],
            rr.VideoFrameReference.columns_nanos(stamps),
        )
        return len(stamps)
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    log_frames(rec, entity, np.stack(frames))
    return len(frames)
