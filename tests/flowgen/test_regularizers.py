"""Regularisers: zero for the motions they allow, growing with the ones they penalise."""

from __future__ import annotations

import pytest
import torch

from flowgen.fenwick import ControlMotion
from flowgen.regularizers import ground_penetration, knn_edges, spatial_rigidity, temporal_smoothness
from flowgen.rotations import axis_angle_to_quat, quat_to_matrix


def _rigid(pos, num_frames, gen):
    """Per frame one rigid motion (R, t) of all points, as a ControlMotion about each p_k."""
    k = len(pos)
    Rs, ts, qs = [], [], []
    for _ in range(num_frames):
        q = axis_angle_to_quat(torch.randn(3, generator=gen, dtype=pos.dtype))
        R = quat_to_matrix(q)
        t = torch.randn(3, generator=gen, dtype=pos.dtype)
        Rs.append(R.expand(k, 3, 3))
        ts.append(pos @ R.T + t - pos)
        qs.append(q.expand(k, 4))
    return ControlMotion(torch.stack(Rs), torch.stack(ts), torch.stack(qs))


def test_spatial_rigidity_zero_for_rigid_motion_and_grows_with_stretch():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(30, 3, generator=gen, dtype=torch.float64) * 0.05
    obj = torch.tensor([0] * 18 + [1] * 12)
    edges = knn_edges(pos, obj, k=5)
    assert edges.shape == (30 * 5, 2) and (obj[edges[:, 0]] == obj[edges[:, 1]]).all()
    motion = _rigid(pos, 6, gen)
    assert spatial_rigidity(pos, motion, edges) < 1e-20
    losses = []
    for stretch in (0.01, 0.05, 0.2):
        t = motion.t + stretch * pos * torch.tensor([1.0, 0, 0], dtype=torch.float64)  # scale x
        losses.append(float(spatial_rigidity(pos, motion._replace(t=t), edges)))
    assert 0 < losses[0] < losses[1] < losses[2]
    assert losses[2] / losses[1] == pytest.approx(16.0, rel=1e-6)  # quadratic in the stretch


def test_temporal_smoothness_zero_at_constant_velocity_and_grows_with_jitter():
    gen = torch.Generator().manual_seed(1)
    rest = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    frames = torch.arange(41, dtype=torch.float64)[:, None, None]
    linear = rest + frames * v
    assert temporal_smoothness(linear) < 1e-20
    assert temporal_smoothness(rest.expand(41, 50, 3), order=1) == 0
    jitter = torch.randn(41, 50, 3, generator=gen, dtype=torch.float64)
    a, b = (float(temporal_smoothness(linear + s * jitter)) for s in (0.01, 0.02))
    assert a > 0 and b / a == pytest.approx(4.0, rel=1e-6)
    assert temporal_smoothness(linear, order=1) == pytest.approx(float((v * v).sum(1).mean()))
    with pytest.raises(ValueError, match="order must be 1 or 2, got 3"):
        temporal_smoothness(linear, order=3)


def test_ground_penetration():
    pts = torch.tensor([[[0.0, 0, 0.10], [0, 0, 0.02]]]).expand(3, 2, 3).clone()
    assert ground_penetration(pts, table_height=0.0) == 0
    pts[1, 1, 2] = -0.01  # 1 cm below a table at z = 0
    pts[2, 1, 2] = -0.03
    torch.testing.assert_close(ground_penetration(pts, 0.0), torch.tensor((0.01**2 + 0.03**2) / 6))
    assert ground_penetration(pts, 0.05) > ground_penetration(pts, 0.0)  # higher table
    # a point that starts 2 cm below the table may stay there, not sink further
    rest = torch.tensor([[0.0, 0, 0.10], [0, 0, -0.02]])
    torch.testing.assert_close(ground_penetration(pts, 0.0, rest), torch.tensor(0.01**2 / 6))
