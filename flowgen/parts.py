"""Rigid parts of an articulated object, as its asset record knows them (links of the URDF).

A scene object built by ``chord assets`` (a digital cousin, or a scan split by ``chord assets
parts``) keeps ``asset.json`` beside its ``model.urdf``: the links and their meshes at rest, in the
object frame. The video fit uses them to keep control points, skinning and the rigidity graph
inside one part each, so a hinge is free to bend (``docs/flowgen.md``, "Parts"). Objects without
a record, or with a single link, have no parts (None).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from core.errors import ChordError
from core.scene import SceneObject

log = logging.getLogger(__name__)

_SAMPLES_PER_LINK = 20_000  # surface samples per link for the nearest-link lookup


@dataclass(frozen=True)
class PartJoint:
    """A revolute joint between two parts, at rest, world frame."""

    parent: int  # index of the parent link in ObjectParts.names
    child: int  # index of the child link
    anchors: np.ndarray  # [A, 3] world metres: points on the joint axis across the child's extent


@dataclass(frozen=True)
class ObjectParts:
    """The links of one object at rest, world frame: each point belongs to the nearest link surface."""

    names: tuple[str, ...]  # link names, root first
    surface: np.ndarray  # [M, 3] world metres: samples and vertices of every link
    owner: np.ndarray  # [M] int: the link each surface point belongs to
    joints: tuple[PartJoint, ...] = ()  # revolute joints (points on their axes belong to both sides)

    @property
    def count(self) -> int:
        return len(self.names)

    def label(self, points: np.ndarray) -> np.ndarray:  # points: [N, 3] world metres
        """[N] int: index (into ``names``) of the link whose surface is nearest each point."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must be [N, 3], got shape {points.shape}")
        if len(points) == 0:
            return np.zeros(0, dtype=np.int64)
        _, nearest = cKDTree(self.surface).query(points)
        return self.owner[nearest].astype(np.int64)


def parts_from_meshes(
    names: list[str],
    meshes: list[trimesh.Trimesh],  # link meshes at rest, object frame, metres
    T_world_obj: np.ndarray,  # [4, 4]
    seed: int = 0,
    joints: list[tuple[int, int, np.ndarray, np.ndarray]] = (),  # (parent, child, origin [3], axis [3])
    anchors_per_joint: int = 4,
) -> ObjectParts:
    """ObjectParts of links given as meshes in the object frame.

    ``joints`` are revolute joints as (parent link, child link, a point on the axis, the axis),
    object frame; their anchors span the child's extent along the axis.
    """
    if len(names) != len(meshes) or not names:
        raise ValueError(f"need one name per link mesh, got {len(names)} names and {len(meshes)} meshes")
    T = np.asarray(T_world_obj, dtype=np.float64)
    surface, owner = [], []
    for i, m in enumerate(meshes):
        pts, _ = trimesh.sample.sample_surface(m, _SAMPLES_PER_LINK, seed=seed + i)
        p = np.concatenate([np.asarray(pts), np.asarray(m.vertices)])
        surface.append(p @ T[:3, :3].T + T[:3, 3])
        owner.append(np.full(len(p), i))
    part_joints = []
    for parent, child, origin, axis in joints:
        axis = np.asarray(axis, float) / np.linalg.norm(axis)
        along = (np.asarray(meshes[child].vertices) - origin) @ axis
        line = origin + np.linspace(along.min(), along.max(), anchors_per_joint)[:, None] * axis
        part_joints.append(PartJoint(parent, child, line @ T[:3, :3].T + T[:3, 3]))
    return ObjectParts(tuple(names), np.concatenate(surface), np.concatenate(owner), tuple(part_joints))


def object_parts(obj: SceneObject, seed: int = 0) -> ObjectParts | None:
    """The object's links from the asset record beside its URDF; None for one link or no record.

    Raises ChordError when the record names a link mesh that cannot be read.
    """
    if obj.urdf is None:
        return None
    folder = Path(obj.urdf).parent
    if not (folder / "asset.json").is_file():
        return None
    from core.asset import read_record

    record = read_record(folder)
    links = record.get("links", [])
    if len(links) < 2:
        return None
    names, meshes = [], []
    for lk in links:
        path = folder / lk["mesh"]
        try:
            mesh = trimesh.load(path, force="mesh")
        except (OSError, ValueError) as e:
            raise ChordError(
                f"object {obj.name!r}: link {lk['name']!r} mesh {str(path)!r} is unreadable ({e})"
            ) from e
        if len(mesh.faces) == 0:
            raise ChordError(f"object {obj.name!r}: link {lk['name']!r} mesh {str(path)!r} has no faces")
        names.append(str(lk["name"]))
        meshes.append(mesh)
    joints = []
    for j in record.get("joints", []):
        if j.get("type") != "revolute":
            continue  # a prismatic joint's two sides share no point; a fixed one is not a part boundary
        child = names.index(j["child"])
        T_obj_child = np.asarray(links[child]["T_obj_link"], dtype=np.float64)
        axis = T_obj_child[:3, :3] @ np.asarray(j["axis"], dtype=np.float64)
        joints.append((names.index(j["parent"]), child, T_obj_child[:3, 3], axis))
    log.info("%s: %d parts from %s (%s)", obj.name, len(names), folder / "asset.json", ", ".join(names))
    return parts_from_meshes(names, meshes, obj.pose.matrix(), seed, joints)
