"""The three task scenes: files load, reference motions are what the issue asks, pixels match flow."""

from __future__ import annotations

import json
import math

import imageio.v2 as imageio
import numpy as np
import pytest

from assets.bullet import project, scaled_camera
from assets.reference import minimum_jerk
from assets.tasks import FPS, FRAMES, parse_resolution
from core.errors import ChordError
from core.flow import ObjectFlow
from core.rgbd import load_masks
from core.scene import Scene


def _distance_to_surface(mesh, points):
    """[n] exact distance of each point to the mesh (brute force over all triangles)."""
    import trimesh

    tri = mesh.triangles
    out = []
    for p in points:
        closest = trimesh.triangles.closest_point(tri, np.repeat(p[None], len(tri), 0))
        out.append(np.linalg.norm(closest - p, axis=1).min())
    return np.array(out)


def _load(task_scenes, name):
    scene = Scene.load(task_scenes[name])
    return scene, ObjectFlow.load(scene.reference.flow)


@pytest.mark.parametrize("name", ["pick_banana", "lower_lamp", "close_laptop"])
def test_scene_and_flow_load_and_agree(task_scenes, name):
    scene, flow = _load(task_scenes, name)
    assert scene.frames == FRAMES == flow.num_frames and flow.fps == FPS == scene.fps
    assert (scene.camera.width, scene.camera.height) == (832, 464)
    assert flow.prior == "ground_truth" and flow.prompt == scene.prompt
    assert list(flow.object_names) == scene.object_names
    np.testing.assert_allclose(flow.times, np.arange(FRAMES) / FPS, atol=1e-6)
    for obj in scene.objects:
        assert obj.mesh.is_file() and obj.urdf.is_file() and obj.cousin["kind"]
        # Frame 0 of the flow is the snapshot mesh at the object's pose.
        from core.mesh import load_mesh

        mesh = load_mesh(obj.mesh)
        pts0 = flow.object_points(obj.name)[0]
        local = (pts0 - obj.pose.matrix()[:3, 3]) @ obj.pose.matrix()[:3, :3]
        assert _distance_to_surface(mesh, local[:100]).max() < 1e-5
        # The camera sees every object whole at 832x464.
        uv, z = project(scene.camera, pts0)
        assert (z > 0).all()
        assert (uv >= 0).all() and (uv[:, 0] < 832).all() and (uv[:, 1] < 464).all(), obj.name
    # Static objects do not move; the movable one does.
    for obj in scene.objects:
        moved = np.abs(flow.object_points(obj.name) - flow.object_points(obj.name)[:1]).max()
        assert (moved > 0.05) if obj.movable else (moved == 0.0), (obj.name, moved)


def test_banana_is_lifted_15_cm_smoothly(task_scenes):
    _, flow = _load(task_scenes, "pick_banana")
    banana = flow.object_points("banana").astype(float)
    rise = banana[:, :, 2].mean(1) - banana[0, :, 2].mean()
    assert rise[-1] == pytest.approx(0.15, abs=0.005)  # centroid rise; the slight roll adds < 5 mm
    centroid = banana.mean(1)
    lift = np.linalg.norm(centroid - centroid[0], axis=1)
    assert lift[0] == 0 and lift[3] < 1e-4 and abs(lift[-1] - lift[-4]) < 1e-4  # rest, move, rest
    # Minimum jerk: speed rises and falls once, peaking at the middle of the motion.
    speed = np.diff(lift)
    assert np.argmax(speed) in (19, 20)
    assert np.all(np.diff(np.sign(np.diff(speed[speed > 1e-6]))) <= 0)


def _angle(a, b):
    return math.degrees(math.acos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def test_lamp_head_lowers_30_degrees_about_its_joint(task_scenes):
    scene, flow = _load(task_scenes, "lower_lamp")
    motion = json.loads((scene.reference.flow.parent / "motion.json").read_text())
    head_q = np.array(motion["joints"]["lamp"]["head"])
    assert math.degrees(head_q[-1]) == pytest.approx(30.0)
    lamp = flow.object_points("lamp").astype(float)
    moved = np.linalg.norm(lamp[-1] - lamp[0], axis=1) > 1e-4
    assert 0.05 < moved.mean() < 0.6  # only the head moves
    # The moved points turned rigidly by 30 degrees (Kabsch on the head's points).
    a, b = lamp[0, moved], lamp[-1, moved]
    H = (a - a.mean(0)).T @ (b - b.mean(0))
    U, _, Vt = np.linalg.svd(H)
    R = Vt.T @ np.diag([1, 1, np.linalg.det(Vt.T @ U.T)]) @ U.T
    assert math.degrees(math.acos((np.trace(R) - 1) / 2)) == pytest.approx(30.0, abs=0.1)
    assert b[:, 2].mean() < a[:, 2].mean() - 0.01  # "lowers": the head goes down


def test_laptop_lid_closes_from_100_to_5_degrees(task_scenes):
    scene, flow = _load(task_scenes, "close_laptop")
    laptop = flow.object_points("laptop").astype(float)
    T = scene.object("laptop").pose.matrix()
    local = (laptop - T[:3, 3]) @ T[:3, :3]  # object frame: hinge along y at x = -0.11, z = 0.016
    lid = np.linalg.norm(laptop[-1] - laptop[0], axis=1) > 1e-4

    def opening(pts):
        d = pts[:, [0, 2]] - np.array([-0.11, 0.016])
        far = d[np.argsort(np.linalg.norm(d, axis=1))[-50:]].mean(0)  # the lid's far edge
        return math.degrees(math.atan2(far[1], far[0]))

    assert opening(local[0, lid]) == pytest.approx(100.0, abs=2.0)
    assert opening(local[-1, lid]) == pytest.approx(5.0, abs=2.0)


def test_video_frames_masks_and_visibility(task_scenes):
    scene, flow = _load(task_scenes, "pick_banana")
    ref = scene.reference.video.parent
    frames = sorted((ref / "frames").glob("*.png"))
    assert len(frames) == FRAMES
    assert imageio.imread(frames[0]).shape == (116, 208, 3)
    reader = imageio.get_reader(scene.reference.video)
    assert sum(1 for _ in reader) == FRAMES
    reader.close()
    labels, names = load_masks(ref / "masks.npz")
    assert labels.shape == (FRAMES, 116, 208) and names == list(flow.object_names)
    banana = flow.object_mask("banana")
    vis = flow.visible[:, banana]
    pts = flow.points[:, banana]
    # Points on the banana's underside (on the table at rest) are hidden; its top is mostly seen.
    bottom = pts[0, :, 2] < 0.002
    top = pts[0, :, 2] > 0.03
    assert bottom.sum() > 10 and top.sum() > 10
    assert vis[0, bottom].mean() < 0.05 and vis[0, top].mean() > 0.6


def test_mask_centroid_tracks_projected_flow(task_scenes):
    """Pixels and flow agree: the banana's mask follows its visible flow points frame by frame."""
    scene, flow = _load(task_scenes, "pick_banana")
    labels, names = load_masks(scene.reference.video.parent / "masks.npz")
    cam = scaled_camera(scene.camera, 208, 116)
    i = names.index("banana")
    sel = flow.object_mask("banana")
    mask_c, flow_c = [], []
    for t in range(FRAMES):
        rows, cols = np.nonzero(labels[t] == i)
        mask_c.append([cols.mean() + 0.5, rows.mean() + 0.5])
        uv, _ = project(cam, flow.points[t, sel][flow.visible[t, sel]])
        flow_c.append(uv.mean(0))
        # Every visible flow point lands on a banana pixel.
        on_mask = labels[t][uv[:, 1].astype(int), uv[:, 0].astype(int)] == i
        assert on_mask.mean() > 0.97, (t, on_mask.mean())
    mask_c, flow_c = np.array(mask_c), np.array(flow_c)
    assert np.linalg.norm(mask_c[-1] - mask_c[0]) > 15  # pixels: the banana visibly rises
    # Centroids differ by a constant few pixels (the mask weighs surface by its image area, the
    # flow by its 3D area); their motion agrees to a pixel.
    assert np.linalg.norm(mask_c - flow_c, axis=1).max() < 4.0
    drift = (mask_c - mask_c[0]) - (flow_c - flow_c[0])
    assert np.linalg.norm(drift, axis=1).max() < 1.0, drift


def test_minimum_jerk_profile():
    t = np.linspace(0, 1, 101)
    s = minimum_jerk(t)
    assert s[0] == 0 and s[-1] == 1 and s[50] == pytest.approx(0.5)
    v = np.gradient(s, t)
    assert abs(v[0]) < 1e-3 and abs(v[-1]) < 1e-3 and v.max() == pytest.approx(1.875, abs=1e-3)


def test_resolution_flag():
    assert parse_resolution("832x464") == (832, 464)
    for bad in ("832", "0x10", "207x116", "axb"):
        with pytest.raises(ChordError, match=f"resolution is {bad!r}"):
            parse_resolution(bad)


@pytest.mark.parametrize("name", ["pick_banana", "lower_lamp", "close_laptop"])
def test_truth_file_holds_the_reference_motion(task_scenes, name):
    from core.truth import Truth

    scene = Scene.load(task_scenes[name])
    truth = Truth.load(scene.reference.truth)
    motion = json.loads((scene.reference.truth.parent / "motion.json").read_text())
    assert list(truth.object_names) == scene.object_names
    for obj in scene.object_names:
        assert np.allclose(truth.pose_matrices(obj), np.array(motion["poses"][obj]), atol=1e-12)
        for joint, values in motion["joints"].get(obj, {}).items():
            assert truth.joint_values(obj)[joint] == pytest.approx(values, abs=0)
    if name == "lower_lamp":  # every joint of the lamp, the unmoved ones at 0
        q = truth.joint_values("lamp")
        assert set(q) == {"shoulder", "elbow", "head"} and not q["shoulder"].any()
        assert math.degrees(q["head"][-1]) == pytest.approx(30.0, abs=1e-9)
    if name == "pick_banana":
        from core.cousins import BananaParams, build_cousin

        com = np.append(build_cousin(BananaParams()).mesh().center_mass, 1.0)
        z = (truth.pose_matrices("banana") @ com)[:, 2]  # the COM rises by the lift; it is the pivot
        assert z[-1] - z[0] == pytest.approx(0.15, abs=1e-9)
