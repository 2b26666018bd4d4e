"""The video-fit prior: 4D reconstruction of a given video (the seed's reconstruction of generated videos).

The rendered frames are pulled towards the video's frames (L1) and, when object masks are given,
each object's rendered coverage towards its mask (L1). With the same regularisers as the
distillation, it lets a user bring a video made elsewhere, and it tests the whole optimisation on
a CPU against known motion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chord.errors import ChordError
from flowgen.prior import PriorContext, PriorLoss
from flowgen.video_io import load_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoFitConfig:
    """Weights of the video-fit losses."""

    photometric_weight: float = 1.0  # L1 on RGB in [0, 1], mean over pixels and pyramid levels
    mask_weight: float = 1.0  # L1 on per-object coverage in [0, 1], mean over pixels, objects, levels
    # Each L1 is also taken on 2x, 4x, ... average-pooled images: a silhouette that has moved off
    # its target still overlaps it at a coarse level, so the loss keeps pulling.
    pyramid_levels: int = 4
    # Squared distance between each object's rendered and true mask centroids (image coordinates
    # divided by the larger image side): a pull that reaches any distance.
    centroid_weight: float = 1.0
    # L1 on depth (metres) where the video's masks show an object and the render covers it. A
    # single view cannot tell "moved away" from "moved sideways and shrank"; depth (an RGB-D
    # video) can, and it is what pins rotations the silhouette hardly shows (a lamp head's 30 deg
    # turn: 8.6 deg off at weight 1, 0.8 deg at 10; banana 8.1 -> 4.1 mm; 30 overshoots on the
    # banana, 23 mm at the last frame). Used only when depth maps are given.
    depth_weight: float = 10.0


class VideoFitPrior:
    """Fits the rendered video to a given one; implements flowgen.prior.MotionPrior.

    The scene's Gaussians model the objects, not the table or the room behind them: they are
    rendered over black and composited over a background plate (the video's per-pixel median over
    time), so the background neither pulls nor pushes them.
    """

    name = "video"
    render_background = (0.0, 0.0, 0.0)  # RGB the loop renders over; the plate replaces it

    def __init__(
        self,
        frames: np.ndarray,  # [T, H, W, 3] uint8, the video to fit
        masks: np.ndarray | None = None,  # [T, H, W] int labels: 0 background, i+1 = object i
        num_objects: int | None = None,  # O, objects in scene order (needed with masks)
        config: VideoFitConfig = VideoFitConfig(),
        depth: np.ndarray | None = None,  # [T, H, W] float metres along the optical axis (RGB-D)
    ):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ChordError(f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if masks is not None:
            if masks.shape != frames.shape[:3]:
                raise ChordError(
                    f"masks have shape {masks.shape}, expected {frames.shape[:3]} to match the video"
                )
            if num_objects is None:
                raise ValueError("num_objects is required with masks")
            labels = np.unique(masks)
            if labels.min() < 0 or labels.max() > num_objects:
                raise ChordError(f"mask labels {labels.tolist()} outside 0..{num_objects} (0 = background)")
            for i in range(num_objects):
                if not (masks == i + 1).any():
                    log.warning(
                        "object %d never appears in the masks: its mask loss only pushes it out of view", i
                    )
        if depth is not None:
            if depth.shape != frames.shape[:3]:
                raise ChordError(
                    f"depth has shape {depth.shape}, expected {frames.shape[:3]} to match the video"
                )
            if masks is None:
                raise ChordError("depth maps need object masks too: depth is compared on the objects only")
            if not np.isfinite(depth[masks > 0]).all():
                raise ChordError("depth maps hold non-finite values on the objects")
        self.frames_np, self.masks_np, self.num_objects, self.config = frames, masks, num_objects, config
        self.depth_np = depth
        self.target_depth: torch.Tensor | None = None  # [T, H, W, 1] metres, NaN off the objects
        self.target: torch.Tensor | None = None  # [T, H, W, 3] float at the render resolution
        self.target_masks: torch.Tensor | None = None  # [T, H, W, O] float
        self.plate: torch.Tensor | None = None  # [H, W, 3] the static background estimate

    @classmethod
    def from_files(
        cls,
        video: str | Path,
        masks: str | Path | None,
        object_names: list[str],
        depth: str | Path | None = None,
    ) -> VideoFitPrior:
        """Load a video (MP4 or PNG folder), optional masks (``chord.masks``) and depth (``chord.depth``).

        ``object_names`` are the scene's objects in order; mask labels are matched by name, and
        objects the masks do not name get no mask loss term of their own.
        """
        from chord.assets.reference import load_depth, load_masks

        frames = load_video(video)
        labels = None
        if masks is not None:
            raw, names = load_masks(masks)
            unknown = [n for n in names if n not in object_names]
            if unknown:
                raise ChordError(
                    f"masks {str(masks)!r} name objects {unknown} that the scene lacks ({object_names})"
                )
            # chord.masks: -1 background, i = names[i]; ours: 0 background, j + 1 = scene object j.
            lookup = np.array([object_names.index(n) + 1 for n in names] + [0], dtype=np.int64)
            labels = lookup[raw.astype(np.int64)]  # -1 indexes the trailing 0
        depth_maps = None if depth is None else load_depth(depth)
        return cls(frames, labels, len(object_names), depth=depth_maps)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the video, pixels."""
        return int(self.frames_np.shape[2]), int(self.frames_np.shape[1])

    def check(self, num_frames: int, width: int, height: int) -> None:
        """Raise ChordError unless the video has ``num_frames`` frames and the render's aspect ratio."""
        T, H, W = self.frames_np.shape[:3]
        if T != num_frames:
            raise ChordError(
                f"the video has {T} frames, but the scene asks for {num_frames} (scene `frames`)"
            )
        if abs(W / H - width / height) > 0.02 * (width / height):
            raise ChordError(
                f"the video is {W}x{H} pixels (aspect {W / H:.3f}) but the run renders "
                f"{width}x{height} (aspect {width / height:.3f})"
            )

    def prepare(self, context: PriorContext) -> None:
        """Check the video against the run and resample it to the render resolution."""
        W, H = self.size
        self.check(context.num_frames, context.width, context.height)
        device = context.first_frame.device
        video = torch.from_numpy(self.frames_np).to(device=device, dtype=torch.float32) / 255.0
        self.target = _resize(video, context.height, context.width)
        self.plate = self.target.median(dim=0).values
        if self.masks_np is not None:
            labels = torch.from_numpy(self.masks_np).to(device)
            onehot = F.one_hot(labels, self.num_objects + 1)[..., 1:].to(torch.float32)
            self.target_masks = _resize(onehot, context.height, context.width)
            empty = (self.target_masks.sum(dim=(0, 1, 2)) == 0).nonzero().flatten().tolist()
            if len(empty) == self.num_objects:
                raise ChordError("the masks are empty: no object appears in any frame")
        if self.depth_np is not None:
            # Resample by nearest neighbour: averaging depth across an object's edge invents
            # surfaces in between. Pixels off the objects become NaN (no supervision there).
            d = torch.from_numpy(np.where(self.masks_np > 0, self.depth_np, np.nan)).to(device)[:, None]
            d = F.interpolate(d.float(), size=(context.height, context.width), mode="nearest")
            self.target_depth = d[:, 0, :, :, None]
        if (W, H) != (context.width, context.height):
            log.info(
                "video fit: resampled the video from %dx%d to %dx%d", W, H, context.width, context.height
            )

    def loss(
        self,
        video: torch.Tensor,  # [B, T', H, W, 3] rendered
        *,
        progress: float,
        generator: torch.Generator,
        masks: torch.Tensor | None = None,  # [B, T', H, W, O] rendered per-object coverage
        frame_indices: torch.Tensor | None = None,  # [B, T'] which frames of the video were rendered
        depth: torch.Tensor | None = None,  # [B, T', H, W, 1] rendered expected depth, metres
    ) -> PriorLoss:
        if self.target is None:
            raise RuntimeError("VideoFitPrior.prepare() must run before loss()")
        idx = _frames(frame_indices, video)
        if masks is None:
            raise ValueError(
                "the video fit needs the rendered object masks (their sum is the alpha to composite with)"
            )
        cfg = self.config
        composite = video + (1.0 - masks.sum(dim=-1, keepdim=True)) * self.plate
        photometric = _pyramid_l1(composite, self.target[idx], cfg.pyramid_levels)
        loss = cfg.photometric_weight * photometric
        logs = {"photometric": float(photometric.detach())}
        if self.target_masks is not None:
            target_masks = self.target_masks[idx]
            mask_l1 = _pyramid_l1(masks, target_masks, cfg.pyramid_levels)
            centroid = _centroid_loss(masks, target_masks)
            loss = loss + cfg.mask_weight * mask_l1 + cfg.centroid_weight * centroid
            logs["mask"] = float(mask_l1.detach())
            logs["centroid"] = float(centroid.detach())
        if self.target_depth is not None and depth is not None:
            target = self.target_depth[idx]
            seen = torch.isfinite(target) & (masks.sum(dim=-1, keepdim=True) > 0.5)
            if bool(seen.any()):
                depth_l1 = (depth[seen] - target[seen]).abs().mean()
                loss = loss + cfg.depth_weight * depth_l1
                logs["depth"] = float(depth_l1.detach())
        return PriorLoss(loss, logs)


def _pyramid_l1(x: torch.Tensor, y: torch.Tensor, levels: int) -> torch.Tensor:
    """Mean over levels of the mean L1 between [..., H, W, C] images, pooled 1x, 2x, 4x, ..."""
    shape = x.shape
    x = x.reshape(-1, *shape[-3:]).permute(0, 3, 1, 2)
    y = y.reshape(-1, *shape[-3:]).permute(0, 3, 1, 2)
    total = (x - y).abs().mean()
    used = 1
    for _ in range(1, levels):
        if min(x.shape[-2:]) < 4:
            break
        x, y = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(y, 2, ceil_mode=True)
        total = total + (x - y).abs().mean()
        used += 1
    return total / used


def _centroid_loss(masks: torch.Tensor, target: torch.Tensor, min_pixels: float = 3.0) -> torch.Tensor:
    """Mean squared distance of rendered vs true mask centroids, over (image, object) pairs.

    masks, target: [..., H, W, O] coverage. Pairs where either mask holds under ``min_pixels``
    of coverage (object out of view) are left out.
    """
    H, W = masks.shape[-3:-1]
    m = masks.reshape(-1, H, W, masks.shape[-1])
    t = target.reshape(-1, H, W, target.shape[-1])
    scale = float(max(H, W))
    ys = (torch.arange(H, dtype=m.dtype, device=m.device) + 0.5) / scale
    xs = (torch.arange(W, dtype=m.dtype, device=m.device) + 0.5) / scale

    def centroid(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mass = c.sum(dim=(1, 2))  # [n, O]
        cy = (c * ys[None, :, None, None]).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
        cx = (c * xs[None, None, :, None]).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
        return torch.stack([cx, cy], dim=-1), mass

    c_r, mass_r = centroid(m)
    c_t, mass_t = centroid(t)
    ok = (mass_r > min_pixels) & (mass_t > min_pixels)
    if not bool(ok.any()):
        return masks.new_zeros(())
    return ((c_r - c_t) ** 2).sum(dim=-1)[ok].mean()


def _frames(frame_indices: torch.Tensor | None, video: torch.Tensor) -> torch.Tensor:
    B, T = video.shape[:2]
    if frame_indices is None:
        return torch.arange(T, device=video.device).expand(B, T)
    if frame_indices.shape != (B, T):
        raise ValueError(f"frame_indices has shape {tuple(frame_indices.shape)}, expected {(B, T)}")
    return frame_indices


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[T, h, w, C] -> [T, height, width, C] by area averaging (downsampling) or bilinear (up)."""
    if x.shape[1:3] == (height, width):
        return x
    chw = x.permute(0, 3, 1, 2)
    mode = "area" if height <= x.shape[1] else "bilinear"
    out = F.interpolate(chw, size=(height, width), mode=mode)
    return out.permute(0, 2, 3, 1).contiguous()
