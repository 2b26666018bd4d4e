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
from core.mesh import POOL_FACTOR, allocate_part_samples, sample_surface
from flowgen.fenwick import Deformation
from flowgen.skinning import bind, skin


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
