"""Rigid parts of an articulated object and the joints between them: from chord's asset record or any URDF.

A scene object built by ``chord assets`` (a digital cousin, a scan split by ``chord assets parts``
from a parts file, or a suite task) keeps ``asset.json`` beside its ``model.urdf``: its links and
their meshes at rest, in the object frame, and its joints. Any other object with a URDF (a
third-party model, pybullet_data's) has its parts read from the URDF itself: links, joints, and
visual meshes (collision meshes where a link has no visual), with the URDF's origins and scales.
Links joined by a fixed joint are one part; revolute, continuous and prismatic joints separate
parts, in chains of any length.

The video fit uses the parts to keep control points, skinning and the rigidity graph inside one
part each, to hold each joint's two sides together (``Scene4D.regularisers``), to start every
joint where the depth video shows it (``flowgen.joint_init``), and to build the object's Gaussians
from every link's full geometry, including what is hidden at rest (a drawer's body inside its
cabinet). ``docs/flowgen.md``, "Parts". Objects with a single part have no parts (None).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from core.errors import ChordError
from core.scene import SceneObject

log = logging.getLogger(__name__)

_SAMPLES_PER_LINK = 20_000  # surface samples per link for the nearest-link lookup
JOINT_KINDS = ("revolute", "prismatic")


@dataclass(frozen=True)
class PartJoint:
    """A joint between two parts, at rest, world frame."""

    parent: int  # index of the parent part in ObjectParts.names
    child: int  # index of the child part
    anchors: np.ndarray  # [A, 3] world metres: revolute: points on the axis across the child's
    # extent (they belong to both sides); prismatic: the child's centre, a point one child extent
    # along the axis, and two off the axis (the child may only slide along the parent-held axis)
    kind: str = "revolute"  # "revolute" (continuous too) or "prismatic"
    origin: np.ndarray | None = None  # [3] world metres: a point on the axis (the child's joint frame)
    axis: np.ndarray | None = None  # [3] world unit axis at rest
    name: str = ""  # the joint's name in the asset or URDF
    limits: tuple[float, float] | None = None  # (lower, upper) rad or m, 0 = rest; None: unlimited


@dataclass(frozen=True)
class ObjectParts:
    """The parts of one object at rest, world frame: each point belongs to the nearest part surface."""

    names: tuple[str, ...]  # part (link) names, root first, parents before children
    surface: np.ndarray  # [M, 3] world metres: samples and vertices of every part
    owner: np.ndarray  # [M] int: the part each surface point belongs to
    joints: tuple[PartJoint, ...] = ()  # joints, parents' before children's
    meshes: tuple[trimesh.Trimesh, ...] = ()  # [P] each part's full geometry, object frame, metres
    rest_frames: np.ndarray | None = None  # [P, 4, 4] T_obj_part at rest (the joint frame of its joint)
    local_axes: np.ndarray | None = None  # [J, 3] each joint's axis in its child part's frame

    @property
    def count(self) -> int:
        return len(self.names)

    def label(self, points: np.ndarray) -> np.ndarray:  # points: [N, 3] world metres
        """[N] int: index (into ``names``) of the part whose surface is nearest each point."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must be [N, 3], got shape {points.shape}")
        if len(points) == 0:
            return np.zeros(0, dtype=np.int64)
        _, nearest = cKDTree(self.surface).query(points)
        return self.owner[nearest].astype(np.int64)

    def mesh(self) -> trimesh.Trimesh:
        """Every part's full geometry as one mesh in the object frame (nothing removed where parts
        overlap or hide each other at rest)."""
        if not self.meshes:
            raise ValueError("these parts were built without meshes")
        return trimesh.util.concatenate(list(self.meshes))

    def motions(self, values: np.ndarray) -> np.ndarray:
        """[..., P, 4, 4] each part's motion in the object frame (T_obj_part(q) T_obj_part(0)^-1)
        for joint values ``values`` [..., J] (rad or m, ``joints`` order, 0 = rest); forward
        kinematics down the chain, so a child carries its parent's motion."""
        if self.rest_frames is None or self.local_axes is None:
            raise ValueError("these parts were built without rest frames")
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != len(self.joints):
            raise ValueError(f"values have {values.shape[-1]} joints, expected {len(self.joints)}")
        batch = values.shape[:-1]
        rest = self.rest_frames
        frames = np.broadcast_to(rest, (*batch, *rest.shape)).copy()
        for j, joint in enumerate(self.joints):  # parents first: the parent's frame is final here
            local = _joint_motion(joint.kind, self.local_axes[j], values[..., j])  # [..., 4, 4]
            parent_motion = frames[..., joint.parent, :, :] @ np.linalg.inv(rest[joint.parent])
            frames[..., joint.child, :, :] = parent_motion @ rest[joint.child] @ local
        return frames @ np.linalg.inv(rest)


def _joint_motion(kind: str, axis: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[..., 4, 4] the joint's motion in its own frame: a turn by q rad about, or a slide of q m along, axis."""
    q = np.asarray(q, dtype=np.float64)
    out = np.broadcast_to(np.eye(4), (*q.shape, 4, 4)).copy()
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    if kind == "prismatic":
        out[..., :3, 3] = q[..., None] * a
        return out
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    s, c = np.sin(q)[..., None, None], np.cos(q)[..., None, None]
    out[..., :3, :3] = np.eye(3) + s * K + (1 - c) * (K @ K)  # Rodrigues
    return out


def parts_from_meshes(
    names: list[str],
    meshes: list[trimesh.Trimesh],  # part meshes at rest, object frame, metres
    T_world_obj: np.ndarray,  # [4, 4]
    seed: int = 0,
    joints: list[tuple] = (),  # (parent, child, origin [3], axis [3][, kind[, name[, limits]]])
    anchors_per_joint: int = 4,
    rest_frames: np.ndarray | None = None,  # [P, 4, 4] T_obj_part at rest, for ObjectParts.motions
) -> ObjectParts:
    """ObjectParts of parts given as meshes in the object frame.

    ``joints`` are (parent part, child part, a point on the axis, the axis[, kind[, name]]), object
    frame, parents' joints before their children's; kind is "revolute" (default) or "prismatic".
    A revolute joint's anchors span the child's extent along the axis.
    """
    if len(names) != len(meshes) or not names:
        raise ValueError(f"need one name per part mesh, got {len(names)} names and {len(meshes)} meshes")
    T = np.asarray(T_world_obj, dtype=np.float64)

    def world(p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]

    surface, owner = [], []
    for i, m in enumerate(meshes):
        pts, _ = trimesh.sample.sample_surface(m, _SAMPLES_PER_LINK, seed=seed + i)
        p = np.concatenate([np.asarray(pts), np.asarray(m.vertices)])
        surface.append(world(p))
        owner.append(np.full(len(p), i))
    part_joints, local_axes = [], []
    for spec in joints:
        parent, child, origin, axis = spec[:4]
        kind = spec[4] if len(spec) > 4 else "revolute"
        name = spec[5] if len(spec) > 5 else ""
        limits = spec[6] if len(spec) > 6 else None
        if kind not in JOINT_KINDS:
            raise ValueError(f"joint kind is {kind!r}, expected one of {JOINT_KINDS}")
        origin = np.asarray(origin, dtype=np.float64)
        axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
        verts = np.asarray(meshes[child].vertices)
        if kind == "revolute":
            along = (verts - origin) @ axis
            line = origin + np.linspace(along.min(), along.max(), anchors_per_joint)[:, None] * axis
        else:
            centre = verts.mean(axis=0)
            size = float(np.ptp(verts, axis=0).max())
            e1 = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(axis, e1)
            line = centre + size * np.stack([np.zeros(3), axis, e1, e2])
        part_joints.append(
            PartJoint(
                parent, child, world(line), kind, world(origin[None])[0], T[:3, :3] @ axis, str(name), limits
            )
        )
        if rest_frames is not None:
            local_axes.append(np.asarray(rest_frames[child])[:3, :3].T @ axis)
    return ObjectParts(
        tuple(names), np.concatenate(surface), np.concatenate(owner), tuple(part_joints), tuple(meshes),
        None if rest_frames is None else np.asarray(rest_frames, dtype=np.float64),
        None if rest_frames is None else np.asarray(local_axes, dtype=np.float64).reshape(-1, 3),
    )  # fmt: skip


def object_parts(obj: SceneObject, seed: int = 0) -> ObjectParts | None:
    """The object's parts: from the asset record beside its URDF (chord's assets, parts files),
    else from the URDF itself (any URDF); None for one part, or no URDF.

    Raises ChordError when the record or the URDF is malformed or names a mesh that cannot be read.
    """
    if obj.urdf is None:
        return None
    folder = Path(obj.urdf).parent
    where = f"object {obj.name!r}"
    if (folder / "asset.json").is_file():
        model = _model_from_record(folder, where)
    else:
        model = model_from_urdf(Path(obj.urdf), where)
    if model is None or len(model.names) < 2:
        return None
    names, meshes, frames, joints = model.names, model.meshes, model.rest_frames, model.joints
    specs = [
        (names.index(j.parent), names.index(j.child), frames[names.index(j.child)][:3, 3],
         frames[names.index(j.child)][:3, :3] @ j.axis, j.kind, j.name, j.limits)
        for j in joints
    ]  # fmt: skip
    log.info("%s: %d parts from %s (%s)", obj.name, len(names), model.source, ", ".join(names))
    return parts_from_meshes(names, meshes, obj.pose.matrix(), seed, specs, rest_frames=np.stack(frames))


# -- reading models --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Joint:
    name: str
    kind: str  # "revolute" or "prismatic"
    parent: str
    child: str
    axis: np.ndarray  # [3] in the child part's frame
    limits: tuple[float, float] | None = None  # (lower, upper), rad or m; None: unlimited


@dataclass(frozen=True)
class PartModel:
    """An articulated object as parts (fixed-joined links merged) and movable joints, object frame."""

    names: list[str]  # parts, root first, parents before children
    meshes: list[trimesh.Trimesh]  # [P] object frame, metres
    rest_frames: list[np.ndarray]  # [P] T_obj_part at rest
    joints: list[_Joint]  # parents' joints before their children's
    source: str  # the file they were read from


def _read_mesh(path: Path, scale: np.ndarray, where: str) -> trimesh.Trimesh:
    try:
        mesh = trimesh.load(path, force="mesh")
    except (OSError, ValueError, IndexError) as e:
        raise ChordError(f"{where}: mesh {str(path)!r} is unreadable ({e})") from e
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ChordError(f"{where}: mesh {str(path)!r} has no faces")
    mesh = mesh.copy()
    mesh.apply_scale(scale) if np.allclose(scale, scale[0]) else mesh.apply_transform(np.diag([*scale, 1.0]))
    return mesh


def _model_from_record(folder: Path, where: str) -> PartModel | None:
    from core.asset import read_record

    record = read_record(folder)
    links = record.get("links", [])
    if len(links) < 2:
        return None
    names, meshes, frames = [], [], []
    for lk in links:
        names.append(str(lk["name"]))
        meshes.append(_read_mesh(folder / lk["mesh"], np.ones(3), f"{where}: link {lk['name']!r}"))
        frames.append(np.asarray(lk["T_obj_link"], dtype=np.float64))
    joints = []
    for j in record.get("joints", []):
        kind = {"continuous": "revolute"}.get(j.get("type"), j.get("type"))
        if kind not in JOINT_KINDS:
            continue  # a fixed joint is not a part boundary
        for side in ("parent", "child"):
            if j.get(side) not in names:
                raise ChordError(f"{where}: {folder / 'asset.json'} joint {j.get('name')!r} names an unknown "
                                 f"{side} link {j.get(side)!r} (links: {names})")  # fmt: skip
        limits = _limits(j.get("lower"), j.get("upper")) if j.get("type") != "continuous" else None
        joints.append(
            _Joint(
                str(j.get("name", "")), kind, j["parent"], j["child"], np.asarray(j["axis"], float), limits
            )
        )
    return PartModel(names, meshes, frames, _parents_first(names[0], joints), str(folder / "asset.json"))


def _origin(el: ET.Element | None) -> np.ndarray:
    """[4, 4] of a URDF <origin xyz rpy> (fixed-axis roll, pitch, yaw), identity when absent."""
    T = np.eye(4)
    if el is None:
        return T
    xyz = np.array([float(v) for v in el.get("xyz", "0 0 0").split()])
    r, p, y = (float(v) for v in el.get("rpy", "0 0 0").split())
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    T[:3, :3] = np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )
    T[:3, 3] = xyz
    return T


def _geometry(el: ET.Element, folder: Path, where: str) -> trimesh.Trimesh | None:
    """The mesh of a URDF <visual> or <collision> element, in its link's frame; None for none."""
    geom = el.find("geometry")
    if geom is None or len(geom) == 0:
        return None
    shape = geom[0]
    if shape.tag == "mesh":
        name = shape.get("filename", "")
        for prefix in ("package://", "file://"):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        path = Path(name) if Path(name).is_absolute() else folder / name
        if not path.is_file() and name.startswith(name.split("/")[0] + "/"):
            path = folder / name.split("/", 1)[1]  # package://pkg/mesh.obj beside the URDF
        scale = np.array([float(v) for v in shape.get("scale", "1 1 1").split()])
        mesh = _read_mesh(path, scale, where)
    elif shape.tag == "box":
        mesh = trimesh.creation.box([float(v) for v in shape.get("size", "0 0 0").split()])
    elif shape.tag == "cylinder":
        mesh = trimesh.creation.cylinder(float(shape.get("radius", 0)), float(shape.get("length", 0)))
    elif shape.tag == "sphere":
        mesh = trimesh.creation.icosphere(2, float(shape.get("radius", 0)))
    else:
        return None
    mesh.apply_transform(_origin(el.find("origin")))
    return mesh if len(mesh.faces) else None


def model_from_urdf(urdf: Path, where: str = "") -> PartModel | None:
    """Parts and movable joints of any URDF, object frame = the URDF's root link frame.

    Each link's geometry is its visual elements (its collision elements if it has no visual);
    links joined by fixed joints merge into one part. Raises ChordError for a file that is not a
    URDF, a joint naming an unknown link, a tree with no single root, or an unreadable mesh.
    """
    where = where or f"URDF {str(urdf)!r}"
    try:
        root = ET.parse(urdf).getroot()
    except (OSError, ET.ParseError) as e:
        raise ChordError(f"{where}: {str(urdf)!r} is not a readable URDF ({e})") from e
    links = {lk.get("name"): lk for lk in root.findall("link")}
    joints = root.findall("joint")
    children = {j.find("child").get("link") for j in joints if j.find("child") is not None}
    roots = [n for n in links if n not in children]
    if len(roots) != 1:
        raise ChordError(f"{where}: {str(urdf)!r} has {len(roots)} root links {roots}, expected one")
    T_obj = {roots[0]: np.eye(4)}  # each link's frame at rest (joint values 0)
    part_of = {roots[0]: roots[0]}  # the part each link belongs to (fixed joints merge)
    movable: list[_Joint] = []
    pending = list(joints)
    while pending:
        ready = [j for j in pending if j.find("parent").get("link") in T_obj]
        if not ready:
            raise ChordError(f"{where}: joints {[j.get('name') for j in pending]} hang from no known link")
        for j in ready:
            pending.remove(j)
            parent, child = j.find("parent").get("link"), j.find("child").get("link")
            if child not in links:
                raise ChordError(f"{where}: joint {j.get('name')!r} names an unknown child link {child!r}")
            T_obj[child] = T_obj[parent] @ _origin(j.find("origin"))
            kind = {"continuous": "revolute"}.get(j.get("type"), j.get("type"))
            if kind in JOINT_KINDS:
                part_of[child] = child
                el = j.find("axis")
                axis = np.array([float(v) for v in (el.get("xyz") if el is not None else "1 0 0").split()])
                lim = j.find("limit")
                limits = None
                if lim is not None and j.get("type") != "continuous":
                    limits = _limits(lim.get("lower"), lim.get("upper"))
                movable.append(_Joint(str(j.get("name")), kind, part_of[parent], child, axis, limits))
            else:  # fixed (or planar/floating, which the video fit does not model): the parent's part
                part_of[child] = part_of[parent]
    meshes: dict[str, list[trimesh.Trimesh]] = {}
    for name, lk in links.items():
        if name not in T_obj:
            continue
        els = lk.findall("visual") or lk.findall("collision")
        for el in els:
            m = _geometry(el, urdf.parent, f"{where}: link {name!r}")
            if m is not None:
                m.apply_transform(T_obj[name])
                meshes.setdefault(part_of[name], []).append(m)
    names = [n for n in dict.fromkeys(part_of.values())]
    # A part without geometry (a massless link between two joints) has nothing to fit: its joints
    # move the nearest ancestor part that has geometry, and its children hang from that part.
    keep = [n for n in names if n in meshes]
    if len(keep) < len(names):
        log.info("%s: parts without geometry %s are not fitted", where, [n for n in names if n not in meshes])
    kept_joints = []
    for j in movable:
        if j.child not in meshes:
            continue
        parent = j.parent
        while parent not in meshes:
            up = next((m for m in movable if m.child == parent), None)
            if up is None:
                break
            parent = up.parent
        if parent in meshes:
            kept_joints.append(_Joint(j.name, j.kind, parent, j.child, j.axis, j.limits))
    if not keep:
        return None
    return PartModel(
        keep, [trimesh.util.concatenate(meshes[n]) for n in keep], [T_obj[n] for n in keep],
        _parents_first(keep[0], kept_joints), str(urdf),
    )  # fmt: skip


def _limits(lower, upper) -> tuple[float, float] | None:
    """(lower, upper) of a joint's range, or None when either is missing or they are not an interval."""
    try:
        lo, hi = float(lower), float(upper)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) and lo < hi else None


def _parents_first(root: str, joints: list[_Joint]) -> list[_Joint]:
    """The joints ordered so that a part's own joint comes before those of its children."""
    placed, order, rest = {root}, [], list(joints)
    while rest:
        ready = [j for j in rest if j.parent in placed]
        if not ready:  # a joint hanging from no part reached from the root: left for the caller to refuse
            return order + rest
        for j in ready:
            rest.remove(j)
            placed.add(j.child)
            order.append(j)
    return order
