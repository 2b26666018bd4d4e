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
    # Split by whether the matched reference point moves (a moving part, or a rigid object:
    # endpoint error as above) or not (a jointed object's static part, a cabinet or a door frame:
    # its drift, the distance our point moved from where it started); None with no such point
    # (not NaN: chord run writes these into summary.json, and JSON has no NaN).
    moving_mean_mm: float | None = None
    moving_final_mm: float | None = None
    static_mean_mm: float | None = None
    static_final_mm: float | None = None
    static_points: int = 0  # how many of the flow's points matched a static reference point


# A reference point that moves less than this over the clip belongs to a static part, metres: a
# ground-truth point of a part that does not move stays put to float32 rounding (0.1 um at 1 m),
# while a moving part's points next to its hinge axis still move tens of um.
STILL_M = 1e-5


# Candidates for a point's match: the reference points at rest that lie within two of the
# reference's sampling spacings (its median nearest-neighbour distance) of the nearest one, at most
# this many. Where two parts' surfaces lie closer than that (a drawer's side inside its cabinet's
# wall; the suite's reference flows have a point every 11 mm or so), the nearest few are as likely
# the other part's: a fixed few (4 were used) can all be the other part's, and a still cabinet
# point was then compared with the drawer's 228 mm pull (test drawer_004: 13.6 mm "error" on a
# flow whose every drawer point moves within 1 mm of the truth's slide).
MATCH_CANDIDATES = 32


def match_points(
    ours: np.ndarray,  # [T, n, 3]
    ref: np.ndarray,  # [T, m, 3]
    groups: np.ndarray,  # [m] int: the part (or still/moving class) of each reference point
    k: int = MATCH_CANDIDATES,
) -> tuple[np.ndarray, np.ndarray]:
    """For each of our points, the reference point it is compared with: the nearest at rest,
    unless the reference points as near as it to within two sampling spacings (at most ``k``)
    belong to different groups (a contact between parts), then the one among them whose
    displacement over the clip is closest to our point's. Returns the rest distances [n] and
    reference indices [n].

    Away from contacts this is the nearest point, as before; at a contact it picks the part the
    point moves with, since the rest pose cannot tell (the error there is then a lower bound).
    """
    from scipy.spatial import cKDTree

    m = ref.shape[1]
    k = min(k, m)
    tree = cKDTree(ref[0])
    spacing = float(np.median(tree.query(ref[0], k=2)[0][:, 1])) if m > 1 else 0.0
    dist, cand = tree.query(ours[0], k=k)
    dist, cand = dist.reshape(len(ours[0]), k), cand.reshape(len(ours[0]), k)
    near = dist <= dist[:, :1] + 2.0 * spacing  # [n, k]: the nearest itself always
    best = np.zeros(len(cand), dtype=np.int64)
    mixed = ((groups[cand] != groups[cand[:, :1]]) & near).any(axis=1)
    if mixed.any():
        c = cand[mixed]
        ours_d = (ours[:, mixed] - ours[:1, mixed])[:, :, None]  # [T, n', 1, 3]
        ref_d = ref[:, c] - ref[:1, c]  # [T, n', k, 3]
        gap = np.linalg.norm(ref_d - ours_d, axis=-1).mean(axis=0)  # [n', k]
        # The group that moves most like our point, then its nearest point (candidates come
        # nearest first): within one part, the motions differ by less than the rest offset does.
        g = groups[c]  # [n', k]
        moves_like = g[np.arange(len(c)), np.where(near[mixed], gap, np.inf).argmin(axis=1)]
        best[mixed] = ((g == moves_like[:, None]) & near[mixed]).argmax(axis=1)
    rows = np.arange(len(best))
    return dist[rows, best], cand[rows, best]


def flow_error(
    flow: ObjectFlow, reference: ObjectFlow, objects: list[str] | None = None
) -> list[ObjectFlowError]:
    """Per-object endpoint error of ``flow`` against ``reference``.

    The two flows sample the surfaces independently, so each point of ``flow`` is matched to a
    reference point near it at frame 0 (rest, ``match_points``), and their trajectories are compared.
    ``objects`` defaults to every object of ``flow``. Raises ChordError if the flows have different
    frame counts or an object is missing from the reference.
    """
    if flow.num_frames != reference.num_frames:
        raise ChordError(f"the flow has {flow.num_frames} frames, the reference {reference.num_frames}")
    out = []
    for name in objects or list(flow.object_names):
        if name not in reference.object_names:
            raise ChordError(f"object {name!r} is not in the reference flow ({list(reference.object_names)})")
        ours = flow.object_points(name).astype(np.float64)  # [T, n, 3]
        ref = reference.object_points(name).astype(np.float64)  # [T, m, 3]
        ref_still = np.linalg.norm(ref - ref[0], axis=-1).max(axis=0) < STILL_M  # [m]
        dist, match = match_points(ours, ref, ref_still.astype(np.int64))
        err = np.linalg.norm(ours - ref[:, match], axis=-1)  # [T, n]
        motion = np.linalg.norm(ref[-1] - ref[0], axis=-1).mean()
        still = ref_still[match]  # [n]

        # A static point's error is its drift: how far it moved from where it started (the
        # endpoint error would add the rest offset between the two samplings, 6 mm on the suite).
        drift = np.linalg.norm(ours - ours[0], axis=-1)  # [T, n]

        def part(sel: np.ndarray, e: np.ndarray) -> tuple[float | None, float | None]:
            if not sel.any():
                return None, None
            return 1000 * float(e[:, sel].mean()), 1000 * float(e[-1, sel].mean())

        out.append(
            ObjectFlowError(
                name,
                1000 * err.mean(),
                1000 * err[-1].mean(),
                1000 * err.max(),
                1000 * motion,
                1000 * dist.mean(),
                *part(~still, err),
                *part(still, drift),
                int(still.sum()),
            )
        )
    return out
