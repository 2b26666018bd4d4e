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
    mesh.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
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
