"""Round trips and in-memory validation of the flow, plan and scene contracts."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from core.atomic import atomic_write
from core.errors import ContractError
from core.flow import ObjectFlow
from core.plan import Plan
from core.scene import Camera, Pose, Scene, SceneObject


def make_flow(rng: np.random.Generator, visible: bool = True) -> ObjectFlow:
    T, N = 41, 300
    return ObjectFlow(
        points=rng.normal(size=(T, N, 3)).astype(np.float32),
        object_index=(np.arange(N) % 3).astype(np.int32),
        times=(np.arange(T) / 16).astype(np.float32),
        object_names=("banana", "bowl", "table"),
        fps=16.0,
        prior="video",
        prompt="a hand picks up the banana",
        camera={"width": 832, "height": 464},
        visible=rng.random((T, N)) > 0.3 if visible else None,
        provenance={"chord": "0.1.0", "seed": 3},
    )


def make_plan(rng: np.random.Generator) -> Plan:
    M, J = 50, 7
    q = rng.uniform(-1, 1, size=(M, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return Plan(
        t=np.concatenate([[0.0], np.cumsum(rng.uniform(0.01, 0.1, M - 1))]),
        q=rng.uniform(-2, 2, (M, J)),
        gripper=rng.uniform(0, 0.08, M),
        ee_pose=np.concatenate([rng.normal(size=(M, 3)), q], axis=1),
        robot="franka_panda",
        joint_names=[f"panda_joint{i}" for i in range(1, J + 1)],
        base_pose=(0, 0, 0, 1, 0, 0, 0),
        task="pick banana",
        flow_sha256="ab" * 32,
    )


def test_flow_round_trip(tmp_path: Path):
    flow = make_flow(np.random.default_rng(0))
    back = ObjectFlow.load(flow.save(tmp_path / "flow.npz"))
    np.testing.assert_array_equal(back.points, flow.points)
    np.testing.assert_array_equal(back.object_index, flow.object_index)
    np.testing.assert_array_equal(back.times, flow.times)
    np.testing.assert_array_equal(back.visible, flow.visible)
    assert back.object_names == flow.object_names
    assert (back.fps, back.prior, back.prompt) == (16.0, "video", "a hand picks up the banana")
    assert back.camera == flow.camera and back.provenance == flow.provenance
    assert back.content_hash() == flow.content_hash()
    assert back.object_points("bowl").shape == (41, 100, 3)


def test_flow_without_visibility_round_trips(tmp_path: Path):
    flow = make_flow(np.random.default_rng(1), visible=False)
    back = ObjectFlow.load(flow.save(tmp_path / "f.npz"))
    assert back.visible is None


def test_flow_hash_changes_with_content():
    rng = np.random.default_rng(2)
    a = make_flow(rng)
    pts = a.points.copy()
    pts[3, 7, 1] += 1e-3
    b = ObjectFlow(pts, a.object_index, a.times, a.object_names, a.fps, a.prior, a.prompt,
                   a.camera, a.visible, a.provenance)  # fmt: skip
    assert a.content_hash() != b.content_hash()


def test_flow_constructor_validates():
    rng = np.random.default_rng(3)
    f = make_flow(rng)
    with pytest.raises(ContractError, match=r"points: dtype is float64, expected float32"):
        ObjectFlow(f.points.astype(np.float64), f.object_index, f.times, f.object_names, 16.0, "video")
    with pytest.raises(ContractError, match=r"meta.object_names: has duplicates"):
        ObjectFlow(f.points, f.object_index, f.times, ("a", "a", "b"), 16.0, "video")


def test_plan_round_trip_and_hash_ignores_verdict(tmp_path: Path):
    plan = make_plan(np.random.default_rng(4))
    back = Plan.load(plan.save(tmp_path / "plan.npz"))
    for k in ("t", "q", "gripper", "ee_pose"):
        np.testing.assert_array_equal(getattr(back, k), getattr(plan, k))
    assert back.joint_names == plan.joint_names and back.base_pose == plan.base_pose
    assert back.content_hash() == plan.content_hash()
    validated = Plan(**{**plan.__dict__, "validation": {"success": True}})
    assert validated.content_hash() == plan.content_hash()
    moved = Plan(**{**plan.__dict__, "q": plan.q + 1e-9})
    assert moved.content_hash() != plan.content_hash()


def test_plan_file_is_not_pickled(tmp_path: Path):
    path = make_plan(np.random.default_rng(5)).save(tmp_path / "plan.npz")
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(str(z["meta"]))["schema"] == "chord.plan"


def make_scene(tmp_path: Path) -> Scene:
    mesh = tmp_path / "meshes" / "banana.obj"
    mesh.parent.mkdir()
    mesh.write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"
    )  # a 1 cm tetrahedron
    cam = Camera.from_look_at(eye=(1.0, 0.0, 0.6), target=(0.5, 0.0, 0.0), fov_y_deg=40)
    q = (math.cos(0.3), 0.0, 0.0, math.sin(0.3))
    return Scene(
        name="pick_banana",
        prompt="a hand picks up the banana",
        objects=(
            SceneObject("banana", Pose((0.5, 0.0, 0.02), q), mesh=mesh, units="cm"),
            SceneObject(
                "box",
                Pose((0.4, 0.2, 0.0)),
                cousin={"kind": "box", "size": [0.05, 0.05, 0.05]},
                movable=False,
            ),
        ),
        camera=cam,
    )


def test_scene_round_trip_with_relative_paths(tmp_path: Path):
    scene = make_scene(tmp_path)
    path = scene.save(tmp_path / "scene.yaml")
    text = path.read_text()
    assert "mesh: meshes/banana.obj" in text  # written relative to the file
    back = Scene.load(path)
    assert back.object("banana").mesh == tmp_path / "meshes" / "banana.obj"
    assert back.object("banana").units == "cm"
    assert back.object("box").cousin == {"kind": "box", "size": [0.05, 0.05, 0.05]}
    assert [o.name for o in back.movable_objects] == ["banana"]
    np.testing.assert_allclose(
        back.object("banana").pose.matrix(), scene.object("banana").pose.matrix(), atol=1e-12
    )
    np.testing.assert_allclose(
        back.camera.T_world_cam.matrix(), scene.camera.T_world_cam.matrix(), atol=1e-12
    )
    np.testing.assert_allclose(back.camera.K(), scene.camera.K())
    # Moving the folder keeps the scene valid: paths are relative to the file.
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    os.rename(tmp_path, moved)
    assert Scene.load(moved / "scene.yaml").object("banana").mesh == moved / "meshes" / "banana.obj"


def test_look_at_camera_projects_target_to_principal_point(tmp_path: Path):
    cam = make_scene(tmp_path).camera
    T_cam_world = np.linalg.inv(cam.T_world_cam.matrix())
    target = T_cam_world @ np.array([0.5, 0.0, 0.0, 1.0])
    assert target[2] > 0  # in front of the camera (OpenCV: +z forward)
    uv = cam.K() @ (target[:3] / target[2])
    np.testing.assert_allclose(uv[:2], [416, 232], atol=1e-9)
    # World up (+z) appears up in the image: a point above the target has a smaller v.
    above = T_cam_world @ np.array([0.5, 0.0, 0.1, 1.0])
    assert (cam.K() @ (above[:3] / above[2]))[1] < 232


def test_scene_file_accepts_pose_camera_and_fx(tmp_path: Path):
    doc = tmp_path / "s.yaml"
    doc.write_text(
        "schema: chord.scene\nversion: 1\nname: t\nprompt: p\n"
        "camera: {fx: 500, fy: 500, pose: {position: [0, 0, 1], quat_wxyz: [0, 1, 0, 0]}}\n"
        "objects: [{name: a, cousin: {kind: box}}]\n"
    )
    s = Scene.load(doc)
    assert (s.camera.cx, s.camera.cy, s.camera.width, s.frames) == (416, 232, 832, 41)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind


def test_atomic_write_gives_the_usual_file_mode(tmp_path: Path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644


def test_atomic_dir_replaces_on_success_and_leaves_the_old_folder_on_failure(tmp_path: Path):
    from core.atomic import atomic_dir

    target = tmp_path / "asset"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed mid-build")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asset"]  # no temporary folder left
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    old = os.umask(0o022)
    try:
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
    finally:
        os.umask(old)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert target.stat().st_mode & 0o777 == 0o755


# -- ranges and consistency of the scene file (core.scene's constants) ------------------------
def _scene_doc() -> dict:
    return {
        "schema": "chord.scene", "version": 1, "name": "t", "prompt": "a hand picks up the banana",
        "frames": 41, "fps": 16, "table": {"height": 0.0},
        "camera": {"width": 832, "height": 464, "fov_y_deg": 40,
                   "look_at": {"eye": [1.0, 0.0, 0.6], "target": [0.0, 0.0, 0.05]}},
        "objects": [
            {"name": "banana", "cousin": {"kind": "banana"}, "pose": {"position": [0.0, 0.0, 0.0]}},
            {"name": "mug", "cousin": {"kind": "cylinder"}, "pose": {"position": [-0.1, 0.2, 0.0]},
             "movable": False},
        ],
    }  # fmt: skip


def _set(path: str, value):
    """An edit of the scene document at a dotted path ("objects.0.pose.position")."""

    def edit(doc: dict) -> None:
        *head, last = path.split(".")
        node = doc
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


SCENE_CASES = [
    ("fps_1e300", _set("fps", 1e300), "fps: is 1e+300, expected 1 to 240 frames per second"),
    ("fps_tiny", _set("fps", 0.01), "fps: is 0.01, expected 1 to 240 frames per second"),
    ("frames_huge", _set("frames", 100_000), "frames: is 100000, expected 2 to 1000 frames"),
    (
        "duration_400_s",
        lambda d: d.update(frames=801, fps=2),
        "frames: 801 frames at 2 fps span 400 s, expected at most 60 s of motion",
    ),
    ("table_1e6_m", _set("table.height", 1e6), "table.height: is 1000000.0, expected -2 to 2 m"),
    (
        "object_50_m_away",
        _set("objects.1.pose", {"position": [50.0, 0.0, 0.0]}),
        "objects[1].pose.position: is [50.0, 0.0, 0.0]: 'mug' is 50 m from the world origin along the table, expected within 2 m",
    ),
    (
        "object_5_m_under",
        _set("objects.0.pose", {"position": [0.0, 0.0, -5.0]}),
        "objects[0].pose.position: is [0.0, 0.0, -5.0]: 'banana' is 5 m under the table top (z=0), expected within 3 m of it",
    ),
    (
        "object_5_m_above",
        _set("objects.0.pose", {"position": [0.0, 0.0, 5.0]}),
        "'banana' is 5 m above the table top",
    ),
    (
        "same_pose",
        _set("objects.1.pose", {"position": [0.0, 0.0, 0.0]}),
        "objects[1].pose.position: is [0.0, 0.0, 0.0], 0 mm from objects[0] 'banana': two objects at the same place; expected origins at least 1 mm apart",
    ),
    ("camera_100000_px", _set("camera.width", 100_000), "camera.width: is 100000 px, expected 1 to 4096 px"),
    (
        "camera_fx_tiny",
        lambda d: d["camera"].pop("fov_y_deg") and d["camera"].update(fx=0.01, fy=500),
        "camera.fx: is 0.01 px, a field of view of 180 deg over 832 px; expected 1 to 170 deg",
    ),
    (
        "camera_fov_200",
        _set("camera.fov_y_deg", 200),
        "camera.fov_y_deg: is 200.0, expected degrees between 1 and 170",
    ),
    (
        "principal_point_outside",
        lambda d: d["camera"].update(cx=5000.0),
        "camera.cx: is 5000.0, expected a principal point inside the image, 0 to 832 px",
    ),
    (
        "far_1e9",
        lambda d: d["camera"].update(far=1e9),
        "camera.far: is 1000000000.0, expected 0.0001 to 100 m",
    ),
    (
        "camera_1_km_away",
        _set("camera.look_at.eye", [1000.0, 0.0, 1.0]),
        "camera.position: is [1000.0, 0.0, 1.0], 1000 m from the world origin; expected within 10 m",
    ),
]


@pytest.mark.parametrize(("edit", "needle"), [c[1:] for c in SCENE_CASES], ids=[c[0] for c in SCENE_CASES])
def test_a_scene_outside_the_ranges_is_refused_by_the_reader(tmp_path: Path, edit, needle):
    import yaml

    doc = _scene_doc()
    Scene.from_dict(doc, tmp_path)  # the document the cases start from is valid
    edit(doc)
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ContractError) as e:
        Scene.load(path)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(f"{path}: ")


def test_a_scene_built_in_memory_is_held_to_the_same_ranges(tmp_path: Path):
    scene = make_scene(tmp_path)
    from dataclasses import replace

    with pytest.raises(ContractError, match="fps: is 1e\\+300, expected 1 to 240"):
        replace(scene, fps=1e300)
    with pytest.raises(ContractError, match="table.height: is nan"):
        replace(scene, table_height=float("nan"))


def _scene_with_reference(tmp_path: Path, flow_file: Path) -> Path:
    import yaml

    doc = _scene_doc()
    doc["reference"] = {"flow": str(flow_file)}
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_reference_flow_that_is_not_a_chord_flow_is_refused_by_the_reader(tmp_path: Path):
    yaml_flow = tmp_path / "flow.npz"
    yaml_flow.write_text("schema: chord.scene\nname: not a flow\n")
    with pytest.raises(ContractError) as e:
        Scene.load(_scene_with_reference(tmp_path, yaml_flow))
    msg = str(e.value)
    assert (
        "reference.flow:" in msg
        and "is not a chord.flow .npz archive: its content starts with b'schema: chord.scene" in msg
    )
    assert "pickle" not in msg  # numpy's reason for a file that is not a zip, which misleads
    plan = make_plan(np.random.default_rng(7)).save(tmp_path / "plan.npz")
    with pytest.raises(
        ContractError,
        match="reference.flow: .*plan.npz' holds meta.schema 'chord.plan', expected 'chord.flow'",
    ):
        Scene.load(_scene_with_reference(tmp_path, plan))
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(ContractError, match="reference.flow: .*folder.npz' is a folder, expected a file"):
        Scene.load(_scene_with_reference(tmp_path, tmp_path / "folder.npz"))
    good = make_flow(np.random.default_rng(8)).save(tmp_path / "good.npz")
    assert Scene.load(_scene_with_reference(tmp_path, good)).reference.flow == good


def test_flow_times_must_span_what_its_frames_span_at_its_fps():
    f = make_flow(np.random.default_rng(9))
    stretched = (np.arange(41) * 10.0).astype(np.float32)  # 400 s for 41 frames at 16 fps
    with pytest.raises(ContractError, match=r"times: span 400 s, expected at most 60 s of motion"):
        ObjectFlow(f.points, f.object_index, stretched, f.object_names, 16.0, "video")
    doubled = (np.arange(41) / 8.0).astype(np.float32)  # 5 s, where 41 frames at 16 fps take 2.5 s
    with pytest.raises(ContractError, match=r"times: span 5 s, but T=41 frames at meta.fps=16 span 2.5 s"):
        ObjectFlow(f.points, f.object_index, doubled, f.object_names, 16.0, "video")
    with pytest.raises(ContractError, match=r"meta.fps: is 1e\+300, expected 1 to 240 frames per second"):
        ObjectFlow(f.points, f.object_index, f.times, f.object_names, 1e300, "video")
    late = f.times + np.float32(3.0)  # times need not start at 0
    assert ObjectFlow(f.points, f.object_index, late, f.object_names, 16.0, "video").num_frames == 41


def _geometry_scene(objects, eye=(1.0, 0.0, 0.6)) -> Scene:
    cam = Camera.from_look_at(eye=eye, target=(0.0, 0.0, 0.0), fov_y_deg=40)
    return Scene(name="g", prompt="p", objects=tuple(objects), camera=cam)


BOOK = {"kind": "box", "size": [0.2, 0.14, 0.03]}
MUG = {"kind": "cylinder", "radius": 0.04, "height": 0.1}


def test_scene_geometry_refuses_an_object_in_the_table_and_a_camera_inside_an_object():
    from core.mesh import check_scene_geometry

    sunk = _geometry_scene([SceneObject("book", Pose((0.0, 0.0, -0.02)), cousin=BOOK)])
    with pytest.raises(
        ContractError,
        match=r"objects\[0\].pose.position: puts 'book' 0.02 m into the table: its lowest point is at z=-0.02",
    ):
        check_scene_geometry(sunk)
    within = _geometry_scene([SceneObject("book", Pose((0.0, 0.0, -0.005)), cousin=BOOK)])
    assert check_scene_geometry(within) == []  # 5 mm: within TABLE_PENETRATION
    inside = _geometry_scene(
        [SceneObject("book", Pose((0.0, 0.0, 0.0)), cousin=BOOK)], eye=(0.01, 0.02, 0.015)
    )
    with pytest.raises(
        ContractError, match=r"camera.position: is \[0.01, 0.02, 0.015\], inside object 'book'"
    ):
        check_scene_geometry(inside)
    beside = _geometry_scene([SceneObject("book", Pose((0.0, 0.0, 0.0)), cousin=BOOK)], eye=(0.3, 0.0, 0.015))
    assert check_scene_geometry(beside) == []


def test_scene_geometry_warns_about_a_floating_object_but_not_a_stacked_one(caplog):
    from core.mesh import check_scene_geometry

    floating = _geometry_scene(
        [
            SceneObject("book", Pose((0.0, 0.0, 0.0)), cousin=BOOK),
            SceneObject("mug", Pose((0.3, 0.3, 0.4)), cousin=MUG),
        ]
    )
    warnings = check_scene_geometry(floating)
    assert len(warnings) == 1 and "objects[1] 'mug' floats 0.4 m above the table top" in warnings[0]
    assert "floats 0.4 m" in caplog.text
    stacked = _geometry_scene(
        [
            SceneObject("book", Pose((0.0, 0.0, 0.0)), cousin=BOOK),
            SceneObject("mug", Pose((0.0, 0.0, 0.03)), cousin=MUG),
        ]
    )
    assert check_scene_geometry(stacked) == []


def test_chord_check_refuses_nonsense_scenes_in_one_line(tmp_path: Path, capsys):
    import yaml

    from chord.cli.main import main

    cases = [
        (_set("fps", 1e300), "fps: is 1e+300, expected 1 to 240 frames per second"),
        (_set("objects.1.pose", {"position": [0.0, 0.0, -5.0]}), "'mug' is 5 m under the table top"),
        (
            _set("camera.look_at.eye", [0.0, 0.028, 0.015]),
            "camera.position: is [0.0, 0.028, 0.015], inside object 'banana'",
        ),
        (_set("objects.0.pose", {"position": [0.0, 0.0, -0.03]}), "puts 'banana' 0.03 m into the table"),
    ]
    for i, (edit, needle) in enumerate(cases):
        doc = _scene_doc()
        edit(doc)
        path = tmp_path / f"scene{i}.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert main(["check", str(path)]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1
        assert err.startswith(f"chord check: error: {path}: ") and needle in err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_scene_doc()))
    assert main(["check", str(good)]) == 0
    assert "scene 't' v1: 2 object(s)" in capsys.readouterr().out
