"""Split each object's flow into rigid parts, robust to noise and outlier trajectories.

Sequential RANSAC over whole trajectories: a hypothesis is a per-frame rigid motion fitted to a
few neighbouring points (plus the "static" hypothesis), scored by how many trajectories it
explains over all frames; the best is refined (robust Kabsch on its inliers, LO-RANSAC), its
points removed, and the search repeats. Points that no part explains are outliers (label -1).
The inlier threshold adapts to the flow's noise, estimated from trajectory roughness.

That estimate sees frame-to-frame jitter, not slow drift (a 2D tracker sliding along a smooth
surface), and drift can split one rigid object into pieces whose motions differ by more than the
threshold. So parts of one object are then merged, pair by pair, while one rigid track fitted to
both keeps each within ``noise_factor`` x the flow's drift of its own track (RMS over the
part's points and the frames, as a trajectory's residual is measured). The drift is measured on
the pair itself (:func:`merge_bound`): the part of the two parts' RMS residual about their own
tracks that the estimated jitter (sqrt(6) sigma) does not explain. A piece of a drifting flow is
rigid only within RANSAC's threshold; a part of a clean or merely noisy flow is rigid to its
noise, so its joints stay. Relative motions
beyond that are joints, however small: no bound on the size of a motion, none borrowed from the
simulator's success tolerances.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.spatial import cKDTree

from planner.config import SegmentConfig as SegmentConfig  # re-exported: callers import it from here
from planner.rigid import RigidTrack, apply, kabsch, robust_track, rotation_angle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One rigid part of one object."""

    object_name: str
    indices: np.ndarray  # [n] int, indices of its points in the flow
    track: RigidTrack  # its SE(3) over time
    motion: float  # metres: largest displacement of any of its points from frame 0
    moving: bool  # motion >= SegmentConfig.motion_threshold


@dataclass(frozen=True)
class ObjectSegmentation:
    """An object's points split into rigid parts."""

    name: str
    indices: np.ndarray  # [n] int, the object's point indices in the flow
    labels: np.ndarray  # [n] int, part index per point, -1 for outliers
    parts: tuple[Part, ...]  # sorted: largest part first
    threshold: float  # metres, the inlier threshold used
    noise_sigma: float  # metres, estimated per-axis noise of the flow
    merged: int = 0  # RANSAC parts merged into others (relative motion within the flow's error)

    @property
    def outlier_fraction(self) -> float:
        return float((self.labels < 0).mean())


def estimate_noise(traj: np.ndarray) -> float:  # traj: [T, n, 3]
    """Per-axis noise sigma (metres) from second differences along time (median over points).

    For smooth motion sampled densely the second difference is dominated by independent noise,
    whose per-axis std is sqrt(6) sigma.
    """
    if traj.shape[0] < 3:
        return 0.0
    d2 = traj[2:] - 2 * traj[1:-1] + traj[:-2]  # [T-2, n, 3]
    per_point = np.sqrt((d2**2).mean(axis=(0, 2)))
    return float(np.median(per_point) / np.sqrt(6.0))


def _residuals(M: np.ndarray, traj: np.ndarray) -> np.ndarray:
    """RMS-over-frames residual [..., n] of trajectories traj [T, n, 3] under motions M [..., T, 4, 4]."""
    pred = apply(M, np.broadcast_to(traj[0], (*M.shape[:-2], *traj.shape[1:])))
    return np.sqrt(((pred - traj) ** 2).sum(-1).mean(-2))


def _motion_extent(M: np.ndarray, pts0: np.ndarray) -> float:
    """Largest displacement (m) of points pts0 [n, 3] under motions M [T, 4, 4]."""
    return float(np.linalg.norm(apply(M, pts0) - pts0[None], axis=-1).max())


def track_deviation(
    M_a: np.ndarray,  # [T, 4, 4] world motion from frame 0
    M_b: np.ndarray,  # [T, 4, 4] world motion from frame 0
    pts0: np.ndarray,  # [n, 3] frame-0 points, world metres
) -> tuple[float, float]:
    """How far two motions carry the same points apart: (metres, degrees), each the worst frame.

    Metres: the RMS over ``pts0`` of |M_a(t) p - M_b(t) p|; degrees: the rotation between them.
    """
    rel = np.linalg.inv(M_a) @ M_b  # |M_b p - M_a p| = |rel p - p|: M_a is rigid
    dist = np.sqrt(((apply(rel, pts0) - pts0) ** 2).sum(-1).mean(-1)).max()
    return float(dist), float(np.degrees(rotation_angle(rel[:, :3, :3]).max()))


def rms_deviation(M_a: np.ndarray, M_b: np.ndarray, pts0: np.ndarray) -> float:
    """Metres: the RMS over points ``pts0`` [n, 3] and frames of |M_a(t) p - M_b(t) p| (motions
    [T, 4, 4] from frame 0): the same average as a trajectory's residual (RMS over frames), so
    it compares with :func:`merge_bound`."""
    rel = np.linalg.inv(M_a) @ M_b  # |M_b p - M_a p| = |rel p - p|: M_a is rigid
    return float(np.sqrt(((apply(rel, pts0) - pts0) ** 2).sum(-1).mean()))


def merge_bound(
    traj: np.ndarray,  # [T, n, 3] world metres, one object's trajectories
    groups: list[np.ndarray],  # the parts' indices into traj's points
    tracks: list[RigidTrack],  # their own tracks
    sigma: float,  # metres, the flow's per-axis noise (estimate_noise)
    config: SegmentConfig,
) -> float:
    """Metres: how far one rigid track may carry these parts from their own tracks (RMS over
    their points and frames) and still call them one part: noise_factor x their drift, the part
    of their residual about their own tracks (RMS over points and frames) that frame-to-frame
    noise does not explain, sqrt(max(0, r^2 - 6 sigma^2)). Jitter averages out of a track fitted
    to many points, so only a systematic bend of the flow (drift) can make the tracks of one rigid
    object's pieces differ; an exact or merely noisy flow has none and merges nothing."""
    res = np.concatenate([_residuals(t.motion, traj[:, g]) for g, t in zip(groups, tracks, strict=True)])
    drift2 = float((res**2).mean()) - 6.0 * sigma**2
    return float(config.noise_factor * np.sqrt(max(drift2, 0.0)))


def merge_parts(
    traj: np.ndarray,  # [T, n, 3] world metres, one object's trajectories
    groups: list[np.ndarray],  # per part: indices into traj's points
    tracks: list[RigidTrack],  # per part: its fitted track
    config: SegmentConfig,
    sigma: float = 0.0,  # metres: the flow's per-axis noise (estimate_noise)
    name: str = "object",
) -> tuple[list[np.ndarray], list[RigidTrack]]:
    """Merge parts whose relative motion is within the flow's error; see the module docstring.

    Greedy: each round refits one track to the union of every pair and merges the pair whose
    worse part deviates least from the union's track (:func:`rms_deviation`), relative to
    :func:`merge_bound`, until no pair is within it. Returns the new groups and tracks.
    """
    groups, tracks = list(groups), list(tracks)
    if not config.merge:
        return groups, tracks
    while len(groups) > 1:
        best: tuple[float, int, int, np.ndarray, RigidTrack, list[tuple[float, float]], float] | None = None
        for i, j in combinations(range(len(groups)), 2):
            bound = merge_bound(traj, [groups[i], groups[j]], [tracks[i], tracks[j]], sigma, config)
            if bound <= 0:
                continue  # an exact flow: any relative motion is a joint
            union = np.sort(np.concatenate([groups[i], groups[j]]))  # track.weights follow this order
            merged = robust_track(traj[:, union])
            rms = [rms_deviation(tracks[k].motion, merged.motion, traj[0, groups[k]]) for k in (i, j)]
            score = max(rms) / bound
            devs = [track_deviation(tracks[k].motion, merged.motion, traj[0, groups[k]]) for k in (i, j)]
            if score <= 1.0 and (best is None or score < best[0]):
                best = (score, i, j, union, merged, devs, bound)
        if best is None:
            break
        _, i, j, union, merged, devs, bound = best
        log.info(
            "segment %s: merged parts of %d and %d points: one track keeps them within %.1f mm / %.1f deg "
            "and %.1f mm / %.1f deg of their own at worst (RMS over frames within the bound %.1f mm)",
            name, len(groups[i]), len(groups[j]), 1000 * devs[0][0], devs[0][1], 1000 * devs[1][0],
            devs[1][1], 1000 * bound,
        )  # fmt: skip
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [union]
        tracks = [t for k, t in enumerate(tracks) if k not in (i, j)] + [merged]
    return groups, tracks


def segment_object(
    traj: np.ndarray,  # [T, n, 3] world metres
    name: str = "object",
    indices: np.ndarray | None = None,  # [n] flow indices of these points
    config: SegmentConfig = SegmentConfig(),
) -> ObjectSegmentation:
    """Split one object's trajectories into rigid parts; see the module docstring.

    Raises ValueError if there are fewer than 4 points.
    """
    traj = np.asarray(traj, dtype=float)
    T, n, _ = traj.shape
    if n < 4:
        raise ValueError(f"segment_object: object {name!r} has {n} points, need at least 4")
    indices = np.arange(n) if indices is None else np.asarray(indices)
    rng = np.random.default_rng(config.seed)
    sigma = estimate_noise(traj)
    # Noise on frame 0 and on frame t both enter the residual: sqrt(3 + 3) sigma in 3D.
    thr = max(config.inlier_threshold, config.noise_factor * np.sqrt(6.0) * sigma)
    identity = np.broadcast_to(np.eye(4), (T, 4, 4)).copy()

    remaining = np.ones(n, bool)
    motions: list[np.ndarray] = []
    min_pts = max(4, int(np.ceil(config.min_part_fraction * n)))
    while remaining.sum() >= min_pts and len(motions) < config.max_parts:
        idx = np.flatnonzero(remaining)
        sub = idx if len(idx) <= config.score_points else rng.choice(idx, config.score_points, replace=False)
        hyps = [identity[None]]
        k = min(config.neighbours, len(idx))
        tree = cKDTree(traj[0, idx])
        centres = rng.choice(len(idx), config.hypotheses)
        _, nn = tree.query(traj[0, idx[centres]], k=k)
        nn = np.asarray(nn).reshape(len(centres), k)
        pick = np.argsort(rng.random((len(centres), k)), axis=1)[:, : config.sample_size]
        samples = idx[np.take_along_axis(nn, pick, axis=1)]  # [H, s]
        src = traj[0, samples]  # [H, s, 3]
        dst = traj[:, samples].transpose(1, 0, 2, 3)  # [H, T, s, 3]
        hyps.append(kabsch(np.broadcast_to(src[:, None], dst.shape), dst))
        M_all = np.concatenate(hyps)  # [H+1, T, 4, 4]
        # Scoring on ~11 frames spread over the flow is as selective as all of them, and cheaper.
        frames = np.unique(np.linspace(0, T - 1, min(T, 11)).round().astype(int))
        score = (_residuals(M_all[:, frames], traj[frames][:, sub]) < thr).sum(-1)
        best = M_all[int(np.argmax(score))]
        # Local optimisation: refit on all inliers among the remaining points, twice.
        for _ in range(2):
            inl = idx[_residuals(best[frames], traj[frames][:, idx]) < thr]
            if len(inl) < 3:
                break
            best = robust_track(traj[:, inl]).motion
        inl = idx[_residuals(best, traj[:, idx]) < thr]
        if len(inl) < min_pts:
            break
        motions.append(best)
        remaining[inl] = False

    if not motions:
        raise ValueError(
            f"segment_object: no rigid part of object {name!r} explains {min_pts} of its {n} "
            f"trajectories within {1000 * thr:.1f} mm; is this flow of a rigid or articulated object?"
        )
    # Final assignment: each point to the motion that explains it best, if any does.
    R = np.stack([_residuals(M, traj) for M in motions])  # [P, n]
    labels = np.where(R.min(0) < thr, R.argmin(0), -1)
    groups = [np.flatnonzero(labels == j) for j in range(len(motions))]
    groups = [g for g in groups if len(g) >= min_pts]
    tracks = [robust_track(traj[:, g]) for g in groups]
    found = len(groups)
    groups, tracks = merge_parts(traj, groups, tracks, config, sigma, name)
    parts: list[Part] = []
    for members, track in zip(groups, tracks, strict=True):
        motion = _motion_extent(track.motion, traj[0, members])
        parts.append(Part(name, indices[members], track, motion, motion >= config.motion_threshold))
    parts.sort(key=lambda p: -len(p.indices))
    pos = {int(i): k for k, p in enumerate(parts) for i in p.indices}
    labels = np.array([pos.get(int(i), -1) for i in indices])
    log.debug(
        "segment %s: %d parts %s, %.1f%% outliers, threshold %.1f mm, noise %.2f mm",
        name,
        len(parts),
        [len(p.indices) for p in parts],
        100 * (labels < 0).mean(),
        1000 * thr,
        1000 * sigma,
    )
    return ObjectSegmentation(name, indices, labels, tuple(parts), float(thr), sigma, found - len(parts))


def max_rotation_deg(track: RigidTrack) -> float:
    """Largest rotation (degrees) of a track relative to frame 0."""
    return float(np.degrees(rotation_angle(track.motion[:, :3, :3]).max()))
