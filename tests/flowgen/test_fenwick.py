"""Fenwick-tree deformation: query = cumulative sum, node spans, rest pose, split, gradients."""

from __future__ import annotations

import pytest
import torch

from flowgen.fenwick import Deformation, lowbit, nodes_from_frames, path_matrix
from flowgen.rotations import axis_angle_to_quat, quat_to_matrix


def _classic_fenwick(increments: torch.Tensor) -> torch.Tensor:
    """Nodes built by the textbook update loop: add a_i at i, i + lowbit(i), ... (1-based)."""
    n = increments.shape[0]
    nodes = torch.zeros_like(increments)
    for i in range(1, n + 1):
        j = i
        while j <= n:
            nodes[j - 1] += increments[i - 1]
            j += lowbit(j)
    return nodes


def _walk_query(nodes: torch.Tensor, t: int) -> torch.Tensor:
    out = torch.zeros_like(nodes[0])
    while t > 0:
        out += nodes[t - 1]
        t -= lowbit(t)
    return out


@pytest.mark.parametrize("num_frames", range(1, 65))
def test_query_equals_cumulative_sum(num_frames):
    gen = torch.Generator().manual_seed(num_frames)
    k = 3
    d = Deformation(
        torch.randn(k, 3, generator=gen), torch.zeros(k), torch.ones(k), num_frames, dtype=torch.float64
    )
    increments = torch.randn(num_frames - 1, k, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        d.rot_nodes.copy_(_classic_fenwick(increments))
        d.trans_nodes.copy_(_classic_fenwick(2 * increments))
    omega, trans = d.frame_vectors()
    expect = torch.cat([torch.zeros(1, k, 3, dtype=torch.float64), increments.cumsum(0)])
    torch.testing.assert_close(omega, expect, rtol=0, atol=1e-12)
    torch.testing.assert_close(trans, 2 * expect, rtol=0, atol=1e-12)
    # and random nodes equal the textbook path walk
    nodes = torch.randn(num_frames - 1, k, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        d.rot_nodes.copy_(nodes)
    walked = (
        torch.stack(
            [
                _walk_query(nodes, t) if t else torch.zeros(k, 3, dtype=torch.float64)
                for t in range(num_frames)
            ]
        )
        if num_frames > 1
        else torch.zeros(1, k, 3)
    )
    torch.testing.assert_close(d.frame_vectors()[0], walked.to(torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("num_frames", [2, 9, 16, 41, 64])
def test_node_j_changes_exactly_frames_j_to_j_plus_lowbit(num_frames):
    d = Deformation(torch.zeros(2, 3), torch.zeros(2), torch.ones(2), num_frames)
    for j in range(1, num_frames):
        with torch.no_grad():
            d.trans_nodes.zero_()
            d.trans_nodes[j - 1, 1, 0] = 1.0
        moved = d.frame_vectors()[1][:, 1, 0] != 0
        expect = torch.zeros(num_frames, dtype=torch.bool)
        expect[j : min(j + lowbit(j), num_frames)] = True
        assert torch.equal(moved, expect), (j, moved.nonzero().ravel().tolist())
        assert not d.frame_vectors()[1][:, 0].any()  # other control point untouched


def test_spans_of_named_nodes():
    m = path_matrix(41)
    assert m[:, 8 - 1].nonzero().ravel().tolist() == list(range(8, 16))
    assert m[:, 5 - 1].nonzero().ravel().tolist() == [5]
    assert m[:, 32 - 1].nonzero().ravel().tolist() == list(range(32, 41))  # clipped at T - 1
    assert m[0].sum() == 0 and m[15].sum() == 4  # 15 = 8 + 4 + 2 + 1


def test_zero_parameters_are_rest_pose():
    d = Deformation(torch.randn(5, 3), torch.zeros(5), torch.ones(5), 41)
    R, t, q = d()
    assert R.shape == (41, 5, 3, 3) and t.shape == (41, 5, 3) and q.shape == (41, 5, 4)
    torch.testing.assert_close(R, torch.eye(3).expand(41, 5, 3, 3), rtol=0, atol=0)
    assert not t.any()
    torch.testing.assert_close(q, torch.tensor([1.0, 0, 0, 0]).expand(41, 5, 4), rtol=0, atol=0)


def test_summed_rotations_about_one_axis_compose_exactly():
    d = Deformation(torch.zeros(1, 3), torch.zeros(1), torch.ones(1), 5, dtype=torch.float64)
    axis = torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64)
    with torch.no_grad():
        d.rot_nodes.copy_(0.3 * axis.expand(4, 1, 3))  # nodes 1..4
    R = d().R[:, 0]
    step = quat_to_matrix(axis_angle_to_quat(0.3 * axis))
    # frame 3 = nodes 3 + 2 = 2 steps, frame 4 = node 4 = 1 step
    torch.testing.assert_close(R[3], step @ step)
    torch.testing.assert_close(R[4], step)


def test_split_copies_frame_f_to_all_later_frames():
    gen = torch.Generator().manual_seed(0)
    d = Deformation(torch.randn(4, 3), torch.zeros(4), torch.ones(4), 41)
    with torch.no_grad():
        d.rot_nodes.normal_(generator=gen)
        d.trans_nodes.normal_(generator=gen)
    before_R, before_t, _ = d()
    d.split(30)
    R, t, _ = d()
    torch.testing.assert_close(R[:31], before_R[:31], rtol=0, atol=1e-6)
    torch.testing.assert_close(t[:31], before_t[:31], rtol=0, atol=1e-6)
    torch.testing.assert_close(R[31:], before_R[30].expand(10, 4, 3, 3), rtol=0, atol=1e-5)
    torch.testing.assert_close(t[31:], before_t[30].expand(10, 4, 3), rtol=0, atol=1e-5)
    assert not torch.allclose(before_t[31:], before_t[30].expand(10, 4, 3))  # it did change
    with pytest.raises(ValueError, match="split frame must be in 0..40, got 41"):
        d.split(41)


def test_set_frames_round_trip_and_rejects_moving_frame_0():
    gen = torch.Generator().manual_seed(1)
    d = Deformation(torch.randn(3, 3), torch.zeros(3), torch.ones(3), 13, dtype=torch.float64)
    omega = torch.randn(13, 3, 3, generator=gen, dtype=torch.float64)
    omega[0] = 0
    d.set_frames(omega, 2 * omega)
    o, t = d.frame_vectors()
    torch.testing.assert_close(o, omega)
    torch.testing.assert_close(t, 2 * omega)
    torch.testing.assert_close(nodes_from_frames(omega), d.rot_nodes.detach())
    omega[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"omega\[0\] must be zero"):
        d.set_frames(omega, omega)


def test_frames_subset_matches_full_query():
    gen = torch.Generator().manual_seed(2)
    d = Deformation(torch.randn(3, 3), torch.zeros(3), torch.ones(3), 17)
    with torch.no_grad():
        d.rot_nodes.normal_(generator=gen)
    frames = torch.tensor([16, 0, 5])
    torch.testing.assert_close(d(frames).R, d().R[frames])
    with pytest.raises(ValueError, match=r"frames must be in 0..16, got \[17\]"):
        d(torch.tensor([17]))


def test_bad_construction():
    with pytest.raises(ValueError, match="non-decreasing"):
        Deformation(torch.zeros(3, 3), torch.tensor([0, 1, 0]), torch.ones(3), 5)
    with pytest.raises(ValueError, match="scales must be > 0"):
        Deformation(torch.zeros(2, 3), torch.zeros(2), torch.tensor([1.0, 0.0]), 5)
    with pytest.raises(ValueError, match="num_frames must be >= 1, got 0"):
        Deformation(torch.zeros(2, 3), torch.zeros(2), torch.ones(2), 0)
