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
from dataclasses import dataclass, field, replace
from typing import Any

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
    # [n, 3] unit outward normals of ``part[0]`` (world, frame 0): the mesh's face normals at its
    # samples; None = unknown (flow points: the grasp search estimates them by local PCA)
    part_normals: np.ndarray | None = None
    # The target object's URDF (mass and joint friction for the grasp's load), if the scene has one
    urdf: str | None = None
    # m^3: volume of the target part's solid where the mesh tells it (a watertight mesh of a
    # one-part object); None = estimate from the part's points
    part_volume: float | None = None
    # planner.load.PartLoad: what a grasp on the part must carry (mass, joint effort); None = not
    # modelled (grasps are then not scored against a load)
    load: Any = None
    # The grasp search's candidates and their collision verdicts, which do not depend on the
    # robot's base: filled by the first base placement tried, reused by the others.
    search_cache: dict = field(default_factory=dict, compare=False, repr=False)


def flow_geometry(analysis: FlowAnalysis) -> SceneGeometry:
    """The flow's denoised trajectories split into the target part and the rest."""
    clean, clean_idx = analysis.denoised()
    is_part = np.isin(clean_idx, analysis.target.indices)
    return SceneGeometry(clean[:, is_part], clean[:, ~is_part], "flow")


def with_urdf(geometry: SceneGeometry, analysis: FlowAnalysis, scene) -> SceneGeometry:
    """``geometry`` with the target object's URDF from ``scene`` (None: unchanged)."""
    if scene is None or geometry.urdf is not None:
        return geometry
    obj = next((o for o in scene.objects if o.name == analysis.target.object_name), None)
    if obj is None or obj.urdf is None:
        return geometry
    return replace(geometry, urdf=str(obj.urdf))


def mesh_geometry(
    analysis: FlowAnalysis,
    scene,  # core.scene.Scene: objects with a mesh and their poses at the flow's frame 0
    samples: int = 4000,  # surface samples per object mesh at least
    max_distance: float = 0.08,  # m: a sample farther than this from its object's flow points is dropped
    seed: int = 0,
    spacing: float = 0.003,  # m: mean distance between surface samples (area / spacing^2 samples)
    max_samples: int = 20000,  # surface samples per object mesh at most
) -> SceneGeometry:
    """Scene meshes carried by the flow's part tracks (see the module docstring).

    Each mesh is sampled uniformly over its area, ``area / spacing**2`` samples (clipped to
    ``samples..max_samples``), so a grasp search over the target part sees its whole surface
    densely wherever the flow's points happen to lie; the samples keep the mesh's face normals.

    Falls back to :func:`flow_geometry` (with a warning) when no mesh sample lands on the target
    part. Raises ChordError for a mesh file that cannot be loaded.
    """
    from trimesh.sample import sample_surface

    from core.mesh import load_mesh

    clean, _ = analysis.denoised()
    parts, others = [], []
    part_normals: list[np.ndarray] = []
    urdf: str | None = None
    volume: float | None = None
    offset = 0
    for k, seg in enumerate(analysis.objects):
        sizes = [len(p.indices) for p in seg.parts]
        obj_clean = clean[:, offset : offset + sum(sizes)]  # denoised() goes object by object, part by part
        offset += sum(sizes)
        owner = np.repeat(np.arange(len(seg.parts)), sizes)  # [n_obj] part of each denoised point
        target = k == analysis.target_object
        obj = next((o for o in scene.objects if o.name == seg.name), None) if scene is not None else None
        if target and obj is not None and obj.urdf is not None:
            urdf = str(obj.urdf)
        if obj is None or obj.mesh is None or not len(owner):
            for j in range(len(seg.parts)):
                (parts if target and j == analysis.target_part else others).append(obj_clean[:, owner == j])
            if target:
                part_normals.append(np.full((int((owner == analysis.target_part).sum()), 3), np.nan))
            continue
        mesh = load_mesh(obj.mesh, obj.units)
        n_samples = int(np.clip(mesh.area / spacing**2, samples, max_samples))
        local, face = sample_surface(mesh, n_samples, seed=seed)
        normals = np.asarray(mesh.face_normals, dtype=float)[face]
        if mesh.is_watertight and mesh.volume < 0:  # faces wound inwards: normals point in
            normals = -normals
        if target and len(seg.parts) == 1 and mesh.is_watertight:
            volume = float(abs(mesh.volume))
        T = obj.pose.matrix()
        p0 = np.asarray(local, dtype=float) @ T[:3, :3].T + T[:3, 3]  # [s, 3] world at frame 0
        n0 = normals @ T[:3, :3].T
        dist, near = cKDTree(obj_clean[0]).query(p0)
        keep = dist <= max_distance
        label = owner[near]
        for j, part in enumerate(seg.parts):
            sel = keep & (label == j)
            traj = apply(part.track.motion, p0[sel])  # [T, s_j, 3]
            (parts if target and j == analysis.target_part else others).append(traj)
            if target and j == analysis.target_part:
                part_normals.append(n0[sel])
        log.debug(
            "mesh geometry %s: %d of %d samples within %.0f mm of its flow points",
            seg.name,
            int(keep.sum()),
            n_samples,
            1000 * max_distance,
        )
    part = np.concatenate(parts, axis=1)
    if part.shape[1] < 4:
        log.warning("mesh geometry: no mesh surface on the target part; using the flow's points")
        return flow_geometry(analysis)
    T = clean.shape[0]
    other = np.concatenate(others, axis=1) if others else np.zeros((T, 0, 3))
    normals = np.concatenate(part_normals) if part_normals else None
    if normals is not None and not np.isfinite(normals).all():
        normals = None  # some of the part has no mesh: estimate all its normals alike
    return SceneGeometry(part, other, "mesh", normals, urdf, volume)
