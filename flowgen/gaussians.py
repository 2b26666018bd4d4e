"""3D Gaussians of the static scene, initialised from the objects' mesh surfaces.

Each object's surface is sampled uniformly by area; a Gaussian sits at each sample, coloured
from the mesh, flat along the surface normal (its local z axis) and as wide as the local point
spacing (mean distance to the 3 nearest samples of the same object). Means are world metres in
the rest pose; the deformation moves them per frame (``flowgen.skinning``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from torch import Tensor

from core.atomic import atomic_write
from core.errors import ContractError
from core.mesh import sample_surface

GAUSSIANS_SCHEMA = "chord.gaussians"
GAUSSIANS_VERSION = 1


@dataclass
class Gaussians:
    """N Gaussians in the world frame (rest pose)."""

    means: Tensor  # [N, 3] world metres
    quats: Tensor  # [N, 4] unit wxyz, local z = surface normal
    log_scales: Tensor  # [N, 3] log metres (std dev along local x, y, z)
    opacity_logits: Tensor  # [N] logit of opacity
    colors: Tensor  # [N, 3] RGB in [0, 1]
    object_index: Tensor  # [N] long, index of the object each Gaussian belongs to

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expect = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "opacity_logits": (n,),
            "colors": (n, 3),
            "object_index": (n,),
        }
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ContractError(name, f"has shape {list(got)}, expected {list(shape)}")

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    @property
    def scales(self) -> Tensor:
        """[N, 3] metres."""
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:
        """[N] in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    def to(self, device: torch.device | str) -> Gaussians:
        return Gaussians(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def save(self, path: str | Path) -> Path:
        """Write a safetensors file atomically; returns the path."""
        from safetensors.torch import save

        tensors = {f.name: getattr(self, f.name).detach().cpu().contiguous() for f in fields(self)}
        meta = {"schema": GAUSSIANS_SCHEMA, "version": str(GAUSSIANS_VERSION)}
        with atomic_write(path) as fh:
            fh.write(save(tensors, metadata=meta))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Gaussians:
        """Read a file written by ``save``; raises ContractError naming the bad field."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except (OSError, SafetensorError) as e:
            raise ContractError("file", f"cannot read safetensors ({e})", path) from e
        if meta.get("schema") != GAUSSIANS_SCHEMA:
            raise ContractError(
                "meta.schema", f"is {meta.get('schema')!r}, expected {GAUSSIANS_SCHEMA!r}", path
            )
        if meta.get("version") != str(GAUSSIANS_VERSION):
            raise ContractError(
                "meta.version", f"is {meta.get('version')!r}, expected {GAUSSIANS_VERSION}", path
            )
        names = [f.name for f in fields(cls)]
        missing = sorted(set(names) - set(tensors))
        if missing:
            raise ContractError(missing[0], f"missing; file has {sorted(tensors)}", path)
        try:
            return cls(**{k: tensors[k] for k in names})
        except ContractError as e:
            raise ContractError(e.field, str(e).split(": ", 1)[-1], path) from None


def normal_to_quat(normals: np.ndarray) -> np.ndarray:
    """[N, 3] unit normals -> [N, 4] wxyz: the shortest rotation taking +z to each normal."""
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    q = np.stack([1.0 + n[:, 2], -n[:, 1], n[:, 0], np.zeros(len(n))], axis=1)
    flip = q[:, 0] < 1e-9  # normal = -z: any half turn about a horizontal axis
    q[flip] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def gaussians_from_meshes(
    meshes: Sequence[trimesh.Trimesh],
    T_world_obj: Sequence[np.ndarray] | np.ndarray,  # [M, 4, 4]
    count_per_object: int | Sequence[int] = 20_000,
    seed: int = 0,
    opacity: float = 0.8,
    flatness: float = 0.1,
    neighbors: int = 3,
) -> Gaussians:
    """Gaussians on the surfaces of ``meshes`` (metres, from core.mesh.load_mesh), posed in world.

    count_per_object: samples per object (an int for all, or one per mesh).
    opacity: initial opacity in (0, 1). flatness: normal scale / tangent scale.
    Raises ValueError for mismatched lengths or counts < 1.
    """
    meshes = list(meshes)
    poses = np.asarray(T_world_obj, dtype=np.float64)
    if poses.shape != (len(meshes), 4, 4):
        raise ValueError(f"T_world_obj must be [{len(meshes)}, 4, 4], got {list(poses.shape)}")
    counts = [count_per_object] * len(meshes) if np.isscalar(count_per_object) else list(count_per_object)
    if len(counts) != len(meshes) or min(counts, default=1) < 1:
        raise ValueError(f"count_per_object {counts} must be >= 1, one per mesh ({len(meshes)})")
    if not 0 < opacity < 1 or not 0 < flatness <= 1:
        raise ValueError(f"opacity {opacity} must be in (0, 1) and flatness {flatness} in (0, 1]")
    out = {k: [] for k in ("means", "quats", "log_scales", "colors", "object_index")}
    for i, (mesh, T, n) in enumerate(zip(meshes, poses, counts, strict=True)):
        pts, normals, colors = sample_surface(mesh, int(n), seed=seed + i)
        pts = pts @ T[:3, :3].T + T[:3, 3]
        normals = normals @ T[:3, :3].T
        if n > 1:
            d, _ = cKDTree(pts).query(pts, k=min(neighbors, n - 1) + 1)
            spacing = d[:, 1:].mean(axis=1)
        else:
            spacing = np.full(1, float(mesh.extents.max()) / 2)
        spacing = np.maximum(spacing, 1e-5)
        out["means"].append(pts)
        out["quats"].append(normal_to_quat(normals))
        out["log_scales"].append(np.log(spacing[:, None] * np.array([1.0, 1.0, flatness])))
        out["colors"].append(colors)
        out["object_index"].append(np.full(n, i))
    cat = {k: np.concatenate(v) for k, v in out.items()}
    f32 = {k: torch.as_tensor(cat[k], dtype=torch.float32) for k in cat if k != "object_index"}
    logit = float(np.log(opacity / (1 - opacity)))
    return Gaussians(
        opacity_logits=torch.full((len(cat["means"]),), logit),
        object_index=torch.as_tensor(cat["object_index"], dtype=torch.long),
        **f32,
    )
