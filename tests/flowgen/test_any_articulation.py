"""Any articulation (issue 21): parts from any URDF, prismatic joints and chains, joint starts for
every joint, the root part held, the split rule, and errors split by moving and static parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from core.scene import Camera, Pose, SceneObject
from flowgen.config import FlowConfig
from flowgen.joint_init import free_space_violation, joint_track, root_moves, slide_track
from flowgen.parts import model_from_urdf, object_parts
from flowgen.scene4d import joint_attachment


def _box(n: int, size, offset, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g) * torch.tensor(size) + torch.tensor(offset)


# -- parts from a URDF ------------------------------------------------------------------------------


def _pybullet_link_frames(urdf: Path, q: list[float]) -> list[np.ndarray]:
    """PyBullet's world frames of every link of ``urdf`` (base at the origin) at joint values q."""
    import pybullet as p

    c = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(urdf), useFixedBase=True, physicsClientId=c)
        movable = [i for i in range(p.getNumJoints(body, physicsClientId=c))
                   if p.getJointInfo(body, i, physicsClientId=c)[2] != p.JOINT_FIXED]  # fmt: skip
        for i, v in zip(movable, q, strict=True):
            p.resetJointState(body, i, v, physicsClientId=c)
        frames = []
        for i in range(p.getNumJoints(body, physicsClientId=c)):
            s = p.getLinkState(body, i, computeForwardKinematics=True, physicsClientId=c)
            T = np.eye(4)
            T[:3, :3] = np.asarray(p.getMatrixFromQuaternion(s[5])).reshape(3, 3)
            T[:3, 3] = s[4]
            frames.append(T)
        return frames
    finally:
        p.disconnect(c)


def test_a_pybullet_data_cartpole_gives_a_prismatic_and_a_revolute_part_whose_kinematics_match_pybullet():
    import pybullet_data

    urdf = Path(pybullet_data.getDataPath()) / "cartpole.urdf"
    model = model_from_urdf(urdf)
    assert model.names == ["slideBar", "cart", "pole"]
    assert [(j.kind, j.parent, j.child) for j in model.joints] == [
        ("prismatic", "slideBar", "cart"),
        ("revolute", "cart", "pole"),  # continuous is a revolute joint without limits
    ]
    pose = Pose(position=(0.1, -0.2, 0.0), quat_wxyz=(np.cos(0.3), 0.0, 0.0, np.sin(0.3)))
    parts = object_parts(SceneObject(name="cartpole", pose=pose, urdf=urdf))
    assert parts is not None and parts.count == 3
    # The pole's full geometry: a 1 m bar from its joint upwards (its visual origin applied).
    assert parts.meshes[2].bounds[:, 2] == pytest.approx([0.0, 1.0])
    slide, hinge = parts.joints
    R = pose.matrix()[:3, :3]
    np.testing.assert_allclose(slide.axis, R @ [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(hinge.axis, R @ [0.0, 1.0, 0.0], atol=1e-12)
    assert slide.limits == (-15.0, 15.0) and hinge.limits is None  # continuous: no range
    # Forward kinematics down the chain equals PyBullet's at arbitrary joint values.
    q = [0.3, 0.7]
    ours = parts.motions(np.array(q)) @ parts.rest_frames  # [P, 4, 4] object frame = base frame
    bullet = _pybullet_link_frames(urdf, q)
    np.testing.assert_allclose(ours[1], bullet[0], atol=1e-6)  # the cart slid 0.3 m
    np.testing.assert_allclose(ours[2], bullet[1], atol=1e-6)  # the pole turned 0.7 rad on it
    assert ours[2][0, 3] == pytest.approx(0.3)


def test_a_urdf_with_mesh_files_scales_origins_and_a_fixed_link_becomes_a_drawer_with_a_handle(
    tmp_path: Path,
):
    (tmp_path / "meshes").mkdir()
    trimesh.creation.box([0.3, 0.3, 0.2]).export(tmp_path / "meshes" / "cabinet.obj")
    trimesh.creation.box([200.0, 250.0, 120.0]).export(tmp_path / "meshes" / "drawer_mm.obj")  # millimetres
    (tmp_path / "cab.urdf").write_text(
        """<?xml version="1.0"?>
<robot name="cab">
  <link name="body"><visual><origin xyz="0 0 0.1"/>
    <geometry><mesh filename="package://cab/meshes/cabinet.obj"/></geometry></visual></link>
  <link name="drawer"><visual><origin xyz="-0.1 0 0" rpy="0 0 1.5707963267948966"/>
    <geometry><mesh filename="meshes/drawer_mm.obj" scale="0.001 0.001 0.001"/></geometry></visual></link>
  <link name="pull"><collision><geometry><box size="0.02 0.08 0.02"/></geometry></collision></link>
  <joint name="slide" type="prismatic"><parent link="body"/><child link="drawer"/>
    <origin xyz="0.15 0 0.1"/><axis xyz="1 0 0"/><limit lower="0" upper="0.2" effort="1" velocity="1"/></joint>
  <joint name="pull_fixed" type="fixed"><parent link="drawer"/><child link="pull"/>
    <origin xyz="0.08 0 0"/></joint>
</robot>
"""
    )
    model = model_from_urdf(tmp_path / "cab.urdf")
    assert model.names == ["body", "drawer"]  # the pull is fixed to the drawer: one part
    assert [(j.name, j.kind) for j in model.joints] == [("slide", "prismatic")]
    drawer = model.meshes[1]  # object frame: turned 90 deg about z, scaled to metres, pull added
    lo, hi = drawer.bounds
    # The drawer's box is 0.25 m along x once turned, centred 0.1 m behind the joint at x = 0.15;
    # the pull's 2 cm box sits 0.08 m in front of the joint.
    np.testing.assert_allclose(lo, [0.15 - 0.1 - 0.125, -0.1, 0.1 - 0.06], atol=1e-9)
    np.testing.assert_allclose(hi, [0.15 + 0.08 + 0.01, 0.1, 0.1 + 0.06], atol=1e-9)
    parts = object_parts(SceneObject(name="cab", pose=Pose(), urdf=tmp_path / "cab.urdf"))
    (joint,) = parts.joints
    assert joint.kind == "prismatic" and len(joint.anchors) == 4 and joint.limits == (0.0, 0.2)
    # The drawer's body hidden in the cabinet at rest is part of the object's Gaussian mesh.
    assert len(parts.mesh().faces) == sum(len(m.faces) for m in model.meshes)
    motion = parts.motions(np.array([0.07]))
    np.testing.assert_allclose(motion[1][:3, 3], [0.07, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(motion[0], np.eye(4), atol=1e-12)


def test_a_malformed_urdf_is_a_one_line_error(tmp_path: Path):
    from core.errors import ChordError

    bad = tmp_path / "bad.urdf"
    bad.write_text("<robot><link name='a'/><link name='b'/></robot>")
    with pytest.raises(ChordError, match="2 root links"):
        model_from_urdf(bad)
    bad.write_text("<robot><link name='a'><visual><geometry><mesh filename='gone.obj'/></geometry></visual>"
                   "</link></robot>")  # fmt: skip
    with pytest.raises(ChordError, match="gone.obj"):
        model_from_urdf(bad)


# -- joint starts -----------------------------------------------------------------------------------


def test_slide_track_recovers_a_drawer_pulled_out_frame_by_frame():
    cabinet = torch.cat(
        [_box(500, (0.3, 0.3, 0.01), (0, 0, 0), 0), _box(500, (0.3, 0.3, 0.01), (0, 0, 0.2), 1)]
    )
    drawer = _box(800, (0.02, 0.28, 0.18), (0.3, 0.01, 0.01), 2)  # its front, flush at rest
    axis = torch.tensor([1.0, 0.0, 0.0])
    truth = np.linspace(0.0, 0.15, 11)  # 15 cm out over 11 frames
    noise = torch.Generator().manual_seed(3)
    observed = []
    for s in truth:
        pts = torch.cat([cabinet[::2], drawer[::2] + float(s) * axis])
        observed.append(pts + 0.001 * torch.randn(pts.shape, generator=noise))  # 1 mm depth noise
    found = slide_track(cabinet, drawer, axis, observed, span=0.3)
    assert found[0] == 0.0
    np.testing.assert_allclose(found, truth, atol=0.0025)  # within the 2 mm grid step + noise


def test_the_search_stays_in_the_joints_range():
    lid = _box(400, (0.3, 0.01, 0.2), (0.0, 0.19, 0.02), 1)
    pivot, axis = torch.tensor([0.0, 0.2, 0.02]), torch.tensor([1.0, 0.0, 0.0])
    # Points the lid explains at -40 deg; the joint's range is [-20, 90] deg: the search stops at -20.
    r = joint_track("revolute", torch.zeros(0, 3), lid, pivot, axis, [lid] * 2, np.deg2rad(2), np.pi)
    assert r[1] == 0.0
    posed = (lid - pivot) @ torch.as_tensor(
        trimesh.transformations.rotation_matrix(np.deg2rad(-40), [1, 0, 0])[:3, :3], dtype=torch.float32
    ).T + pivot
    free = joint_track("revolute", torch.zeros(0, 3), lid, pivot, axis, [lid, posed], np.deg2rad(2), np.pi)
    limited = joint_track("revolute", torch.zeros(0, 3), lid, pivot, axis, [lid, posed], np.deg2rad(2), np.pi,
                          limits=(np.deg2rad(-20), np.deg2rad(90)))  # fmt: skip
    assert np.rad2deg(free[1]) == pytest.approx(-40.0, abs=1e-4)
    assert np.rad2deg(limited[1]) == pytest.approx(-20.0, abs=1e-4)


def test_free_space_tells_a_drawer_front_from_its_inner_face():
    """Its front's inner face, slid out by the front's thickness, explains the observed front as
    well as the front does; only the camera's free space in front of the surface tells them apart."""
    from core.scene import Camera

    front_outer = _box(400, (0.0, 0.2, 0.1), (0.30, 0.0, 0.0), 0)
    front_inner = front_outer - torch.tensor([0.015, 0.0, 0.0])  # 15 mm behind
    drawer = torch.cat([front_outer, front_inner])
    cam = Camera.from_look_at(
        eye=(1.0, 0.1, 0.05), target=(0.0, 0.1, 0.05), fov_y_deg=40.0, width=64, height=48
    )
    observed = [front_outer[::2]] * 3  # the drawer does not move
    # Pulling out moves the drawer towards the camera (-x here): the inner face reaches the
    # observed front at -15 mm, first in the grid's order, so a tie goes the wrong way.
    axis = torch.tensor([-1.0, 0.0, 0.0])
    # The camera's depth map of the still front (x = 0.30): 0.70 m along the optical axis.
    depth = torch.full((48, 64), 0.70)

    def free(points, t=0):
        return free_space_violation(points, depth, cam, margin=0.005)

    blind = joint_track(
        "prismatic", torch.zeros(0, 3), drawer, drawer.mean(0), axis, observed, 0.005, 0.05, span=0.1
    )
    seeing = joint_track("prismatic", torch.zeros(0, 3), drawer, drawer.mean(0), axis, observed, 0.005, 0.05,
                         span=0.1, free_space=[free] * 3)  # fmt: skip
    assert blind[1] == pytest.approx(-0.015, abs=1e-6)  # a tie, broken towards the wrong value
    np.testing.assert_allclose(seeing, 0.0, atol=1e-6)


def test_free_space_is_known_to_a_pixel_so_a_silhouettes_edge_is_not_free_space():
    # A camera looking down -x at a block 0.5 m away (pixel columns 20..39) before a wall 1.0 m away.
    cam = Camera.from_look_at(
        eye=(1.0, 0.0, 0.0), target=(0.0, 0.0, 0.0), fov_y_deg=40.0, width=64, height=48
    )
    depth = torch.full((48, 64), 1.0)
    depth[:, 20:40] = 0.5
    T = torch.as_tensor(cam.T_world_cam.matrix(), dtype=torch.float32)

    def at(u: float, z: float, v: float = 24.0) -> torch.Tensor:  # the point at depth z seen at (u, v)
        p_cam = torch.tensor([(u - cam.cx) * z / cam.fx, (v - cam.cy) * z / cam.fy, z], dtype=torch.float32)
        return (T[:3, :3] @ p_cam + T[:3, 3])[None]

    def violation(u: float, z: float, v: float = 24.0) -> float:
        return free_space_violation(at(u, z, v), depth, cam, 0.005).item()

    # The block's silhouette lies within half a pixel of its last column's edge (u = 40): a point of
    # it anywhere there, in the wall's pixel 40 too, is not in free space.
    for u in (39.9, 40.0, 40.3, 40.45, 19.55, 19.7, 20.0):
        assert violation(u, 0.5) == 0.0, u
    # Further out it stands 0.5 m in front of the wall, less the margin.
    for u in (40.6, 41.5, 19.4, 18.0):
        assert violation(u, 0.5) == pytest.approx(0.495, abs=1e-3), u
    assert violation(30.0, 0.3) == pytest.approx(0.195, abs=1e-3)  # floating in front of the block
    assert violation(30.0, 0.7) == 0.0  # behind it
    # Unknown pixels are never free space: the nearest known one of the four decides, or none.
    depth[23:25, 9:11] = float("nan")
    assert violation(10.0, 0.5) == 0.0
    depth[23, 10] = 1.0
    assert violation(10.0, 0.5) == pytest.approx(0.495, abs=1e-3)
    depth[23:25, 9:11] = 0.0
    assert violation(10.0, 0.5) == 0.0
    assert violation(70.0, 0.5) == 0.0  # outside the image


def test_root_moves_only_when_the_video_shows_it_move():
    root = _box(1500, (0.3, 0.3, 0.1), (0, 0, 0), 0)
    child = _box(300, (0.02, 0.3, 0.1), (0.3, 0, 0), 1)
    noise = torch.Generator().manual_seed(4)

    def frames(shift: float) -> list[torch.Tensor]:
        out = []
        for t in range(6):
            pts = torch.cat([root[::3] + torch.tensor([0.0, 0.0, shift * t / 5]), child[::3]])
            out.append(pts + 0.001 * torch.randn(pts.shape, generator=noise))
        return out

    others = [child] * 6
    still, worst = root_moves(root, others, frames(0.0), tolerance=0.005)
    assert not still and worst < 0.002
    lifted, worst = root_moves(root, others, frames(0.02), tolerance=0.005)  # lifted 2 cm by the end
    assert lifted and worst > 0.007  # a median distance: less than the 2 cm lift, far above the noise


# -- joint attachment ---------------------------------------------------------------------------------


def test_prismatic_attachment_is_zero_for_a_slide_along_the_axis_only():
    anchors = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]])
    parent = anchors[None].expand(3, -1, -1)  # [T=3, A, 3]: the parent holds still
    joint = torch.zeros(4, dtype=torch.long)
    slid = parent + torch.tensor([0.05, 0.0, 0.0])
    assert float(joint_attachment(parent, slid, joint, ["prismatic"])) == pytest.approx(0.0, abs=1e-12)
    sideways = parent + torch.tensor([0.0, 0.05, 0.0])
    assert float(joint_attachment(parent, sideways, joint, ["prismatic"])) == pytest.approx(0.0025, rel=1e-5)
    c, s = np.cos(0.3), np.sin(0.3)
    turned = parent @ torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float32).T
    assert float(joint_attachment(parent, turned, joint, ["prismatic"])) > 1e-4
    # The same slide at a revolute joint's anchors is a violation.
    assert float(joint_attachment(parent, slid, joint, ["revolute"])) == pytest.approx(0.0025, rel=1e-5)


# -- the split rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "frames", "expected"),
    [
        (FlowConfig(), 41, 30),  # the seed's frame 30 of 41
        (FlowConfig(), 81, 60),  # the same share of a longer clip
        (FlowConfig(), 21, 15),
        (FlowConfig(prior="wan"), 81, 30),  # the Wan prior keeps the seed's frame
        (FlowConfig(split_frame=12), 41, 12),  # given: used as given
    ],
)
def test_the_video_fit_splits_at_a_share_of_the_clip(config: FlowConfig, frames: int, expected: int):
    assert config.split_frame_for(frames) == expected


# -- errors by moving and static parts ----------------------------------------------------------------


def test_flow_error_reports_moving_and_static_parts_apart():
    from core.flow import ObjectFlow
    from flowgen.evaluate import flow_error

    T = 5
    rng = np.random.default_rng(0)
    frame = rng.uniform(0, 0.2, (200, 3))
    door = rng.uniform(0, 0.2, (200, 3)) + np.array([0.3, 0, 0])
    ref = np.concatenate(
        [np.repeat(frame[None], T, 0), door[None] + np.linspace(0, 0.1, T)[:, None, None] * [0, 1, 0]], 1
    )
    ours = ref.copy()
    ours[:, :200] += np.linspace(0, 0.02, T)[:, None, None] * [1, 0, 0]  # the frame drifts 20 mm
    names = ["door"]

    def flow(points: np.ndarray) -> ObjectFlow:
        return ObjectFlow(
            points.astype(np.float32),
            np.zeros(points.shape[1], np.int32),
            (np.arange(T) / 16.0).astype(np.float32),
            tuple(names),
            16.0,
            "test",
        )

    (e,) = flow_error(flow(ours), flow(ref))
    assert e.static_points == 200
    assert e.static_final_mm == pytest.approx(20.0, abs=1e-3) and e.static_mean_mm == pytest.approx(
        10.0, abs=1e-3
    )
    assert e.moving_final_mm == pytest.approx(0.0, abs=1e-3)
    moving = np.ascontiguousarray(ref[:, 200:])
    (rigid,) = flow_error(flow(moving), flow(moving))  # every point of a rigid object moves: none static
    assert rigid.static_points == 0 and rigid.static_mean_mm is None and rigid.moving_mean_mm is not None
    assert e.final_mm == pytest.approx(10.0, abs=1e-3)  # the average that hid which part drifted
    from chord.cli.flow import summary_lines
    from flowgen.generate import FlowSummary

    line = summary_lines(FlowSummary(Path("x"), Path("x/flow.npz"), None, "video", T, 400, 1, 1.0, [e]))[1]
    assert (
        "moving parts 0.0 mm mean" in line
        and "static parts drift 10.0 mm mean, 20.0 mm at the last frame" in line
    )


def test_points_at_a_contact_are_matched_to_the_part_they_move_with():
    """A drawer's side 2 mm inside its cabinet's wall, each sampled every 10 mm: the nearest
    reference point at rest is as often the other part's; the match follows the motion."""
    from flowgen.evaluate import match_points

    T = 4
    grid = np.stack(np.meshgrid(np.arange(0, 0.1, 0.01), np.arange(0, 0.1, 0.01)), -1).reshape(-1, 2)
    wall = np.column_stack([np.zeros(len(grid)), grid])  # x = 0, static
    side = np.column_stack([np.full(len(grid), 0.002), grid + 0.005])  # x = 2 mm, slides along y
    slide = np.linspace(0, 0.05, T)[:, None, None] * np.array([0.0, 1.0, 0.0])
    ref = np.concatenate([np.repeat(wall[None], T, 0), side[None] + slide], axis=1)
    groups = np.repeat([0, 1], len(grid))
    rng = np.random.default_rng(1)
    ours_wall = rng.uniform([0, 0, 0], [0, 0.1, 0.1], (300, 3))  # our own sampling of the same surfaces
    ours_side = rng.uniform([0.002, 0, 0], [0.002, 0.1, 0.1], (300, 3))
    ours = np.concatenate([np.repeat(ours_wall[None], T, 0), ours_side[None] + slide], axis=1)
    nearest = np.linalg.norm(ours[0][:, None] - ref[0][None], axis=-1).argmin(axis=1)
    truth = np.repeat([0, 1], 300)
    assert (groups[nearest] != truth).mean() > 0.2  # proximity mixes the parts up
    _, match = match_points(ours, ref, groups)
    assert (groups[match] == truth).all()
    # Sampled twice as densely, the sliding side gives a wall point four nearer reference points
    # than the wall's own nearest: a fixed four candidates were then all the side's.
    fine = np.stack(np.meshgrid(np.arange(0, 0.1, 0.005), np.arange(0, 0.1, 0.005)), -1).reshape(-1, 2)
    side = np.column_stack([np.full(len(fine), 0.002), fine + 0.0025])
    ref = np.concatenate([np.repeat(wall[None], T, 0), side[None] + slide], axis=1)
    groups = np.repeat([0, 1], [len(grid), len(fine)])
    near4 = np.argsort(np.linalg.norm(ours[0][:, None] - ref[0][None], axis=-1), axis=1)[:, :4]
    assert (groups[near4[:300]] == 1).all(axis=1).mean() > 0.15  # 60 of the 300 wall points
    dist, match = match_points(ours, ref, groups)
    assert (groups[match] == truth).all()
    # ... and within its part, the nearest point: the rest offset is the sampling's, no more.
    own = [np.flatnonzero(groups == g) for g in (0, 1)]
    nearest_own = np.array(
        [np.linalg.norm(ref[0][own[g]] - p, axis=1).min() for p, g in zip(ours[0], truth, strict=True)]
    )
    np.testing.assert_allclose(dist, nearest_own, atol=1e-12)


def test_flow_part_error_assigns_reference_points_by_the_true_motion_not_by_proximity(monkeypatch):
    """A door turning 60 deg in its frame: the points where they touch at rest lie nearer the
    other part's surface, but only their own part's motion carries them along their trajectory."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("flow_part_error", Path("benchmarks/flow_part_error.py"))
    fpe = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "flow_part_error", fpe)  # its dataclass looks itself up there
    spec.loader.exec_module(fpe)
    T = 5
    angles = np.deg2rad(np.linspace(0, 60, T))
    motions = np.broadcast_to(np.eye(4), (T, 2, 4, 4)).copy()  # part 0: the frame, still
    motions[:, 1, 0, 0] = motions[:, 1, 1, 1] = np.cos(angles)  # part 1: the door, about z at 0
    motions[:, 1, 0, 1], motions[:, 1, 1, 0] = -np.sin(angles), np.sin(angles)
    rng = np.random.default_rng(0)
    door = np.column_stack(
        [rng.uniform(0.0, 0.3, 300), rng.uniform(-0.01, 0.0, 300), rng.uniform(0, 0.4, 300)]
    )
    frame = np.column_stack(
        [rng.uniform(-0.03, 0.0005, 300), rng.uniform(-0.01, 0.0, 300), rng.uniform(0, 0.4, 300)]
    )
    rest = np.concatenate([frame, door])  # the frame's edge reaches 0.5 mm past the door's hinge side
    truth = np.repeat([0, 1], 300)
    ref = np.einsum("tpij,mj->tpmi", motions[..., :3, :3], rest)[:, truth, np.arange(600)]
    labels = fpe.truth_labels(ref, motions)
    assert (labels == truth).all()
    # Proximity to each part's rest points (what the benchmark did) gives some door points to the frame.
    nearest = np.linalg.norm(rest[:, None] - rest[None], axis=-1)
    np.fill_diagonal(nearest, np.inf)
    assert (truth[nearest.argmin(axis=1)] != truth).any()
