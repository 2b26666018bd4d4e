"""The scene camera converted to PyBullet's matrices projects points where chord's pinhole does."""

from __future__ import annotations

import numpy as np
import pytest

from assets.bullet import World, gl_list, project, projection_matrix, scaled_camera, view_matrix
from core.scene import Camera, Pose


def _camera() -> Camera:
    """An off-centre, non-square-pixel camera, so that a swapped axis or sign shows."""
    base = Camera.from_look_at((0.6, -0.3, 0.45), (0.0, 0.05, 0.05), fov_y_deg=40, width=416, height=232)
    return Camera(base.fx * 1.05, base.fy, 190.0, 125.0, base.T_world_cam, 416, 232, 0.02, 5.0)


def test_matrices_project_like_the_pinhole_model():
    cam = _camera()
    rng = np.random.default_rng(0)
    pts = rng.uniform([-0.2, -0.2, 0.0], [0.2, 0.2, 0.3], size=(50, 3))
    clip = np.concatenate([pts, np.ones((50, 1))], 1) @ (projection_matrix(cam) @ view_matrix(cam)).T
    ndc = clip[:, :3] / clip[:, 3:]
    u = (ndc[:, 0] + 1) / 2 * cam.width
    v = (1 - ndc[:, 1]) / 2 * cam.height
    uv, z = project(cam, pts)
    np.testing.assert_allclose(np.stack([u, v], 1), uv, atol=1e-9)
    assert (z > 0).all() and (np.abs(ndc[:, 2]) < 1).all()
    # PyBullet wants column-major 16-lists.
    assert gl_list(view_matrix(cam))[12:15] == pytest.approx(view_matrix(cam)[:3, 3].tolist())


@pytest.mark.parametrize("point", [(0.0, 0.0, 0.1), (0.12, 0.1, 0.05), (-0.1, -0.08, 0.2)])
def test_tiny_renderer_draws_a_point_where_project_puts_it(point):
    import pybullet as p

    cam = _camera()
    with World(table_height=-0.5) as world:  # table out of the way
        shape = p.createCollisionShape(p.GEOM_SPHERE, radius=0.006, physicsClientId=world.client)
        visual = p.createVisualShape(
            p.GEOM_SPHERE, radius=0.006, rgbaColor=[1, 0, 0, 1], physicsClientId=world.client
        )
        body = p.createMultiBody(0, shape, visual, list(point), physicsClientId=world.client)
        frame = world.render(cam)
    rows, cols = np.nonzero(frame.segmentation == body)
    assert len(rows) > 10
    centroid = np.array([cols.mean() + 0.5, rows.mean() + 0.5])  # pixel centres at +0.5
    uv, z = project(cam, np.array(point))
    np.testing.assert_allclose(centroid, uv, atol=0.25)
    # Depth of the sphere's nearest pixel is its centre's depth minus about the radius.
    assert frame.depth[rows, cols].min() == pytest.approx(z - 0.006, abs=0.003)
    # The sphere is red in the picture.
    assert frame.rgb[int(uv[1]), int(uv[0]), 0] > 150


def test_scaled_camera_keeps_the_projection_proportional():
    cam = _camera()
    small = scaled_camera(cam, 208, 116)
    pts = np.array([[0.05, 0.02, 0.1], [-0.1, 0.1, 0.0]])
    np.testing.assert_allclose(project(small, pts)[0], project(cam, pts)[0] / 2, atol=1e-9)
    assert isinstance(small.T_world_cam, Pose)
