"""Names that become paths (core.names): one rule, applied to scenes, objects, parts and tasks;
outputs checked before any work."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml

from core.errors import ChordError, ContractError
from core.names import (
    MAX_NAME_LENGTH,
    check_name,
    check_output_dir,
    check_output_file,
    name_problem,
    safe_child,
)

HOSTILE = ["../x", "../../../../PWNED_parts", "/abs/elsewhere", "a/b", "", ".x", "..", ".", "-rf", "a b",
           "x\0y", "caf\u00e9", "x" * (MAX_NAME_LENGTH + 1), "x\n"]  # fmt: skip
LEGAL = ["banana", "pick_banana", "Lamp-2", "v1.2", "_hidden_not", "0", "x" * MAX_NAME_LENGTH]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_names_are_refused_with_the_value(value):
    assert name_problem(value) is not None
    with pytest.raises(ChordError) as info:
        check_name("scene name", value)
    assert str(info.value).startswith("scene name is ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", LEGAL)
def test_legal_names_pass(value):
    assert name_problem(value) is None and check_name("x", value) == value


@pytest.mark.parametrize("value", [None, 3, ["a"]])
def test_a_name_must_be_a_string(value):
    assert "expected a name" in name_problem(value)


def test_safe_child_keeps_to_its_folder(tmp_path: Path):
    assert safe_child(tmp_path, "a", "b.npz") == tmp_path / "a" / "b.npz"
    for bad in ("../x", "/abs/elsewhere", "..", "a/b", "", "."):
        with pytest.raises(ChordError, match="cannot name a file|outside"):
            safe_child(tmp_path, bad)
    # A symbolic link inside the folder that leads out of it is refused too.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    with pytest.raises(ChordError, match="outside"):
        safe_child(tmp_path / "out", "link")


def test_output_dir_checks(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ChordError, match="--out '.*file' is a file, expected a folder"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(ChordError, match="cannot be created: '.*file' is a file"):
        check_output_dir(tmp_path / "file" / "run")
    with pytest.raises(ChordError, match="cannot be written: '/proc' is not writable"):
        check_output_dir(Path("/proc/nope/run"))
    assert check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing made, no probe left


def test_output_file_checks(tmp_path: Path):
    with pytest.raises(ChordError, match="--out '.*' is a folder, expected a file name"):
        check_output_file(tmp_path)
    with pytest.raises(ChordError, match="cannot be written: '/proc' is not writable"):
        check_output_file(Path("/proc/nope/p.npz"))
    with pytest.raises(ChordError, match="exists and is not a regular file"):
        check_output_file(Path("/dev/null"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ChordError, match="its folder '.*file' is a file"):
        check_output_file(tmp_path / "file" / "p.npz")
    os.chmod(tmp_path, 0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere; the probe still catches /proc above
            with pytest.raises(ChordError, match="is not writable"):
                check_output_file(tmp_path / "p.npz")
    finally:
        os.chmod(tmp_path, 0o700)
    assert check_output_file(tmp_path / "sub" / "p.npz") == tmp_path / "sub" / "p.npz"


# -- the rule where names are read ------------------------------------------------------------
def _scene_doc(name: str, object_name: str = "banana") -> dict:
    return {
        "schema": "chord.scene", "version": 1, "name": name, "prompt": "a hand picks up the banana",
        "camera": {"fov_y_deg": 40, "look_at": {"eye": [1, 0, 0.6], "target": [0, 0, 0]}},
        "objects": [{"name": object_name, "cousin": {"kind": "box", "size": [0.05, 0.04, 0.03]}}],
    }  # fmt: skip


@pytest.mark.parametrize("name", ["/abs/elsewhere", "../x", ".hidden", "a b", "x/y"])
def test_scene_and_object_names_follow_the_rule(tmp_path: Path, name: str):
    from core.scene import Scene

    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(_scene_doc(name)))
    with pytest.raises(ContractError) as info:
        Scene.load(path)
    assert f"name: is {name!r}: not a name" in str(info.value) and str(path) in str(info.value)
    path.write_text(yaml.safe_dump(_scene_doc("ok", object_name=name)))
    with pytest.raises(ContractError, match=r"objects\[0\]\.name: is "):
        Scene.load(path)


def test_a_scene_built_in_code_is_held_to_the_rule_too():
    from core.scene import Camera, Pose, Scene, SceneObject

    cam = Camera.from_look_at((1, 0, 0.6), (0, 0, 0))
    obj = SceneObject("box", Pose(), cousin={"kind": "box"})
    with pytest.raises(ContractError, match="name: is '../x': not a name"):
        Scene(name="../x", prompt="p", objects=(obj,), camera=cam)
    with pytest.raises(ContractError, match=r"objects\[0\]\.name: is '/abs'"):
        Scene(
            name="ok", prompt="p", objects=(SceneObject("/abs", Pose(), cousin={"kind": "box"}),), camera=cam
        )


@pytest.mark.parametrize("name", ["../../../../PWNED_parts", "a/b", "", ".x", "/abs/x"])
def test_a_link_name_must_be_a_name(name: str):
    from core.asset import Link

    with pytest.raises(ChordError, match="link name is "):
        Link(name, trimesh.creation.box((0.1, 0.1, 0.1)), np.eye(4))


def _parts_file(folder: Path, names: list[str]) -> Path:
    box = trimesh.creation.box((0.1, 0.1, 0.02))
    box.export(folder / "base.ply")
    lid = trimesh.creation.box((0.1, 0.1, 0.02))
    lid.apply_translation((0, 0, 0.05))
    lid.export(folder / "lid.ply")
    doc = {
        "name": "thing", "units": "m",
        "parts": [{"name": names[0], "mesh": "base.ply"}, {"name": names[1], "mesh": "lid.ply"}],
        "joints": [{"name": "hinge", "type": "revolute", "parent": names[0], "child": names[1],
                    "origin": [0, 0, 0.04], "axis": [0, 1, 0], "limits_deg": [-90, 10]}],
    }  # fmt: skip
    path = folder / "parts.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("bad", ["../../../../PWNED_parts", "/", "", ".x", "a/b"])
def test_chord_assets_parts_refuses_a_part_name_that_leaves_the_folder(tmp_path: Path, capsys, bad):
    """The attack of issue 20: a part named ../../../../PWNED_parts wrote PWNED_parts.ply/.obj
    beside the attacker's chosen path. Now it is one line, and nothing is written anywhere."""
    from chord.cli.main import main

    work = tmp_path / "a" / "b" / "c" / "d"
    work.mkdir(parents=True)
    spec = _parts_file(work, ["base", bad])
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(["assets", "parts", str(spec), "--out", str(work / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chord assets: error: ") and err.count("\n") == 1, err
    assert f"parts[1].name: is {bad!r}" in err and "Traceback" not in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written, in or out


def test_chord_assets_parts_with_legal_names_still_writes_its_links(tmp_path: Path, capsys):
    from chord.cli.main import main

    spec = _parts_file(tmp_path, ["base", "lid"])
    assert main(["assets", "parts", str(spec), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out" / "links").iterdir()) == ["base.ply", "lid.ply"]


def test_a_task_name_is_looked_up_before_it_becomes_a_path(tmp_path: Path):
    from assets.tasks import build_task
    from chord.run import task_scene

    for bad in ("../x", "/abs/elsewhere"):
        with pytest.raises(ChordError, match="unknown"):
            task_scene(bad, tmp_path / "run", {})
        with pytest.raises(ChordError, match="unknown"):
            build_task(bad, tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_intake_default_name_is_a_legal_name():
    from assets.intake import _name

    assert _name(Path("caf\u00e9 scan (2).obj")) == "caf__scan__2_"
    assert _name(Path("--x.obj")) == "x"
    assert name_problem(_name(Path("\u00e9\u00e9.obj"))) is None


def test_an_existing_output_folder_is_checked_without_writing_to_it(tmp_path: Path):
    (tmp_path / "run").mkdir()
    before = (tmp_path / "run").stat().st_mtime_ns
    assert check_output_dir(tmp_path / "run") == tmp_path / "run"
    assert (
        tmp_path / "run"
    ).stat().st_mtime_ns == before  # (a second process on a locked run writes nothing)


def test_an_atomic_write_that_cannot_start_is_one_line():
    from core.atomic import atomic_dir, write_text_atomic

    with pytest.raises(ChordError, match="cannot write '/proc/nope/x.json': "):
        write_text_atomic("/proc/nope/x.json", "{}")
    with pytest.raises(ChordError, match="cannot write '/proc/x': "), atomic_dir("/proc/x"):
        pass
