"""The video fit's 3D term: back-projected depth, visibility of model points, the robust chamfer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.scene import Camera, Pose
from flowgen.prior import PriorContext
from flowgen.video_fit import (
    VideoFitConfig,
    VideoFitPrior,
    backproject,
    chamfer,
    observed_points,
    visible_points,
)

BOX_HALF = np.array([0.05, 0.04, 0.03])  # m


def _box_pose() -> np.ndarray:
    a = 0.4  # rad about z, so that no face is parallel to the image axes
    T = np.eye(4)
    T[:3, :3] = [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]
    T[:3, 3] = [0.02, -0.01, BOX_HALF[2]]
    return T


def _box_distance(points: np.ndarray) -> np.ndarray:  # [n, 3] world -> [n] m to the box surface
    T = _box_pose()
    local = (points - T[:3, 3]) @ T[:3, :3]
    q = np.abs(local) - BOX_HALF
    outside = np.linalg.norm(np.maximum(q, 0), axis=-1)
    return np.abs(outside + np.minimum(q.max(axis=-1), 0))


def test_backprojected_pybullet_depth_lands_on_the_box_and_the_table():
    import pybullet as p

    from assets.bullet import World
    from core.transforms import matrix_to_quat, wxyz_to_xyzw

    cam = Camera.from_look_at((0.45, -0.3, 0.35), (0.0, 0.0, 0.03), fov_y_deg=40, width=208, height=116)
    with World(table_height=0.0) as world:
        c = world.client
        shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=BOX_HALF.tolist(), physicsClientId=c)
        visual = p.createVisualShape(p.GEOM_BOX, halfExtents=BOX_HALF.tolist(), physicsClientId=c)
        T = _box_pose()
        xyzw = wxyz_to_xyzw(matrix_to_quat(T[:3, :3])).tolist()
        body = p.createMultiBody(0, shape, visual, T[:3, 3].tolist(), xyzw, physicsClientId=c)
        frame = world.render(cam)
    world_points = backproject(frame.depth, cam)
    on_box = frame.segmentation == body
    assert on_box.sum() > 300
    d = _box_distance(world_points[on_box])
    assert np.percentile(d, 95) < 0.002 and d.max() < 0.006  # metres; a flipped axis is centimetres off
    # Pixels off the box that hit something land on the table top (z = 0).
    table = ~on_box & (frame.depth < 2.0)
    assert table.sum() > 1000
    assert np.percentile(np.abs(world_points[table][:, 2]), 95) < 0.002

    # observed_points keeps a seeded subset of the box's pixels, all of them on the box.
    masks = on_box.astype(np.int64)[None]  # label 1 = object 0
    pts, valid = observed_points(frame.depth[None], masks, 1, cam, per_object=100)
    assert pts.shape == (1, 1, 100, 3) and bool(valid.all())
    assert _box_distance(pts[0, 0].numpy().astype(np.float64)).max() < 0.006


def test_backproject_refuses_a_camera_of_another_size():
    cam = Camera.from_look_at((0.5, 0, 0.5), (0, 0, 0), width=32, height=16)
    with pytest.raises(ValueError, match="resize the camera"):
        backproject(np.ones((8, 16)), cam)


def _top_camera(width=40, height=30) -> Camera:
    """Looks straight down from z = 1 m at the origin."""
    return Camera.from_look_at(
        (0.0, 0.0, 1.0), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), width=width, height=height
    )


def test_visible_points_keep_the_front_surface_only():
    cam = _top_camera()
    xy = torch.stack(
        torch.meshgrid(torch.linspace(-0.1, 0.1, 5), torch.linspace(-0.1, 0.1, 5), indexing="ij"), -1
    )
    xy = xy.reshape(-1, 2)
    front = torch.cat([xy, torch.full((25, 1), 0.1)], dim=1)  # depth 0.9
    back = torch.cat([xy, torch.zeros(25, 1)], dim=1)  # depth 1.0: behind the front layer
    far_off = torch.tensor([[3.0, 0.0, 0.0]])  # outside the image
    points = torch.cat([front, back, far_off])
    rendered = torch.full((30, 40), 0.9)
    labels = torch.full((30, 40), -1, dtype=torch.long)
    observed = torch.full((30, 40), float("nan"))
    seen = visible_points(points, rendered, cam, labels, observed, obj=0)
    assert seen[:25].all() and not seen[25:].any()
    # The video shows object 1 in front (0.5 m) over the left half: our points there are excused.
    labels[:, :20] = 1
    observed[:, :20] = 0.5
    seen = visible_points(points, rendered, cam, labels, observed, obj=0)
    left = points[:25, 0] < -0.01  # image x is world x for this camera
    assert not seen[:25][left].any() and seen[:25][points[:25, 0] > 0.01].all()
    # An object the video shows *behind* ours does not excuse it.
    observed[:, :20] = 1.5
    assert visible_points(points, rendered, cam, labels, observed, obj=0)[:25].all()


def _laptop(opening: torch.Tensor, n: int = 12) -> torch.Tensor:
    """[2 n^2, 3] points of a base plate (z = 0) and a lid opened ``opening`` rad about the x axis;
    closed (0) it lies 1 cm above the base."""
    x, s = torch.meshgrid(torch.linspace(0.0, 0.3, n), torch.linspace(0.0, 0.2, n), indexing="ij")
    x, s = x.reshape(-1), s.reshape(-1)
    base = torch.stack([x, s, torch.zeros_like(s)], dim=1)
    lid = torch.stack([x, s * torch.cos(opening), 0.01 + s * torch.sin(opening)], dim=1)
    return torch.cat([base, lid])


def _close(reach: float, steps: int = 150) -> float:
    """Fit the lid's opening (from 95 deg) to an observed closed laptop; returns the end angle, deg.

    The correspondences' reach falls linearly to 0 over the first half, as in the video fit."""
    observed = _laptop(torch.tensor(0.0), n=15)  # a finer sampling than the model's
    opening = torch.tensor(math.radians(95.0), requires_grad=True)
    everything = torch.ones(2 * 12 * 12, dtype=torch.bool)
    opt = torch.optim.Adam([opening], lr=0.03)
    for i in range(steps):
        r = reach * max(0.0, 1.0 - i / (steps / 2))
        opt.zero_grad()
        chamfer(_laptop(opening), observed, everything, scale=0.005, reach=r).backward()
        opt.step()
    return math.degrees(float(opening.detach()))


def test_chamfer_with_reach_turns_a_hinge_all_the_way_to_the_observed_lid():
    # Nothing overlaps at 95 deg: the lid's nearest observed points lie on the hinge line, a pull
    # with no turn in it; nearest-point chamfer stays where it started.
    assert _close(reach=0.0) > 85.0
    assert abs(_close(reach=0.1)) < 3.0


def test_chamfer_with_nearest_points_is_exact_at_the_truth():
    pts = _laptop(torch.tensor(0.3))
    seen = torch.ones(len(pts), dtype=torch.bool)
    assert float(chamfer(pts, pts, seen, scale=0.005)) == 0.0
    moved = pts + torch.tensor([0.0, 0.0, 0.004])  # well under the 18 mm spacing
    expected = math.sqrt(0.004**2 + 0.005**2) - 0.005
    assert float(chamfer(moved, pts, seen, scale=0.005)) == pytest.approx(expected, rel=1e-4)


def _plane_scene(shift: float):
    """A 28x16 RGB-D video of one object, a plate 0.5 m in front of the camera over a window of
    pixels, and model points: the back-projected pixels moved ``shift`` m along the optical axis."""
    cam = Camera(20.0, 20.0, 14.0, 8.0, Pose.from_matrix(np.eye(4)), 28, 16)
    depth = np.full((3, 16, 28), np.nan, np.float32)
    masks = np.zeros((3, 16, 28), np.int64)
    depth[:, 4:12, 6:20], masks[:, 4:12, 6:20] = 0.5, 1
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 28, 3), dtype=np.uint8)
    model = torch.from_numpy(backproject(depth[0], cam)[4:12, 6:20]).reshape(-1, 3).float()
    model = model + torch.tensor([0.0, 0.0, shift])  # the camera is the world frame
    rendered_depth = torch.zeros(1, 1, 16, 28, 1)
    rendered_depth[:, :, 4:12, 6:20] = 0.5 + shift
    return cam, frames, masks, depth, model, rendered_depth


@pytest.mark.parametrize(("shift", "movable"), [(0.0, True), (0.01, True), (0.01, False)])
def test_prior_point_term_measures_the_3d_offset(shift, movable):
    cam, frames, masks, depth, model, rendered_depth = _plane_scene(shift)
    prior = VideoFitPrior(frames, masks, 1, VideoFitConfig(), depth=depth, camera=cam, movable=[movable])
    assert prior.wants_points
    ctx = PriorContext(first_frame=torch.zeros(16, 28, 3), prompt="p", num_frames=3, height=16, width=28)
    prior.prepare(ctx)
    points = model[None, None].clone().requires_grad_(True)  # [1, 1, N, 3]
    coverage = torch.from_numpy(masks[1] > 0).float()[None, None, ..., None]
    out = prior.loss(
        torch.zeros(1, 1, 16, 28, 3), progress=0.6, generator=torch.Generator().manual_seed(0),
        masks=coverage, frame_indices=torch.tensor([[1]]), depth=rendered_depth,
        points=points, point_object=torch.zeros(len(model), dtype=torch.long),
    )  # fmt: skip
    if not movable:  # a static object's Gaussians never move: no 3D term for them
        assert "points" not in out.logs
        return
    assert out.logs["point_reach"] == 0.0  # past point_reach_until: nearest points
    s = 0.005
    assert out.logs["points"] == pytest.approx(math.sqrt(shift**2 + s * s) - s, abs=2e-5)
    if shift:
        out.loss.backward()
        # Every model point is pulled straight back towards the camera (-z here).
        g = points.grad[0, 0]
        assert (g[:, 2] > 0).all() and g[:, :2].abs().max() < 1e-3 * g[:, 2].abs().max()


def test_point_term_is_off_without_camera_or_weight():
    cam, frames, masks, depth, *_ = _plane_scene(0.0)
    assert not VideoFitPrior(frames, masks, 1, depth=depth).wants_points
    assert not VideoFitPrior(
        frames, masks, 1, VideoFitConfig(point_weight=0.0), depth=depth, camera=cam
    ).wants_points
    assert not VideoFitPrior(frames, masks, 1, camera=cam).wants_points
