"""Mesh intake: load an object's mesh file into metres, with its colours, or say why not.

Formats: OBJ, PLY, GLB/GLTF (a scene: its meshes are concatenated with their node transforms
applied), STL, through trimesh. Textures become vertex colours (``visual.to_color()``), so every
mesh this returns carries colours a renderer can use without a texture sampler.

Nothing is repaired: open, non-watertight meshes (partial scans) load as they are; the inside test
downstream (``flowgen.control_points``) is built to cope with them. Torch-free.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trimesh

from core.cousin_params import params_from_dict
from core.cousins import build_cousin
from core.errors import ChordError
from core.scene import MESH_UNITS, SceneObject

log = logging.getLogger(__name__)

SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl")
# A tabletop object's largest extent, metres: outside this range the stated units are wrong.
MIN_EXTENT = 0.005
MAX_EXTENT = 3.0
# Colour of meshes that carry none (trimesh's default grey), RGB in [0, 1].
DEFAULT_COLOR = (0.6, 0.6, 0.6)
_MIN_AREA = 1e-12  # m^2; below this the mesh has no surface to sample


def load_mesh(path: str | Path, units: str = "m") -> trimesh.Trimesh:
    """Load a mesh file, scale it to metres and give it vertex (or face) colours.

    ``units`` is the unit of the file's coordinates: "m", "cm" or "mm".
    Returns a trimesh.Trimesh in metres, in the file's own frame (no pose applied).
    Raises ChordError (naming the path and the value) for a missing, unreadable or unsupported
    file, a mesh with no faces, a degenerate mesh (zero area or non-finite vertices), and a size
    that contradicts ``units`` (largest extent outside [5 mm, 3 m]).
    """
    path = Path(path)
    if units not in MESH_UNITS:
        raise ChordError(f"{path}: units {units!r} is not one of {sorted(MESH_UNITS)}")
    if not path.is_file():
        raise ChordError(f"{path}: mesh file not found")
    if path.suffix.lower() not in SUFFIXES:
        raise ChordError(f"{path}: mesh format {path.suffix!r} is not supported; expected one of {SUFFIXES}")
    try:
        scene = trimesh.load_scene(path)
    except Exception as e:  # trimesh raises many types for a bad file; all mean "unreadable"
        raise ChordError(f"{path}: cannot read mesh ({type(e).__name__}: {e})") from e

    parts = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not parts:
        raise ChordError(f"{path}: mesh is empty (no faces)")
    for p in parts:
        # Texture -> per-vertex colours now, so that concatenation keeps them.
        if p.visual.kind != "vertex":
            p.visual = _as_color_visual(p)
    mesh = parts[0] if len(parts) == 1 else trimesh.util.concatenate(parts)

    if not np.isfinite(mesh.vertices).all():
        raise ChordError(f"{path}: mesh is degenerate (non-finite vertex coordinates)")
    scale = MESH_UNITS[units]
    raw_extent = float(np.ptp(mesh.vertices, axis=0).max())
    area = float(mesh.area) * scale**2
    if area <= _MIN_AREA:
        raise ChordError(
            f"{path}: mesh is degenerate (surface area {area:.3g} m^2, largest extent "
            f"{raw_extent * scale:.3g} m): nothing to sample"
        )
    extent = raw_extent * scale
    if not MIN_EXTENT <= extent <= MAX_EXTENT:
        fits = [u for u, s in MESH_UNITS.items() if MIN_EXTENT <= raw_extent * s <= MAX_EXTENT]
        hint = f"did you mean units: {'/'.join(fits)}?" if fits else "check the file's scale"
        raise ChordError(
            f"{path}: largest extent is {extent:.4g} m with units {units!r}, expected "
            f"{MIN_EXTENT * 1000:g} mm to {MAX_EXTENT:g} m for a tabletop object; {hint}"
        )
    if scale != 1.0:
        mesh.apply_scale(scale)
    log.debug(
        "loaded %s: %d vertices, %d faces, extent %.3f m, watertight=%s",
        path,
        len(mesh.vertices),
        len(mesh.faces),
        extent,
        mesh.is_watertight,
    )
    return mesh


def _as_color_visual(mesh: trimesh.Trimesh) -> trimesh.visual.ColorVisuals:
    """Texture or material colour -> ColorVisuals (vertex colours where trimesh can)."""
    visual = mesh.visual
    if isinstance(visual, trimesh.visual.ColorVisuals):
        return visual  # face colours, or none (mesh_colors then gives the default grey)
    if visual.kind is None:
        # A material without a texture image: its main colour applies to every vertex.
        material = getattr(visual, "material", None)
        main = getattr(material, "main_color", None)
        if main is not None:
            colors = np.tile(np.asarray(main, dtype=np.uint8)[:4], (len(mesh.vertices), 1))
            return trimesh.visual.ColorVisuals(mesh, vertex_colors=colors)
        return trimesh.visual.ColorVisuals(mesh)
    return visual.to_color()


def mesh_colors(mesh: trimesh.Trimesh) -> np.ndarray:
    """[V, 3] float64 vertex colours in [0, 1] (face colours averaged onto vertices).

    Meshes without colour get DEFAULT_COLOR.
    """
    visual = mesh.visual
    if visual.kind in ("vertex", "face"):
        return np.asarray(visual.vertex_colors[:, :3], dtype=np.float64) / 255.0
    if visual.kind == "texture":
        return np.asarray(visual.to_color().vertex_colors[:, :3], dtype=np.float64) / 255.0
    return np.tile(np.asarray(DEFAULT_COLOR), (len(mesh.vertices), 1))


def sample_surface(
    mesh: trimesh.Trimesh, count: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``count`` points uniformly by area on the surface, with normals and colours.

    Returns points [count, 3] (mesh frame), face normals [count, 3] (unit), colours [count, 3]
    in [0, 1] (vertex colours interpolated barycentrically; face colours taken as they are).
    Raises ValueError if count < 1.
    """
    if count < 1:
        raise ValueError(f"sample_surface: count must be >= 1, got {count}")
    points, face_index = trimesh.sample.sample_surface(mesh, int(count), seed=seed)
    points = np.asarray(points, dtype=np.float64)
    normals = np.asarray(mesh.face_normals[face_index], dtype=np.float64)
    if mesh.visual.kind == "face":
        colors = np.asarray(mesh.visual.face_colors[face_index, :3], dtype=np.float64) / 255.0
    else:
        vcol = mesh_colors(mesh)
        tri = mesh.triangles[face_index]
        bary = trimesh.triangles.points_to_barycentric(tri, points)
        bary = np.clip(np.nan_to_num(bary, nan=1.0 / 3.0), 0.0, 1.0)
        bary /= bary.sum(axis=1, keepdims=True)
        colors = np.einsum("nk,nkc->nc", bary, vcol[mesh.faces[face_index]])
    return points, normals, np.clip(colors, 0.0, 1.0)


def object_mesh(obj: SceneObject) -> trimesh.Trimesh:
    """The object's mesh in its own frame, metres: its mesh file, or built from its cousin parameters."""
    if obj.mesh is not None:
        return load_mesh(obj.mesh, obj.units)
    return build_cousin(params_from_dict(dict(obj.cousin))).mesh()
