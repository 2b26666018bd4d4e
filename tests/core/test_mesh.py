"""Mesh intake: formats round trip with colours, units scale, bad files get clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from core.errors import ChordError
from core.mesh import DEFAULT_COLOR, load_mesh, mesh_colors, sample_surface

RED, BLUE = (255, 0, 0, 255), (0, 0, 255, 255)


def _colored_box() -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=(0.10, 0.05, 0.02))
    colors = np.array([RED] * len(m.vertices), dtype=np.uint8)
    colors[m.vertices[:, 0] > 0] = BLUE
    m.visual.vertex_colors = colors
    return m


@pytest.mark.parametrize("ext", ["obj", "ply", "glb"])
def test_round_trip_keeps_vertex_colours(tmp_path, ext):
    src = _colored_box()
    path = tmp_path / f"box.{ext}"
    src.export(path)
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.extents, [0.10, 0.05, 0.02], atol=1e-6)
    assert len(mesh.faces) == 12
    colors = mesh_colors(mesh)
    assert colors.shape == (len(mesh.vertices), 3)
    blue = mesh.vertices[:, 0] > 0
    np.testing.assert_allclose(colors[blue], np.tile([0.0, 0.0, 1.0], (blue.sum(), 1)))
    np.testing.assert_allclose(colors[~blue], np.tile([1.0, 0.0, 0.0], ((~blue).sum(), 1)))


def test_stl_round_trip_gets_default_colour(tmp_path):
    path = tmp_path / "box.stl"
    _colored_box().export(path)
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.extents, [0.10, 0.05, 0.02], atol=1e-6)
    np.testing.assert_allclose(mesh_colors(mesh), np.tile(DEFAULT_COLOR, (len(mesh.vertices), 1)))


@pytest.mark.parametrize("ext", ["obj", "glb"])
def test_texture_becomes_vertex_colours(tmp_path, ext):
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    uv = np.random.default_rng(0).uniform(0.1, 0.9, size=(len(box.vertices), 2))
    image = Image.new("RGB", (8, 8), (0, 255, 0))
    textured = trimesh.Trimesh(
        box.vertices, box.faces, visual=trimesh.visual.TextureVisuals(uv=uv, image=image)
    )
    path = tmp_path / f"tex.{ext}"
    textured.export(path)
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh_colors(mesh), np.tile([0, 1, 0], (len(mesh.vertices), 1)))


def test_glb_scene_concatenates_with_node_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(_colored_box(), node_name="a")
    scene.add_geometry(
        _colored_box(),
        node_name="b",
        transform=trimesh.transformations.translation_matrix([1, 0, 0]),
    )
    path = tmp_path / "scene.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 24
    np.testing.assert_allclose(mesh.bounds, [[-0.05, -0.025, -0.01], [1.05, 0.025, 0.01]], atol=1e-6)
    assert mesh_colors(mesh).shape == (len(mesh.vertices), 3)


@pytest.mark.parametrize(("units", "scale"), [("m", 1.0), ("cm", 0.01), ("mm", 0.001)])
def test_units_scale_to_metres(tmp_path, units, scale):
    path = tmp_path / "box.obj"
    trimesh.creation.box(extents=(0.2 / scale, 0.1 / scale, 0.05 / scale)).export(path)
    mesh = load_mesh(path, units=units)
    np.testing.assert_allclose(mesh.extents, [0.2, 0.1, 0.05], rtol=1e-6)


def test_open_mesh_loads_unrepaired(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.05)
    keep = sphere.triangles_center[:, 2] < 0.02  # crop the cap: a partial scan
    open_mesh = trimesh.Trimesh(sphere.vertices, sphere.faces[keep])
    path = tmp_path / "scan.ply"
    open_mesh.export(path)
    mesh = load_mesh(path)
    assert not mesh.is_watertight
    assert len(mesh.faces) == keep.sum()


def test_missing_file(tmp_path):
    with pytest.raises(ChordError, match=r"nope\.obj: mesh file not found"):
        load_mesh(tmp_path / "nope.obj")


@pytest.mark.parametrize("ext", ["glb", "ply"])
def test_unreadable_file(tmp_path, ext):
    path = tmp_path / f"bad.{ext}"
    path.write_bytes(b"\x00\x01 not a mesh " * 8)
    with pytest.raises(ChordError, match=rf"bad\.{ext}: cannot read mesh"):
        load_mesh(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "box.fbx"
    path.write_bytes(b"x")
    with pytest.raises(ChordError, match=r"box\.fbx: mesh format '\.fbx' is not supported"):
        load_mesh(path)


def test_empty_mesh(tmp_path):
    path = tmp_path / "empty.obj"
    path.write_text("v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\n")
    with pytest.raises(ChordError, match=r"empty\.obj: mesh is empty \(no faces\)"):
        load_mesh(path)


def test_degenerate_mesh(tmp_path):
    path = tmp_path / "line.obj"
    path.write_text("v 0 0 0\nv 0.1 0 0\nv 0.2 0 0\nf 1 2 3\n")
    with pytest.raises(ChordError, match=r"line\.obj: mesh is degenerate \(surface area 0 m\^2"):
        load_mesh(path)


def test_absurd_size_suggests_units(tmp_path):
    path = tmp_path / "banana.obj"
    trimesh.creation.box(extents=(19.0, 4.0, 3.0)).export(path)  # a 19 m banana: it was cm
    with pytest.raises(ChordError, match=r"largest extent is 19 m .*did you mean units: cm/mm\?"):
        load_mesh(path, units="m")
    assert load_mesh(path, units="cm").extents.max() == pytest.approx(0.19)


def test_tiny_size_suggests_metres(tmp_path):
    path = tmp_path / "cup.obj"
    trimesh.creation.box(extents=(0.1, 0.1, 0.1)).export(path)
    with pytest.raises(ChordError, match=r"0\.0001 m with units 'mm'.*did you mean units: m\?"):
        load_mesh(path, units="mm")


def test_bad_units_value(tmp_path):
    path = tmp_path / "box.obj"
    trimesh.creation.box(extents=(0.1, 0.1, 0.1)).export(path)
    with pytest.raises(ChordError, match=r"units 'inch' is not one of"):
        load_mesh(path, units="inch")


def test_sample_surface_points_lie_on_mesh_with_interpolated_colours():
    mesh = _colored_box()
    points, normals, colors = sample_surface(mesh, 500, seed=3)
    assert points.shape == normals.shape == colors.shape == (500, 3)
    half = np.array([0.05, 0.025, 0.01])
    # every sample is on the box surface: on at least one face plane, inside the others
    on_face = np.isclose(np.abs(points), half, atol=1e-9).any(axis=1)
    assert on_face.all() and (np.abs(points) <= half + 1e-9).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    # colours: pure red on the x<0 end face, pure blue on the x>0 end face, blends between
    left = np.isclose(points[:, 0], -0.05)
    right = np.isclose(points[:, 0], 0.05)
    np.testing.assert_allclose(colors[left], np.tile([1, 0, 0], (left.sum(), 1)), atol=1e-9)
    np.testing.assert_allclose(colors[right], np.tile([0, 0, 1], (right.sum(), 1)), atol=1e-9)
    np.testing.assert_allclose(colors.sum(axis=1), 1.0, atol=1e-9)
    side = ~(left | right)
    np.testing.assert_allclose(colors[side, 2], (points[side, 0] + 0.05) / 0.1, atol=1e-6)
    with pytest.raises(ValueError, match="count must be >= 1, got 0"):
        sample_surface(mesh, 0)
