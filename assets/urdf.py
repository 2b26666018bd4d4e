"""Write an :class:`~core.asset.Asset` to a folder: snapshot meshes, URDF, record.

Layout of ``out/`` (written into a temporary sibling and renamed into place, so a reader never
sees half an asset)::

    mesh.ply             the whole object at rest, object frame, vertex colours (flowgen's input)
    links/<link>.ply     each link at rest, object frame (articulated objects only)
    model.urdf           simulator model; joint value 0 = the rest configuration of mesh.ply
    visual/<link>.obj    link meshes in link frames
    collision/<link>_<i>.obj  convex pieces in link frames
    asset.json           parameters, masses, link frames at rest, joints (schema chord.asset v1)

Mass is volume x density; the inertia tensor comes from the mesh (from its convex pieces when the
mesh is open, e.g. a partial scan, whose volume is undefined).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from assets.collision import VhacdSettings, convex_pieces
from core.asset import ASSET_SCHEMA, ASSET_VERSION, RECORD, Asset, Joint, Link
from core.atomic import atomic_dir, write_text_atomic
from core.errors import ChordError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MassProperties:
    """Mass properties of one link in its own link frame."""

    mass: float  # kg
    com: np.ndarray  # [3] centre of mass, link frame, metres
    inertia: np.ndarray  # [3, 3] inertia tensor about the COM, link-frame axes, kg m^2
    source: str  # "mesh" (closed mesh) or "convex pieces" (open mesh)


@dataclass(frozen=True)
class AssetFiles:
    """Paths of a written asset."""

    folder: Path
    mesh: Path  # mesh.ply
    urdf: Path  # model.urdf
    record: Path  # asset.json
    link_meshes: dict[str, Path]  # link name -> links/<link>.ply (articulated only)


def mass_properties(link: Link, pieces: list[trimesh.Trimesh]) -> MassProperties:
    """Mass, COM and inertia of ``link`` in its link frame; ``pieces`` are its convex pieces (link frame)."""
    to_link = np.linalg.inv(link.T_obj_link)
    mesh = link.mesh.copy()
    mesh.apply_transform(to_link)
    if mesh.is_watertight and mesh.volume > 0:
        mesh.density = link.density
        return MassProperties(
            mesh.mass, np.asarray(mesh.center_mass), np.asarray(mesh.moment_inertia), "mesh"
        )
    # Open mesh: a solid made of the convex pieces (overlaps counted twice: a small overestimate).
    mass, first = 0.0, np.zeros(3)
    props = []
    for piece in pieces:
        piece = piece.copy()
        piece.density = link.density
        props.append((piece.mass, np.asarray(piece.center_mass), np.asarray(piece.moment_inertia)))
        mass += piece.mass
        first += piece.mass * np.asarray(piece.center_mass)
    if mass <= 0:
        raise ChordError(f"link {link.name!r}: its collision pieces have no volume; cannot compute a mass")
    com = first / mass
    inertia = np.zeros((3, 3))
    for m, c, inertia_c in props:
        d = c - com  # parallel-axis theorem
        inertia += inertia_c + m * (np.dot(d, d) * np.eye(3) - np.outer(d, d))
    return MassProperties(mass, com, inertia, "convex pieces")


def write_asset(asset: Asset, out: str | Path, vhacd: VhacdSettings | None = None) -> AssetFiles:
    """Write ``asset`` to the folder ``out`` (replacing an asset folder already there)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / RECORD).is_file())):
        raise ChordError(f"{out}: exists and is not an asset folder (no {RECORD}); refusing to overwrite it")
    with atomic_dir(out) as tmp:
        _write(asset, tmp, vhacd)
    links = {lk.name: out / "links" / f"{lk.name}.ply" for lk in asset.links} if asset.articulated else {}
    return AssetFiles(out, out / "mesh.ply", out / "model.urdf", out / RECORD, links)


def _write(asset: Asset, out: Path, vhacd: VhacdSettings | None) -> None:
    for sub in ("visual", "collision", *(["links"] if asset.articulated else [])):
        (out / sub).mkdir()
    asset.mesh().export(out / "mesh.ply")
    links_xml, records = [], []
    for lk in asset.links:
        to_link = np.linalg.inv(lk.T_obj_link)
        pieces_obj = list(lk.collision) or convex_pieces(lk.mesh, vhacd)
        pieces = []
        for piece in pieces_obj:
            piece = piece.copy()
            piece.apply_transform(to_link)
            pieces.append(piece)
        props = mass_properties(lk, pieces)
        if asset.articulated:
            lk.mesh.export(out / "links" / f"{lk.name}.ply")
        visual = lk.mesh.copy()
        visual.apply_transform(to_link)
        _export_obj(visual, out / "visual" / f"{lk.name}.obj")
        collision_files = []
        for i, piece in enumerate(pieces):
            rel = f"collision/{lk.name}_{i}.obj"
            _export_obj(piece, out / rel)
            collision_files.append(rel)
        links_xml.append(_link_xml(lk, props, f"visual/{lk.name}.obj", collision_files))
        records.append(
            {
                "name": lk.name,
                "mesh": f"links/{lk.name}.ply" if asset.articulated else "mesh.ply",
                "T_obj_link": lk.T_obj_link.tolist(),
                "mass": props.mass,
                "com": props.com.tolist(),
                "inertia": props.inertia.tolist(),
                "inertia_from": props.source,
                "collision_pieces": len(pieces),
                "watertight": bool(lk.mesh.is_watertight),
            }
        )
        log.debug(
            "link %s: %.4f kg from the %s, %d convex pieces", lk.name, props.mass, props.source, len(pieces)
        )
    joints_xml = [_joint_xml(asset, j) for j in asset.joints]
    urdf = "\n".join(
        [
            '<?xml version="1.0"?>',
            f"<robot name={quoteattr(asset.name)}>",
            *links_xml,
            *joints_xml,
            "</robot>",
            "",
        ]
    )
    write_text_atomic(out / "model.urdf", urdf)
    record = {
        "schema": ASSET_SCHEMA,
        "version": ASSET_VERSION,
        "name": asset.name,
        "params": asset.params,
        "mass": float(sum(r["mass"] for r in records)),
        "links": records,
        "joints": [_joint_record(asset, j) for j in asset.joints],
        "conventions": "object frame z up, lowest point at z=0; joint value 0 = rest configuration of mesh.ply",
    }
    write_text_atomic(out / RECORD, json.dumps(record, indent=1, sort_keys=False, default=_json_default))


def _json_default(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


def _export_obj(mesh: trimesh.Trimesh, path: Path) -> None:
    plain = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    write_text_atomic(
        path, trimesh.exchange.obj.export_obj(plain, include_normals=False, include_color=False)
    )


def _origin(T: np.ndarray) -> str:
    xyz = " ".join(f"{v:.9g}" for v in T[:3, 3])
    rpy = " ".join(f"{v:.9g}" for v in Rotation.from_matrix(T[:3, :3]).as_euler("xyz"))
    return f'<origin xyz="{xyz}" rpy="{rpy}"/>'


def _link_xml(lk: Link, props: MassProperties, visual: str, collisions: list[str]) -> str:
    inertia = props.inertia
    r, g, b, a = lk.color
    com = " ".join(f"{v:.9g}" for v in props.com)
    lines = [
        f"  <link name={quoteattr(lk.name)}>",
        "    <inertial>",
        f'      <origin xyz="{com}" rpy="0 0 0"/>',
        f'      <mass value="{props.mass:.9g}"/>',
        f'      <inertia ixx="{inertia[0, 0]:.9g}" ixy="{inertia[0, 1]:.9g}" ixz="{inertia[0, 2]:.9g}" '
        f'iyy="{inertia[1, 1]:.9g}" iyz="{inertia[1, 2]:.9g}" izz="{inertia[2, 2]:.9g}"/>',
        "    </inertial>",
        "    <visual>",
        '      <origin xyz="0 0 0" rpy="0 0 0"/>',
        f'      <geometry><mesh filename="{visual}" scale="1 1 1"/></geometry>',
        f'      <material name="{lk.name}_color"><color rgba="{r:.4g} {g:.4g} {b:.4g} {a:.4g}"/></material>',
        "    </visual>",
    ]
    for c in collisions:
        lines += [
            "    <collision>",
            '      <origin xyz="0 0 0" rpy="0 0 0"/>',
            f'      <geometry><mesh filename="{c}" scale="1 1 1"/></geometry>',
            "    </collision>",
        ]
    lines.append("  </link>")
    return "\n".join(lines)


def _joint_xml(asset: Asset, j: Joint) -> str:
    lines = [
        f"  <joint name={quoteattr(j.name)} type={quoteattr(j.type)}>",
        f"    <parent link={quoteattr(j.parent)}/>",
        f"    <child link={quoteattr(j.child)}/>",
        f"    {_origin(asset.joint_origin(j))}",
    ]
    if j.type != "fixed":
        lines += [
            f'    <axis xyz="{j.axis[0]:.9g} {j.axis[1]:.9g} {j.axis[2]:.9g}"/>',
            f'    <limit lower="{j.lower:.9g}" upper="{j.upper:.9g}" effort="{j.effort:.9g}" velocity="{j.velocity:.9g}"/>',
            f'    <dynamics damping="{j.damping:.9g}" friction="{j.friction:.9g}"/>',
        ]
    lines.append("  </joint>")
    return "\n".join(lines)


def _joint_record(asset: Asset, j: Joint) -> dict[str, Any]:
    unit = "rad" if j.type == "revolute" else "m"
    d = {
        "name": j.name,
        "type": j.type,
        "parent": j.parent,
        "child": j.child,
        "axis": list(j.axis),
        "origin": asset.joint_origin(j).tolist(),
        "lower": j.lower,
        "upper": j.upper,
        "unit": unit,
        "damping": j.damping,
        "friction": j.friction,
        "rest": j.rest,
    }
    if j.type == "revolute":
        d["rest_deg"] = math.degrees(j.rest)
        d["limits_deg_absolute"] = [math.degrees(j.rest + j.lower), math.degrees(j.rest + j.upper)]
    return d
