"""Mesh intake: load an object's mesh file into metres, with its colours, or say why not.

Formats: OBJ, PLY, GLB/GLTF (a scene: its meshes are concatenated with their node transforms
applied), STL, through trimesh. Textures become vertex colours (``visual.to_color()``), so every
mesh this returns carries colours a renderer can use without a texture sampler.

Nothing is repaired: open, non-watertight meshes (partial scans) load as they are; the inside test
downstream (``flowgen.control_points``) is built to cope with them. What cannot be an object is
refused, each with the value and the range (module constants below, docs/assets.md "Ranges"): a
file whose content is another format than its name says, non-finite vertex coordinates, no
faces, no area, a flat mesh (no volume to collide with), a size that contradicts the units, and
more faces than MAX_FACES. A mesh above DECIMATE_FACES is decimated on load, with a warning.
Torch-free.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import trimesh

from core.cousin_params import params_from_dict
from core.cousins import build_cousin
from core.errors import ChordError, ContractError, MissingDependencyError
from core.scene import MAX_OBJECT_SIZE, MESH_UNITS, Scene, SceneObject

log = logging.getLogger(__name__)

SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl")
# A tabletop object's largest extent, metres: outside this range the stated units are wrong.
MIN_EXTENT = 0.005
MAX_EXTENT = MAX_OBJECT_SIZE
# An object's smallest extent across its flattest direction, metres: below this the mesh is a
# sheet (one triangle, a single scanned face), whose convex hull has no volume for a physics
# engine to collide with or weigh; the digital cousins refuse dimensions below 1 mm too.
MIN_THICKNESS = 1e-3
# Faces: above DECIMATE_FACES a mesh is decimated on load (quadric, open3d) to that many, with a
# warning: every consumer is linear or worse in faces (the control points' winding numbers are
# |S| x faces), and 100k triangles already resolve a tabletop object to ~1 mm. Above MAX_FACES it
# is refused before any processing: loading alone takes ~1 GB and a minute per 5M faces.
DECIMATE_FACES = 100_000
MAX_FACES = 5_000_000
# The file itself, before parsing: a 5M-face mesh is ~150 MB as binary PLY, ~400 MB as OBJ text.
MAX_FILE_BYTES = 1 << 30
# Colour of meshes that carry none (trimesh's default grey), RGB in [0, 1].
DEFAULT_COLOR = (0.6, 0.6, 0.6)
_MIN_AREA = 1e-12  # m^2; below this the mesh has no surface to sample
# A scene's objects against its table (check_scene_geometry): an object's lowest point may sink
# this far into the table top (a rounding of poses; the simulator pushes a few mm out gently,
# more launches the object), and one whose lowest point is further than FLOAT_WARN above the
# table, and on no other object, floats: legal but suspicious (it falls when simulated).
TABLE_PENETRATION = 0.01  # metres
FLOAT_WARN = 0.05  # metres
_FORMAT_NAMES = {".obj": "OBJ", ".ply": "PLY", ".glb": "GLB", ".gltf": "glTF", ".stl": "STL"}


def sniff_format(path: str | Path) -> str | None:
    """The mesh format a file's first bytes declare (".ply", ".glb", ".gltf", ".stl"), or None.

    Only formats with a signature are recognised: PLY ("ply"), binary glTF ("glTF"), glTF JSON
    ("{"), ASCII STL ("solid" followed by "facet"), binary STL (its size matches its triangle
    count). OBJ has no signature; None means "no signature found", not "not a mesh".
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    size = path.stat().st_size
    text = head.lstrip()
    if head.startswith(b"ply") and head[3:4] in (b"\n", b"\r"):
        return ".ply"
    if head.startswith(b"glTF"):
        return ".glb"
    if text.startswith(b"{"):  # JSON: no other mesh format starts with a brace
        return ".gltf"
    if text.lower().startswith(b"solid") and b"facet" in head.lower():
        return ".stl"
    if len(head) >= 84 and 84 + 50 * int.from_bytes(head[80:84], "little") == size:
        return ".stl"
    return None


def _check_format(path: Path) -> None:
    """Refuse a file whose content is another format than its name says (a PLY named .obj)."""
    suffix = path.suffix.lower()
    found = sniff_format(path)
    if found is not None and found != suffix and {found, suffix} != {".glb", ".gltf"}:
        raise ChordError(
            f"{path}: content is {_FORMAT_NAMES[found]} (by its first bytes), but the name says "
            f"{suffix}; rename it to {path.stem}{found}"
        )
    if found is None and suffix == ".stl" and path.stat().st_size >= 84:
        with open(path, "rb") as f:
            f.seek(80)
            count = int.from_bytes(f.read(4), "little")
        raise ChordError(
            f"{path}: cannot read mesh (not an STL file: it is not ASCII STL, and as binary STL it "
            f"declares {count:,} triangles, which take {84 + 50 * count:,} bytes, not {path.stat().st_size:,})"
        )
    if found is None and suffix in (".obj", ".gltf"):
        with open(path, "rb") as f:
            head = f.read(512)
        if b"\0" in head:
            raise ChordError(
                f"{path}: cannot read mesh (not an {_FORMAT_NAMES[suffix]} file: {_FORMAT_NAMES[suffix]} is "
                f"text, this file is binary and starts with {head[:16]!r})"
            )
    if found is None and suffix in (".ply", ".glb"):
        with open(path, "rb") as f:
            head = f.read(16)
        magic = "ply" if suffix == ".ply" else "glTF"
        raise ChordError(
            f"{path}: cannot read mesh (not a {_FORMAT_NAMES[suffix]} file: it starts with {head!r}, "
            f"a {_FORMAT_NAMES[suffix]} file with {magic!r})"
        )


def load_mesh(path: str | Path, units: str = "m") -> trimesh.Trimesh:
    """Load a mesh file, scale it to metres and give it vertex (or face) colours.

    ``units`` is the unit of the file's coordinates: "m", "cm" or "mm".
    Returns a trimesh.Trimesh in metres, in the file's own frame (no pose applied), with at most
    DECIMATE_FACES faces (a larger mesh is decimated, with a warning).
    Raises ChordError (naming the path and the value) for everything :func:`read_mesh` refuses,
    and for a size that contradicts ``units`` or a degenerate mesh (:func:`check_size`).
    """
    path = Path(path)
    if units not in MESH_UNITS:
        raise ChordError(f"{path}: units {units!r} is not one of {sorted(MESH_UNITS)}")
    key = _cache_key(path, units)
    if key is not None and key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key].copy()
    t0 = time.monotonic()
    mesh = read_mesh(path)
    scale = MESH_UNITS[units]
    extent = check_size(mesh, scale, units, str(path))
    if scale != 1.0:
        mesh.apply_scale(scale)
    if len(mesh.faces) > DECIMATE_FACES:
        log.warning(
            "%s: %d faces, more than the %d a tabletop object needs; decimating on load (this "
            "happens on every load: `chord assets intake FILE` writes a decimated copy once)",
            path,
            len(mesh.faces),
            DECIMATE_FACES,
        )
        mesh = decimate(mesh, DECIMATE_FACES)
    log.debug(
        "loaded %s in %.1f s: %d vertices, %d faces, extent %.3f m, watertight=%s",
        path,
        time.monotonic() - t0,
        len(mesh.vertices),
        len(mesh.faces),
        extent,
        mesh.is_watertight,
    )
    if key is not None:
        _LOADED[key] = mesh.copy()
        while len(_LOADED) > _CACHE_SIZE:
            _LOADED.popitem(last=False)
    return mesh


# The meshes load_mesh returned last, by file identity and units: a scene is checked up front
# (check_scene_geometry) and then built from the same files, and a decimated 1M-face scan takes
# ~25 s to load. Copies go out, so a caller's changes never reach the cache.
_CACHE_SIZE = 8
_LOADED: OrderedDict[tuple, trimesh.Trimesh] = OrderedDict()


def _cache_key(path: Path, units: str) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None  # read_mesh says what is wrong with it
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, units)


def read_mesh(path: str | Path) -> trimesh.Trimesh:
    """Read a mesh file as it is (file units, own frame), with vertex or face colours.

    Raises ChordError (naming the path and the value) for a missing, unreadable or unsupported
    file, content of another format than the suffix says, a file over MAX_FILE_BYTES or a mesh
    over MAX_FACES faces, a mesh with no faces, and non-finite vertex coordinates.
    """
    path = Path(path)
    if not path.exists():
        raise ChordError(f"{path}: mesh file not found")
    if not path.is_file():
        raise ChordError(f"{path}: is a folder, expected a mesh file")
    if path.suffix.lower() not in SUFFIXES:
        raise ChordError(f"{path}: mesh format {path.suffix!r} is not supported; expected one of {SUFFIXES}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ChordError(
            f"{path}: the file is {size / 2**20:.0f} MiB, expected at most {MAX_FILE_BYTES / 2**20:.0f} MiB "
            f"(a mesh of {MAX_FACES:,} faces); decimate it first (e.g. in MeshLab or Blender)"
        )
    _check_format(path)
    try:
        # process=False: trimesh's processing silently drops non-finite vertices, which must be
        # refused instead; the same processing runs below once they are known to be finite.
        scene = trimesh.load_scene(path, process=False)
    except Exception as e:  # trimesh raises many types for a bad file; all mean "unreadable"
        raise ChordError(f"{path}: cannot read mesh ({type(e).__name__}: {e})") from e

    geometry = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not geometry:
        raise ChordError(f"{path}: mesh is empty (no faces)")
    _check_faces(path, sum(len(g.faces) for g in geometry))
    for g in geometry:
        _check_finite(path, g.vertices)
        with np.errstate(
            over="ignore", invalid="ignore"
        ):  # 1e308 overflows the merge key; check_size refuses it
            g.process()  # what load_scene(process=True) does, now that nothing is dropped silently
    parts = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    _check_faces(path, sum(len(p.faces) for p in parts))  # instanced nodes repeat their geometry
    for p in parts:
        _check_finite(path, p.vertices)  # a node transform may be non-finite too
        # Texture -> per-vertex colours now, so that concatenation keeps them.
        if p.visual.kind != "vertex":
            p.visual = _as_color_visual(p)
    return parts[0] if len(parts) == 1 else trimesh.util.concatenate(parts)


def _check_faces(path: Path, faces: int) -> None:
    if faces > MAX_FACES:
        raise ChordError(
            f"{path}: mesh has {faces:,} faces, expected at most {MAX_FACES:,}; decimate it first "
            "(e.g. in MeshLab or Blender)"
        )


def _check_finite(path: Path, vertices: np.ndarray) -> None:
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ChordError(
            f"{path}: {int(bad.sum())} of {len(bad)} vertices have non-finite coordinates "
            f"(vertex {i} is {vertices[i].tolist()}); expected finite numbers"
        )


def check_size(mesh: trimesh.Trimesh, scale: float, units: str, where: str) -> float:
    """The largest extent in metres of ``mesh`` (file units; ``scale`` metres per unit), or ChordError.

    Refuses a mesh without area, one whose largest extent in metres lies outside [MIN_EXTENT,
    MAX_EXTENT] (the units are wrong: the message suggests the units that fit) and a flat one
    (:func:`check_solid`).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # coordinates of 1e308: inf, refused below
        raw_extent = float(np.ptp(mesh.vertices, axis=0).max())
        area = float(mesh.area) * scale**2
    if area <= _MIN_AREA:
        raise ChordError(
            f"{where}: mesh is degenerate (surface area {area:.3g} m^2, largest extent "
            f"{raw_extent * scale:.3g} m): nothing to sample"
        )
    extent = raw_extent * scale
    if not MIN_EXTENT <= extent <= MAX_EXTENT:
        fits = [u for u, s in MESH_UNITS.items() if MIN_EXTENT <= raw_extent * s <= MAX_EXTENT]
        hint = f"did you mean units: {'/'.join(fits)}?" if fits else "check the file's scale"
        raise ChordError(
            f"{where}: largest extent is {extent:.4g} m with units {units!r}, expected "
            f"{MIN_EXTENT * 1000:g} mm to {MAX_EXTENT:g} m for a tabletop object; {hint}"
        )
    check_solid(mesh.vertices * scale, where)
    return extent


def check_solid(vertices: np.ndarray, where: str) -> None:
    """Raise ChordError when ``vertices`` [V, 3] (metres) are flatter than MIN_THICKNESS.

    The thickness is the extent along the direction of least spread (the smallest principal
    axis): one triangle, or a single scanned face, has none, and neither has its convex hull
    (qhull refuses it), so nothing downstream could collide with it or weigh it.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) >= 4:
        centred = v - v.mean(axis=0)
        # The covariance (3 x 3) instead of an SVD of the V x 3 matrix: same axes, no V-sized copy.
        _, axes = np.linalg.eigh(centred.T @ centred)
        thickness = float(np.ptp(centred @ axes[:, 0]))
    else:
        thickness = 0.0
    if thickness < MIN_THICKNESS:
        raise ChordError(
            f"{where}: mesh is flat ({len(v)} vertices within {thickness * 1000:.3g} mm of one plane), "
            f"expected an object at least {MIN_THICKNESS * 1000:g} mm thick: a single surface has no "
            "volume to collide with"
        )


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to at most ``max_faces`` triangles (open3d), keeping vertex colours.

    Logs the time it took (about 10 s per million faces on one core). Raises ChordError for a
    ``max_faces`` below 4, MissingDependencyError without open3d.
    """
    if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 4:
        raise ChordError(f"max_faces is {max_faces!r}, expected an integer >= 4")
    if len(mesh.faces) <= max_faces:
        return mesh
    try:
        import open3d as o3d
    except ImportError as e:  # includes the missing libusb-1.0 shared library
        raise MissingDependencyError(
            f"decimation needs open3d ({e}); pip install open3d, and on Debian/Ubuntu "
            "apt-get install -y libusb-1.0-0"
        ) from e

    t0 = time.monotonic()
    log.info("decimating %d -> %d faces ...", len(mesh.faces), max_faces)
    o = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(mesh.vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.asarray(mesh.faces, dtype=np.int32)),
    )
    o.vertex_colors = o3d.utility.Vector3dVector(mesh_colors(mesh))
    d = o.simplify_quadric_decimation(target_number_of_triangles=int(max_faces))
    d.remove_degenerate_triangles()
    d.remove_unreferenced_vertices()
    out = trimesh.Trimesh(np.asarray(d.vertices), np.asarray(d.triangles), process=False)
    rgb = np.clip(np.asarray(d.vertex_colors), 0, 1)
    rgba = np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1)
    out.visual = trimesh.visual.ColorVisuals(out, vertex_colors=np.round(255 * rgba).astype(np.uint8))
    log.info("decimated %d -> %d faces in %.1f s", len(mesh.faces), len(out.faces), time.monotonic() - t0)
    return out


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


# Samples every part of a jointed object gets at least (of 2,048 in a generated flow, 4,000 in a
# suite's ground truth), the rest by area: a part must be a part of its own in the planner's
# segmentation, whose hypotheses sample a point's 40 nearest neighbours, and a door's lever handle
# (2% of its surface) gets 33-43 points of 2,048 by area.
MIN_POINTS_PER_PART = 256
# Area samples drawn per returned point when parts get a floor (allocate_part_samples): a part
# with 1/POOL_FACTOR of its object's area still finds as many samples in the pool as points asked.
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
    if pool_part.ndim != 1 or not np.issubdtype(pool_part.dtype, np.integer):
        raise ValueError(
            f"allocate_part_samples: pool_part is {pool_part.dtype} {list(pool_part.shape)}, expected [m] integer labels"
        )
    for name, v in (("n", n), ("floor", floor)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < (1 if name == "n" else 0):
            raise ValueError(
                f"allocate_part_samples: {name} is {v!r}, expected an integer >= {int(name == 'n')}"
            )
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
    keep = np.concatenate(
        [np.flatnonzero(pool_part == q)[: int(c)] for q, c in zip(parts, take, strict=True)]
    )
    return np.sort(keep)


def object_mesh(obj: SceneObject) -> trimesh.Trimesh:
    """The object's mesh in its own frame, metres: its mesh file, or built from its cousin parameters."""
    if obj.mesh is not None:
        return load_mesh(obj.mesh, obj.units)
    return build_cousin(params_from_dict(dict(obj.cousin))).mesh()


def check_scene_geometry(scene: Scene, meshes: list[trimesh.Trimesh] | None = None) -> list[str]:
    """Check the scene's objects and camera against each other, with their meshes loaded.

    ``meshes`` are the objects' meshes in their own frames (``object_mesh``; loaded when None).
    Raises ContractError (naming the field and the value) for an object whose lowest point lies
    more than TABLE_PENETRATION under the table top, and for a camera inside an object (inside
    its convex hull). Returns (and logs) warnings: an object floating more than FLOAT_WARN above
    the table and on no other object.
    """
    if meshes is None:
        meshes = [object_mesh(o) for o in scene.objects]
    world = []
    for o, m in zip(scene.objects, meshes, strict=True):
        T = o.pose.matrix()
        world.append(np.asarray(m.vertices) @ T[:3, :3].T + T[:3, 3])
    boxes = [(v.min(axis=0), v.max(axis=0)) for v in world]
    eye = np.asarray(scene.camera.T_world_cam.position, dtype=float)
    warnings = []
    for i, (o, v, (lo, hi)) in enumerate(zip(scene.objects, world, boxes, strict=True)):
        below = scene.table_height - float(lo[2])
        if below > TABLE_PENETRATION:
            raise ContractError(
                f"objects[{i}].pose.position",
                f"puts {o.name!r} {below:.4g} m into the table: its lowest point is at z={lo[2]:.4g}, the "
                f"table top at {scene.table_height:g}; expected at most {TABLE_PENETRATION * 100:g} cm below it",
                scene.path,
            )
        lowest = v[int(np.argmin(v[:, 2]))]
        on_other = any(
            (lowest >= b_lo - TABLE_PENETRATION).all() and (lowest <= b_hi + TABLE_PENETRATION).all()
            for j, (b_lo, b_hi) in enumerate(boxes)
            if j != i
        )
        if -below > FLOAT_WARN and not on_other:
            msg = (
                f"{scene.path or scene.name}: objects[{i}] {o.name!r} floats {-below:.3g} m above the "
                f"table top (expected its lowest point on the table, within {FLOAT_WARN * 100:g} cm, "
                "or on another object); it falls when simulated"
            )
            log.warning(msg)
            warnings.append(msg)
        if (eye >= lo).all() and (eye <= hi).all() and _inside_hull(v, eye):
            raise ContractError(
                "camera.position",
                f"is {[round(float(x), 4) for x in eye]}, inside object {o.name!r} (its bounds are "
                f"{np.round(lo, 4).tolist()} to {np.round(hi, 4).tolist()}); expected the camera outside every object",
                scene.path,
            )
    return warnings


def _inside_hull(vertices: np.ndarray, point: np.ndarray) -> bool:
    """Whether ``point`` [3] lies inside the convex hull of ``vertices`` [V, 3]."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(vertices)
    except QhullError:
        return False  # flat: nothing to be inside (load_mesh refuses flat meshes anyway)
    return bool((hull.equations[:, :3] @ point + hull.equations[:, 3] <= 0).all())
