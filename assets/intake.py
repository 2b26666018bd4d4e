"""Scanned-mesh intake: a phone scan (OBJ/PLY/GLB) -> a clean mesh in the object frame + a rigid URDF.

Steps: load (``core.mesh.load_mesh``; units given, or guessed from the size), merge and clean
(keep the large connected components), find the table plane in the scan if there is one (RANSAC;
its normal gives gravity) and cut it away, else take "up" from the user (default +z, +y for glTF),
put the object on z = 0 centred over the origin, tip it into a resting pose if it would topple,
and decimate to a face budget (open3d). Partial, open scans pass through every step.

A scan split into pieces becomes an articulated asset through a parts file (see
:func:`intake_parts`), which names each piece's mesh and the joints between them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
import yaml

from assets.config import IntakeConfig
from core.asset import DEFAULT_DENSITY, Asset, Joint, Link, translation
from core.errors import ChordError, MissingDependencyError
from core.mesh import load_mesh
from core.names import MAX_NAME_LENGTH, name_problem
from core.scene import MESH_UNITS

log = logging.getLogger(__name__)

# Largest extent a tabletop object plausibly has, metres; "auto" units pick the unit that lands here.
PLAUSIBLE_EXTENT = (0.02, 1.5)
_AXES = {
    "+x": (1, 0, 0),
    "-x": (-1, 0, 0),
    "+y": (0, 1, 0),
    "-y": (0, -1, 0),
    "+z": (0, 0, 1),
    "-z": (0, 0, -1),
}


@dataclass(frozen=True)
class IntakeReport:
    """What intake decided, for the log and the asset record."""

    scale: float  # metres per file unit
    units: str  # "m", "cm", "mm", or "scale" when given as a number
    up_in_file: tuple[float, float, float]  # unit up vector in the file's frame
    table_found: bool
    table_faces_removed: int
    components_kept: int
    components_dropped: int
    faces_in: int
    faces_out: int
    watertight: bool
    tipped_deg: float  # rotation applied to reach a resting pose


# -- loading ---------------------------------------------------------------------------------
def load_file_units(path: str | Path) -> tuple[trimesh.Trimesh, float]:
    """Load ``path`` through core.mesh and return it in the file's own units, with its largest extent.

    load_mesh refuses sizes that contradict its units, so the units are tried in turn until it
    accepts one; a file no unit fits (or an unreadable one) raises the error for "m".
    """
    first: ChordError | None = None
    for units in ("m", "mm", "cm"):
        try:
            mesh = load_mesh(path, units)
        except ChordError as e:
            first = first or e
            continue
        mesh.apply_scale(1.0 / MESH_UNITS[units])
        return mesh, float(np.ptp(mesh.vertices, axis=0).max())
    assert first is not None
    raise first


def decide_scale(raw_extent: float, units: str, scale: float | None, where: str = "") -> tuple[float, str]:
    """Metres per file unit from the given units/scale, or guessed from the largest extent (file units)."""
    if scale is not None:
        if isinstance(scale, bool) or not (math.isfinite(scale) and scale > 0):
            raise ChordError(f"{where}scale is {scale!r}, expected a positive number of metres per file unit")
        extent = raw_extent * scale
        if not 0.005 <= extent <= 3.0:
            raise ChordError(
                f"{where}scale {scale:g} makes the object {extent:.4g} m across, expected 5 mm to 3 m"
            )
        return float(scale), "scale"
    if units != "auto":
        if units not in MESH_UNITS:
            raise ChordError(f"{where}units is {units!r}, expected one of {[*MESH_UNITS, 'auto']}")
        extent = raw_extent * MESH_UNITS[units]
        if not 0.005 <= extent <= 3.0:
            raise ChordError(
                f"{where}largest extent is {extent:.4g} m with units {units!r}, expected 5 mm to 3 m; "
                "check units or pass a scale"
            )
        return MESH_UNITS[units], units
    lo, hi = PLAUSIBLE_EXTENT
    for u in ("m", "mm", "cm"):
        if lo <= raw_extent * MESH_UNITS[u] <= hi:
            log.info(
                "%sunits auto: largest extent %.4g file units -> %s (%.3f m)",
                where,
                raw_extent,
                u,
                raw_extent * MESH_UNITS[u],
            )
            return MESH_UNITS[u], u
    raise ChordError(
        f"{where}cannot tell the units: the largest extent is {raw_extent:.4g} file units, which is "
        f"{raw_extent:.4g} m, {raw_extent / 100:.4g} m in cm or {raw_extent / 1000:.4g} m in mm, and none is a "
        f"tabletop size ({lo:g} to {hi:g} m); pass units (m/cm/mm) or scale (metres per file unit)"
    )


# -- cleaning --------------------------------------------------------------------------------
def clean(mesh: trimesh.Trimesh, min_component: float) -> tuple[trimesh.Trimesh, int, int]:
    """Merge duplicate vertices, drop degenerate faces and small pieces.

    Returns the mesh, the number of components kept and dropped. Colours are kept.
    """
    if not 0.0 <= min_component <= 1.0:
        raise ChordError(f"min_component is {min_component!r}, expected a fraction in [0, 1]")
    mesh = mesh.copy()
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        raise ChordError("mesh has no faces left after removing degenerate ones")
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return mesh, 1, 0
    areas = np.array([p.area for p in parts])
    keep = areas >= min_component * areas.max()
    if not min_component:
        keep[:] = True
    kept = [p for p, k in zip(parts, keep, strict=True) if k]
    out = kept[0] if len(kept) == 1 else trimesh.util.concatenate(kept)
    return out, int(keep.sum()), int((~keep).sum())


def find_table(
    mesh: trimesh.Trimesh, seed: int = 0, iterations: int = 400
) -> tuple[np.ndarray, float] | None:
    """A large plane under the object: (unit normal pointing to the object [3], offset d) or None.

    The plane is {x : n.x = d}. RANSAC on area-weighted surface samples; a plane counts as a table
    when it holds at least a quarter of the surface and nearly all the rest lies on one side.
    """
    rng = np.random.default_rng(seed)
    pts, _ = trimesh.sample.sample_surface(mesh, 4000, seed=seed)
    extent = float(np.ptp(pts, axis=0).max())
    tol = max(0.004 * extent, 1e-6)
    best, best_count = None, 0
    for _ in range(iterations):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n /= np.linalg.norm(n)
        count = int((np.abs(pts @ n - n @ a) < tol).sum())
        if count > best_count:
            best, best_count = (n, float(n @ a)), count
    if best is None or best_count < 0.25 * len(pts):
        return None
    n, d = best
    # Refine by least squares on the inliers.
    inl = pts[np.abs(pts @ n - d) < tol]
    centre = inl.mean(0)
    n = np.linalg.svd(inl - centre)[2][-1]
    d = float(n @ centre)
    side = pts @ n - d
    off = side[np.abs(side) >= 3 * tol]
    if len(off) < 0.02 * len(pts):
        return None  # the scan is (nearly) all plane: no object on it
    above = float((off > 0).mean())
    if max(above, 1 - above) < 0.97:
        return None  # points on both sides: a face of the object, not a support
    if above < 0.5:
        n, d = -n, -d
    return n, d


def rotation_to_z(up: np.ndarray) -> np.ndarray:
    """[3, 3] rotation taking the unit vector ``up`` to +z (shortest arc)."""
    up = np.asarray(up, dtype=float) / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(up, z), float(up @ z)
    if c < -1 + 1e-9:
        return np.diag([1.0, -1.0, -1.0])
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)


def _up_vector(up: str, path: Path) -> np.ndarray:
    if up == "auto":
        return np.array(_AXES["+y" if path.suffix.lower() in (".glb", ".gltf") else "+z"], dtype=float)
    if up not in _AXES:
        raise ChordError(f"up is {up!r}, expected auto or one of {list(_AXES)}")
    return np.array(_AXES[up], dtype=float)


def floor(mesh: trimesh.Trimesh) -> np.ndarray:
    """Translate ``mesh`` in place so its footprint is centred on the origin and its lowest point is at z = 0.

    Returns the [4, 4] translation applied.
    """
    lo, hi = mesh.bounds
    T = translation((-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]))
    mesh.apply_transform(T)
    return T


def center_of_mass(mesh: trimesh.Trimesh) -> np.ndarray:
    """[3] centre of mass: of the solid for a closed mesh, of the convex hull for an open one."""
    if mesh.is_watertight and mesh.volume > 0:
        return np.asarray(mesh.center_mass)
    return np.asarray(mesh.convex_hull.center_mass)


def rests_stably(mesh: trimesh.Trimesh, com: np.ndarray, contact_tol: float = 0.002) -> bool:
    """Whether the COM [3] lies over the support polygon of the points within ``contact_tol`` of z = 0."""
    from scipy.spatial import ConvexHull, QhullError

    low = mesh.vertices[mesh.vertices[:, 2] <= mesh.bounds[0, 2] + contact_tol][:, :2]
    if len(low) < 3:
        return False
    try:
        hull = ConvexHull(low)
    except QhullError:
        return False  # collinear contacts: a line, no area of support
    return bool((hull.equations[:, :2] @ com[:2] + hull.equations[:, 2] <= 0).all())


def settle_pose(mesh: trimesh.Trimesh) -> tuple[np.ndarray, float]:
    """[4, 4] rotation into the stable resting pose nearest the current one, and its angle (deg)."""
    com = center_of_mass(mesh)
    transforms, _ = trimesh.poses.compute_stable_poses(mesh, center_mass=com)
    if len(transforms) == 0:
        return np.eye(4), 0.0
    angles = [math.degrees(math.acos(np.clip((np.trace(T[:3, :3]) - 1) / 2, -1, 1))) for T in transforms]
    i = int(np.argmin(angles))
    R = np.eye(4)
    R[:3, :3] = transforms[i][:3, :3]
    return R, angles[i]


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to at most ``max_faces`` triangles (open3d), keeping vertex colours."""
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
    from core.mesh import mesh_colors

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
    log.info("decimated %d -> %d faces", len(mesh.faces), len(out.faces))
    return out


# -- single scan -----------------------------------------------------------------------------
def intake_scan(
    path: str | Path, config: IntakeConfig = IntakeConfig(), name: str | None = None
) -> tuple[Asset, IntakeReport]:
    """A scan file -> a rigid asset (object frame: z up, on z = 0, centred) and what was decided.

    Raises ChordError naming the value for an unreadable or empty file, absurd units, a bad
    option, or a scan with nothing left after cleaning.
    """
    path = Path(path)
    raw, raw_extent = load_file_units(path)
    s, units = decide_scale(raw_extent, config.units, config.scale, f"{path}: ")
    mesh = raw.copy()
    mesh.apply_scale(s)
    faces_in = len(mesh.faces)
    mesh, kept, dropped = clean(mesh, config.min_component)

    table_removed, table_found = 0, False
    if config.table not in ("auto", "none"):
        raise ChordError(f"table is {config.table!r}, expected auto or none")
    plane = find_table(mesh, config.seed) if config.table == "auto" else None
    if plane is not None:
        n, d = plane
        dist = mesh.vertices @ n - d
        tol = 0.004 * float(np.ptp(mesh.vertices, axis=0).max())
        on_plane = (np.abs(dist[mesh.faces]) < 2 * tol).all(axis=1)
        mesh.update_faces(~on_plane)
        mesh.remove_unreferenced_vertices()
        table_removed, table_found = int(on_plane.sum()), True
        mesh, kept, dropped2 = clean(mesh, config.min_component)
        dropped += dropped2
        up = n
        log.info(
            "table plane found: normal %s in the file frame, %d faces removed",
            np.round(n, 3).tolist(),
            table_removed,
        )
    else:
        up = _up_vector(config.up, path)
    R = np.eye(4)
    R[:3, :3] = rotation_to_z(up)
    mesh.apply_transform(R)
    floor(mesh)
    tipped = 0.0
    if config.settle and not rests_stably(mesh, center_of_mass(mesh)):
        Rs, tipped = settle_pose(mesh)
        mesh.apply_transform(Rs)
        floor(mesh)
        log.warning(
            "%s would topple as oriented; rotated %.1f deg into its nearest resting pose", path, tipped
        )
    mesh = decimate(mesh, config.max_faces)
    if config.density <= 0 or not math.isfinite(config.density):
        raise ChordError(f"density is {config.density!r}, expected a positive number of kg/m^3")
    report = IntakeReport(
        scale=s,
        units=units,
        up_in_file=tuple(float(v) for v in up),
        table_found=table_found,
        table_faces_removed=table_removed,
        components_kept=kept,
        components_dropped=dropped,
        faces_in=faces_in,
        faces_out=len(mesh.faces),
        watertight=bool(mesh.is_watertight),
        tipped_deg=tipped,
    )
    params = {"kind": "scan", "source": str(path), **{k: v for k, v in report.__dict__.items()}}
    link = Link("body", mesh, np.eye(4), config.density, (), (*config.color, 1.0))
    return Asset(name or _name(path), (link,), (), params), report


def _name(path: Path) -> str:
    """A legal name (core.names) from a file's stem: other characters become '_' (ASCII only)."""
    stem = "".join(c if (c.isascii() and c.isalnum()) or c in "_-" else "_" for c in path.stem)
    stem = stem.lstrip("-")[:MAX_NAME_LENGTH]
    return stem or "scan"


# -- a scan split into parts -----------------------------------------------------------------
PARTS_EXAMPLE = """\
name: scanned_laptop
units: auto          # of every part file and of joint origins: m, cm, mm or auto
up: +z               # up axis of the scan's frame
parts:               # one mesh file per rigid piece, all in the scan's frame; the first is the root
  - {name: base, mesh: base.ply}
  - {name: lid, mesh: lid.ply}
joints:
  - name: hinge
    type: revolute             # or prismatic (limits in m) or fixed
    parent: base
    child: lid
    origin: [-0.11, 0.0, 0.016]  # a point on the axis, scan frame and units
    axis: [0, -1, 0]             # scan frame; + opens
    limits_deg: [-100, 35]       # relative to the scanned configuration (0 = as scanned)
    damping: 0.05                # N m s/rad
    friction: 0.4                # N m
"""


def intake_parts(spec_path: str | Path, density: float = DEFAULT_DENSITY) -> Asset:
    """An articulated asset from a parts file (YAML, see PARTS_EXAMPLE); paths resolve against it.

    Joint value 0 is the scanned configuration. Raises ChordError naming the bad field.
    """
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise ChordError(f"{spec_path}: parts file not found")
    try:
        doc = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ChordError(f"{spec_path}: not valid YAML ({e})".replace("\n", " ")) from e
    if not isinstance(doc, dict):
        raise ChordError(f"{spec_path}: expected a mapping with parts and joints")

    def fail(field: str, msg: str) -> ChordError:
        return ChordError(f"{spec_path}: {field}: {msg}")

    parts = doc.get("parts")
    if not isinstance(parts, list) or not parts:
        raise fail("parts", f"is {parts!r}, expected a non-empty list of {{name, mesh}}")
    raws: list[tuple[str, trimesh.Trimesh]] = []
    for i, part in enumerate(parts):
        if (
            not isinstance(part, dict)
            or not isinstance(part.get("name"), str)
            or not isinstance(part.get("mesh"), str)
        ):
            raise fail(f"parts[{i}]", f"is {part!r}, expected {{name: ..., mesh: file}}")
        # A part's name names its files (links/<name>.ply, ...): refuse '../x', '/', '', '.x'
        # here, with the field, before any mesh is loaded.
        problem = name_problem(part["name"])
        if problem is not None:
            raise fail(f"parts[{i}].name", f"is {part['name']!r}: {problem}")
        f = Path(part["mesh"])
        raw, _ = load_file_units(f if f.is_absolute() else spec_path.parent / f)
        raws.append((part["name"], raw))
    union = trimesh.util.concatenate([m for _, m in raws])
    raw_extent = float(np.ptp(union.vertices, axis=0).max())
    s, _ = decide_scale(raw_extent, str(doc.get("units", "auto")), doc.get("scale"), f"{spec_path}: ")
    R = np.eye(4)
    R[:3, :3] = rotation_to_z(_up_vector(str(doc.get("up", "auto")), spec_path))
    union.apply_scale(s)
    union.apply_transform(R)
    T_obj_scan = floor(union) @ R @ np.diag([s, s, s, 1.0])  # scan coordinates -> object frame

    links = []
    frames: dict[str, np.ndarray] = {}
    joints_doc = doc.get("joints") or []
    if not isinstance(joints_doc, list):
        raise fail("joints", f"is {joints_doc!r}, expected a list")
    for i, j in enumerate(joints_doc):
        if not isinstance(j, dict) or "child" not in j:
            raise fail(f"joints[{i}]", f"is {j!r}, expected a mapping with parent, child, origin, axis")
        origin = _vec(j.get("origin", [0, 0, 0]), fail, f"joints[{i}].origin")
        frames[str(j["child"])] = translation((T_obj_scan @ np.append(origin, 1.0))[:3])
    for name, raw in raws:
        mesh = raw.copy()
        mesh.apply_transform(T_obj_scan)
        mesh, _, _ = clean(mesh, 0.0)
        links.append(Link(name, mesh, frames.get(name, np.eye(4)), density, ()))
    joints = []
    for i, j in enumerate(joints_doc):
        where = f"joints[{i}]"
        jtype = j.get("type", "revolute")
        axis = R[:3, :3] @ _vec(j.get("axis", [0, 0, 1]), fail, f"{where}.axis")
        lo, hi = 0.0, 0.0
        if jtype != "fixed":
            key = "limits_deg" if jtype == "revolute" else "limits"
            lim = j.get(key)
            if not (
                isinstance(lim, list) and len(lim) == 2 and all(isinstance(v, (int, float)) for v in lim)
            ):
                raise fail(f"{where}.{key}", f"is {lim!r}, expected [lower, upper]")
            if lim[0] >= lim[1]:
                raise fail(f"{where}.{key}", f"is {lim!r}: limits reversed or empty; expected lower < upper")
            lo, hi = (math.radians(v) for v in lim) if jtype == "revolute" else (v * s for v in lim)
        try:
            joints.append(
                Joint(
                    str(j.get("name", f"joint{i}")), jtype, str(j.get("parent")), str(j["child"]), tuple(axis), lo, hi,
                    float(j.get("damping", 0.05)), float(j.get("friction", 0.3)),
                )
            )  # fmt: skip
        except ChordError as e:
            raise fail(where, str(e)) from e
    try:
        return Asset(
            str(doc.get("name", spec_path.stem)),
            tuple(links),
            tuple(joints),
            {"kind": "parts", "source": str(spec_path), "scale": s},
        )
    except ChordError as e:
        raise ChordError(f"{spec_path}: {e}") from e


def _vec(v: Any, fail, field: str) -> np.ndarray:
    if not (
        isinstance(v, list)
        and len(v) == 3
        and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
    ):
        raise fail(field, f"is {v!r}, expected [x, y, z]")
    return np.asarray(v, dtype=float)
