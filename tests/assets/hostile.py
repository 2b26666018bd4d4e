"""Writes the hostile mesh files and parts files that chord must refuse with one line.

Each case is built here (nothing binary is committed) as a careless or hostile user would make
it, with the text its one-line error must contain. ``tests/assets/test_hostile_inputs.py`` runs
every case through the library (``core.mesh.load_mesh``, ``assets.intake``) and through
``chord assets intake|parts``; ``python tests/assets/hostile.py OUT`` writes them all into OUT
to try by hand.
"""

from __future__ import annotations

import copy
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
import yaml


@dataclass(frozen=True)
class Case:
    """One hostile input: ``make(folder)`` writes it and returns the path to hand to chord."""

    name: str
    make: Callable[[Path], Path]
    needle: str  # text the one-line error must contain (after the file's path)


# -- meshes -----------------------------------------------------------------------------------
def _box(extents=(0.1, 0.06, 0.04)) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents)


def _write(name: str, data: bytes | str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        return path

    return make


def _export(name: str, mesh_fn: Callable[[], trimesh.Trimesh], as_type: str | None = None):
    """Export a mesh in ``as_type`` (default: the suffix's format) under ``name``."""

    def make(folder: Path) -> Path:
        path = folder / name
        data = mesh_fn().export(file_type=as_type or path.suffix[1:])
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return path

    return make


def _tetra_obj(*vertices: str) -> str:
    body = "".join(f"v {v}\n" for v in vertices)
    return body + "f 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n"


def _folder_named(name: str):
    def make(folder: Path) -> Path:
        path = folder / name
        path.mkdir()
        return path

    return make


def _binary_ply_with_inf(folder: Path) -> Path:
    mesh = _box()
    mesh.vertices[2] = [np.inf, 0.0, 0.0]
    path = folder / "inf.ply"
    path.write_bytes(trimesh.exchange.ply.export_ply(mesh, encoding="binary"))
    return path


def _nan_unreferenced(folder: Path) -> Path:
    """A good box plus one NaN vertex no face uses, as PLY (which keeps unused vertices): refused
    anyway, since the file is broken."""
    mesh = _box()
    lines = ["ply", "format ascii 1.0", f"element vertex {len(mesh.vertices) + 1}"]
    lines += ["property float x", "property float y", "property float z"]
    lines += [f"element face {len(mesh.faces)}", "property list uchar int vertex_indices", "end_header"]
    lines += ["nan nan nan"] + [f"{x} {y} {z}" for x, y, z in mesh.vertices]
    lines += [f"3 {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]  # past the NaN one
    path = folder / "nan_unused.ply"
    path.write_text("\n".join(lines) + "\n")
    return path


def _flat_grid(folder: Path) -> Path:
    grid = trimesh.creation.box(extents=(0.1, 0.1, 0.0))  # a zero-thickness slab: two squares
    path = folder / "flat.ply"
    path.write_bytes(trimesh.exchange.ply.export_ply(grid))
    return path


def _scan_of_one_face(folder: Path) -> Path:
    """A box's top face alone, as a partial scan that caught one side: no volume."""
    box = _box()
    top = box.submesh([np.nonzero(box.face_normals[:, 2] > 0.5)[0]], append=True)
    path = folder / "one_face.obj"
    path.write_text(trimesh.exchange.obj.export_obj(top))
    return path


MESH_CASES: list[Case] = [
    Case("ply_named_obj", _export("ply_named.obj", _box, "ply"), "content is PLY (by its first bytes), but the name says .obj; rename it to ply_named.ply"),
    Case("glb_named_ply", _export("glb_named.ply", _box, "glb"), "content is GLB (by its first bytes), but the name says .ply"),
    Case("stl_named_obj", _export("stl_named.obj", _box, "stl"), "content is STL (by its first bytes), but the name says .obj"),
    Case("gltf_json_named_obj", _write("gltf.obj", '{"asset": {"version": "2.0"}}'), "content is glTF (by its first bytes), but the name says .obj"),
    Case("ply_named_stl", _export("ply_named.stl", _box, "ply"), "content is PLY (by its first bytes), but the name says .stl"),
    Case("obj_named_ply", _export("obj_named.ply", _box, "obj"), "cannot read mesh (not a PLY file: it starts with b'"),
    Case("text_named_glb", _write("text.glb", "hello, not a mesh\n"), "cannot read mesh (not a GLB file: it starts with b'hello"),
    Case("binary_named_obj", _write("binary.obj", bytes(range(256)) * 2), "cannot read mesh (not an OBJ file: OBJ is text, this file is binary"),
    Case("lying_stl_count", _write("lying.stl", b"\0" * 80 + struct.pack("<I", 10**9) + b"\0" * 100), "declares 1,000,000,000 triangles, which take 50,000,000,084 bytes, not 184"),
    Case("lying_ply_header", _write("lying.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\nproperty float y\nproperty float z\nelement face 1000000000\nproperty list uchar int vertex_indices\nend_header\n" + b"\0" * 100), "cannot read mesh (ValueError: PLY is unexpected length!)"),
    Case("truncated_glb", _write("truncated.glb", b"glTF" + struct.pack("<II", 2, 10**9) + b"\0" * 50), "cannot read mesh (ValueError"),
    Case("nan_vertex", _write("nan.obj", _tetra_obj("0 0 0", "0.1 0 0", "nan 0.1 0", "0 0 0.1")), "1 of 4 vertices have non-finite coordinates (vertex 2 is [nan, 0.1, 0.0]); expected finite numbers"),
    Case("inf_vertex_binary_ply", _binary_ply_with_inf, "1 of 8 vertices have non-finite coordinates (vertex 2 is [inf, 0.0, 0.0])"),
    Case("nan_unreferenced_vertex", _nan_unreferenced, "1 of 9 vertices have non-finite coordinates (vertex 0 is [nan, nan, nan])"),
    Case("one_triangle", _write("triangle.obj", "v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\nf 1 2 3\n"), "mesh is flat (3 vertices within 0 mm of one plane), expected an object at least 1 mm thick"),
    Case("flat_slab", _flat_grid, "mesh is flat (4 vertices within 0 mm of one plane)"),
    Case("one_scanned_face", _scan_of_one_face, "mesh is flat (4 vertices within 0 mm of one plane)"),
    Case("collinear", _write("line.obj", "v 0 0 0\nv 0.1 0 0\nv 0.2 0 0\nf 1 2 3\n"), "mesh is degenerate (surface area 0 m^2"),
    Case("all_one_point", _write("point.obj", _tetra_obj("0.05 0.05 0.05", "0.05 0.05 0.05", "0.05 0.05 0.05", "0.05 0.05 0.05")), "mesh is degenerate (surface area 0 m^2"),
    Case("vertices_only", _write("cloud.obj", "v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\nv 0 0 0.1\n"), "mesh is empty (no faces)"),
    Case("empty_file", _write("empty.obj", ""), "mesh is empty (no faces)"),
    Case("face_index_out_of_range", _write("badidx.obj", "v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\nv 0 0 0.1\nf 1 2 99\nf 1 2 4\n"), "cannot read mesh (IndexError: index 98 is out of bounds"),
    Case("non_numeric_vertex", _write("words.obj", "v a b c\nv 1 2 3\nf 1 2 3\n"), "cannot read mesh (ValueError"),
    Case("kilometre_cube", _export("km.obj", lambda: _box((1000.0, 1000.0, 1000.0))), "largest extent is 1000 m with units 'm', expected 5 mm to 3 m for a tabletop object"),
    Case("coordinates_1e308", _write("huge.obj", _tetra_obj("0 0 0", "1e308 0 0", "0 1e308 0", "0 0 1e308")), "largest extent is 1e+308 m with units 'm'"),
    Case("micrometre_object", _export("tiny.obj", lambda: _box((1e-6, 1e-6, 1e-6))), "largest extent is 1e-06 m with units 'm'"),
    Case("unsupported_suffix", _write("model.fbx", "Kaydara FBX Binary"), "mesh format '.fbx' is not supported"),
    Case("folder_named_obj", _folder_named("folder.obj"), "is a folder, expected a mesh file"),
    Case("missing_file", lambda folder: folder / "missing.obj", "mesh file not found"),
]  # fmt: skip


# -- parts files ------------------------------------------------------------------------------
def two_part_scan(folder: Path) -> dict:
    """Base and lid of a laptop-like object in millimetres (z up), and a parts document for them."""
    base = trimesh.creation.box(extents=(220.0, 320.0, 16.0))
    base.apply_translation((0.0, 0.0, 8.0))
    lid = trimesh.creation.box(extents=(220.0, 320.0, 7.0))
    lid.apply_translation((0.0, 0.0, 19.5))
    base.export(folder / "base.ply")
    lid.export(folder / "lid.ply")
    return {
        "name": "scanned_laptop",
        "units": "mm",
        "up": "+z",
        "parts": [{"name": "base", "mesh": "base.ply"}, {"name": "lid", "mesh": "lid.ply"}],
        "joints": [
            {"name": "hinge", "type": "revolute", "parent": "base", "child": "lid",
             "origin": [-110.0, 0.0, 16.0], "axis": [0, -1, 0], "limits_deg": [-10, 120],
             "damping": 0.05, "friction": 0.4},
        ],
    }  # fmt: skip


def _parts(edit: Callable[[dict], object]) -> Callable[[Path], Path]:
    """A parts file: the good two-part document with ``edit`` applied to it (in place)."""

    def make(folder: Path) -> Path:
        doc = copy.deepcopy(two_part_scan(folder))
        edit(doc)
        path = folder / "parts.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return make


def _parts_text(text: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        two_part_scan(folder)
        path = folder / "parts.yaml"
        path.write_text(text)
        return path

    return make


def _joint(**kv) -> Callable[[dict], None]:
    return lambda d: d["joints"][0].update(kv)


def _part(i: int, **kv) -> Callable[[dict], None]:
    return lambda d: d["parts"][i].update(kv)


def _drop_joint_key(key: str) -> Callable[[dict], None]:
    return lambda d: d["joints"][0].pop(key)


def _ply_named_obj_part(d: dict) -> None:
    d["parts"][1]["mesh"] = "lid_is_ply.obj"


def _make_ply_named_obj(folder: Path) -> Path:
    path = _parts(_ply_named_obj_part)(folder)
    (folder / "lid_is_ply.obj").write_bytes((folder / "lid.ply").read_bytes())
    return path


PARTS_CASES: list[Case] = [
    Case("not_yaml", _parts_text("parts: [\n  {name: base, mesh: base.ply\n"), "not valid YAML"),
    Case("deeply_nested", _parts_text("[" * 100_000 + "]" * 100_000), "nests deeper"),
    Case("a_list", _parts_text("- base.ply\n- lid.ply\n"), "is ['base.ply', 'lid.ply'], expected a mapping like {name, units, up, parts, joints}"),
    Case("unknown_top_key", _parts(lambda d: d.update(jionts=[])), "jionts: unknown key; expected one of ['name', 'units', 'scale', 'up', 'parts', 'joints']"),
    Case("no_parts", _parts(lambda d: d.pop("parts")), "parts: is None, expected a non-empty list of {name, mesh}"),
    Case("part_is_a_string", _parts(lambda d: d["parts"].__setitem__(0, "base.ply")), "parts[0]: is 'base.ply', expected a mapping like {name: lid, mesh: lid.ply}"),
    Case("part_unknown_key", _parts(_part(1, file="lid.ply")), "parts[1].file: unknown key; expected one of ['name', 'mesh']"),
    Case("empty_part_name", _parts(_part(1, name="")), "parts[1].name: is '': empty, expected a name of letters"),
    Case("part_name_with_slash", _parts(_part(1, name="lid/screen")), "parts[1].name: is 'lid/screen': not a name: use letters, digits, '_', '.' and '-' (no spaces or '/')"),
    Case("part_name_escapes", _parts(_part(1, name="../../../../PWNED_parts")), "parts[1].name: is '../../../../PWNED_parts': not a name"),
    Case("hidden_part_name", _parts(_part(1, name=".lid")), "parts[1].name: is '.lid': not a name"),
    Case("part_name_a_number", _parts(_part(1, name=42)), "parts[1].name: is 42, expected a name"),
    Case("duplicate_part_names", _parts(_part(1, name="base")), "parts[1].name: 'base' is used twice; part names must be unique"),
    Case("part_without_mesh", _parts(lambda d: d["parts"][1].pop("mesh")), "parts[1].mesh: is None, expected a mesh file name"),
    Case("part_mesh_missing", _parts(_part(1, mesh="nope.ply")), "nope.ply: mesh file not found"),
    Case("part_mesh_ply_named_obj", _make_ply_named_obj, "lid_is_ply.obj: content is PLY (by its first bytes), but the name says .obj"),
    Case("units_furlongs", _parts(lambda d: d.update(units="furlongs")), "units: is 'furlongs', expected one of ['m', 'cm', 'mm', 'auto']"),
    Case("up_sideways", _parts(lambda d: d.update(up="sideways")), "up: is 'sideways', expected one of ['auto', '+x', '-x', '+y', '-y', '+z', '-z']"),
    Case("scale_a_word", _parts(lambda d: d.update(scale="big")), "scale: is 'big', expected a positive number of metres per file unit"),
    Case("scale_negative", _parts(lambda d: d.update(scale=-0.001)), "scale is -0.001, expected a positive number of metres per file unit"),
    Case("joints_a_mapping", _parts(lambda d: d.update(joints={"hinge": {}})), "joints: is {'hinge': {}}, expected a list"),
    Case("joint_type_spherical", _parts(_joint(type="spherical")), "joints[0].type: is 'spherical', expected one of ['revolute', 'prismatic', 'fixed']"),
    Case("damping_abc", _parts(_joint(damping="abc")), "joints[0].damping: is 'abc', expected a number from 0 to 100 N m s/rad"),
    Case("damping_1e9", _parts(_joint(damping=1e9)), "joints[0].damping: is 1000000000.0, expected 0 to 100 N m s/rad"),
    Case("friction_negative", _parts(_joint(friction=-1)), "joints[0].friction: is -1, expected 0 to 100 N m"),
    Case("limits_1e6_deg", _parts(_joint(limits_deg=[-1e6, 1e6])), "joints[0].limits_deg: is [-1000000.0, 1000000.0], expected limits within -360 to 360 deg"),
    Case("limits_reversed", _parts(_joint(limits_deg=[120, -10])), "joints[0].limits_deg: is [120, -10]: limits reversed or empty; expected lower < upper"),
    Case("limits_nan", _parts(_joint(limits_deg=[float("nan"), 10])), "joints[0].limits_deg: is [nan, 10], expected [lower, upper] (deg, finite numbers)"),
    Case("limits_missing", _parts(_drop_joint_key("limits_deg")), "joints[0].limits_deg: is None, expected [lower, upper] (deg, finite numbers)"),
    Case("limits_exclude_the_scan", _parts(_joint(limits_deg=[10, 120])), "joints[0].limits_deg: is [10, 120]: the scanned configuration (0) lies outside"),
    Case("prismatic_with_degrees", _parts(_joint(type="prismatic")), "joints[0].limits_deg: does not apply to a prismatic joint; give limits"),
    Case("prismatic_travel_1km", _parts(lambda d: d["joints"][0].update(type="prismatic", limits=[0, 1e6]) or d["joints"][0].pop("limits_deg")), "joints[0].limits: is [0.0, 1000000.0] file units = [0, 1000] m, expected a travel within -3 to 3 m"),
    Case("hinge_1km_away", _parts(_joint(origin=[1e6, 0, 0])), "joints[0].origin: is [1000000.0, 0.0, 0.0] (file units), 999.9 m from the parts' bounding box; expected a point on the axis within 5 cm of the object"),
    Case("origin_a_word", _parts(_joint(origin="here")), "joints[0].origin: is 'here', expected [x, y, z] (3 finite numbers)"),
    Case("axis_zero", _parts(_joint(axis=[0, 0, 0])), "joints[0].axis: is [0.0, 0.0, 0.0], expected a non-zero direction"),
    Case("parent_not_a_part", _parts(_joint(parent="table")), "joints[0].parent: link 'table' does not exist; the parts are ['base', 'lid']"),
    Case("child_is_parent", _parts(_joint(child="base")), "joints[0].child: is 'base', the joint's own parent"),
    Case("child_is_root", _parts(_joint(parent="lid", child="base")), "joints[0].child: is 'base', the root (the first part) has no parent"),
    Case("two_parents", _parts(lambda d: d["joints"].append({**d["joints"][0], "name": "hinge2"})), "joints[1].child: is 'lid', which already has a parent (joints[0] 'hinge')"),
    Case("duplicate_joint_names", _parts(lambda d: d["joints"].append({**d["joints"][0], "child": "lid"})), "joints[1].name: 'hinge' is used twice; joint names must be unique"),
    Case("joint_unknown_key", _parts(_joint(limit_deg=[-10, 10])), "joints[0].limit_deg: unknown key; expected one of"),
]  # fmt: skip


def write_all(out: Path) -> list[tuple[str, Path, str]]:
    """Write every case into its own folder under ``out``; returns (name, path, needle)."""
    written = []
    for kind, cases in (("mesh", MESH_CASES), ("parts", PARTS_CASES)):
        for case in cases:
            folder = out / kind / case.name
            folder.mkdir(parents=True, exist_ok=True)
            written.append((f"{kind}/{case.name}", case.make(folder), case.needle))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/assets/hostile.py OUT")
    for name, path, needle in write_all(Path(sys.argv[1])):
        print(f"{name}: {path}  ->  {needle}")
