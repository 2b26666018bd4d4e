"""Scoring a flow against a ground-truth flow of the same scene (endpoint error, millimetres)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import ChordError
from core.flow import ObjectFlow


@dataclass(frozen=True)
class ObjectFlowError:
    """Endpoint error of one object's points, millimetres."""

    name: str
    mean_mm: float  # mean over frames and points
    final_mm: float  # mean over points at the last frame
    max_mm: float  # worst point at any frame
    motion_mm: float  # the reference's mean displacement first -> last frame (for scale)
    rest_match_mm: float  # mean distance between matched rest points (sampling, not motion)
    # The same, split by whether the matched reference point moves (a moving part, or a rigid
    # object) or not (a jointed object's static part: a cabinet, a door frame); NaN with no
    # point of that kind. A static point's error is its drift.
    moving_mean_mm: float = float("nan")
    moving_final_mm: float = float("nan")
    static_mean_mm: float = float("nan")
    static_final_mm: float = float("nan")
    static_points: int = 0  # how many of the flow's points matched a static reference point


# A reference point that moves less than this over the clip belongs to a static part, metres: a
# ground-truth point of a part that does not move stays put to float32 rounding (0.1 um at 1 m),
# while a moving part's points next to its hinge axis still move tens of um.
STILL_M = 1e-5


def flow_error(
    flow: ObjectFlow, reference: ObjectFlow, objects: list[str] | None = None
) -> list[ObjectFlowError]:
    """Per-object endpoint error of ``flow`` against ``reference``.

    The two flows sample the surfaces independently, so each point of ``flow`` is matched to the
    reference point nearest to it at frame 0 (rest), and their trajectories are compared.
    ``objects`` defaults to every object of ``flow``. Raises ChordError if the flows have different
    frame counts or an object is missing from the reference.
    """
    from scipy.spatial import cKDTree

    if flow.num_frames != reference.num_frames:
        raise ChordError(f"the flow has {flow.num_frames} frames, the reference {reference.num_frames}")
    out = []
    for name in objects or list(flow.object_names):
        if name not in reference.object_names:
            raise ChordError(f"object {name!r} is not in the reference flow ({list(reference.object_names)})")
        ours = flow.object_points(name).astype(np.float64)  # [T, n, 3]
        ref = reference.object_points(name).astype(np.float64)  # [T, m, 3]
        dist, match = cKDTree(ref[0]).query(ours[0])
        err = np.linalg.norm(ours - ref[:, match], axis=-1)  # [T, n]
        motion = np.linalg.norm(ref[-1] - ref[0], axis=-1).mean()
        still = np.linalg.norm(ref - ref[0], axis=-1).max(axis=0)[match] < STILL_M  # [n]

        def part(sel: np.ndarray, err: np.ndarray = err) -> tuple[float, float]:
            if not sel.any():
                return float("nan"), float("nan")
            return 1000 * float(err[:, sel].mean()), 1000 * float(err[-1, sel].mean())

        out.append(
            ObjectFlowError(
                name,
                1000 * err.mean(),
                1000 * err[-1].mean(),
                1000 * err.max(),
                1000 * motion,
                1000 * dist.mean(),
                *part(~still),
                *part(still),
                int(still.sum()),
            )
        )
    return out
