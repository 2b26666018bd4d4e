"""An arm from its URDF in a recording: link meshes, animated by a joint trajectory.

rerun 0.41 has a URDF loader (``rerun.urdf.UrdfTree``) but it resolves ``package://`` mesh URIs
only through ROS environment variables (the Panda of ``pybullet_data`` loads without meshes),
and it animates through named frames rather than entity transforms. This module reads the URDF
itself (joints and visual geometry), computes forward kinematics in numpy, and logs each link
as an entity ``<prefix>/<link>`` with a Transform3D per trajectory sample (T_base_link) and its
visual meshes below it, static.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chord.viz.record import PLAN_TIME, Recording, safe_name
from core.errors import ChordError
from core.transforms import matrix_to_quat, wxyz_to_xyzw

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UrdfJointSpec:
    """One URDF joint: the parent -> child transform is origin @ motion(q)."""

    name: str
    kind: str  # revolute, continuous, prismatic, fixed, floating, planar
    parent: str  # parent link
    child: str  # child link
    T_parent_origin: np.ndarray  # [4, 4] the joint's <origin>
    axis: np.ndarray  # [3] unit axis in the joint frame


@dataclass(frozen=True)
class UrdfVisual:
    """One <visual> of a link: a mesh file or a primitive, in the link frame."""

    T_link_visual: np.ndarray  # [4, 4]
    mesh: Path | None = None  # resolved mesh file
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    box: tuple[float, float, float] | None = None  # full sizes, metres
    cylinder: tuple[float, float] | None = None  # radius, length, metres (along z)
    sphere: float | None = None  # radius, metres
    rgba: tuple[float, float, float, float] | None = None  # in [0, 1]


@dataclass(frozen=True)
class UrdfModel:
    """The kinematic tree and visuals of a URDF."""

    path: Path
    root: str  # root link name
    links: tuple[str, ...]  # every link, parents before children
    joints: dict[str, UrdfJointSpec]  # child link -> the joint that moves it
    visuals: dict[str, list[UrdfVisual]] = field(default_factory=dict)  # link -> visuals

    @property
    def movable_joints(self) -> list[str]:
        return [j.name for j in self.joints.values() if j.kind in ("revolute", "continuous", "prismatic")]


def _floats(text: str | None, n: int, default: float = 0.0) -> np.ndarray:
    if text is None:
        return np.full(n, default)
    vals = np.array([float(x) for x in text.split()])
    if vals.shape != (n,):
        raise ValueError(f"expected {n} numbers, got {text!r}")
    return vals


def _origin(el: ET.Element | None) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    if el is not None:
        T[:3, 3] = _floats(el.get("xyz"), 3)
        T[:3, :3] = Rotation.from_euler("xyz", _floats(el.get("rpy"), 3)).as_matrix()  # URDF: fixed-axis rpy
    return T


def _resolve_mesh(filename: str, urdf_dir: Path) -> Path | None:
    """A mesh URI as a file: plain paths relative to the URDF; ``package://pkg/rest`` tried as
    ``rest`` and ``pkg/rest`` against the URDF's folder and its parents (no ROS needed)."""
    if filename.startswith("file://"):
        filename = filename[len("file://") :]
    candidates = []
    if filename.startswith("package://"):
        rest = filename[len("package://") :]
        pkg, _, tail = rest.partition("/")
        for base in (urdf_dir, *urdf_dir.parents[:3]):
            candidates += [base / rest, base / tail, base / pkg / tail]
    else:
        p = Path(filename)
        candidates.append(p if p.is_absolute() else urdf_dir / p)
    return next((c for c in candidates if c.is_file()), None)


def load_urdf(path: str | Path) -> UrdfModel:
    """Parse a URDF's joints and visuals; raises ChordError for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ChordError(f"URDF {str(path)!r} does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ChordError(f"URDF {str(path)!r} is not valid XML: {e}") from e
    materials = {}
    for m in root.findall("material"):
        c = m.find("color")
        if c is not None and m.get("name"):
            materials[m.get("name")] = tuple(_floats(c.get("rgba"), 4, 1.0))
    joints: dict[str, UrdfJointSpec] = {}
    try:
        for j in root.findall("joint"):
            parent, child = j.find("parent"), j.find("child")
            if parent is None or child is None:
                raise ValueError(f"joint {j.get('name')!r} lacks <parent> or <child>")
            axis_el = j.find("axis")
            axis = _floats(None if axis_el is None else axis_el.get("xyz"), 3, 0.0)
            if axis_el is None:
                axis = np.array([1.0, 0.0, 0.0])  # URDF's default axis
            n = np.linalg.norm(axis)
            joints[child.get("link")] = UrdfJointSpec(
                j.get("name", ""),
                j.get("type", "fixed"),
                parent.get("link"),
                child.get("link"),
                _origin(j.find("origin")),
                axis / n if n > 0 else axis,
            )
        visuals: dict[str, list[UrdfVisual]] = {}
        names = []
        for link in root.findall("link"):
            name = link.get("name")
            names.append(name)
            for v in link.findall("visual"):
                geom = v.find("geometry")
                if geom is None or len(geom) == 0:
                    continue
                g = geom[0]
                rgba = None
                mat = v.find("material")
                if mat is not None:
                    c = mat.find("color")
                    rgba = (
                        tuple(_floats(c.get("rgba"), 4, 1.0))
                        if c is not None
                        else materials.get(mat.get("name"))
                    )
                kw: dict = {"T_link_visual": _origin(v.find("origin")), "rgba": rgba}
                if g.tag == "mesh":
                    mesh = _resolve_mesh(g.get("filename", ""), path.parent)
                    if mesh is None:
                        log.warning(
                            "URDF %s link %r: mesh %r not found; link not drawn",
                            path,
                            name,
                            g.get("filename"),
                        )
                        continue
                    kw.update(mesh=mesh, scale=tuple(_floats(g.get("scale"), 3, 1.0)))
                elif g.tag == "box":
                    kw["box"] = tuple(_floats(g.get("size"), 3))
                elif g.tag == "cylinder":
                    kw["cylinder"] = (float(g.get("radius")), float(g.get("length")))
                elif g.tag == "sphere":
                    kw["sphere"] = float(g.get("radius"))
                else:
                    continue
                visuals.setdefault(name, []).append(UrdfVisual(**kw))
    except (ValueError, TypeError) as e:
        raise ChordError(f"URDF {str(path)!r}: {e}") from e
    roots = [n for n in names if n not in joints]
    if len(roots) != 1:
        raise ChordError(f"URDF {str(path)!r}: expected one root link, found {roots}")
    order, frontier = [], [roots[0]]
    children: dict[str, list[str]] = {}
    for c, j in joints.items():
        children.setdefault(j.parent, []).append(c)
    while frontier:
        n = frontier.pop(0)
        order.append(n)
        frontier += children.get(n, [])
    return UrdfModel(path, roots[0], tuple(order), joints, visuals)


def _axis_rotation(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:  # angles: [M]
    """[M, 3, 3] rotations by ``angles`` about the unit ``axis`` (Rodrigues)."""
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def forward_kinematics(
    model: UrdfModel,
    joint_names: list[str] | tuple[str, ...],
    q: np.ndarray,  # [M, J] rad (m for prismatic), columns in joint_names order
    extra: dict[str, float] | None = None,  # other joints held at these values (e.g. fingers)
) -> dict[str, np.ndarray]:
    """Link name -> [M, 4, 4] T_root_link for every sample of ``q``; unnamed joints stay at 0.

    Raises ChordError for a joint name the URDF lacks or a ``q`` of the wrong width.
    """
    q = np.atleast_2d(np.asarray(q, float))
    if q.shape[1] != len(joint_names):
        raise ChordError(f"forward_kinematics: q has {q.shape[1]} columns for {len(joint_names)} joint names")
    by_name = {j.name: j for j in model.joints.values()}
    missing = [n for n in [*joint_names, *(extra or {})] if n not in by_name]
    if missing:
        raise ChordError(f"joints {missing} are not in URDF {model.path} (it has {model.movable_joints})")
    values = {n: q[:, k] for k, n in enumerate(joint_names)}
    for n, v in (extra or {}).items():
        values.setdefault(n, np.full(len(q), float(v)))
    M = len(q)
    out = {model.root: np.broadcast_to(np.eye(4), (M, 4, 4)).copy()}
    for link in model.links[1:]:
        j = model.joints[link]
        v = values.get(j.name, np.zeros(M))
        motion = np.broadcast_to(np.eye(4), (M, 4, 4)).copy()
        if j.kind in ("revolute", "continuous"):
            motion[:, :3, :3] = _axis_rotation(j.axis, v)
        elif j.kind == "prismatic":
            motion[:, :3, 3] = v[:, None] * j.axis
        out[link] = out[j.parent] @ j.T_parent_origin @ motion
    return out


def _visual_mesh(v: UrdfVisual):
    import trimesh

    if v.mesh is not None:
        m = trimesh.load(v.mesh, force="mesh", process=False)
        m.apply_scale(v.scale)
        return m
    if v.box is not None:
        return trimesh.creation.box(extents=v.box)
    if v.cylinder is not None:
        return trimesh.creation.cylinder(radius=v.cylinder[0], height=v.cylinder[1])
    return trimesh.creation.icosphere(subdivisions=2, radius=v.sphere)


def log_robot_model(rec: Recording, model: UrdfModel, prefix: str = "world/robot") -> int:
    """Log every link's visual meshes statically under ``<prefix>/<link>/visual_<k>``; returns the count."""
    import rerun as rr

    count = 0
    for link, visuals in model.visuals.items():
        for k, v in enumerate(visuals):
            try:
                m = _visual_mesh(v)
            except (ValueError, OSError) as e:
                log.warning("URDF link %r visual %d not drawn: %s", link, k, e)
                continue
            ent = f"{prefix}/{safe_name(link)}/visual_{k}"
            T = v.T_link_visual
            rec.log(
                ent,
                rr.Transform3D(translation=T[:3, 3], quaternion=wxyz_to_xyzw(matrix_to_quat(T[:3, :3]))),
                static=True,
            )
            rgba = v.rgba if v.rgba is not None else (0.85, 0.85, 0.88, 1.0)
            rec.log(
                ent,
                rr.Mesh3D(
                    vertex_positions=np.asarray(m.vertices, np.float32),
                    triangle_indices=np.asarray(m.faces, np.uint32),
                    vertex_normals=np.asarray(m.vertex_normals, np.float32),
                    albedo_factor=(np.asarray(rgba) * 255).astype(np.uint8),
                ),
                static=True,
            )
            count += 1
    return count


def log_robot_motion(
    rec: Recording,
    model: UrdfModel,
    t: np.ndarray,  # [M] seconds on the plan_time timeline
    joint_names: list[str] | tuple[str, ...],
    q: np.ndarray,  # [M, J] rad
    *,
    T_world_base: np.ndarray | None = None,  # [4, 4] robot base in the world (default identity)
    extra: dict[str, np.ndarray | float] | None = None,  # more joints: name -> [M] or a constant
    prefix: str = "world/robot",
) -> dict[str, np.ndarray]:
    """Log ``<prefix>`` at T_world_base and each link's T_base_link at every sample on ``plan_time``.

    Returns link -> [M, 4, 4] T_base_link (what was logged). Raises ChordError for unknown joints.
    """
    import rerun as rr

    t = np.asarray(t, float)
    q = np.atleast_2d(np.asarray(q, float))
    names = list(joint_names)
    cols = [q]
    for n, v in (extra or {}).items():
        names.append(n)
        cols.append(np.broadcast_to(np.asarray(v, float), (len(t),))[:, None])
    poses = forward_kinematics(model, names, np.hstack(cols))
    Tb = np.eye(4) if T_world_base is None else np.asarray(T_world_base, float)
    rec.log(
        prefix,
        rr.Transform3D(translation=Tb[:3, 3], quaternion=wxyz_to_xyzw(matrix_to_quat(Tb[:3, :3]))),
        static=True,
    )
    time_col = rr.TimeColumn(PLAN_TIME, duration=t)
    for link, T in poses.items():
        rec.send_columns(
            f"{prefix}/{safe_name(link)}",
            [time_col],
            rr.Transform3D.columns(
                translation=T[:, :3, 3], quaternion=wxyz_to_xyzw(matrix_to_quat(T[:, :3, :3]))
            ),
        )
    return poses
