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
