"""Configuration of a flow run (``chord flow``); defaults are the seed's (supplementary A.1).

Fields say their unit. The resolved config is written next to every run's outputs
(``config.json``), and a resumed run refuses a config that changes the optimisation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from core.mesh import MIN_POINTS_PER_PART
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


# The video fit's split frame as a share of the last frame index: the seed's frame 30 of its
# 41-frame clips (supplementary A.1), kept as a share so that it holds for a clip of any length.
SPLIT_FRACTION = 0.75
WAN_SPLIT_FRAME = 30

# The video fit's defaults, measured on pick_banana (RGB-D reference, 208x116, 2-core CPU):
# 600 iterations with the split at 200 and 5x the seed's learning rates reach 8 mm mean error in
# about 80 s, where the seed's schedule, tuned for 2,000 SDS steps, stalls at tens of mm.
VIDEO_FIT_LR_SCALE = 5.0


@dataclass(frozen=True)
class FlowConfig:
    """A ``chord flow`` run. Fields left None take the prior's default (see ``resolved``):
    the seed's settings for the Wan prior, a CPU-sized schedule for the video fit."""

    prior: Literal["video", "wan"] = "video"  # motion prior: fit a given video, or RF-SDS from Wan 2.2
    iterations: int | None = None  # optimisation steps; None: 2000 (wan, the seed's) or 600 (video)
    batch: int = 4  # wan: (tau, eps) draws per step (seed: 4); video fit: random frames per step
    # At this step every frame after split_frame takes split_frame's deformation. None: 100 (wan,
    # the seed's) or 200 (video: the frames up to the split must be fitted before they are copied).
    split_iteration: int | None = None
    # None: frame 30 for wan (the seed's: a requirement of the method), and for the video fit the
    # same share of any clip, SPLIT_FRACTION of its last frame index (30 of a 41-frame clip).
    split_frame: int | None = None
    width: int | None = None  # render width, pixels; None = the camera's (wan) or the video's (video)
    height: int | None = None  # render height, pixels; None as for width
    gaussians_per_object: int | None = None  # Gaussians on each object's surface; None: 20000 / 3000
    # K per movable object; None: 60 for the Wan prior, 20 for the video fit (the seed's coarse
    # control points for 4D reconstruction of videos, supplementary A.3).
    control_points_per_object: int | None = None
    near_surface_target: int = 7500  # |S_i|: voxel centres near the surface, found by binary search
    # Objects whose asset record lists several links (the URDF's rigid parts): control points are
    # drawn per part, points bind only to their part's control points, and rigidity edges across
    # parts weigh cross_part_rigidity. None: on for the video fit, off for wan (the seed's A.1).
    part_aware: bool | None = None
    cross_part_rigidity: float = 0.0  # weight in [0, 1] of rigidity edges between two parts
    flow_points_per_object: int = 2048  # surface points per object exported to flow.npz
    # Of those, every part of a jointed object gets at least this many (256; the rest by area), so a
    # small part (a door's lever handle: 2% of its area, ~40 points by area) is a part in the
    # planner's segmentation (core.mesh.MIN_POINTS_PER_PART). 0: by area alone.
    flow_min_points_per_part: int = MIN_POINTS_PER_PART
    seed: int = 0  # seeds every random draw (Gaussians, control points, noise, frame batches)
    checkpoint_every: int = 50  # iterations between atomic checkpoints
    preview_every: int = 0  # iterations between preview videos (0: only at the end)
    device: str = "auto"  # "auto" (CUDA if available), "cpu" or "cuda[:N]"
    # Learning rates and weights; None: the seed's (wan) or the seed's with learning rates x5 (video).
    schedule: ScheduleConfig | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, value: Any, expected: str) -> None:
            if not ok:
                raise ValueError(f"FlowConfig.{name} is {value!r}, expected {expected}")

        need(self.prior in ("video", "wan"), "prior", self.prior, "'video' or 'wan'")
        for name in ("batch", "near_surface_target", "flow_points_per_object", "checkpoint_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, name, v, "a positive integer")
        v = self.flow_min_points_per_part
        need(isinstance(v, int) and v >= 0, "flow_min_points_per_part", v, "an integer >= 0")
        for name in ("iterations", "gaussians_per_object"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and v >= 1), name, v, "None or a positive integer")
        k = self.control_points_per_object
        need(k is None or (isinstance(k, int) and k >= 1), "control_points_per_object", k, "None or >= 1")
        si = self.split_iteration
        need(
            si is None or (isinstance(si, int) and si >= 0), "split_iteration", si, "None or an integer >= 0"
        )
        sf = self.split_frame
        need(sf is None or (isinstance(sf, int) and sf >= 0), "split_frame", sf, "None or an integer >= 0")
        need(self.preview_every >= 0, "preview_every", self.preview_every, "an integer >= 0 (0 = end only)")
        for name in ("width", "height"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and v >= 16), name, v, "None or pixels >= 16")
        c = self.cross_part_rigidity
        need(isinstance(c, (int, float)) and 0.0 <= c <= 1.0, "cross_part_rigidity", c, "a number in [0, 1]")

    @property
    def num_control_points(self) -> int:
        """K per movable object, with the per-prior default resolved."""
        if self.control_points_per_object is not None:
            return self.control_points_per_object
        return 60 if self.prior == "wan" else 20

    def split_frame_for(self, num_frames: int) -> int:
        """The frame the split copies forward in a clip of ``num_frames`` frames (see split_frame)."""
        if self.split_frame is not None:
            return self.split_frame
        if self.prior == "wan":
            return WAN_SPLIT_FRAME
        return round(SPLIT_FRACTION * (num_frames - 1))

    @property
    def uses_parts(self) -> bool:
        """Whether objects with several links get per-part control points (default: video fit only)."""
        return self.part_aware if self.part_aware is not None else self.prior == "video"

    def resolved(self, width: int, height: int) -> FlowConfig:
        """Every None filled with the prior's default; ``width``/``height`` are the default size."""
        wan = self.prior == "wan"
        schedule = self.schedule
        if schedule is None:
            schedule = ScheduleConfig()
            if not wan:
                k = VIDEO_FIT_LR_SCALE
                schedule = replace(
                    schedule,
                    deformation_lr=Decay(schedule.deformation_lr.start * k, schedule.deformation_lr.end * k),
                    control_scale_lr=Decay(
                        schedule.control_scale_lr.start * k, schedule.control_scale_lr.end * k
                    ),
                    control_rotation_lr=Decay(
                        schedule.control_rotation_lr.start * k, schedule.control_rotation_lr.end * k
                    ),
                )
        return replace(
            self,
            iterations=self.iterations or (2000 if wan else 600),
            split_iteration=self.split_iteration
            if self.split_iteration is not None
            else (100 if wan else 200),
            split_frame=self.split_frame
            if self.split_frame is not None
            else (WAN_SPLIT_FRAME if wan else None),  # the video fit's depends on the clip's length
            width=self.width or width,
            height=self.height or height,
            gaussians_per_object=self.gaussians_per_object or (20000 if wan else 3000),
            control_points_per_object=self.num_control_points,
            part_aware=self.uses_parts,
            schedule=schedule,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def optimisation_hash(self) -> str:
        """Hash of the fields that change the optimisation (not checkpoint/preview cadence, device or
        how the export spreads its points over parts)."""
        d = self.to_dict()
        for k in ("checkpoint_every", "preview_every", "device", "flow_min_points_per_part"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config has unknown field(s) {unknown}; known: {sorted(known)}")
        if d.get("schedule") is not None:
            s = dict(d["schedule"])
            for k, v in list(s.items()):
                if isinstance(v, dict):
                    s[k] = Decay(**v)
            d["schedule"] = ScheduleConfig(**s)
        return cls(**d)

    def save(self, path: str | Path) -> None:
        from core.atomic import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
