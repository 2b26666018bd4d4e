"""Video loading and the video-fit prior's losses and input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chord.errors import ChordError
from flowgen.prior import MotionPrior, PriorContext
from flowgen.video_fit import VideoFitPrior
from flowgen.video_io import load_video


def frames(T=5, H=16, W=28, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (T, H, W, 3), dtype=np.uint8)


def context(T=5, H=16, W=28) -> PriorContext:
    return PriorContext(first_frame=torch.zeros(H, W, 3), prompt="p", num_frames=T, height=H, width=W)


def test_png_folder_loads_in_natural_order(tmp_path: Path):
    video = frames(T=12)
    for i in range(12):  # frame_10 must come after frame_9, not after frame_1
        Image.fromarray(video[i]).save(tmp_path / f"frame_{i}.png")
    np.testing.assert_array_equal(load_video(tmp_path), video)


def test_mp4_round_trip_is_close(tmp_path: Path):
    import imageio.v2 as imageio

    smooth = np.zeros((6, 32, 48, 3), dtype=np.uint8)
    smooth[:, :, :24] = (200, 40, 40)
    smooth[:, :, 24:] = (30, 180, 60)
    imageio.mimwrite(tmp_path / "v.mp4", list(smooth), fps=16, macro_block_size=16)
    back = load_video(tmp_path / "v.mp4")
    assert back.shape == smooth.shape
    assert np.abs(back.astype(int) - smooth.astype(int)).mean() < 6  # lossy codec


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.mp4", "does not exist"),
        (lambda d: d, "holds no .png frames"),
        (lambda d: (d / "v.txt").write_text("x") and d / "v.txt", "has suffix '.txt'"),
        (lambda d: (d / "v.mp4").write_bytes(b"not a video") and d / "v.mp4", "cannot be decoded"),
    ],
)
def test_bad_videos_are_clear_errors(tmp_path: Path, setup, message):
    with pytest.raises(ChordError, match=message):
        load_video(setup(tmp_path))


def test_mixed_frame_sizes_are_refused(tmp_path: Path):
    Image.fromarray(frames(1, 16, 28)[0]).save(tmp_path / "0.png")
    Image.fromarray(frames(1, 18, 28)[0]).save(tmp_path / "1.png")
    with pytest.raises(ChordError, match="mixes frame sizes"):
        load_video(tmp_path)


def test_video_fit_loss_is_zero_on_the_target_and_has_the_right_gradient():
    video = frames()
    prior = VideoFitPrior(video)
    assert isinstance(prior, MotionPrior)
    prior.prepare(context())
    target = torch.from_numpy(video).float() / 255
    idx = torch.tensor([[0, 3]])
    g = torch.Generator().manual_seed(0)
    same = prior.loss(target[idx], progress=0.0, generator=g, frame_indices=idx)
    assert float(same.loss) == 0.0
    rendered = (target[idx] + 0.1).requires_grad_(True)
    out = prior.loss(rendered, progress=0.0, generator=g, frame_indices=idx)
    assert float(out.loss) == pytest.approx(0.1, abs=1e-6)
    out.loss.backward()
    # d mean|x - y| / dx = sign / count
    assert torch.allclose(rendered.grad, torch.full_like(rendered, 1 / rendered.numel()))


def test_video_fit_mask_loss_uses_object_labels():
    video = frames(T=3)
    labels = np.zeros((3, 16, 28), dtype=np.int64)
    labels[:, 4:8, 4:10] = 1  # object 0
    labels[:, 10:14, 15:20] = 2  # object 1
    prior = VideoFitPrior(video, labels, num_objects=2)
    prior.prepare(context(T=3))
    target_rgb = torch.from_numpy(video).float()[None] / 255
    masks = torch.zeros(1, 3, 16, 28, 2)
    masks[..., 4:8, 4:10, 0] = 1
    masks[..., 10:14, 15:20, 1] = 1
    g = torch.Generator()
    assert float(prior.loss(target_rgb, progress=0, generator=g, masks=masks).loss) == 0.0
    swapped = masks.flip(-1)
    wrong = prior.loss(target_rgb, progress=0, generator=g, masks=swapped)
    expected = 2 * (4 * 6 + 4 * 5) / (16 * 28 * 2)
    assert wrong.logs["mask"] == pytest.approx(expected, rel=1e-6)


def test_video_is_resampled_to_the_render_resolution():
    video = np.zeros((2, 32, 56, 3), dtype=np.uint8)
    video[:, :, :28] = 255
    prior = VideoFitPrior(video)
    prior.prepare(context(T=2, H=16, W=28))
    assert prior.target.shape == (2, 16, 28, 3)
    assert prior.target[:, :, :14].min() == 1.0 and prior.target[:, :, 14:].max() == 0.0


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        (context(T=7), "the video has 5 frames, but the scene asks for 7"),
        (context(H=16, W=16), "aspect"),
    ],
)
def test_video_that_does_not_match_the_scene_is_refused(ctx, message):
    with pytest.raises(ChordError, match=message):
        VideoFitPrior(frames()).prepare(ctx)


def test_empty_and_bad_masks_are_refused():
    with pytest.raises(ChordError, match="the masks are empty"):
        VideoFitPrior(frames(), np.zeros((5, 16, 28), dtype=np.int64), num_objects=1).prepare(context())
    bad = np.zeros((5, 16, 28), dtype=np.int64)
    bad[0, 0, 0] = 3
    with pytest.raises(ChordError, match=r"mask labels \[0, 3\] outside 0..1"):
        VideoFitPrior(frames(), bad, num_objects=1)
    with pytest.raises(ChordError, match="masks have shape"):
        VideoFitPrior(frames(), np.zeros((4, 16, 28), dtype=np.int64), num_objects=1)
