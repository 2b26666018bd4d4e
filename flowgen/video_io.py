"""Reading videos given to the video-fit prior: an MP4 (or any ffmpeg-readable file) or a PNG folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from chord.errors import ChordError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif")


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
