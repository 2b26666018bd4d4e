"""Video loading and the video-fit prior's losses and input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import ChordError
from core.rgbd import load_video
from flowgen.prior import MotionPrior, PriorContext
from flowgen.video_fit import VideoFitConfig, VideoFitPrior, _centroid_loss, _pyramid_l1


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
    prior = VideoFitPrior(video, config=VideoFitConfig(pyramid_levels=1))
    assert isinstance(prior, MotionPrior)
    prior.prepare(context())
    target = torch.from_numpy(video).float() / 255
    idx = torch.tensor([[0, 3]])
    g = torch.Generator().manual_seed(0)
    covered = torch.ones(1, 2, 16, 28, 1)  # objects cover every pixel: no plate shows
    same = prior.loss(target[idx], progress=0.0, generator=g, frame_indices=idx, masks=covered)
    assert float(same.loss) == 0.0
    rendered = (target[idx] + 0.1).requires_grad_(True)
    out = prior.loss(rendered, progress=0.0, generator=g, frame_indices=idx, masks=covered)
    assert float(out.loss.detach()) == pytest.approx(0.1, abs=1e-6)
    out.loss.backward()
    # d mean|x - y| / dx = sign / count
    assert torch.allclose(rendered.grad, torch.full_like(rendered, 1 / rendered.numel()))


def test_video_fit_mask_loss_uses_object_labels():
    video = frames(T=3)
    labels = np.zeros((3, 16, 28), dtype=np.int64)
    labels[:, 4:8, 4:10] = 1  # object 0
    labels[:, 10:14, 15:20] = 2  # object 1
    prior = VideoFitPrior(video, labels, num_objects=2, config=VideoFitConfig(pyramid_levels=1))
    prior.prepare(context(T=3))
    target_rgb = torch.from_numpy(video).float()[None] / 255
    masks = torch.zeros(1, 3, 16, 28, 2)
    masks[..., 4:8, 4:10, 0] = 1
    masks[..., 10:14, 15:20, 1] = 1
    g = torch.Generator()
    assert prior.loss(target_rgb, progress=0, generator=g, masks=masks).logs["mask"] == 0.0
    swapped = masks.flip(-1)
    wrong = prior.loss(target_rgb, progress=0, generator=g, masks=swapped)
    expected = 2 * (4 * 6 + 4 * 5) / (16 * 28 * 2)
    assert wrong.logs["mask"] == pytest.approx(expected, rel=1e-6)


def test_pyramid_l1_sees_a_silhouette_that_missed_its_target():
    a = torch.zeros(1, 16, 32, 1)
    b = torch.zeros(1, 16, 32, 1)
    a[0, 0:4, 0:4] = 1  # two 4x4 squares side by side: no overlap at full resolution
    b[0, 0:4, 4:8] = 1
    assert float(_pyramid_l1(a, b, 1)) == pytest.approx(32 / 512)
    # Pooled 8x, both squares fall into the same cell and agree: that level's L1 is 0, so the
    # mean over levels 1x, 2x, 4x, 8x is 3/4 of the fine one.
    assert float(_pyramid_l1(a, b, 4)) == pytest.approx(0.75 * 32 / 512)


def blob(cx: torch.Tensor, H=24, W=48, r=2.0) -> torch.Tensor:
    """[1, H, W, 1] soft disc at (cx, 12) px, differentiable in cx."""
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    return torch.exp(-((xs - cx) ** 2 + (ys - 12) ** 2) / (2 * r * r))[None, ..., None]


def test_centroid_loss_pulls_from_any_distance():
    target = blob(torch.tensor(36.0))
    x = torch.tensor(10.0, requires_grad=True)  # 26 px away: no overlap at all
    loss = _centroid_loss(blob(x), target)
    assert float(loss.detach()) == pytest.approx((26 / 48) ** 2, rel=1e-4)
    loss.backward()
    assert float(x.grad) < 0  # descending moves the blob right, towards the target
    # An object out of view (no coverage) contributes nothing rather than NaN.
    assert float(_centroid_loss(torch.zeros_like(target), target)) == 0.0


def test_objects_are_composited_over_the_median_background_plate():
    """Where no Gaussian covers a pixel, the video's static background shows, not black."""
    T, H, W = 5, 16, 28
    video = np.zeros((T, H, W, 3), dtype=np.uint8)
    video[:] = (120, 80, 40)  # a brown table everywhere
    for t in range(T):  # a white square moving right over it
        video[t, 4:8, 2 + 4 * t : 6 + 4 * t] = 255
    prior = VideoFitPrior(video)
    prior.prepare(context(T=T, H=H, W=W))
    assert torch.allclose(prior.plate, torch.tensor([120, 80, 40]) / 255.0)  # the square is gone
    rendered = torch.zeros(1, T, H, W, 3)
    coverage = torch.zeros(1, T, H, W, 1)
    for t in range(T):  # the Gaussians render the square (over black), exactly where it is
        rendered[0, t, 4:8, 2 + 4 * t : 6 + 4 * t] = 1.0
        coverage[0, t, 4:8, 2 + 4 * t : 6 + 4 * t] = 1.0
    out = prior.loss(rendered, progress=0, generator=torch.Generator(), masks=coverage)
    assert out.logs["photometric"] == pytest.approx(0.0, abs=1e-7)
    lagging = prior.loss(
        rendered.roll(1, dims=1), progress=0, generator=torch.Generator(), masks=coverage.roll(1, dims=1)
    )
    assert lagging.logs["photometric"] > 0.01


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


def test_masks_file_labels_are_matched_to_scene_objects_by_name(tmp_path: Path):
    from core.rgbd import save_masks
    from core.scene import Camera

    video = frames(T=2)
    for i in range(2):
        Image.fromarray(video[i]).save(tmp_path / f"{i}.png")
    raw = np.full((2, 16, 28), -1, dtype=np.int16)
    raw[:, :4] = 0  # "lid" in the file's order
    raw[:, 8:] = 1  # "base"
    cam = Camera.from_look_at((1, 0, 1), (0, 0, 0), width=28, height=16)
    save_masks(tmp_path / "masks.npz", raw, ["lid", "base"], cam)
    prior = VideoFitPrior.from_files(tmp_path, tmp_path / "masks.npz", ["table", "base", "lid"])
    assert prior.masks_np[0, 0, 0] == 3 and prior.masks_np[0, 10, 0] == 2 and prior.masks_np[0, 5, 0] == 0
    with pytest.raises(ChordError, match=r"name objects \['lid'\] that the scene lacks"):
        VideoFitPrior.from_files(tmp_path, tmp_path / "masks.npz", ["base"])
