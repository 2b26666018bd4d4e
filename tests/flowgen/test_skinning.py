"""Skinning: exact rigid motion, objects kept apart, weights through Sigma_k, gradients."""

from __future__ import annotations

import torch

from flowgen.fenwick import Deformation, query
from flowgen.rotations import axis_angle_to_quat, normalize_quat, quat_multiply, quat_to_matrix
from flowgen.skinning import bind, blend, skin, skin_weights


def _two_objects(gen, dtype=torch.float32):
    k0, k1 = 12, 7
    pos = torch.cat(
        [
            torch.randn(k0, 3, generator=gen) * 0.05 + torch.tensor([0.5, 0, 0.05]),
            torch.randn(k1, 3, generator=gen) * 0.03 + torch.tensor([0.3, 0.2, 0.03]),
        ]
    )
    obj = torch.tensor([0] * k0 + [1] * k1)
    return pos.to(dtype), obj


def _rigid_frames(pos, obj, num_frames, gen):
    """Per frame and object: a random rotation vector and translation, as control-point vectors."""
    k = len(pos)
    omega = torch.zeros(num_frames, k, 3, dtype=pos.dtype)
    trans = torch.zeros(num_frames, k, 3, dtype=pos.dtype)
    truth = {}
    for f in range(1, num_frames):
        for o in (0, 1):
            w = torch.randn(3, generator=gen, dtype=pos.dtype)
            t = 0.1 * torch.randn(3, generator=gen, dtype=pos.dtype)
            R = quat_to_matrix(axis_angle_to_quat(w))
            m = obj == o
            omega[f, m] = w
            trans[f, m] = pos[m] @ R.T + t - pos[m]  # p_k -> R p_k + t
            truth[f, o] = (R, t, axis_angle_to_quat(w))
    return omega, trans, truth


def test_identical_rigid_motion_moves_everything_by_that_motion():
    gen = torch.Generator().manual_seed(0)
    pos, obj = _two_objects(gen)
    T = 9
    d = Deformation(pos, obj, torch.full((len(pos),), 0.03), T)
    with torch.no_grad():  # arbitrary covariances: the rigid result must not depend on them
        d.cov_log_scales.add_(0.3 * torch.randn(d.cov_log_scales.shape, generator=gen))
        d.cov_quats.copy_(normalize_quat(torch.randn(len(pos), 4, generator=gen)))
    omega, trans, truth = _rigid_frames(pos, obj, T, gen)
    d.set_frames(omega, trans)
    n = 400
    pobj = torch.randint(0, 2, (n,), generator=gen)
    centre = torch.tensor([[0.5, 0, 0.05], [0.3, 0.2, 0.03]])[pobj]
    pts = centre + 0.08 * torch.randn(n, 3, generator=gen)  # Gaussians and query points alike
    gq = normalize_quat(torch.randn(n, 4, generator=gen))
    b = bind(pts, pobj, d.positions, d.object_index, k=4)
    means, quats = skin(d, b, gq)
    query, none = skin(d, b)
    assert none is None and means.shape == (T, n, 3) and quats.shape == (T, n, 4)
    torch.testing.assert_close(means[0], pts, rtol=0, atol=1e-6)
    torch.testing.assert_close(quats[0], gq, rtol=0, atol=1e-6)
    for (f, o), (R, t, q) in truth.items():
        m = pobj == o
        torch.testing.assert_close(means[f, m], pts[m] @ R.T + t, rtol=0, atol=1e-5)
        torch.testing.assert_close(query[f, m], pts[m] @ R.T + t, rtol=0, atol=1e-5)
        expect = quat_multiply(q.expand(int(m.sum()), 4), gq[m])
        sign = torch.sign((quats[f, m] * expect).sum(-1, keepdim=True))  # q and -q: same rotation
        torch.testing.assert_close(quats[f, m] * sign, expect, rtol=0, atol=1e-5)


def test_objects_never_share_control_points():
    gen = torch.Generator().manual_seed(1)
    pos, obj = _two_objects(gen)
    d = Deformation(pos, obj, torch.full((len(pos),), 0.5), 4)  # huge Sigma: would reach across
    pts = torch.tensor([[0.3, 0.2, 0.03], [0.5, 0.0, 0.05]])  # each right at the other's cloud
    b = bind(pts, torch.tensor([0, 1]), d.positions, d.object_index, k=30)
    assert (obj[b.neighbors[0]] == 0).all() and (obj[b.neighbors[1]] == 1).all()
    assert b.valid[0].sum() == 12 and b.valid[1].sum() == 7  # fewer than k: padded, masked
    with torch.no_grad():
        d.trans_nodes[:2, obj == 1] = 1.0  # nodes 1, 2: frames 1..3 move by 1, object 1 only
    moved, _ = skin(d, b)
    torch.testing.assert_close(moved[1:, 0], pts[0].expand(3, 3), rtol=0, atol=0)
    torch.testing.assert_close(moved[1:, 1] - pts[1], torch.ones(3, 3), rtol=0, atol=1e-5)


def test_weights_follow_covariance():
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    d = Deformation(pos, torch.zeros(2), torch.full((2,), 0.5), 2)
    b = bind(torch.tensor([[0.5, 0, 0], [0.25, 0, 0]]), torch.zeros(2), pos, d.object_index, k=2)
    w = skin_weights(b, d.positions, d.cov_log_scales, d.cov_quats)
    torch.testing.assert_close(w.sum(1), torch.ones(2))
    torch.testing.assert_close(w[0], torch.tensor([0.5, 0.5]))  # midpoint, equal Sigma
    # point 1 at x = 0.25: exp(-0.5 * (0.25/0.5)^2) vs exp(-0.5 * (0.75/0.5)^2)
    a, c = torch.exp(torch.tensor(-0.125)), torch.exp(torch.tensor(-1.125))
    torch.testing.assert_close(w[1], torch.stack([a, c]) / (a + c))
    with torch.no_grad():  # widen control point 1 along x only: it gains weight at the midpoint
        d.cov_log_scales[1, 0] += 1.0
    w2 = skin_weights(b, d.positions, d.cov_log_scales, d.cov_quats)
    assert w2[0, 1] > 0.6
    with torch.no_grad():  # rotate that covariance 90 degrees about z: its long axis is now y
        d.cov_quats[1] = torch.tensor([0.5**0.5, 0, 0, 0.5**0.5])
    w3 = skin_weights(b, d.positions, d.cov_log_scales, d.cov_quats)
    torch.testing.assert_close(w3[0], torch.tensor([0.5, 0.5]))


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)
    pos = torch.randn(4, 3, generator=gen, dtype=torch.float64) * 0.1
    d = Deformation(
        pos, torch.tensor([0, 0, 1, 1]), torch.full((4,), 0.1, dtype=torch.float64), 5, dtype=torch.float64
    )
    pts = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 0.1
    gq = normalize_quat(torch.randn(6, 4, generator=gen, dtype=torch.float64))
    b = bind(pts, torch.tensor([0, 0, 0, 1, 1, 1]), d.positions, d.object_index, k=2)
    start = [
        0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in (d.rot_nodes, d.trans_nodes)
    ]
    start[0][0] = 0.0  # node 1 at exactly zero rotation: the exp map's Taylor branch

    def f(rot, trans, log_s, cq):
        motion = query(d.path, rot, trans)
        w = skin_weights(b, d.positions, log_s, cq)
        return blend(b, w, motion, d.positions, gq)

    inputs = (
        start[0],
        start[1],
        d.cov_log_scales.detach().clone() + 0.1,
        normalize_quat(torch.randn(4, 4, generator=gen, dtype=torch.float64)),
    )
    inputs = tuple(x.requires_grad_(True) for x in inputs)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)
