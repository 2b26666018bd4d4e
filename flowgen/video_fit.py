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

    photometric_weight: float = 1.0  # L1 on RGB in [0, 1], mean over pixels
    mask_weight: float = 1.0  # L1 on per-object coverage in [0, 1], mean over pixels and objects


class VideoFitPrior:
    """Fits the rendered video to a given one; implements flowgen.prior.MotionPrior."""

    name = "video"

    def __init__(
        self,
        frames: np.ndarray,  # [T, H, W, 3] uint8, the video to fit
        masks: np.ndarray | None = None,  # [T, H, W] int labels: 0 background, i+1 = object i
        num_objects: int | None = None,  # O, objects in scene order (needed with masks)
        config: VideoFitConfig = VideoFitConfig(),
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
        self.frames_np, self.masks_np, self.num_objects, self.config = frames, masks, num_objects, config
        self.target: torch.Tensor | None = None  # [T, H, W, 3] float at the render resolution
        self.target_masks: torch.Tensor | None = None  # [T, H, W, O] float

    @classmethod
    def from_files(cls, video: str | Path, masks: str | Path | None, num_objects: int) -> VideoFitPrior:
        """Load a video (MP4 or PNG folder) and optional masks (.npz with ``labels`` [T, H, W])."""
        frames = load_video(video)
        labels = None
        if masks is not None:
            masks = Path(masks)
            if not masks.is_file():
                raise ChordError(f"masks file {str(masks)!r} does not exist")
            with np.load(masks, allow_pickle=False) as z:
                if "labels" not in z.files:
                    raise ChordError(f"masks file {str(masks)!r} has no 'labels' array (has {z.files})")
                labels = z["labels"].astype(np.int64)
        return cls(frames, labels, num_objects)

    def prepare(self, context: PriorContext) -> None:
        """Check the video against the run and resample it to the render resolution."""
        T, H, W = self.frames_np.shape[:3]
        if T != context.num_frames:
            raise ChordError(
                f"the video has {T} frames, but the scene asks for {context.num_frames} (scene `frames`)"
            )
        if abs(W / H - context.width / context.height) > 0.02 * (context.width / context.height):
            raise ChordError(
                f"the video is {W}x{H} pixels (aspect {W / H:.3f}) but the run renders "
                f"{context.width}x{context.height} (aspect {context.width / context.height:.3f})"
            )
        device = context.first_frame.device
        video = torch.from_numpy(self.frames_np).to(device=device, dtype=torch.float32) / 255.0
        self.target = _resize(video, context.height, context.width)
        if self.masks_np is not None:
            labels = torch.from_numpy(self.masks_np).to(device)
            onehot = F.one_hot(labels, self.num_objects + 1)[..., 1:].to(torch.float32)
            self.target_masks = _resize(onehot, context.height, context.width)
            empty = (self.target_masks.sum(dim=(0, 1, 2)) == 0).nonzero().flatten().tolist()
            if len(empty) == self.num_objects:
                raise ChordError("the masks are empty: no object appears in any frame")
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
    ) -> PriorLoss:
        if self.target is None:
            raise RuntimeError("VideoFitPrior.prepare() must run before loss()")
        idx = _frames(frame_indices, video)
        photometric = (video - self.target[idx]).abs().mean()
        loss = self.config.photometric_weight * photometric
        logs = {"photometric": float(photometric.detach())}
        if self.target_masks is not None and masks is not None:
            mask_l1 = (masks - self.target_masks[idx]).abs().mean()
            loss = loss + self.config.mask_weight * mask_l1
            logs["mask"] = float(mask_l1.detach())
        return PriorLoss(loss, logs)


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
