"""`chord assets ...` end to end through chord.cli.main.main."""

from __future__ import annotations

from pathlib import Path

import pytest

from chord.cli.main import main
from core.asset import read_record
from core.mesh import load_mesh
from core.scene import Scene


def test_cousin_command_writes_the_measured_banana(tmp_path):
    out = tmp_path / "banana"
    rc = main(["assets", "cousin", "banana", "--length", "0.2", "--thickness", "0.04", "--out", str(out)])
    assert rc == 0
    mesh = load_mesh(out / "mesh.ply")
    assert abs(mesh.extents[0] - 0.2) < 1e-3 and abs(mesh.extents[2] - 0.04) < 1e-3
    assert read_record(out)["params"]["length"] == 0.2


def test_bad_value_is_one_line_naming_it(tmp_path, capsys):
    rc = main(["assets", "cousin", "lamp", "--head-limits-deg", "90", "-10", "--out", str(tmp_path / "l")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "lamp: head_limits_deg is [90, -10]: limits reversed" in err
    assert not (tmp_path / "l").exists()  # nothing half-written


def test_intake_command_on_the_duck(tmp_path, capsys):
    import pybullet
    import pybullet_data
    import trimesh

    duck = Path(pybullet_data.getDataPath()) / "duck.obj"
    rc = main(
        ["assets", "intake", str(duck), "--scale", "0.05", "--up", "+y", "--out", str(tmp_path / "duck")]
    )
    assert rc == 0
    assert "scale 0.05 m/unit" in capsys.readouterr().out
    # The file's size times --scale, its +y turned to +z, resting on z = 0 and centred in x, y.
    raw = trimesh.load(duck, force="mesh").extents * 0.05
    mesh = trimesh.load(tmp_path / "duck" / "mesh.ply", force="mesh")
    assert mesh.extents == pytest.approx([raw[0], raw[2], raw[1]], rel=1e-4)
    assert mesh.bounds[0, 2] == pytest.approx(0.0, abs=1e-6)
    assert mesh.bounds.mean(axis=0)[:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    rec = read_record(tmp_path / "duck")
    assert rec["params"]["scale"] == 0.05 and rec["params"]["up_in_file"] == [0.0, 1.0, 0.0]
    # The URDF loads in PyBullet with the recorded mass (volume x density, not a placeholder).
    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(tmp_path / "duck" / "model.urdf"), physicsClientId=client)
        mass = pybullet.getDynamicsInfo(body, -1, physicsClientId=client)[0]
    finally:
        pybullet.disconnect(client)
    assert mass == pytest.approx(rec["mass"], rel=1e-6) and 0.02 < mass < 0.3


def test_tasks_command_builds_a_loadable_scene(tmp_path):
    rc = main(
        ["assets", "tasks", "--out", str(tmp_path), "--only", "close_laptop", "--points-per-object", "300"]
    )
    assert rc == 0
    scene = Scene.load(tmp_path / "close_laptop" / "scene.yaml")
    assert scene.prompt == "the laptop lid closes" and scene.reference.video.is_file()


def test_help_lists_subcommands_with_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["assets", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("cousin", "intake", "parts", "tasks", "chord assets tasks --out scenes"):
        assert word in out


def test_intake_records_the_transform_it_applied_including_the_tip(tmp_path, capsys):
    import numpy as np
    import trimesh

    # A tall slab leaning 35 deg in the file, in millimetres: it topples, so intake turns it.
    slab = trimesh.creation.box(extents=(30.0, 60.0, 140.0))
    T_lean = trimesh.transformations.rotation_matrix(np.radians(35.0), (1, 0, 0))
    slab.apply_transform(T_lean)
    slab.apply_translation((500.0, -200.0, 300.0))  # far from the origin, not on z = 0
    slab.export(tmp_path / "slab.ply")
    rc = main(["assets", "intake", str(tmp_path / "slab.ply"), "--units", "mm", "--up", "+z", "--table", "none",
               "--out", str(tmp_path / "a")])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    rec = read_record(tmp_path / "a")
    assert rec["params"]["tipped_deg"] > 10  # it did tip
    assert "tipped" in out and "--no-settle keeps the file's pose" in out and "file -> asset transform" in out
    T = np.array(rec["params"]["T_asset_file"])
    assert T.shape == (4, 4) and np.allclose(T[3], [0, 0, 0, 1])
    # The file's corners carried by the recorded transform are the asset mesh's corners.
    corners = np.c_[slab.vertices, np.ones(len(slab.vertices))] @ T.T
    mesh = load_mesh(tmp_path / "a" / "mesh.ply")
    assert np.allclose(np.sort(corners[:, :3], axis=0), np.sort(mesh.vertices, axis=0), atol=1e-6)
    # Scale 1 mm and a rotation: the upper 3x3 is 0.001 times an orthonormal matrix.
    R = T[:3, :3] / 0.001
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) > 0


def test_parts_summary_names_prismatic_joints_with_their_travel(tmp_path, capsys):
    import yaml

    from tests.assets.hostile import two_part_scan

    doc = two_part_scan(tmp_path)
    joint = doc["joints"][0]
    joint.update(type="prismatic", axis=[1, 0, 0], limits=[0.0, 150.0])  # millimetres, as the file's units
    joint.pop("limits_deg")
    (tmp_path / "parts.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rc = main(["assets", "parts", str(tmp_path / "parts.yaml"), "--out", str(tmp_path / "drawer")])
    assert rc == 0
    assert "joints hinge (prismatic) [0, 150] mm" in capsys.readouterr().out
