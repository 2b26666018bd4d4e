"""An object model: rigid links with meshes, joined by revolute/prismatic/fixed joints.

Every builder (digital cousins, scan intake) produces an :class:`Asset`; one writer turns it
into files (``assets.urdf``). Convention: the object frame has z up, its origin on the table
under the object (the lowest point is at z = 0), and **joint value 0 is the rest configuration**
the meshes were built in, so a URDF loaded with zero joint positions matches the static snapshot.
Link meshes are stored in the object frame at rest; ``T_obj_link`` is each link's frame at rest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.contract import read_json_file
from core.errors import ChordError
from core.names import check_name

if TYPE_CHECKING:  # imported where used: `chord --help` and the asset.json reader need no trimesh
    import trimesh

log = logging.getLogger(__name__)

JOINT_TYPES = ("revolute", "prismatic", "fixed")
ASSET_SCHEMA = "chord.asset"  # asset.json, written by assets.urdf.write_asset
ASSET_VERSION = 1
RECORD = "asset.json"
DEFAULT_DENSITY = 500.0  # kg/m^3: a link's density when none is given (wood, dense plastic)


@dataclass(frozen=True, eq=False)
class Link:
    """One rigid part of an object. Raises ChordError for a name that cannot name a file."""

    name: str  # unique in the asset; a name by core.names' rule (letters, digits, _ . -)
    mesh: trimesh.Trimesh  # watertight where possible; object frame, rest configuration, metres
    T_obj_link: np.ndarray  # [4, 4] link frame at rest, in the object frame
    density: float = DEFAULT_DENSITY  # kg/m^3, gives the mass from the volume
    collision: tuple[trimesh.Trimesh, ...] = ()  # convex pieces, object frame; () = decide later
    color: tuple[float, float, float, float] = (0.7, 0.7, 0.7, 1.0)  # RGBA in [0, 1] for the URDF

    def __post_init__(self) -> None:
        # The name becomes the link's file names (links/<name>.ply, visual/<name>.obj, ...): a
        # name such as "../../x" would write outside the asset folder.
        check_name("link name", self.name)


@dataclass(frozen=True)
class Joint:
    """A joint between two links; q = 0 is the rest configuration."""

    name: str
    type: str  # "revolute" (rad), "prismatic" (m) or "fixed"
    parent: str  # link name
    child: str  # link name; the joint frame is the child's link frame
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)  # unit axis in the child link frame
    lower: float = 0.0  # rad or m, relative to rest (<= 0 <= upper)
    upper: float = 0.0  # rad or m, relative to rest
    damping: float = 0.05  # N m s/rad (or N s/m)
    friction: float = 0.0  # N m (or N): static joint friction that holds the pose against gravity
    effort: float = 10.0  # N m (or N), URDF effort limit
    velocity: float = 3.0  # rad/s (or m/s), URDF velocity limit
    rest: float = 0.0  # rad or m: the rest configuration in the builder's own measure (documentation)

    def __post_init__(self) -> None:
        if self.type not in JOINT_TYPES:
            raise ChordError(f"joint {self.name!r}: type {self.type!r}, expected one of {JOINT_TYPES}")
        axis = np.asarray(self.axis, dtype=float)
        n = float(np.linalg.norm(axis))
        if axis.shape != (3,) or not np.isfinite(axis).all() or n < 1e-9:
            raise ChordError(f"joint {self.name!r}: axis {list(self.axis)} is not a non-zero 3-vector")
        object.__setattr__(self, "axis", tuple(float(v) for v in axis / n))
        if self.type != "fixed":
            if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
                raise ChordError(f"joint {self.name!r}: limits [{self.lower}, {self.upper}] must be finite")
            if self.lower >= self.upper:
                raise ChordError(
                    f"joint {self.name!r}: limits reversed or empty: lower={self.lower:.6g} >= "
                    f"upper={self.upper:.6g}; expected lower < upper"
                )
            if not self.lower <= 0.0 <= self.upper:
                raise ChordError(
                    f"joint {self.name!r}: the rest configuration (0) lies outside the limits "
                    f"[{self.lower:.6g}, {self.upper:.6g}]"
                )
        for key in ("damping", "friction", "effort", "velocity"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise ChordError(f"joint {self.name!r}: {key} is {v!r}, expected a number >= 0")


@dataclass(frozen=True, eq=False)
class Asset:
    """A rigid or articulated object: links (the first is the root) and joints forming a tree."""

    name: str
    links: tuple[Link, ...]
    joints: tuple[Joint, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)  # cousin parameters or intake record

    def __post_init__(self) -> None:
        object.__setattr__(self, "links", tuple(self.links))
        object.__setattr__(self, "joints", tuple(self.joints))
        # The asset's name becomes a path (the URDF, the asset folder's records) however the asset
        # was built (cousin, intake --name, parts file): one rule, core.names, as for its links.
        check_name("asset name", self.name)
        names = [lk.name for lk in self.links]
        if not names:
            raise ChordError(f"asset {self.name!r} has no links")
        if len(set(names)) != len(names):
            raise ChordError(f"asset {self.name!r}: link names {names} are not unique")
        children = set()
        for j in self.joints:
            for end in (j.parent, j.child):
                if end not in names:
                    raise ChordError(f"joint {j.name!r}: link {end!r} does not exist; links are {names}")
            if j.child in children or j.child == names[0]:
                raise ChordError(f"joint {j.name!r}: link {j.child!r} already has a parent")
            children.add(j.child)
        if len(children) != len(names) - 1:
            orphans = [n for n in names[1:] if n not in children]
            raise ChordError(f"asset {self.name!r}: links {orphans} are not joined to the root {names[0]!r}")
        self._order()  # raises on cycles

    @property
    def root(self) -> Link:
        return self.links[0]

    @property
    def articulated(self) -> bool:
        return any(j.type != "fixed" for j in self.joints)

    def link(self, name: str) -> Link:
        for lk in self.links:
            if lk.name == name:
                return lk
        raise KeyError(f"no link {name!r} in {self.name!r}; links are {[lk.name for lk in self.links]}")

    def joint(self, name: str) -> Joint:
        for j in self.joints:
            if j.name == name:
                return j
        raise KeyError(f"no joint {name!r} in {self.name!r}; joints are {[j.name for j in self.joints]}")

    def _order(self) -> list[Joint]:
        """Joints parent-first, so link poses can be composed in one pass."""
        done, order, pending = {self.root.name}, [], list(self.joints)
        while pending:
            ready = [j for j in pending if j.parent in done]
            if not ready:
                raise ChordError(f"asset {self.name!r}: the joints form a cycle")
            for j in ready:
                order.append(j)
                done.add(j.child)
                pending.remove(j)
        return order

    def joint_origin(self, joint: Joint) -> np.ndarray:
        """[4, 4] T_parent_child at q = 0 (the URDF joint origin)."""
        return np.linalg.inv(self.link(joint.parent).T_obj_link) @ self.link(joint.child).T_obj_link

    def link_transforms(self, q: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
        """T_obj_link [4, 4] for every link at joint values ``q`` (name -> rad or m; missing = 0)."""
        q = dict(q or {})
        unknown = set(q) - {j.name for j in self.joints}
        if unknown:
            raise KeyError(f"unknown joint(s) {sorted(unknown)} for {self.name!r}")
        T = {self.root.name: self.root.T_obj_link.copy()}
        for j in self._order():
            motion = np.eye(4)
            v = float(q.get(j.name, 0.0))
            if j.type == "revolute":
                motion[:3, :3] = _axis_angle(np.array(j.axis), v)
            elif j.type == "prismatic":
                motion[:3, 3] = np.array(j.axis) * v
            T[j.child] = T[j.parent] @ self.joint_origin(j) @ motion
        return T

    def link_motions(self, q: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
        """[4, 4] per link: maps the link's rest-configuration points (object frame) to ``q``."""
        T = self.link_transforms(q)
        return {lk.name: T[lk.name] @ np.linalg.inv(lk.T_obj_link) for lk in self.links}

    def mesh(self, q: Mapping[str, float] | None = None) -> trimesh.Trimesh:
        """One watertight mesh of the whole object (object frame) at ``q``, with vertex colours.

        Articulated objects: the boolean union of the link meshes (manifold3d), coloured from the
        nearest link vertex. If the union fails (open scanned parts), the link meshes are
        concatenated instead, with a warning.
        """
        import trimesh

        M = self.link_motions(q)
        parts = []
        for lk in self.links:
            m = lk.mesh.copy()
            m.apply_transform(M[lk.name])
            parts.append(m)
        if len(parts) == 1:
            return parts[0]
        joined = trimesh.util.concatenate(parts)
        if not all(p.is_watertight for p in parts):
            return joined
        try:
            union = trimesh.boolean.union(parts, engine="manifold")
        except (ImportError, ValueError) as e:
            log.warning("%s: boolean union of the links failed (%s); concatenating them", self.name, e)
            return joined
        if not union.is_watertight or len(union.faces) == 0:
            log.warning("%s: the union of the links is not watertight; concatenating them", self.name)
            return joined
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(joined.vertices).query(union.vertices)
        colors = np.asarray(joined.visual.vertex_colors)[nearest]
        union.visual = trimesh.visual.ColorVisuals(union, vertex_colors=colors)
        return union


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """[3, 3] rotation by ``angle`` rad about the unit ``axis`` (Rodrigues)."""
    x, y, z = axis
    K = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)


def rotation(axis: tuple[float, float, float], angle: float) -> np.ndarray:
    """[4, 4] homogeneous rotation by ``angle`` rad about the unit ``axis`` through the origin."""
    T = np.eye(4)
    a = np.asarray(axis, dtype=float)
    T[:3, :3] = _axis_angle(a / np.linalg.norm(a), angle)
    return T


def translation(xyz: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """[4, 4] homogeneous translation by ``xyz`` metres."""
    T = np.eye(4)
    T[:3, 3] = xyz
    return T


def read_record(folder: str | Path) -> dict[str, Any]:
    """Read ``asset.json`` of a written asset; raises ChordError if missing or of an unknown version."""
    path = Path(folder) / RECORD
    if not path.is_file():
        raise ChordError(f"{path}: asset record not found")
    rec = read_json_file(path)  # size and nesting checked before parsing
    if not isinstance(rec, dict):
        raise ChordError(f"{path}: holds a JSON {type(rec).__name__}, expected an object")
    if rec.get("schema") != ASSET_SCHEMA or rec.get("version") != ASSET_VERSION:
        raise ChordError(
            f"{path}: schema/version {rec.get('schema')!r}/{rec.get('version')!r}, expected {ASSET_SCHEMA!r}/{ASSET_VERSION}"
        )
    return rec
