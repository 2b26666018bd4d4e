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

from assets.config import UP_AXES, IntakeConfig
from core.asset import DEFAULT_DENSITY, JOINT_TYPES, Asset, Joint, Link, translation
from core.contract import read_yaml_file
from core.errors import ChordError
from core.mesh import DECIMATE_FACES, check_size, check_solid, decimate, read_mesh
from core.names import MAX_NAME_LENGTH, NAME_RULE, name_problem
from core.scene import (
    DENSITY_RANGE,
    MAX_JOINT_DAMPING,
    MAX_JOINT_FRICTION,
    MAX_OBJECT_SIZE,
    MAX_REVOLUTE_DEG,
    MESH_UNITS,
)

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
    # [4, 4] row-major: the file's coordinates (file units) -> the asset's frame (metres). A point
    # of the scan file p lands at T_asset_file @ [p, 1] in the asset: scale, turn up to +z,
    # centre and floor, and the tip into a resting pose when there was one. Its inverse places
    # the asset where the scan was (a scan taken in a known frame).
    T_asset_file: tuple[tuple[float, ...], ...]


# -- loading ---------------------------------------------------------------------------------
def load_file_units(path: str | Path) -> tuple[trimesh.Trimesh, float]:
    """Read ``path`` once (``core.mesh.read_mesh``) in the file's own units, with its largest extent.

    The file must make a tabletop object in some unit (m, mm or cm: ``core.mesh.check_size``);
    a file no unit fits, or an unreadable one, raises the error for "m".
    """
    mesh = read_mesh(path)
    first: ChordError | None = None
    for units in ("m", "mm", "cm"):
        try:
            check_size(mesh, MESH_UNITS[units], units, str(path))
        except ChordError as e:
            first = first or e
            continue
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
    # Component labels per face, not mesh.split(): a scan of 200k loose triangles has 200k
    # components, and a Trimesh object per component took over 7 GB.
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    count = int(labels.max()) + 1
    if count <= 1:
        return mesh, 1, 0
    areas = np.bincount(labels, weights=mesh.area_faces, minlength=count)
    keep = areas >= min_component * areas.max()
    if not min_component:
        keep[:] = True
    if not keep.all():
        mesh.update_faces(keep[labels])
        mesh.remove_unreferenced_vertices()
    return mesh, int(keep.sum()), int((~keep).sum())


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
    if faces_in > DECIMATE_FACES:
        # Every step below is linear or worse in faces (a 1.3M-face scan took over 5 minutes and
        # 4 GB): bring it down to what a tabletop object needs first; the face budget follows.
        log.warning(
            "%s: %d faces, more than the %d a tabletop object needs; decimating before intake",
            path,
            faces_in,
            DECIMATE_FACES,
        )
        mesh = decimate(mesh, DECIMATE_FACES)
    log.info("%s: cleaning %d faces", path, len(mesh.faces))
    mesh, kept, dropped = clean(mesh, config.min_component)

    table_removed, table_found = 0, False
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
    # What cleaning and the table cut leave must still be a solid (a lone triangle, a single
    # scanned face has no hull to settle, weigh or collide with).
    check_solid(mesh.vertices, f"{path} after cleaning")
    # Decimate before settling: a rotation commutes with it, and the resting-pose search is
    # quadratic-ish in the hull's faces (48 s of a 1.3M-face scan's 80 s when it came last).
    mesh = decimate(mesh, config.max_faces)
    R = np.eye(4)
    R[:3, :3] = rotation_to_z(up)
    mesh.apply_transform(R)
    # Every step that moves the mesh is composed into one transform (cleaning, the table cut and
    # decimation drop faces but move nothing).
    T_asset_file = floor(mesh) @ R @ np.diag([s, s, s, 1.0])
    tipped = 0.0
    if config.settle and not rests_stably(mesh, center_of_mass(mesh)):
        log.info("%s: finding its nearest resting pose (%d faces)", path, len(mesh.faces))
        Rs, tipped = settle_pose(mesh)
        mesh.apply_transform(Rs)
        T_asset_file = floor(mesh) @ Rs @ T_asset_file
        log.warning(
            "%s would topple as oriented; rotated %.1f deg into its nearest resting pose", path, tipped
        )
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
        T_asset_file=tuple(tuple(float(v) for v in row) for row in T_asset_file),
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


# Ranges of a parts file's joints besides core.scene's (MAX_REVOLUTE_DEG, MAX_JOINT_DAMPING,
# MAX_JOINT_FRICTION; docs/assets.md "Ranges"); each refusal names the value and the range.
# A slide travels at most the size of the largest tabletop object (metres, after the units).
MAX_TRAVEL = MAX_OBJECT_SIZE
# A joint's origin (a point on its axis) lies on or next to the parts it joins: within this
# distance of their bounding box (a partial scan may miss the hinge pin itself). A hinge 1 km
# away is a unit slip.
JOINT_ORIGIN_MARGIN = 0.05  # metres
_PARTS_KEYS = ("name", "units", "scale", "up", "parts", "joints")
_PART_KEYS = ("name", "mesh")
_JOINT_KEYS = (
    "name", "type", "parent", "child", "origin", "axis", "limits_deg", "limits", "damping", "friction",
)  # fmt: skip


@dataclass(frozen=True)
class _JointSpec:
    """One joint of a parts file, checked but still in the scan's frame and units."""

    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray  # [3] scan frame, file units
    axis: np.ndarray  # [3] scan frame
    limits: tuple[float, float]  # degrees (revolute) or file units (prismatic); (0, 0) when fixed
    damping: float
    friction: float


class _PartsFile:
    """Reads a parts file's document, naming each bad field by its path (``joints[0].type``)."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str) -> ChordError:
        return ChordError(f"{self.path}: {where}: {message}")

    def mapping(self, v: Any, where: str, keys: tuple[str, ...], example: str) -> dict:
        if not isinstance(v, dict):
            raise self.fail(where, f"is {_show(v)}, expected a mapping like {example}")
        unknown = [k for k in v if k not in keys]
        if unknown:
            raise self.fail(
                f"{where}.{unknown[0]}" if where else str(unknown[0]),
                f"unknown key; expected one of {list(keys)}",
            )
        return v

    def name(self, v: Any, where: str) -> str:
        # Part and joint names become file names (links/<part>.ply): the one rule of core.names.
        if not isinstance(v, str):
            raise self.fail(where, f"is {_show(v)}, expected a name of {NAME_RULE}")
        problem = name_problem(v)
        if problem is not None:
            raise self.fail(where, f"is {v!r}: {problem}")
        return v

    def number(self, v: Any, where: str, lo: float, hi: float, unit: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(where, f"is {_show(v)}, expected a number from {lo:g} to {hi:g} {unit}")
        if not lo <= v <= hi:
            raise self.fail(where, f"is {v!r}, expected {lo:g} to {hi:g} {unit}")
        return float(v)

    def vector(self, v: Any, where: str) -> np.ndarray:
        ok = isinstance(v, list) and len(v) == 3
        ok = ok and all(
            not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) for x in v
        )
        if not ok:
            raise self.fail(where, f"is {_show(v)}, expected [x, y, z] (3 finite numbers)")
        return np.asarray(v, dtype=float)

    def joint(self, j: Any, where: str, parts: list[str]) -> _JointSpec:
        j = self.mapping(j, where, _JOINT_KEYS, "{name, type, parent, child, origin, axis, limits_deg}")
        name = self.name(j.get("name"), f"{where}.name")
        jtype = j.get("type", "revolute")
        if jtype not in JOINT_TYPES:
            raise self.fail(f"{where}.type", f"is {_show(jtype)}, expected one of {list(JOINT_TYPES)}")
        ends = []
        for key in ("parent", "child"):
            end = self.name(j.get(key), f"{where}.{key}")
            if end not in parts:
                raise self.fail(f"{where}.{key}", f"link {end!r} does not exist; the parts are {parts}")
            ends.append(end)
        if ends[0] == ends[1]:
            raise self.fail(f"{where}.child", f"is {ends[1]!r}, the joint's own parent")
        if ends[1] == parts[0]:
            raise self.fail(f"{where}.child", f"is {ends[1]!r}, the root (the first part) has no parent")
        origin = self.vector(j.get("origin", [0, 0, 0]), f"{where}.origin")
        axis = self.vector(j.get("axis", [0, 0, 1]), f"{where}.axis")
        if jtype != "fixed" and float(np.linalg.norm(axis)) < 1e-9:
            raise self.fail(f"{where}.axis", f"is {axis.tolist()}, expected a non-zero direction")
        limits = (0.0, 0.0)
        wrong = "limits" if jtype == "revolute" else "limits_deg"
        if jtype != "fixed" and wrong in j:
            raise self.fail(
                f"{where}.{wrong}",
                f"does not apply to a {jtype} joint; give {'limits_deg' if jtype == 'revolute' else 'limits'}",
            )
        if jtype == "revolute":
            lim = self.pair(j.get("limits_deg"), f"{where}.limits_deg", MAX_REVOLUTE_DEG, "deg")
            limits = lim
        elif jtype == "prismatic":
            # File units: the range (MAX_TRAVEL metres) is checked once the scale is known.
            limits = self.pair(j.get("limits"), f"{where}.limits", math.inf, "file units")
        damping = self.number(j.get("damping", 0.05), f"{where}.damping", 0.0, MAX_JOINT_DAMPING, "N m s/rad")
        friction = self.number(j.get("friction", 0.3), f"{where}.friction", 0.0, MAX_JOINT_FRICTION, "N m")
        return _JointSpec(name, jtype, ends[0], ends[1], origin, axis, limits, damping, friction)

    def pair(self, lim: Any, where: str, bound: float, unit: str) -> tuple[float, float]:
        ok = isinstance(lim, list) and len(lim) == 2
        ok = ok and all(
            not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) for v in lim
        )
        if not ok:
            raise self.fail(where, f"is {_show(lim)}, expected [lower, upper] ({unit}, finite numbers)")
        lo, hi = float(lim[0]), float(lim[1])
        if lo >= hi:
            raise self.fail(where, f"is {lim!r}: limits reversed or empty; expected lower < upper")
        if not lo <= 0.0 <= hi:
            raise self.fail(
                where, f"is {lim!r}: the scanned configuration (0) lies outside; expected lower <= 0 <= upper"
            )
        if max(-lo, hi) > bound:
            raise self.fail(where, f"is {lim!r}, expected limits within -{bound:g} to {bound:g} {unit}")
        return lo, hi


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def intake_parts(spec_path: str | Path, density: float = DEFAULT_DENSITY) -> Asset:
    """An articulated asset from a parts file (YAML, see PARTS_EXAMPLE); paths resolve against it.

    Joint value 0 is the scanned configuration. The whole document is checked before any mesh is
    read (names, joint types, numbers and their ranges: the module constants above); joint
    origins and prismatic limits are checked in metres once the units are known. Raises
    ChordError naming the file, the bad field (``joints[0].type``), its value and what was
    expected.
    """
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise ChordError(f"{spec_path}: parts file not found")
    doc = read_yaml_file(spec_path, what="a parts file")  # size- and depth-checked
    pf = _PartsFile(spec_path)
    doc = pf.mapping(doc, "", _PARTS_KEYS, "{name, units, up, parts, joints}")
    lo, hi = DENSITY_RANGE
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not lo <= density <= hi:
        raise ChordError(f"density is {density!r}, expected {lo:g} to {hi:g} kg/m^3")
    asset_name = pf.name(doc.get("name", spec_path.stem), "name")
    units = doc.get("units", "auto")
    if units not in (*MESH_UNITS, "auto"):
        raise pf.fail("units", f"is {_show(units)}, expected one of {[*MESH_UNITS, 'auto']}")
    up = doc.get("up", "auto")
    if up not in UP_AXES:
        raise pf.fail("up", f"is {_show(up)}, expected one of {list(UP_AXES)}")
    scale = doc.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
        raise pf.fail("scale", f"is {_show(scale)}, expected a positive number of metres per file unit")

    parts = doc.get("parts")
    if not isinstance(parts, list) or not parts:
        raise pf.fail("parts", f"is {_show(parts)}, expected a non-empty list of {{name, mesh}}")
    names: list[str] = []
    files: list[Path] = []
    for i, part in enumerate(parts):
        part = pf.mapping(part, f"parts[{i}]", _PART_KEYS, "{name: lid, mesh: lid.ply}")
        name = pf.name(part.get("name"), f"parts[{i}].name")
        if name in names:
            raise pf.fail(f"parts[{i}].name", f"{name!r} is used twice; part names must be unique")
        mesh = part.get("mesh")
        if not isinstance(mesh, str) or not mesh.strip():
            raise pf.fail(f"parts[{i}].mesh", f"is {_show(mesh)}, expected a mesh file name")
        f = Path(mesh)
        names.append(name)
        files.append(f if f.is_absolute() else spec_path.parent / f)
    joints_doc = doc.get("joints") or []
    if not isinstance(joints_doc, list):
        raise pf.fail("joints", f"is {_show(joints_doc)}, expected a list")
    specs: list[_JointSpec] = []
    for i, j in enumerate(joints_doc):
        spec = pf.joint(j, f"joints[{i}]", names)
        if any(o.name == spec.name for o in specs):
            raise pf.fail(f"joints[{i}].name", f"{spec.name!r} is used twice; joint names must be unique")
        other = next((k for k, o in enumerate(specs) if o.child == spec.child), None)
        if other is not None:
            raise pf.fail(
                f"joints[{i}].child",
                f"is {spec.child!r}, which already has a parent (joints[{other}] {specs[other].name!r})",
            )
        specs.append(spec)

    raws = [load_file_units(f)[0] for f in files]
    union = trimesh.util.concatenate(raws)
    raw_extent = float(np.ptp(union.vertices, axis=0).max())
    s, _ = decide_scale(raw_extent, str(units), scale, f"{spec_path}: ")
    R = np.eye(4)
    R[:3, :3] = rotation_to_z(_up_vector(str(up), spec_path))
    union.apply_scale(s)
    union.apply_transform(R)
    T_obj_scan = floor(union) @ R @ np.diag([s, s, s, 1.0])  # scan coordinates -> object frame
    lo_b, hi_b = union.bounds  # object frame, metres

    frames: dict[str, np.ndarray] = {}
    joints = []
    for i, j in enumerate(specs):
        where = f"joints[{i}]"
        origin = (T_obj_scan @ np.append(j.origin, 1.0))[:3]
        gap = float(np.linalg.norm(np.maximum(0.0, np.maximum(lo_b - origin, origin - hi_b))))
        if gap > JOINT_ORIGIN_MARGIN:
            raise pf.fail(
                f"{where}.origin",
                f"is {j.origin.tolist()} (file units), {gap:.4g} m from the parts' bounding box; expected "
                f"a point on the axis within {JOINT_ORIGIN_MARGIN * 100:g} cm of the object",
            )
        frames[j.child] = translation(origin)
        lower, upper = j.limits
        if j.type == "revolute":
            lower, upper = math.radians(lower), math.radians(upper)
        elif j.type == "prismatic":
            lower, upper = lower * s, upper * s
            if max(-lower, upper) > MAX_TRAVEL:
                raise pf.fail(
                    f"{where}.limits",
                    f"is {list(j.limits)} file units = [{lower:.4g}, {upper:.4g}] m, expected a travel "
                    f"within -{MAX_TRAVEL:g} to {MAX_TRAVEL:g} m",
                )
        axis = R[:3, :3] @ j.axis
        try:
            joints.append(
                Joint(j.name, j.type, j.parent, j.child, tuple(axis), lower, upper, j.damping, j.friction)
            )
        except ChordError as e:
            raise pf.fail(where, str(e)) from e
    links = []
    for name, raw in zip(names, raws, strict=True):
        mesh = raw.copy()
        mesh.apply_transform(T_obj_scan)
        mesh, _, _ = clean(mesh, 0.0)
        links.append(Link(name, mesh, frames.get(name, np.eye(4)), float(density), ()))
    try:
        return Asset(
            asset_name, tuple(links), tuple(joints), {"kind": "parts", "source": str(spec_path), "scale": s}
        )
    except ChordError as e:
        raise ChordError(f"{spec_path}: {e}") from e
