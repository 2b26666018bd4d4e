"""Recordings read back with rerun's own reader hold the right entities, shapes and time ranges."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from chord.cli.main import main
from chord.viz.flow import log_flow
from chord.viz.plan import log_grasps, log_plan
from chord.viz.readback import read_recording
from chord.viz.record import open_recording
from chord.viz.robot import forward_kinematics, load_urdf
from chord.viz.sim import carried_path, log_rollout
from chord.viz.train import covariance_axes, log_control_points, read_run_log
from core.errors import ChordError
from core.transforms import pose_to_matrix, quat_to_matrix, xyzw_to_wxyz

# rerun reports bad arguments as warnings and drops the data: here they fail the test.
pytestmark = pytest.mark.filterwarnings("error::rerun.error_utils.RerunWarning")

NS = 1_000_000_000  # rerun stores durations in nanoseconds


def test_flow_tracks_and_points_round_trip(tmp_path: Path, pick):
    flow = pick.flow
    parts = np.where(np.arange(flow.num_points) % 2 == 0, 0, 1)
    parts[flow.object_index == 1] = -1  # the obstacle is unlabelled
    path = tmp_path / "flow.rrd"
    with open_recording(path) as rec:
        logged = log_flow(rec, flow, parts=parts, max_tracks=500)
    r = read_recording(path)
    assert {x.name for x in logged} == {"box", "obstacle"}
    for i, name in enumerate(flow.object_names):
        idx = np.flatnonzero(flow.object_index == i)
        strips = r[f"/world/flow/{name}/tracks"].static["LineStrips3D:strips"]
        assert len(strips) == min(len(idx), 500)
        assert all(len(s) == flow.num_frames for s in strips)  # one vertex per frame
        # Every strip is a real trajectory of this object's points, frame by frame.
        first = np.array(strips[0])
        d = np.abs(flow.points[:, idx].transpose(1, 0, 2) - first[None]).max(axis=(1, 2))
        assert d.min() < 1e-6
        ent = r[f"/world/flow/{name}/points"]
        assert ent.time_range("frame") == (0, flow.num_frames - 1)
        lo, hi = ent.time_range("flow_time")
        assert lo == 0 and abs(hi - round(float(flow.times[-1]) * NS)) <= 1
        rows = ent.values("Points3D:positions")
        assert len(rows) == flow.num_frames and all(len(p) == len(idx) for p in rows)
        np.testing.assert_allclose(np.array(rows[17]), flow.points[17, idx], atol=1e-6)
    # Part colours: the box's two parts get two shades, the unlabelled obstacle one grey.
    # (rerun packs each colour into one RGBA uint32)
    box_colors = set(r["/world/flow/box/points"].static["Points3D:colors"])
    obs_colors = set(r["/world/flow/obstacle/points"].static["Points3D:colors"])
    assert len(box_colors) == 2 and len(obs_colors) == 1 and not box_colors & obs_colors


def test_plan_ee_path_robot_and_joints(tmp_path: Path, panda_plan):
    plan = panda_plan
    M = len(plan.t)
    path = tmp_path / "plan.rrd"
    with open_recording(path) as rec:
        out = log_plan(rec, plan)
    r = read_recording(path)
    b = np.asarray(plan.base_pose)
    T_world_base = pose_to_matrix(b[:3], b[3:])
    ee_world = plan.ee_pose[:, :3] @ T_world_base[:3, :3].T + T_world_base[:3, 3]

    strip = np.array(r["/world/plan/ee_path"].static["LineStrips3D:strips"][0])
    assert strip.shape == (M, 3)  # EE path length = M
    np.testing.assert_allclose(strip, ee_world, atol=1e-5)
    ee = r["/world/plan/ee"]
    assert len(ee.values("Points3D:positions")) == M
    assert ee.time_range("plan_time") == (0, round(plan.duration * NS))
    for name in plan.joint_names:
        q = np.array(r[f"/plots/plan/q/{name}"].values("Scalars:scalars")).ravel()
        np.testing.assert_allclose(q, plan.q[:, plan.joint_names.index(name)])

    # The arm: base at the plan's base pose; the TCP link, composed with it, is on the EE path
    # (pinocchio made ee_pose, chord.viz.robot's own FK made the link transforms).
    base_tr = r["/world/robot"].static["Transform3D:translation"]
    np.testing.assert_allclose(np.ravel(base_tr), b[:3], atol=1e-6)
    tcp = r["/world/robot/panda_grasptarget"]
    tr = np.array(tcp.values("Transform3D:translation")).reshape(M, 3)
    quat = xyzw_to_wxyz(np.array(tcp.values("Transform3D:quaternion")).reshape(M, 4))
    np.testing.assert_allclose(tr @ T_world_base[:3, :3].T + T_world_base[:3, 3], ee_world, atol=1e-5)
    np.testing.assert_allclose(np.abs(np.einsum("mi,mi->m", quat, plan.ee_pose[:, 3:])), 1.0, atol=1e-5)
    # Fingers open to half the gripper width each.
    left = out["links"]["panda_leftfinger"][:, :3, 3] - out["links"]["panda_hand"][:, :3, 3]
    right = out["links"]["panda_rightfinger"][:, :3, 3] - out["links"]["panda_hand"][:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(left - right, axis=1), plan.gripper, atol=1e-6)
    # Link meshes came from the URDF's package:// paths (no ROS needed).
    meshes = [k for k in r if k.startswith("/world/robot/") and "/visual_" in k]
    assert len(meshes) >= 10
    assert all(len(r[k].static["Mesh3D:vertex_positions"]) > 100 for k in meshes)
    # The chosen grasp sits at the EE pose where the close phase starts.
    k = int(np.searchsorted(plan.t, 1.0))
    glyph = np.array(r["/world/plan/grasps/chosen"].static["LineStrips3D:strips"][0])
    R = T_world_base[:3, :3] @ quat_to_matrix(plan.ee_pose[k, 3:])
    fingertips = 0.5 * (glyph[0] + glyph[3])
    np.testing.assert_allclose(fingertips, ee_world[k], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(glyph[0] - glyph[3]), plan.gripper[k - 1], atol=1e-9)
    np.testing.assert_allclose(
        (glyph[3] - glyph[0]) / np.linalg.norm(glyph[3] - glyph[0]), R[:, 1], atol=1e-6
    )


def test_urdf_fk_matches_pinocchio():
    from planner.robot import Robot, RobotConfig

    robot = Robot(RobotConfig())
    model = load_urdf(robot.urdf)
    q = np.random.default_rng(1).uniform(-1.5, 1.5, (20, 7))
    poses = forward_kinematics(model, robot.joint_names, q)
    for i in range(len(q)):
        np.testing.assert_allclose(poses["panda_grasptarget"][i], robot.fk(q[i]), atol=1e-12)
    with pytest.raises(ChordError, match="panda_joint99"):
        forward_kinematics(model, ["panda_joint99"], q[:, :1])


def test_grasp_candidates_and_control_point_ellipsoids(tmp_path: Path):
    rng = np.random.default_rng(0)
    T = np.tile(np.eye(4), (5, 1, 1))
    T[:, :3, 3] = rng.uniform(-0.1, 0.1, (5, 3))
    A = rng.normal(size=(4, 3, 3))
    cov = 1e-4 * (A @ A.transpose(0, 2, 1) + 0.1 * np.eye(3))
    path = tmp_path / "g.rrd"
    with open_recording(path) as rec:
        log_grasps(rec, T, widths=np.full(5, 0.05), scores=np.arange(5.0), chosen=2)
        log_control_points(rec, rng.normal(size=(4, 3)), covariances=cov, object_index=np.array([0, 0, 1, 1]))
        with pytest.raises(ValueError, match="chosen is 7"):
            log_grasps(rec, T, widths=0.05, chosen=7)
    r = read_recording(path)
    assert len(r["/world/plan/grasps"].static["LineStrips3D:strips"]) == 2 * 4  # 2 strips x 4 others
    assert "/world/plan/grasps/chosen" in r
    e = r["/world/control_points"].static
    half = np.array(e["Ellipsoids3D:half_sizes"])
    R = quat_to_matrix(xyzw_to_wxyz(np.array(e["Ellipsoids3D:quaternions"])))
    # The logged ellipsoid is one standard deviation of Sigma_k: R diag(h^2) R^T == Sigma.
    np.testing.assert_allclose(R @ (half[:, :, None] ** 2 * R.transpose(0, 2, 1)), cov, rtol=1e-4, atol=1e-10)
    _, V = covariance_axes(cov)
    assert (np.linalg.det(V) > 0).all()


def test_rollout_actual_path_beside_flow(tmp_path: Path, pick):
    flow = pick.flow
    S = 50
    M = pick.motions["box"]  # [T, 4, 4] the box's true motion
    T_obj = np.stack([M[min(int(s * 41 / S), 40)] for s in range(S)]) @ pose_to_matrix(
        np.array([0.5, 0.0, 0.06]), np.array([1.0, 0, 0, 0])
    )
    rollout = SimpleNamespace(
        t=np.linspace(0, 3, S), T_world_tcp=T_obj, width=np.full(S, 0.03),
        T_world_obj={"box": T_obj}, T_world_link={}, link_names={},
    )  # fmt: skip
    path = tmp_path / "sim.rrd"
    with open_recording(path) as rec:
        out = log_rollout(rec, rollout, flow)
    r = read_recording(path)
    c_flow = flow.object_points("box").mean(1)
    np.testing.assert_allclose(
        np.array(r["/world/sim/box/flow_path"].static["LineStrips3D:strips"][0]), c_flow, atol=1e-5
    )
    actual = np.array(r["/world/sim/box/actual"].values("Points3D:positions"))
    assert actual.shape == (S, 1, 3)  # one point per step
    actual = actual[:, 0]
    np.testing.assert_allclose(actual, out["box"], atol=1e-5)
    # Carried by the true motion, the centroid ends where the flow's centroid ends.
    np.testing.assert_allclose(out["box"][-1], c_flow[-1], atol=2e-3)
    np.testing.assert_allclose(carried_path(T_obj, c_flow[0])[0], c_flow[0], atol=1e-9)


def test_open_recording_leaves_nothing_on_error(tmp_path: Path):
    path = tmp_path / "x.rrd"
    with open_recording(None) as rec:
        assert rec is None
    with pytest.raises(RuntimeError), open_recording(path) as rec:
        rec.log("world/p", __import__("rerun").Points3D(np.zeros((2, 3))))
        raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChordError, match=r"\.rrd"), open_recording(tmp_path / "x.txt"):
        pass


def test_read_run_log(tmp_path: Path):
    p = tmp_path / "run.log"
    p.write_text('{"iteration": 0, "loss": 3.0}\n{"iteration": 10, "loss": 1.0, "note": "x"}\n{"iter')
    s = read_run_log(p)
    assert list(s) == ["loss"]
    np.testing.assert_array_equal(s["loss"][0], [0, 10])
    np.testing.assert_array_equal(s["loss"][1], [3.0, 1.0])
    p.write_text('{"iteration": 0, "loss": 3.0}\nnot json\n{"iteration": 10, "loss": 1.0}\n')
    with pytest.raises(ChordError, match="line 2"):
        read_run_log(p)


def test_chord_view_assembles_a_run_folder(run_dir: Path, pick, panda_plan, capsys):
    out = run_dir / "view" / "rec.rrd"
    assert main(["view", str(run_dir), "--out", str(out), "--plots", str(run_dir / "plots")]) == 0
    r = read_recording(out)
    # scene meshes at their poses (box centred at its pose, 8 vertices of a trimesh box)
    box = np.array(r["/world/scene/box"].static["Mesh3D:vertex_positions"])
    np.testing.assert_allclose(box.mean(0), [0.5, 0.0, 0.06], atol=1e-6)
    assert "/world/camera" in r and "/world/table" in r
    # flow on its frame timeline, plan on plan_time, losses on iteration, sim error on frame
    for name in pick.flow.object_names:
        assert r[f"/world/flow/{name}/points"].time_range("frame") == (0, 40)
    assert len(r["/world/plan/ee_path"].static["LineStrips3D:strips"][0]) == len(panda_plan.t)
    loss = r["/plots/train/loss"]
    assert loss.time_range("iteration") == (0, 190)
    assert len(loss.values("Scalars:scalars")) == 20
    assert "/plots/train/lr_deform" in r
    track = r["/plots/sim/sim/track_error_mm"]
    assert track.time_range("frame") == (0, 40)
    np.testing.assert_allclose(np.ravel(track.values("Scalars:scalars"))[-1], 40.0)
    # PNG plots were written and are real images
    from PIL import Image

    for name in ("flow.png", "losses.png"):
        with Image.open(run_dir / "plots" / name) as im:
            assert im.format == "PNG" and im.size[0] > 500
    printed = capsys.readouterr().out
    assert "scene, flow, 1 plan(s), 1 sim verdict(s), losses" in printed


def test_chord_view_refuses_an_empty_folder(tmp_path: Path, capsys):
    assert main(["view", str(tmp_path)]) == 1
    assert "nothing chord view can show" in capsys.readouterr().err
    assert not (tmp_path / "recording.rrd").exists()


def test_sim_json_bad(run_dir: Path):
    (run_dir / "sim.json").write_text("{not json")
    assert main(["view", str(run_dir), "--out", str(run_dir / "r.rrd")]) == 1
    assert not (run_dir / "r.rrd").exists()
    json.loads((run_dir / "run.log").read_text().splitlines()[0])  # the run folder itself is untouched


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_preview_video_frames_on_the_frame_timeline(tmp_path: Path, suffix: str):
    from chord.viz.train import log_preview
    from flowgen.preview import write_preview

    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    video = write_preview(frames, tmp_path / f"preview{suffix}", fps=16)
    with open_recording(tmp_path / "p.rrd") as rec:
        n = log_preview(rec, video)
    assert n == 6
    ent = read_recording(tmp_path / "p.rrd")["/camera/preview"]
    assert ent.time_range("frame") == (0, 5)
    if video.suffix == ".gif":
        img = ent.values("Image:buffer")
        assert len(img) == 6 and np.asarray(img[0]).size == 32 * 48 * 3
    else:
        assert "AssetVideo:blob" in ent.components()
