"""Skinning: points and Gaussians follow the control points of their own object.

A point x of object o binds, at rest, to its k nearest control points of object o (Euclidean
distance to p_k; p_k never move at rest, so the binding is computed once). Its weights are

    w_ik = softmax_k(-0.5 d^T Sigma_k^-1 d),  d = x - p_k,  Sigma_k = R_k diag(sigma_k^2) R_k^T

(normalised Gaussians, computed as a softmax so far points never divide by zero). Each control
point's motion is the affine map A_k = [R_k | p_k + t_k - R_k p_k]; a point moves by the blend
sum_k w_ik A_k, and a Gaussian's rotation by the normalised blend of the control quaternions.
An identical rigid motion of all control points is therefore reproduced exactly.

The blend is one dense matmul per object ([N_o, K_o] weights x [K_o, F * 16] transforms), which
is fast on CPU and GPU; objects are few, so the loop over objects is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flowgen.fenwick import ControlMotion, Deformation
from flowgen.rotations import normalize_quat, quat_right_matrix, quat_to_matrix


@dataclass(frozen=True)
class SkinBinding:
    """Which control points each rest point blends, grouped by object."""

    rest: Tensor  # [N, 3] rest positions, world metres
    neighbors: Tensor  # [N, k] long, global control point index (padded with the nearest)
    valid: Tensor  # [N, k] bool, False where an object has fewer than k control points
    groups: tuple[tuple[Tensor, int, int], ...]  # per object: (point indices, first cp, end cp)
    inverse: Tensor | None  # [N] long: concatenated group order -> original point order;
    # None when the groups are already in order (Gaussians from gaussians_from_meshes are)

    @property
    def num_points(self) -> int:
        return int(self.rest.shape[0])


def bind(
    points: Tensor,  # [N, 3] rest positions, world metres
    object_index: Tensor,  # [N] long, object of each point
    control_positions: Tensor,  # [K, 3] p_k
    control_object: Tensor,  # [K] long, non-decreasing
    k: int = 4,
    point_part: Tensor | None = None,  # [N] long, rigid part of each point within its object
    control_part: Tensor | None = None,  # [K] long, rigid part of each control point
) -> SkinBinding:
    """Bind points to their k nearest control points of their own object (and part, if given).

    With parts, a point blends only control points of its own part, so a hinge's two sides move
    independently; a point whose part has no control points falls back to the whole object's.
    Raises ValueError for shape mismatches or a point whose object has no control points.
    """
    points = torch.as_tensor(points)
    object_index = torch.as_tensor(object_index, dtype=torch.long, device=points.device)
    n = points.shape[0]
    if points.ndim != 2 or points.shape[1] != 3 or object_index.shape != (n,):
        raise ValueError(
            f"points must be [N, 3] and object_index [N]; got {tuple(points.shape)}, "
            f"{tuple(object_index.shape)}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    control_positions = control_positions.to(points)
    control_object = control_object.to(points.device)
    neighbors = torch.zeros(n, k, dtype=torch.long, device=points.device)
    valid = torch.zeros(n, k, dtype=torch.bool, device=points.device)
    groups = []
    for obj in torch.unique(object_index).tolist():
        pts = torch.nonzero(object_index == obj).squeeze(1)
        cps = torch.nonzero(control_object == obj).squeeze(1)
        if len(cps) == 0:
            raise ValueError(f"object {obj} has {len(pts)} points but no control points")
        c0, c1 = int(cps[0]), int(cps[-1]) + 1
        kk = min(k, c1 - c0)
        d = torch.cdist(points[pts], control_positions[c0:c1])  # [n_o, K_o]
        if point_part is not None and control_part is not None:
            other = point_part.to(points.device)[pts, None] != control_part.to(points.device)[None, c0:c1]
            other &= ~other.all(dim=1, keepdim=True)  # no control point in its part: use them all
            d = d.masked_fill(other, float("inf"))
        dk, nearest = d.topk(kk, dim=1, largest=False)
        nearest = nearest + c0
        neighbors[pts, :kk] = nearest
        neighbors[pts, kk:] = nearest[:, :1]
        valid[pts, :kk] = torch.isfinite(dk)
        groups.append((pts, c0, c1))
    order = torch.cat([g[0] for g in groups])
    inverse = None
    if not torch.equal(order, torch.arange(n, device=order.device)):
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(n, device=order.device)
    return SkinBinding(points, neighbors, valid, tuple(groups), inverse)


def skin_weights(
    binding: SkinBinding,
    control_positions: Tensor,  # [K, 3] p_k
    cov_log_scales: Tensor,  # [K, 3] log sigma_k, log metres
    cov_quats: Tensor,  # [K, 4] wxyz (normalised here)
) -> Tensor:
    """[N, k] blend weights (rows sum to 1; padded slots are 0) through the covariances Sigma_k."""
    nb = binding.neighbors
    d = binding.rest[:, None, :] - control_positions[nb]  # [N, k, 3]
    R = quat_to_matrix(normalize_quat(cov_quats))[nb]  # [N, k, 3, 3]
    local = torch.einsum("nkji,nkj->nki", R, d) * torch.exp(-cov_log_scales)[nb]  # R^T d / sigma
    logits = -0.5 * (local * local).sum(dim=-1)
    logits = logits.masked_fill(~binding.valid, float("-inf"))
    return torch.softmax(logits, dim=1)


def blend(
    binding: SkinBinding,
    weights: Tensor,  # [N, k] from skin_weights
    motion: ControlMotion,  # per-frame control transforms, F frames
    control_positions: Tensor,  # [K, 3] p_k
    quats: Tensor | None = None,  # [N, 4] wxyz rest rotations of Gaussians, or None for points
) -> tuple[Tensor, Tensor | None]:
    """Move the bound points through the frames of ``motion``.

    Returns positions [F, N, 3] (world metres) and, when ``quats`` is given, rotations
    [F, N, 4] (wxyz; unit when ``quats`` are).
    """
    R, t, q = motion
    f, kc = t.shape[0], t.shape[1]
    offset = control_positions + t - torch.einsum("fkij,kj->fki", R, control_positions)
    feats = [R.reshape(f, kc, 9), offset]
    if quats is not None:
        feats.append(q)
    feat = torch.cat(feats, dim=-1)  # [F, K, C]
    c = feat.shape[-1]
    parts = []
    for pts, c0, c1 in binding.groups:
        dense = torch.zeros(len(pts), c1 - c0, dtype=weights.dtype, device=weights.device)
        dense = dense.scatter_add(1, binding.neighbors[pts] - c0, weights[pts])
        block = feat[:, c0:c1].permute(1, 0, 2).reshape(c1 - c0, f * c)
        parts.append((dense @ block).reshape(len(pts), f, c))
    mixed = torch.cat(parts, dim=0)  # [N, F, C]
    if binding.inverse is not None:
        mixed = mixed.index_select(0, binding.inverse)
    split = mixed.split([9, 3, 4] if quats is not None else [9, 3], dim=-1)
    Rb = split[0].reshape(-1, f, 3, 3)
    pos = torch.einsum("nfij,nj->nfi", Rb, binding.rest) + split[1]
    pos = pos.transpose(0, 1).contiguous()
    if quats is None:
        return pos, None
    qb = normalize_quat(split[2])  # [N, F, 4]
    # qb * q_rest as one batched matmul with q_rest's [4, 4] product matrix (per point, not per
    # frame); a product of unit quaternions is unit: no second normalisation
    rot = torch.bmm(qb, quat_right_matrix(quats).transpose(1, 2))
    return pos, rot.transpose(0, 1).contiguous()


def skin(
    deformation: Deformation,
    binding: SkinBinding,
    quats: Tensor | None = None,  # [N, 4] wxyz rest rotations, or None
    frames: Tensor | None = None,  # [F] long, default all frames
) -> tuple[Tensor, Tensor | None]:
    """Positions [F, N, 3] (and rotations [F, N, 4] if ``quats``) of the bound points."""
    w = skin_weights(binding, deformation.positions, deformation.cov_log_scales, deformation.cov_quats)
    return blend(binding, w, deformation(frames), deformation.positions, quats)
