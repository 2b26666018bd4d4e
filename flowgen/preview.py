"""Watchable previews of a 4D result: frames to an MP4 (H.264), or a GIF where no encoder exists.

``render_preview`` renders the static snapshot first (held for a moment so a viewer sees the
starting state), then every deformed frame, and writes the clip atomically.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.atomic import atomic_write
from core.scene import Camera

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)


def write_preview(frames, path: str | Path, fps: float = 16.0) -> Path:  # frames: [T, H, W, 3]
    """Write frames as an MP4 (H.264 through imageio-ffmpeg), or as a GIF if no encoder is present.

    ``frames``: [T, H, W, 3] uint8, or float in [0, 1] (numpy array or torch tensor). A path
    ending in ``.gif`` asks for a GIF. When falling back to GIF, the suffix becomes ``.gif``.
    Odd sizes are padded by one edge pixel for the encoder. The file appears atomically (a reader
    never sees half a video). Returns the path written; raises ValueError for bad frames or fps.
    """
    rgb = _to_uint8(frames)
    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and np.isfinite(fps) and fps > 0):
        raise ValueError(f"write_preview: fps is {fps!r}, expected a positive number")
    path = Path(path)
    if path.suffix.lower() != ".gif":
        try:
            exe = _ffmpeg_exe()
        except (ImportError, RuntimeError) as e:
            gif = path.with_suffix(".gif")
            log.warning("no video encoder (%s); writing a GIF preview to %s instead of %s", e, gif, path)
            path = gif
        else:
            _write_mp4(rgb, path, fps, exe)
            return path
    _write_gif(rgb, path, fps)
    return path


def render_preview_frames(
    means: Tensor,  # [T, N, 3] world metres, deformed Gaussians per frame
    quats: Tensor,  # [T, N, 4] wxyz per frame
    static_means: Tensor,  # [N, 3] the static snapshot (rest pose)
    static_quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3] metres
    opacities: Tensor,  # [N] in [0, 1]
    colors: Tensor,  # [N, 3] in [0, 1]
    object_index: Tensor,  # [N] long
    num_objects: int,
    camera: Camera,
    width: int | None = None,  # pixels (default: the camera's)
    height: int | None = None,
    backend: str = "auto",
    chunk: int = 8,  # frames rendered per call
) -> np.ndarray:
    """[1 + T, H, W, 3] uint8: the static snapshot, then frames 0..T-1 (no gradients).

    Raises what ``flowgen.render.render`` raises (shapes, NaN, nothing visible).
    """
    import torch

    from flowgen.render import render

    def draw(m, q) -> np.ndarray:
        out = render(
            m, q, scales, opacities, colors, object_index, num_objects, camera, width, height, backend
        )
        return (out.rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

    if means.dim() != 3 or quats.dim() != 3 or quats.shape[0] != means.shape[0]:
        raise ValueError(
            f"render_preview: means {list(means.shape)} and quats {list(quats.shape)} must be "
            "[T, N, 3] and [T, N, 4] with the same T"
        )
    with torch.no_grad():
        parts = [draw(static_means[None], static_quats[None])]
        for t0 in range(0, means.shape[0], chunk):
            parts.append(draw(means[t0 : t0 + chunk], quats[t0 : t0 + chunk]))
    return np.concatenate(parts)


def render_preview(
    path: str | Path,
    means: Tensor,  # [T, N, 3] world metres per frame
    quats: Tensor,  # [T, N, 4] wxyz per frame
    static_means: Tensor,  # [N, 3]
    static_quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3] metres
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, 3]
    object_index: Tensor,  # [N] long
    num_objects: int,
    camera: Camera,
    fps: float = 16.0,
    hold_static_s: float = 0.5,  # seconds the static snapshot stays on screen before the motion
    width: int | None = None,
    height: int | None = None,
    backend: str = "auto",
) -> Path:
    """Render a 4D result (static snapshot first) and write it with ``write_preview``.

    Returns the path written (``.gif`` if no MP4 encoder is present).
    """
    frames = render_preview_frames(
        means, quats, static_means, static_quats, scales, opacities, colors, object_index,
        num_objects, camera, width, height, backend,
    )  # fmt: skip
    hold = max(1, round(hold_static_s * fps))
    frames = np.concatenate([np.repeat(frames[:1], hold, axis=0), frames[1:]])
    return write_preview(frames, path, fps)


# -- encoding -----------------------------------------------------------------------------
def _to_uint8(frames) -> np.ndarray:
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    a = np.asarray(frames)
    if a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError(
            f"write_preview: frames have shape {list(a.shape)}, expected [T, H, W, 3] with T >= 1"
        )
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"write_preview: frames have dtype {a.dtype}, expected uint8 or float in [0, 1]")
    if not np.isfinite(a).all():
        raise ValueError("write_preview: frames contain NaN or inf")
    return (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _write_mp4(rgb: np.ndarray, path: Path, fps: float, exe: str) -> None:
    import imageio_ffmpeg

    # yuv420p (what players accept) needs even sizes: replicate the last row/column if odd.
    T, H, W, _ = rgb.shape
    rgb = np.pad(rgb, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        tmp_path = Path(tmp) / "preview.mp4"
        writer = imageio_ffmpeg.write_frames(
            str(tmp_path), (rgb.shape[2], rgb.shape[1]), fps=fps, codec="libx264",
            pix_fmt_out="yuv420p", quality=8, macro_block_size=1, ffmpeg_log_level="error",
        )  # fmt: skip
        writer.send(None)  # start the encoder
        try:
            for frame in rgb:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
        data = tmp_path.read_bytes()
    with atomic_write(path, "wb") as f:
        f.write(data)
    log.info("wrote %d-frame preview %s (%dx%d, %.3g fps, H.264)", T, path, W, H, fps)


def _write_gif(rgb: np.ndarray, path: Path, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in rgb]
    with atomic_write(path, "wb") as f:
        images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
        )
    log.info("wrote %d-frame preview %s (GIF, %.3g fps)", len(images), path, fps)
