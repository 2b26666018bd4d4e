"""Grasp and collision geometry: the flow's own points, or the scene's meshes carried by the flow's parts.

A flow seen from one camera (the video-flow baseline: 2D tracks lifted with depth) holds only the
surfaces the camera saw. No antipodal grasp spans a one-sided cloud, and collision checks miss
the far sides. With mesh geometry the planner takes each object's surface from the scene's mesh
(placed at the scene pose, which is the flow's frame 0), gives every mesh sample to the rigid
part of the nearest frame-0 flow point of the same object, and carries it with that part's
fitted track. The motion still comes from the flow alone; only the shape comes from the mesh.
Samples farther than ``max_distance`` from every kept flow point of their object (a surface the
flow has no motion for) are left out. Objects without a mesh keep their flow points.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from planner.analysis import FlowAnalysis
from planner.rigid import apply

log = logging.getLogger(__name__)

GEOMETRIES = ("flow", "mesh")


@dataclass(frozen=True)
class SceneGeometry:
    """Trajectories of the surfaces the planner grasps and avoids, world metres."""

    part: np.ndarray  # [T, n, 3] the target part's surface points
    other: np.ndarray  # [T, m, 3] every other surface point of the scene
    source: str  # "flow" (the flow's denoised points) or "mesh" (scene meshes moved by the parts)


def flow_geometry(analysis: FlowAnalysis) -> SceneGeometry:
    """The flow's denoised trajectories split into the target part and the rest."""
    clean, clean_idx = analysis.denoised()
    is_part = np.isin(clean_idx, analysis.target.indices)
    return SceneGeometry(clean[:, is_part], clean[:, ~is_part], "flow")


def mesh_geometry(
    analysis: FlowAnalysis,
    scene,  # core.scene.Scene: objects with a mesh and their poses at the flow's frame 0
    samples: int = 4000,  # surface samples per object mesh
    max_distance: float = 0.08,  # m: a sample farther than this from its object's flow points is dropped
    seed: int = 0,
) -> SceneGeometry:
    """Scene meshes carried by the flow's part tracks (see the module docstring).

    Falls back to :func:`flow_geometry` (with a warning) when no mesh sample lands on the target
    part. Raises ChordError for a mesh file that cannot be loaded.
    """
    from trimesh.sample import sample_surface

    from core.mesh import load_mesh

    clean, _ = analysis.denoised()
    parts, others = [], []
    offset = 0
    for k, seg in enumerate(analysis.objects):
        sizes = [len(p.indices) for p in seg.parts]
        obj_clean = clean[:, offset : offset + sum(sizes)]  # denoised() goes object by object, part by part
        offset += sum(sizes)
        owner = np.repeat(np.arange(len(seg.parts)), sizes)  # [n_obj] part of each denoised point
        target = k == analysis.target_object
        obj = next((o for o in scene.objects if o.name == seg.name), None) if scene is not None else None
        if obj is None or obj.mesh is None or not len(owner):
            for j in range(len(seg.parts)):
                (parts if target and j == analysis.target_part else others).append(obj_clean[:, owner == j])
            continue
        mesh = load_mesh(obj.mesh, obj.units)
        local, _ = sample_surface(mesh, samples, seed=seed)
        T = obj.pose.matrix()
        p0 = np.asarray(local, dtype=float) @ T[:3, :3].T + T[:3, 3]  # [s, 3] world at frame 0
        dist, near = cKDTree(obj_clean[0]).query(p0)
        keep = dist <= max_distance
        label = owner[near]
        for j, part in enumerate(seg.parts):
            sel = keep & (label == j)
            traj = apply(part.track.motion, p0[sel])  # [T, s_j, 3]
            (parts if target and j == analysis.target_part else others).append(traj)
        log.debug(
            "mesh geometry %s: %d of %d samples within %.0f mm of its flow points",
            seg.name,
            int(keep.sum()),
            samples,
            1000 * max_distance,
        )
    part = np.concatenate(parts, axis=1)
    if part.shape[1] < 4:
        log.warning("mesh geometry: no mesh surface on the target part; using the flow's points")
        return flow_geometry(analysis)
    T = clean.shape[0]
    other = np.concatenate(others, axis=1) if others else np.zeros((T, 0, 3))
    return SceneGeometry(part, other, "mesh")
