"""Regularisers of the deformation (seed A.1): temporal smoothness on the near-surface set S_i,
local rigidity among neighbouring control points, and a ground-penetration penalty.

All return scalar tensors (means, so their size does not depend on point counts) and are zero
for the motions they should not penalise: ``spatial_rigidity`` for any rigid motion of an
object, ``temporal_smoothness`` (order 2) for motion at constant velocity, ``ground_penetration``
for points that stay on or above the table (or no deeper than they started).
"""

from __future__ import annotations

import torch
from torch import Tensor

from flowgen.fenwick import ControlMotion


def temporal_smoothness(points: Tensor, order: int = 2) -> Tensor:  # points: [F, M, 3]
    """Mean squared finite difference of trajectories over frames, metres^2.

    order 2 (default) penalises acceleration: jitter, not motion itself, so the prior is free to
    move objects while neighbouring frames stay consistent. order 1 penalises velocity.
    Returns 0 for fewer than order + 1 frames.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    if points.shape[0] <= order:
        return points.new_zeros(())
    d = points[1:] - points[:-1]
    if order == 2:
        d = d[1:] - d[:-1]
    return (d * d).sum(dim=-1).mean()


def knn_edges(
    positions: Tensor,  # [K, 3]
    object_index: Tensor,  # [K] long
    k: int = 6,
) -> Tensor:
    """[E, 2] long directed edges (i, j): j among the k nearest of i within i's object."""
    edges = []
    for obj in torch.unique(object_index).tolist():
        idx = torch.nonzero(object_index == obj).squeeze(1)
        kk = min(k, len(idx) - 1)
        if kk < 1:
            continue
        d = torch.cdist(positions[idx], positions[idx])
        nn = d.topk(kk + 1, dim=1, largest=False).indices[:, 1:]  # drop self
        edges.append(torch.stack([idx[:, None].expand_as(nn), idx[nn]], dim=-1).reshape(-1, 2))
    if not edges:
        return torch.zeros(0, 2, dtype=torch.long, device=positions.device)
    return torch.cat(edges)


def spatial_rigidity(
    positions: Tensor,  # [K, 3] rest control points p_k
    motion: ControlMotion,  # F frames
    edges: Tensor,  # [E, 2] from knn_edges
    weights: Tensor | None = None,  # [E] >= 0 per edge (part_edge_weights); None: all 1
) -> Tensor:
    """ARAP-style local rigidity on the control-point graph, metres^2.

    mean over frames and edges of w_e |(p'_j - p'_i) - R_i (p_j - p_i)|^2 with p' = p + t: each
    control point's own rotation must carry its neighbours along. Zero for any rigid motion of
    an object; grows with stretch, shear and disagreeing rotations.
    """
    if len(edges) == 0:
        return positions.new_zeros(())
    i, j = edges[:, 0], edges[:, 1]
    moved = positions + motion.t  # [F, K, 3]
    rest_edge = positions[j] - positions[i]  # [E, 3]
    pred = torch.einsum("feab,eb->fea", motion.R[:, i], rest_edge)
    r = (moved[:, j] - moved[:, i]) - pred
    sq = (r * r).sum(dim=-1)  # [F, E]
    if weights is None:
        return sq.mean()
    return (sq * weights.to(sq)[None]).mean()


def part_edge_weights(
    edges: Tensor,  # [E, 2] from knn_edges
    control_part: Tensor,  # [K] long: rigid part of each control point (unique across objects)
    cross_part_weight: float = 0.0,  # weight of an edge between two parts (a joint lies between)
) -> Tensor:
    """[E] rigidity weight per edge: 1 inside a part, ``cross_part_weight`` across a part boundary.

    Across a hinge the two sides turn by different rotations, which full-weight ARAP resists.
    """
    if not 0.0 <= cross_part_weight <= 1.0:
        raise ValueError(f"cross_part_weight is {cross_part_weight}, expected a value in [0, 1]")
    same = control_part[edges[:, 0]] == control_part[edges[:, 1]]
    return torch.where(same, 1.0, float(cross_part_weight)).to(torch.float32)


def ground_penetration(
    points: Tensor,  # [F, M, 3] world metres, z up
    table_height: float = 0.0,  # z of the table top, world metres
    rest: Tensor | None = None,  # [M, 3] rest positions: depth already there is allowed
) -> Tensor:
    """Mean squared depth below the table plane z = table_height, metres^2.

    With ``rest``, a point may sink as deep as it was at rest (near-surface voxel centres of an
    object standing on the table start slightly below it) but no deeper.
    """
    floor = torch.full_like(points[..., 2], table_height)
    if rest is not None:
        floor = torch.minimum(floor, rest[None, :, 2].expand_as(floor))
    depth = torch.relu(floor - points[..., 2])
    return (depth * depth).mean()
