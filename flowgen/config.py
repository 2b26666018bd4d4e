"""Configuration of a flow run (``chord flow``); defaults are the seed's (supplementary A.1).

Fields say their unit. The resolved config is written next to every run's outputs
(``config.json``), and a resumed run refuses a config that changes the optimisation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from flowgen.schedules import Decay


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning rates, guidance and regulariser weights over the run (seed A.1)."""

    # Fenwick-tree deformation parameters (rotation and translation of every node), per step.
    deformation_lr: Decay = Decay(0.006, 0.00006)
    # Control-point covariance log-scales.
    control_scale_lr: Decay = Decay(0.006, 0.00006)
    # Control-point covariance rotations.
    control_rotation_lr: Decay = Decay(0.003, 0.00003)
    # Classifier-free guidance scale of the video prior (linear, as the seed says).
    cfg_scale: Decay = Decay(25.0, 12.0, "linear")
    # Weight of the temporal smoothness regulariser on the near-surface points S_i.
    temporal_weight: Decay = Decay(9.6, 1.6)
    # Weight of the spatial local-rigidity regulariser among control-point neighbours.
    spatial_weight: Decay = Decay(3000.0, 300.0)
    # Weight of the ground-penetration penalty (points below the table top), constant.
    ground_weight: float = 1000.0


@dataclass(frozen=True)
class FlowConfig:
    """A ``chord flow`` run. The defaults are the seed's settings for the Wan prior."""

    prior: Literal["video", "wan"] = "video"  # motion prior: fit a given video, or RF-SDS from Wan 2.2
    iterations: int = 2000  # optimisation steps (seed: 2,000)
    batch: int = 4  # videos per step (seed: 4); the video fit renders `batch` random frames per step
    split_iteration: int = 100  # at this step every frame after split_frame takes its deformation
    split_frame: int = 30  # (seed: iteration 100, frame 30)
    width: int | None = None  # render width, pixels; None = the scene camera's (832)
    height: int | None = None  # render height, pixels; None = the scene camera's (464)
    gaussians_per_object: int = 20000  # 3D Gaussians sampled on each object's surface
    control_points_per_object: int = 60  # K per movable object (the video fit may use fewer)
    near_surface_target: int = 7500  # |S_i|: voxel centres near the surface, found by binary search
    flow_points_per_object: int = 2048  # surface points per object exported to flow.npz
    seed: int = 0  # seeds every random draw (Gaussians, control points, noise, frame batches)
    checkpoint_every: int = 50  # iterations between atomic checkpoints
    preview_every: int = 0  # iterations between preview videos (0: only at the end)
    device: str = "auto"  # "auto" (CUDA if available), "cpu" or "cuda[:N]"
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, value: Any, expected: str) -> None:
            if not ok:
                raise ValueError(f"FlowConfig.{name} is {value!r}, expected {expected}")

        need(self.prior in ("video", "wan"), "prior", self.prior, "'video' or 'wan'")
        for name in (
            "iterations", "batch", "gaussians_per_object", "control_points_per_object",
            "near_surface_target", "flow_points_per_object", "checkpoint_every",
        ):  # fmt: skip
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, name, v, "a positive integer")
        need(self.split_iteration >= 0, "split_iteration", self.split_iteration, "an integer >= 0")
        need(self.split_frame >= 0, "split_frame", self.split_frame, "an integer >= 0")
        need(self.preview_every >= 0, "preview_every", self.preview_every, "an integer >= 0 (0 = end only)")
        for name in ("width", "height"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and v >= 16), name, v, "None or pixels >= 16")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def optimisation_hash(self) -> str:
        """Hash of the fields that change the optimisation (not checkpoint/preview cadence or device)."""
        d = self.to_dict()
        for k in ("checkpoint_every", "preview_every", "device"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config has unknown field(s) {unknown}; known: {sorted(known)}")
        if "schedule" in d:
            s = dict(d["schedule"])
            for k, v in list(s.items()):
                if isinstance(v, dict):
                    s[k] = Decay(**v)
            d["schedule"] = ScheduleConfig(**s)
        return cls(**d)

    def save(self, path: str | Path) -> None:
        from chord.atomic import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
