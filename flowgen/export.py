"""Dense flow export: sample each object's surface and carry the samples through all frames.

The samples are bound to their object's control points exactly like Gaussians
(``flowgen.skinning``), so the flow is the motion the optimised representation shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import trimesh

from core.flow import ObjectFlow
from core.mesh import sample_surface
from flowgen.fenwick import Deformation
from flowgen.skinning import bind, skin


# Surface samples drawn per exported point when parts get a floor: a part with 1/POOL_FACTOR of its
# object's area still finds its floor of a 1/POOL_FACTOR share of the points in the pool.
POOL_FACTOR = 16


def allocate_part_samples(pool_part: np.ndarray, n: int, floor: int) -> np.ndarray:
    """Sorted indices of ``n`` pool samples: every part at least ``floor`` (or all its pool samples,
    or an equal share n // parts where the floors do not fit in n), the rest by area.

    ``pool_part``: [m] part label of each sample of a pool drawn uniformly by area, m >= n. The
    area share is the pool's: the rest of n beyond the floors goes to the parts in proportion to
    their samples in the pool beyond their floor (largest remainders), so a part whose area share
    already exceeds the floor keeps it. A small part must be a part of its own in the planner's
    segmentation, whose hypotheses sample a point's 40 nearest neighbours: with a few dozen points
    (a lever handle is 2% of a door's surface) they mix in the door's. Deterministic.
    """
    pool_part = np.asarray(pool_part)
    m = len(pool_part)
    if m < n:
        raise ValueError(f"allocate_part_samples: pool of {m} samples for {n} points, expected at least {n}")
    parts, avail = np.unique(pool_part, return_counts=True)
    floor = min(int(floor), n // len(parts))
    take = np.minimum(avail, floor)
    rest = n - int(take.sum())
    extra = avail - take  # pool samples of each part beyond its floor
    if rest > 0 and extra.sum() > 0:
        share = rest * extra / extra.sum()
        add = np.minimum(np.floor(share).astype(np.int64), extra)
        left = rest - int(add.sum())
        order = np.argsort(-(share - add), kind="stable")  # largest remainders first
        for k in order:
            if left <= 0:
                break
            if add[k] < extra[k]:
                add[k] += 1
                left -= 1
        take = take + add
    keep = np.concatenate([np.flatnonzero(pool_part == q)[: int(c)] for q, c in zip(parts, take, strict=True)])
    return np.sort(keep)


@torch.no_grad()
def export_flow(
    meshes: Sequence[trimesh.Trimesh],
    T_world_obj: Sequence[np.ndarray] | np.ndarray,  # [M, 4, 4]
    deformation: Deformation,
    object_names: Sequence[str],
    fps: float,
    prior: str,
    points_per_object: int | Sequence[int] = 2048,
    prompt: str = "",
    camera: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    k: int = 4,
    seed: int = 0,
    part_of: Callable[[np.ndarray, int], np.ndarray]
    | None = None,  # (world points [n, 3], object) -> [n] part
    control_part: torch.Tensor | None = None,  # [K] long, part of each control point (with part_of)
    min_points_per_part: int = 0,
) -> ObjectFlow:
    """ObjectFlow of ``points_per_object`` surface samples per object through all T frames.

    Mesh i belongs to control-point object i of ``deformation``. Times are arange(T) / fps. With
    ``part_of`` and ``control_part``, samples bind within their part, as the Gaussians do, and
    every part gets at least ``min_points_per_part`` of its object's samples
    (:func:`allocate_part_samples`). Raises ValueError for mismatched lengths or a negative
    floor; ContractError (from ObjectFlow) for bad metadata.
    """
    if not (isinstance(min_points_per_part, int | np.integer) and min_points_per_part >= 0):
        raise ValueError(f"min_points_per_part is {min_points_per_part!r}, expected an integer >= 0")
    meshes = list(meshes)
    poses = np.asarray(T_world_obj, dtype=np.float64)
    if poses.shape != (len(meshes), 4, 4) or len(object_names) != len(meshes):
        raise ValueError(
            f"need one T_world_obj [4, 4] and one name per mesh ({len(meshes)}); got poses "
            f"{list(poses.shape)} and {len(object_names)} names"
        )
    counts = (
        [int(points_per_object)] * len(meshes)
        if np.isscalar(points_per_object)
        else [int(c) for c in points_per_object]
    )
    by_part = part_of is not None and control_part is not None
    pts, idx, labels = [], [], []
    for i, (mesh, T, n) in enumerate(zip(meshes, poses, counts, strict=True)):
        pool_part = None
        if by_part and min_points_per_part > 0:
            # A pool sampled by area; each part then takes its allocation from the pool's points
            # on it, in the pool's (random) order: uniform by area within every part. An object of
            # one part is sampled as without a floor (the same points).
            pool, _, _ = sample_surface(mesh, POOL_FACTOR * n, seed=seed + i)
            pool = pool @ T[:3, :3].T + T[:3, 3]
            pool_part = np.asarray(part_of(pool, i))
            if len(np.unique(pool_part)) < 2:
                pool_part = None
        if pool_part is not None:
            keep = allocate_part_samples(pool_part, n, min_points_per_part)
            p, lab = pool[keep], pool_part[keep]
        else:
            p, _, _ = sample_surface(mesh, n, seed=seed + i)
            p = p @ T[:3, :3].T + T[:3, 3]
            lab = np.asarray(part_of(p, i)) if by_part else None
        pts.append(p)
        idx.append(np.full(len(p), i))
        labels.append(lab)
    dev, dtype = deformation.positions.device, deformation.positions.dtype
    points = torch.as_tensor(np.concatenate(pts), dtype=dtype, device=dev)
    object_index = torch.as_tensor(np.concatenate(idx), device=dev)
    point_part = None
    if by_part:
        point_part = torch.as_tensor(np.concatenate(labels), dtype=torch.long, device=dev)
    binding = bind(
        points, object_index, deformation.positions, deformation.object_index, k, point_part, control_part
    )
    moved, _ = skin(deformation, binding)
    num_frames = deformation.num_frames
    return ObjectFlow(
        points=moved.cpu().numpy().astype(np.float32),
        object_index=object_index.cpu().numpy().astype(np.int32),
        times=(np.arange(num_frames) / float(fps)).astype(np.float32),
        object_names=tuple(object_names),
        fps=float(fps),
        prior=prior,
        prompt=prompt,
        camera=camera,
        provenance=dict(provenance or {}),
    )
