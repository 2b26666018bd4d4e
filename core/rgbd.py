"""An RGB-D video's files: the frames (an MP4 or a PNG folder), per-object masks and depth maps.

These are what the video-fit prior reads and what ``chord assets`` writes for a scene's
reference:

- frames: any ffmpeg-readable video file, or a folder of PNG frames in natural order;
- ``masks.npz`` (schema ``chord.masks`` v1): ``labels`` int16 [T, H, W], object index or -1,
  the object names and the camera in meta;
- ``depth.npz`` (schema ``chord.depth`` v1): ``depth`` float32 [T, H, W], metres along the
  optical axis, the camera in meta.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from core.contract import read_npz, require_meta, write_npz
from core.errors import ChordError
from core.scene import Camera

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif")
MASKS_SCHEMA = "chord.masks"
MASKS_VERSION = 1
DEPTH_SCHEMA = "chord.depth"
DEPTH_VERSION = 1


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


def load_video(path: str | Path) -> np.ndarray:
    """Load every frame of ``path`` as uint8 RGB.

    Returns [T, H, W, 3] uint8. ``path`` is a video file (MP4, ...) or a folder of PNG frames,
    read in natural order (frame_2 before frame_10). Raises ChordError for a missing path, an
    empty folder, unreadable frames, or frames of different sizes.
    """
    path = Path(path)
    if not path.exists():
        raise ChordError(f"video {str(path)!r} does not exist")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() == ".png"), key=_natural_key)
        if not files:
            raise ChordError(f"video folder {str(path)!r} holds no .png frames")
        from PIL import Image, UnidentifiedImageError

        frames = []
        for f in files:
            try:
                with Image.open(f) as im:
                    frames.append(np.asarray(im.convert("RGB")))
            except (UnidentifiedImageError, OSError) as e:
                raise ChordError(f"video frame {str(f)!r} cannot be read as an image ({e})") from e
        sizes = {fr.shape for fr in frames}
        if len(sizes) > 1:
            raise ChordError(f"video folder {str(path)!r} mixes frame sizes {sorted(sizes)}")
        return np.stack(frames)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ChordError(
            f"video {str(path)!r} has suffix {path.suffix!r}; expected a folder of PNGs or one of {VIDEO_SUFFIXES}"
        )
    import imageio.v2 as imageio

    try:
        frames = imageio.mimread(path, memtest=False)
    except (OSError, ValueError, RuntimeError) as e:
        raise ChordError(f"video {str(path)!r} cannot be decoded ({e})") from e
    if not frames:
        raise ChordError(f"video {str(path)!r} has no frames")
    out = np.stack([np.asarray(f)[..., :3] for f in frames])
    if out.dtype != np.uint8:
        raise ChordError(f"video {str(path)!r} decoded as {out.dtype}, expected 8-bit RGB")
    return out


def check_video_matches(video: np.ndarray, frames: int, height: int, width: int, what: str) -> None:
    """Raise ChordError unless ``video`` [T, H, W, ...] has ``frames`` frames of height x width."""
    t, h, w = video.shape[:3]
    if t != frames:
        raise ChordError(f"{what} has {t} frames, but the scene asks for {frames} (scene `frames`)")
    if (h, w) != (height, width):
        raise ChordError(
            f"{what} is {w}x{h} pixels, but the run renders at {width}x{height}; "
            "resize the video or set the run's resolution to match"
        )


def save_masks(path: Path, labels: np.ndarray, object_names: list[str], camera: Camera) -> None:
    """Write ``masks.npz``: labels int16 [T, H, W] (object index or -1) + meta (names, camera)."""
    write_npz(
        path,
        {"labels": labels.astype(np.int16)},
        {
            "schema": MASKS_SCHEMA,
            "version": MASKS_VERSION,
            "object_names": object_names,
            "camera": camera.to_dict(),
        },
    )


def save_depth(path: Path, depth: np.ndarray, camera: Camera) -> None:
    """Write ``depth.npz``: depth float32 [T, H, W], metres along the optical axis, + meta (camera)."""
    write_npz(
        path,
        {"depth": depth.astype(np.float32)},
        {"schema": DEPTH_SCHEMA, "version": DEPTH_VERSION, "camera": camera.to_dict()},
    )


def load_depth(path: str | Path) -> np.ndarray:
    """Read ``depth.npz``: float32 [T, H, W] metres along the optical axis; raises ContractError."""
    arrays, _ = read_npz(path, schema=DEPTH_SCHEMA, versions=[DEPTH_VERSION], required=["depth"])
    depth = arrays["depth"]
    if depth.dtype != np.float32 or depth.ndim != 3:
        raise ChordError(f"{path}: depth is {depth.dtype} {depth.shape}, expected float32 [T, H, W]")
    return depth


def load_masks(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read ``masks.npz``: labels int16 [T, H, W] and the object names; raises ContractError."""
    arrays, meta = read_npz(path, schema=MASKS_SCHEMA, versions=[MASKS_VERSION], required=["labels"])
    names = require_meta(meta, "object_names", list, path)
    labels = arrays["labels"]
    if labels.dtype != np.int16 or labels.ndim != 3:
        raise ChordError(f"{path}: labels is {labels.dtype} {labels.shape}, expected int16 [T, H, W]")
    return labels, names
