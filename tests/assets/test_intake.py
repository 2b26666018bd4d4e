"""Scan intake on pybullet_data's real scans (duck, bunny), a partial crop, a scan with its table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml

from assets.bullet import World, settle
from assets.collision import VhacdSettings
from assets.intake import IntakeConfig, intake_parts, intake_scan
from assets.urdf import write_asset
from core.asset import read_record
from core.cousin_params import LaptopParams
from core.cousins import build_cousin
from core.errors import ChordError
from core.mesh import load_mesh, mesh_colors, sample_surface

pybullet_data = pytest.importorskip("pybullet_data")
DATA = Path(pybullet_data.getDataPath())
DUCK, BUNNY = DATA / "duck.obj", DATA / "bunny.obj"
FAST = VhacdSettings(resolution=20_000)
DUCK_SCALE = 0.05  # as pybullet_data's duck_vhacd.urdf scales it
BUNNY_SCALE = 0.1


def _settles(folder, name) -> dict:
    with World() as world:
        world.add(name, folder / "model.urdf", np.eye(4))
        return settle(world, name, 2.0)


def _assert_at_rest(r: dict) -> None:
    assert r["linear_speed"] < 2e-3 and r["angular_speed"] < 2e-2, r
    assert r["drift"] < 4e-3 and r["tilt"] < 0.02, r


def test_duck(tmp_path):
    asset, report = intake_scan(DUCK, IntakeConfig(scale=DUCK_SCALE, up="+y"))
    assert report.scale == DUCK_SCALE and not report.table_found
    files = write_asset(asset, tmp_path / "duck", FAST)
    mesh = load_mesh(files.mesh)
    raw = trimesh.load(DUCK, force="mesh")
    # +y of the file is now +z; the duck stands on z = 0.
    assert np.ptp(mesh.vertices[:, 2]) == pytest.approx(np.ptp(raw.vertices[:, 1]) * DUCK_SCALE, abs=1e-4)
    assert abs(mesh.vertices[:, 2].min()) < 1e-9
    # The texture became vertex colours and survived: the duck is yellow.
    r, g, b = mesh_colors(mesh).mean(0)
    assert r > 0.6 and g > 0.5 and b < 0.3
    _assert_at_rest(_settles(files.folder, asset.name))


def test_bunny_and_a_cropped_partial_copy(tmp_path):
    asset, _ = intake_scan(BUNNY, IntakeConfig(scale=BUNNY_SCALE))
    _assert_at_rest(_settles(write_asset(asset, tmp_path / "bunny", FAST).folder, asset.name))

    raw = trimesh.load(BUNNY, force="mesh", process=False)
    keep = (raw.vertices[raw.faces][:, :, 2] < 0.3).all(axis=1)  # cut away the top: an open shell
    crop = raw.submesh([np.nonzero(keep)[0]], append=True)
    assert not crop.is_watertight
    crop.export(tmp_path / "bunny_partial.obj")
    partial, report = intake_scan(tmp_path / "bunny_partial.obj", IntakeConfig(scale=BUNNY_SCALE))
    assert not report.watertight
    files = write_asset(partial, tmp_path / "partial", FAST)
    rec = read_record(files.folder)
    assert rec["links"][0]["inertia_from"] == "convex pieces"
    assert 0.05 < rec["mass"] < 2.0  # 500 kg/m^3 over a ~14 x 12 x 11 cm shape
    assert np.all(np.linalg.eigvalsh(np.array(rec["links"][0]["inertia"])) > 0)
    _assert_at_rest(_settles(files.folder, partial.name))


def test_table_plane_in_the_scan_gives_gravity(tmp_path):
    duck = trimesh.load(DUCK, force="mesh")
    lo, hi = duck.bounds
    plate = trimesh.creation.box((3.0, 0.01, 3.0))  # the table under the duck (duck is +y up)
    plate.apply_translation(((lo[0] + hi[0]) / 2, lo[1] - 0.005, (lo[2] + hi[2]) / 2))
    scan = trimesh.util.concatenate([duck, plate])
    R = trimesh.transformations.euler_matrix(*np.radians([20, 10, 30]))
    scan.apply_transform(R)
    scan.export(tmp_path / "duck_on_table.ply")
    asset, report = intake_scan(tmp_path / "duck_on_table.ply", IntakeConfig(scale=DUCK_SCALE))
    assert report.table_found and report.table_faces_removed >= 12
    true_up = R[:3, :3] @ np.array([0.0, 1.0, 0.0])
    angle = math.degrees(math.acos(np.clip(np.dot(report.up_in_file, true_up), -1, 1)))
    assert angle < 1.0
    extent = np.ptp(asset.mesh().vertices, axis=0)
    assert extent.max() < 0.1  # the 15 cm plate is gone; the ~8 cm duck is left
    assert extent[2] == pytest.approx(np.ptp(duck.vertices[:, 1]) * DUCK_SCALE, abs=2e-3)


@pytest.mark.parametrize(("factor", "units"), [(DUCK_SCALE * 1000, "mm"), (DUCK_SCALE, "m")])
def test_units_guessed_from_size(tmp_path, factor, units):
    duck = trimesh.load(DUCK, force="mesh")
    duck.apply_scale(factor)
    duck.export(tmp_path / "duck.ply")
    asset, report = intake_scan(tmp_path / "duck.ply", IntakeConfig(up="+y"))
    assert report.units == units
    assert np.ptp(asset.mesh().vertices, axis=0).max() == pytest.approx(0.0826, abs=1e-3)


def test_decimation_to_a_face_budget_keeps_shape_and_colour():
    full, _ = intake_scan(DUCK, IntakeConfig(scale=DUCK_SCALE, up="+y"))
    small, report = intake_scan(DUCK, IntakeConfig(scale=DUCK_SCALE, up="+y", max_faces=800))
    assert report.faces_in > 4000 and report.faces_out <= 800
    a, b = full.mesh(), small.mesh()
    np.testing.assert_allclose(np.ptp(b.vertices, axis=0), np.ptp(a.vertices, axis=0), atol=3e-3)
    # Colour over the surface (area-weighted samples), not per vertex: decimation moves vertices.
    ca = sample_surface(a, 5000, seed=0)[2].mean(0)
    cb = sample_surface(b, 5000, seed=0)[2].mean(0)
    np.testing.assert_allclose(cb, ca, atol=0.03)


def test_bad_inputs_name_the_value(tmp_path):
    garbage = tmp_path / "broken.ply"
    garbage.write_bytes(b"ply\nformat nonsense\n\x00\x01")
    with pytest.raises(ChordError, match="broken.ply"):
        intake_scan(garbage)
    with pytest.raises(ChordError, match="not found"):
        intake_scan(tmp_path / "missing.obj")
    empty = tmp_path / "empty.obj"
    empty.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(ChordError, match="empty"):
        intake_scan(empty)
    duck_mm = trimesh.load(DUCK, force="mesh")
    duck_mm.apply_scale(50.0)  # ~82 units across: millimetres
    duck_mm.export(tmp_path / "duck_mm.ply")
    with pytest.raises(ChordError, match=r"largest extent is 82\.\d+ m with units 'm'"):
        intake_scan(tmp_path / "duck_mm.ply", IntakeConfig(units="m"))
    with pytest.raises(ChordError, match=r"cannot tell the units: the largest extent is 1\.975"):
        intake_scan(BUNNY)  # 2 units across: 2 m, 2 cm and 2 mm are all unlikely
    with pytest.raises(ChordError, match="scale is -0.1"):
        intake_scan(BUNNY, IntakeConfig(scale=-0.1))
    with pytest.raises(ChordError, match="up is 'sideways'"):
        intake_scan(BUNNY, IntakeConfig(scale=0.1, up="sideways", table="none"))


def _split_laptop(tmp_path: Path) -> dict:
    """A laptop 'scan' split into base and lid, in millimetres with y up (as glTF exporters do)."""
    asset = build_cousin(LaptopParams())
    to_scan = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]) @ np.diag(
        [1000, 1000, 1000, 1.0]
    )
    for lk in asset.links:
        m = lk.mesh.copy()
        m.apply_transform(to_scan)
        m.export(tmp_path / f"{lk.name}.ply")
    hinge = to_scan @ np.array([-0.11, 0.0, 0.016, 1.0])
    return {
        "name": "scanned_laptop",
        "units": "mm",
        "up": "+y",
        "parts": [{"name": "base", "mesh": "base.ply"}, {"name": "lid", "mesh": "lid.ply"}],
        "joints": [
            {"name": "hinge", "type": "revolute", "parent": "base", "child": "lid",
             "origin": hinge[:3].tolist(), "axis": [0, 0, 1], "limits_deg": [-100, 35],
             "damping": 0.05, "friction": 0.4},
        ],
    }  # fmt: skip


def test_parts_file_makes_an_articulated_asset(tmp_path):
    doc = _split_laptop(tmp_path)
    spec = tmp_path / "parts.yaml"
    spec.write_text(yaml.safe_dump(doc))
    asset = intake_parts(spec)
    assert [lk.name for lk in asset.links] == ["base", "lid"]
    hinge = asset.joint("hinge")
    np.testing.assert_allclose(hinge.axis, [0, -1, 0], atol=1e-9)  # scan z (y up) -> object -y
    # Closing by 95 degrees brings the lid's far edge down onto the base.
    lid = asset.link("lid").mesh.vertices
    closed = asset.link_motions({"hinge": math.radians(-95)})["lid"]
    lid_closed = lid @ closed[:3, :3].T + closed[:3, 3]
    assert lid[:, 2].max() > 0.2 and lid_closed[:, 2].max() < 0.05
    files = write_asset(asset, tmp_path / "out", FAST)
    _assert_at_rest(_settles(files.folder, asset.name))
    with World() as world:
        world.add("l", files.urdf, np.eye(4))
        world.set_joints("l", {"hinge": math.radians(-95)})
        np.testing.assert_allclose(
            world.link_frame("l", "lid"),
            asset.link_transforms({"hinge": math.radians(-95)})["lid"],
            atol=1e-5,
        )


def test_parts_file_errors(tmp_path):
    doc = _split_laptop(tmp_path)
    doc["joints"][0]["limits_deg"] = [35, -100]
    (tmp_path / "rev.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ChordError, match=r"joints\[0\].limits_deg: is \[35, -100\]: limits reversed"):
        intake_parts(tmp_path / "rev.yaml")
    doc = _split_laptop(tmp_path)
    doc["parts"][1]["mesh"] = "nope.ply"
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ChordError, match="nope.ply"):
        intake_parts(tmp_path / "missing.yaml")
    doc = _split_laptop(tmp_path)
    doc["joints"][0]["child"] = "screen"
    (tmp_path / "child.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ChordError, match="link 'screen' does not exist"):
        intake_parts(tmp_path / "child.yaml")


def test_glb_scan_is_y_up_and_floaters_are_dropped(tmp_path):
    """A glTF scan (y up by the format's convention) in metres, with a speck of noise beside it."""
    duck = trimesh.load(DUCK, force="mesh")
    duck.apply_scale(DUCK_SCALE)
    speck = trimesh.creation.icosphere(radius=0.004)
    speck.apply_translation(duck.bounds[1] + 0.05)
    trimesh.util.concatenate([duck, speck]).export(tmp_path / "scan.glb")
    asset, report = intake_scan(tmp_path / "scan.glb")
    assert report.units == "m" and report.up_in_file == (0.0, 1.0, 0.0)
    assert report.components_kept == 1 and report.components_dropped == 1
    extent = np.ptp(asset.mesh().vertices, axis=0)
    np.testing.assert_allclose(extent[2], np.ptp(duck.vertices[:, 1]), atol=1e-4)  # upright
    assert extent.max() < 0.09
