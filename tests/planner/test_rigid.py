"""Weighted and robust Kabsch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from planner.rigid import apply, kabsch, robust_track, rotation_angle


def _random_T(rng) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=rng.integers(1 << 30)).as_matrix()
    T[:3, 3] = rng.normal(0, 0.3, 3)
    return T


def test_kabsch_recovers_transform_batched():
    rng = np.random.default_rng(0)
    src = rng.normal(0, 0.1, (5, 50, 3))
    Ts = np.stack([_random_T(rng) for _ in range(5)])
    dst = apply(Ts, src)
    np.testing.assert_allclose(kabsch(src, dst), Ts, atol=1e-10)
    # A reflection is never returned: det(R) = +1 even for planar (degenerate) input.
    flat = src[0].copy()
    flat[:, 2] = 0
    R = kabsch(flat, apply(Ts[0], flat))[:3, :3]
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_kabsch_weights_ignore_zero_weight_points():
    rng = np.random.default_rng(1)
    src = rng.normal(0, 0.1, (40, 3))
    T = _random_T(rng)
    dst = apply(T, src)
    dst[:10] += rng.normal(0, 0.5, (10, 3))  # garbage, weighted out
    w = np.r_[np.zeros(10), np.ones(30)]
    np.testing.assert_allclose(kabsch(src, dst, w), T, atol=1e-10)
    with pytest.raises(ValueError, match="weights"):
        kabsch(src, dst, np.zeros(40))


def test_robust_track_rejects_outlier_trajectories_and_reports_residual():
    rng = np.random.default_rng(2)
    T_, n = 11, 400
    pts = rng.uniform(-0.05, 0.05, (n, 3))
    motion = np.stack([np.eye(4)] + [_random_T(rng) for _ in range(T_ - 1)])
    traj = apply(motion, pts)
    bad = rng.random(n) < 0.2
    traj[1:, bad] += rng.normal(0, 0.05, (T_ - 1, bad.sum(), 3))
    track = robust_track(traj)
    err_R = np.degrees(rotation_angle((np.linalg.inv(motion) @ track.motion)[:, :3, :3])).max()
    err_t = np.abs(track.motion[:, :3, 3] - motion[:, :3, 3]).max()
    assert err_R < 0.05 and err_t < 1e-4, (err_R, err_t)
    assert track.weights[bad].max() < 0.05 < track.weights[~bad].min()
    # Plain Kabsch on the same data is visibly wrong: the robustness is doing the work.
    plain = kabsch(np.broadcast_to(traj[0], traj.shape), traj)
    assert np.degrees(rotation_angle((np.linalg.inv(motion) @ plain)[:, :3, :3])).max() > 1.0
    # The residual of a clean rigid track is ~0; a non-rigid (stretching) motion is flagged.
    assert robust_track(apply(motion, np.broadcast_to(pts, (T_, n, 3)))).residual_max_rms < 1e-9
    stretch = traj.copy()
    stretch[:, ~bad] = np.linspace(1.0, 1.5, T_)[:, None, None] * apply(motion, pts)[:, ~bad]
    assert robust_track(stretch[:, ~bad]).residual_max_rms > 0.01
