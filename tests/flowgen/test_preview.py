"""flowgen.preview: MP4/GIF previews, static snapshot first, atomic writes, bad input."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from core.scene import Camera, Pose
from flowgen import preview
from flowgen.preview import render_preview, render_preview_frames, write_preview
from flowgen.render import render


def clip(t: int = 6, h: int = 31, w: int = 45) -> np.ndarray:
    """Frames whose left half brightens over time, right half a fixed colour (odd size on purpose)."""
    f = np.zeros((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        f[i, :, : w // 2] = 40 * i
    f[:, :, w // 2 :] = (200, 60, 20)
    return f


def test_mp4_round_trip(tmp_path):
    frames = clip()
    path = write_preview(frames, tmp_path / "out" / "p.mp4", fps=8)
    assert path == tmp_path / "out" / "p.mp4"
    back = iio.imread(path, plugin="pyav" if _has_pyav() else "FFMPEG")
    assert back.shape[0] == 6 and back.shape[1:3] == (32, 46)  # padded to even for yuv420p
    # lossy codec: colours within a few levels, in the right frames
    left = back[:, 10, 5].astype(int).mean(-1)
    np.testing.assert_allclose(left, 40 * np.arange(6), atol=8)
    np.testing.assert_allclose(back[3, 15, 35], (200, 60, 20), atol=12)
    assert [p.name for p in path.parent.iterdir()] == ["p.mp4"]  # no temporary left behind


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def test_gif_when_no_encoder(tmp_path, monkeypatch, caplog):
    def missing():
        raise RuntimeError("no ffmpeg exe could be found")

    monkeypatch.setattr(preview, "_ffmpeg_exe", missing)
    frames = clip().astype(np.float32) / 255.0
    path = write_preview(frames, tmp_path / "p.mp4", fps=10)
    assert path == tmp_path / "p.gif" and not (tmp_path / "p.mp4").exists()
    assert "no video encoder" in caplog.text
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (45, 31)
        assert im.info["duration"] == 100
        im.seek(5)
        rgb = np.asarray(im.convert("RGB"))
    np.testing.assert_allclose(rgb[10, 5], (200, 200, 200), atol=8)


def test_failed_encode_leaves_old_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "p.gif"
    path.write_bytes(b"old")

    def broken(images, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        write_preview(clip(), path, fps=8)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gif"]


def test_bad_frames():
    with pytest.raises(ValueError, match=r"shape \[6, 31, 45\], expected \[T, H, W, 3\]"):
        write_preview(clip()[..., 0], "x.mp4")
    with pytest.raises(ValueError, match="NaN"):
        write_preview(np.full((2, 4, 4, 3), np.nan), "x.mp4")
    with pytest.raises(ValueError, match="dtype int64"):
        write_preview(clip().astype(np.int64), "x.mp4")
    with pytest.raises(ValueError, match="fps is 0"):
        write_preview(clip(), "x.mp4", fps=0)


def test_render_preview_static_snapshot_first(tmp_path):
    cam = Camera(60.0, 60.0, 24.0, 16.0, Pose(), 48, 32)
    n = 30
    g = torch.Generator().manual_seed(0)
    static = torch.rand(n, 3, generator=g) * torch.tensor([0.4, 0.3, 0.2]) + torch.tensor([-0.2, -0.15, 1.5])
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
    scales = torch.full((n, 3), 0.03)
    opac = torch.full((n,), 0.9)
    colors = torch.rand(n, 3, generator=g)
    idx = torch.zeros(n, dtype=torch.long)
    T = 5
    moved = static[None] + torch.linspace(0.0, 0.3, T)[:, None, None] * torch.tensor([1.0, 0, 0])
    frames = render_preview_frames(
        moved, quats.expand(T, n, 4), static, quats, scales, opac, colors, idx, 1, cam, backend="torch"
    )
    assert frames.shape == (T + 1, 32, 48, 3) and frames.dtype == np.uint8
    want0 = render(static, quats, scales, opac, colors, idx, 1, cam, backend="torch").rgb[0]
    want_last = render(moved[-1], quats, scales, opac, colors, idx, 1, cam, backend="torch").rgb[0]
    np.testing.assert_allclose(frames[0], (want0.numpy() * 255).round(), atol=1)
    np.testing.assert_allclose(frames[-1], (want_last.numpy() * 255).round(), atol=1)
    assert np.abs(frames[0].astype(int) - frames[-1]).max() > 50  # it moved
    path = render_preview(
        tmp_path / "p.mp4", moved, quats.expand(T, n, 4), static, quats, scales, opac, colors, idx,
        1, cam, fps=8, hold_static_s=0.5, backend="torch",
    )  # fmt: skip
    back = iio.imread(path, plugin="pyav" if _has_pyav() else "FFMPEG")
    assert back.shape[0] == 4 + T  # snapshot held for 0.5 s at 8 fps, then the T frames
