"""Flow analysis: which points move, each object's rigid parts and tracks, and their joints.

The part to manipulate is the moving part whose points travel farthest. If it moves relative
to a larger part of the same object, the joint between them is fitted (articulated object);
otherwise the object is treated as one rigid body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from core.errors import ChordError
from core.flow import ObjectFlow
from planner.articulation import Joint, fit_joint
from planner.rigid import apply
from planner.segment import ObjectSegmentation, Part, SegmentConfig, segment_object

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowAnalysis:
    """Everything the planner learns from a flow before choosing a grasp."""

    objects: tuple[ObjectSegmentation, ...]  # one per object in the flow
    target_object: int  # index into objects of the object to manipulate
    target_part: int  # index into objects[target_object].parts
    joint: Joint | None  # the target part's joint to its parent, for articulated objects
    moving_mask: np.ndarray  # [N] bool, points of moving parts
    nonrigid_threshold: float  # metres: a track residual above this flags non-rigid motion
    _points: np.ndarray = field(repr=False, default=None)  # [T, N, 3] the flow's points (float64)

    @property
    def target(self) -> Part:
        return self.objects[self.target_object].parts[self.target_part]

    @property
    def nonrigid(self) -> bool:
        """True if the target part's robust fit leaves a residual beyond threshold and noise.

        Independent noise of sigma per axis alone leaves an RMS residual of about
        sqrt(6) sigma (frame 0 and frame t both noisy), so the bar rises with the noise.
        """
        sigma = self.objects[self.target_object].noise_sigma
        bar = max(self.nonrigid_threshold, 1.5 * np.sqrt(6.0) * sigma)
        return self.target.track.residual_max_rms > bar

    def denoised(self) -> tuple[np.ndarray, np.ndarray]:
        """(trajectories [T, M, 3], flow indices [M]) of every non-outlier point, re-made rigid.

        Each point is averaged over all frames in its part's frame (where a rigid part's
        points stand still), then carried by the part's fitted motion: per-frame noise drops
        by sqrt(T), outlier trajectories are left out. Geometry for grasps and collisions.
        """
        trajs, idx = [], []
        for seg in self.objects:
            for part in seg.parts:
                M = part.track.motion  # [T, 4, 4]
                traj = self._points[:, part.indices]
                local = apply(np.linalg.inv(M), traj).mean(0)  # frame-0 coordinates
                trajs.append(apply(M, local))
                idx.append(part.indices)
        return np.concatenate(trajs, axis=1), np.concatenate(idx)

    def summary(self) -> dict:
        """JSON-able report of the analysis."""
        tgt = self.target
        out = {
            "target_object": tgt.object_name,
            "target_part_points": len(tgt.indices),
            "target_motion_mm": 1000 * tgt.motion,
            "track_residual_max_mm": 1000 * tgt.track.residual_max_rms,
            "track_inlier_fraction": tgt.track.inlier_fraction,
            "nonrigid": bool(self.nonrigid),
            "objects": {
                o.name: {
                    "parts": [len(p.indices) for p in o.parts],
                    "parts_merged": o.merged,
                    "moving": [bool(p.moving) for p in o.parts],
                    "outlier_fraction": o.outlier_fraction,
                    "noise_sigma_mm": 1000 * o.noise_sigma,
                    "threshold_mm": 1000 * o.threshold,
                }
                for o in self.objects
            },
        }
        if self.joint is not None:
            j = self.joint
            out["joint"] = {
                "kind": j.kind,
                "axis": j.axis.tolist(),
                "origin": j.origin.tolist(),
                "range": list(j.range),
                "residual_mm": 1000 * j.residual_rms,
            }
        return out


def analyse_flow(
    flow: ObjectFlow,
    config: SegmentConfig | None = None,
    objects: list[str] | None = None,  # only these may be the target (e.g. the movable ones)
    nonrigid_threshold: float = 0.01,  # metres
) -> FlowAnalysis:
    """Segment every object of ``flow`` and pick the part to manipulate.

    Raises ChordError if nothing in the flow moves more than ``config.motion_threshold``.
    """
    config = SegmentConfig() if config is None else config
    pts = flow.points.astype(np.float64)
    segs = []
    for i, name in enumerate(flow.object_names):
        idx = np.flatnonzero(flow.object_index == i)
        try:
            segs.append(segment_object(pts[:, idx], name, idx, config))
        except ValueError as e:
            raise ChordError(str(e)) from e
    moving = np.zeros(flow.num_points, bool)
    best: tuple[float, int, int] | None = None
    for oi, seg in enumerate(segs):
        for pi, part in enumerate(seg.parts):
            if part.moving:
                moving[part.indices] = True
                allowed = objects is None or seg.name in objects
                if allowed and (best is None or part.motion > best[0]):
                    best = (part.motion, oi, pi)
    if best is None:
        largest = max((p.motion for s in segs for p in s.parts), default=0.0)
        raise ChordError(
            f"flow has no motion to plan for: the largest part displacement is {1000 * largest:.1f} mm, "
            f"below motion_threshold {1000 * config.motion_threshold:.1f} mm"
            + (f" (among objects {objects})" if objects is not None else "")
        )
    _, oi, pi = best
    seg = segs[oi]
    joint = None
    if len(seg.parts) > 1:
        # The parent is the largest other part (parts are sorted by size).
        parent = 0 if pi != 0 else 1
        child = seg.parts[pi]
        joint = fit_joint(
            seg.parts[parent].track.motion,
            child.track.motion,
            pts[0, child.indices],
            parent=parent,
            child=pi,
        )
        log.info(
            "articulated %s: %s joint, axis %s, range %s, residual %.1f mm",
            seg.name,
            joint.kind,
            np.round(joint.axis, 3).tolist(),
            np.round(joint.range, 3).tolist(),
            1000 * joint.residual_rms,
        )
    return FlowAnalysis(tuple(segs), oi, pi, joint, moving, nonrigid_threshold, pts)
