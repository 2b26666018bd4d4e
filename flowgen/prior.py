"""The motion-prior interface: what the 4D optimisation asks of a video model or a given video.

A prior sees the rendered video of the deforming scene and returns a scalar loss whose gradient
(through the renderer, into the deformation parameters) is the prior's. Two implementations:
the video fit (photometric + mask losses against a given video) and RF-SDS from Wan 2.2
image-to-video (seed section B), where the "loss" is the surrogate whose gradient is
``w(tau) (v_hat - (eps - z)) dz/dtheta``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@dataclass
class PriorContext:
    """What every prior is told once, before the first step."""

    first_frame: torch.Tensor  # [H, W, 3] float in [0, 1]: the rendered static snapshot
    prompt: str  # what should happen
    negative_prompt: str = ""  # what should not (priors with classifier-free guidance)
    fps: float = 16.0  # frames per second of the video
    num_frames: int = 41  # T, frames per video
    height: int = 464  # pixels of the rendered video
    width: int = 832


@dataclass
class PriorLoss:
    """One step's loss, plus scalars worth logging (e.g. ``tau``, ``cfg``, ``photometric``)."""

    loss: torch.Tensor  # scalar; backward() gives the prior's gradient
    logs: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class MotionPrior(Protocol):
    """A source of motion supervision for rendered videos."""

    name: str  # written into flow.npz meta ("video", "wan", ...)

    def prepare(self, context: PriorContext) -> None:
        """Called once before optimisation; heavy set-up (encoding prompts, loading video) goes here.

        A prior may also define ``initialise(model)``, called once after ``prepare`` on a fresh run
        (not on a resumed one), to set the Scene4D's deformation before the first step (the video
        fit starts hinged parts where the depth video shows them)."""

    def loss(
        self,
        video: torch.Tensor,  # [B, T, H, W, 3] float in [0, 1], rendered, differentiable
        *,
        progress: float,  # iteration / total iterations, in [0, 1]: drives CFG and tau schedules
        generator: torch.Generator,  # the run's RNG, so a resumed run draws the same noise
        masks: torch.Tensor | None = None,  # [B, T, H, W, O] per-object coverage, if rendered
        frame_indices: torch.Tensor | None = None,  # [B, T'] frames rendered, when not all T are
        depth: torch.Tensor | None = None,  # [B, T, H, W, 1] rendered expected depth, metres
    ) -> PriorLoss:
        """The loss for a batch of B rendered videos (or B sets of T' frames of them)."""
        ...
