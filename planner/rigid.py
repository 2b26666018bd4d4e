"""Rigid motion from point correspondences: weighted Kabsch and its robust (IRLS) version.

A part's track is the world motion M_t that carries its points from frame 0 to frame t
(p_i(t) ~ M_t p_i(0)). The part frame is placed at the part's frame-0 centroid with world
axes, so T_world_part(t) = M_t @ T_world_part(0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def kabsch(
    src: np.ndarray,  # [..., n, 3]
    dst: np.ndarray,  # [..., n, 3]
    weights: np.ndarray | None = None,  # [..., n] >= 0
) -> np.ndarray:
    """Weighted least-squares rigid transform [..., 4, 4] with dst ~ R src + t.

    Batched over leading axes. Raises ValueError if the shapes disagree or all weights are 0.
    """
    src, dst = np.asarray(src, dtype=float), np.asarray(dst, dtype=float)
    if src.shape != dst.shape or src.shape[-1] != 3:
        raise ValueError(f"kabsch: src {src.shape} and dst {dst.shape} must both be [..., n, 3]")
    w = np.ones(src.shape[:-1]) if weights is None else np.broadcast_to(weights, src.shape[:-1])
    wsum = w.sum(-1, keepdims=True)
    if (wsum <= 0).any():
        raise ValueError("kabsch: weights sum to zero")
    wn = (w / wsum)[..., None]
    cs, cd = (wn * src).sum(-2), (wn * dst).sum(-2)
    H = np.einsum("...ni,...nj->...ij", wn * (src - cs[..., None, :]), dst - cd[..., None, :])
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.swapaxes(-1, -2) @ U.swapaxes(-1, -2)))
    d = np.where(d == 0, 1.0, d)
    D = np.zeros(H.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    R = Vt.swapaxes(-1, -2) @ D @ U.swapaxes(-1, -2)
    T = np.zeros((*H.shape[:-2], 4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = cd - np.einsum("...ij,...j->...i", R, cs)
    T[..., 3, 3] = 1.0
    return T


def apply(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Apply transforms T [..., 4, 4] to points p [..., n, 3] -> [..., n, 3]."""
    return np.matmul(p, T[..., :3, :3].swapaxes(-1, -2)) + T[..., None, :3, 3]


@dataclass(frozen=True)
class RigidTrack:
    """A rigid part's motion over T frames, fitted robustly."""

    T_world_part: np.ndarray  # [T, 4, 4] part frame (frame-0 centroid, world axes) in world
    motion: np.ndarray  # [T, 4, 4] M_t: world motion from frame 0 to frame t (M_0 = I)
    residual_rms: np.ndarray  # [T] metres, weighted RMS residual of the fit per frame
    inlier_fraction: float  # share of points whose residual stays under the inlier scale
    weights: np.ndarray  # [n] final robust weight of each point, in [0, 1]

    @property
    def residual_max_rms(self) -> float:
        """Worst per-frame RMS residual (metres): large means the part is not moving rigidly."""
        return float(self.residual_rms.max())


def robust_track(
    traj: np.ndarray,  # [T, n, 3] world metres
    *,
    iters: int = 10,
    scale_floor: float = 0.002,  # metres: Cauchy scale never drops below this (sensor noise)
    max_points: int = 2000,  # IRLS runs on at most this many trajectories (seeded subsample)
) -> RigidTrack:
    """Per-frame SE(3) of one rigid part by IRLS-weighted Kabsch with a Cauchy loss.

    Each point gets one weight for the whole track (an outlier is a bad trajectory, not a bad
    sample), from its RMS residual over frames; the Cauchy scale is 2.5 x the median residual
    (floored at ``scale_floor``). Large parts are fitted on a fixed random subsample of
    ``max_points`` trajectories (ample for a 6-DoF fit); every point still gets its weight.
    Raises ValueError on fewer than 3 points.
    """
    traj = np.asarray(traj, dtype=float)
    if traj.ndim != 3 or traj.shape[2] != 3 or traj.shape[1] < 3:
        raise ValueError(f"robust_track: traj must be [T, n>=3, 3], got {traj.shape}")
    n = traj.shape[1]
    full = traj
    if n > max_points:
        traj = traj[:, np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))]
    src = np.broadcast_to(traj[0], traj.shape)
    w = np.ones(traj.shape[1])
    scale = np.inf
    for _ in range(iters):
        M = kabsch(src, traj, w)
        r = np.sqrt(((apply(M, traj[0]) - traj) ** 2).sum(-1).mean(0))  # [n]
        scale = max(2.5 * float(np.median(r)), scale_floor)
        w_new = 1.0 / (1.0 + (r / scale) ** 2)
        if np.abs(w_new - w).max() < 1e-4:
            w = w_new
            break
        w = w_new
    M = kabsch(src, traj, w)
    M[0] = np.eye(4)  # frame 0 is the reference by definition; fit noise there is meaningless
    traj = full
    res = ((apply(M, traj[0]) - traj) ** 2).sum(-1)  # [T, n]
    w = 1.0 / (1.0 + (np.sqrt(res.mean(0)) / scale) ** 2)
    rms = np.sqrt((res * w).sum(1) / w.sum())
    rms[0] = 0.0
    r = np.sqrt(res.mean(0))
    T0 = np.eye(4)
    T0[:3, 3] = (w[:, None] * traj[0]).sum(0) / w.sum()
    return RigidTrack(
        T_world_part=M @ T0,
        motion=M,
        residual_rms=rms,
        inlier_fraction=float((r < 2.0 * scale).mean()),
        weights=w,
    )


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Rotation angle [...] (rad) of rotation matrices [..., 3, 3]."""
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(c, -1.0, 1.0))
