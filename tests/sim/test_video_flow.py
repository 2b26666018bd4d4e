"""The video-flow baseline: LK tracks recover known image motion; depth lifting inverts projection."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from chord.assets.bullet import project
from chord.scene import Camera
from sim.video_flow import backproject, track_points


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    img = rng.random((h, w)).astype(np.float32)
    return (255 * cv2.GaussianBlur(img, (0, 0), 2.0) / 1.0).clip(0, 255).astype(np.uint8)


def test_lk_recovers_a_known_translation():
    import cv2

    rng = np.random.default_rng(0)
    base = _texture(rng, 200, 260)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    shift = np.array([1.5, -1.0])  # px per frame (x, y)
    frames = [
        cv2.warpAffine(base, np.float32([[1, 0, k * shift[0]], [0, 1, k * shift[1]]]), (260, 200))
        for k in range(6)
    ]
    gray = np.stack(frames)
    start = (
        np.stack(np.meshgrid(np.arange(80, 180, 10), np.arange(70, 130, 10)), -1)
        .reshape(-1, 2)
        .astype(np.float32)
    )
    pos, alive = track_points(gray, start)
    assert alive[-1].all()
    np.testing.assert_allclose(pos[-1] - start, np.broadcast_to(5 * shift, start.shape), atol=0.1)


def test_backproject_inverts_projection():
    cam = Camera.from_look_at((0.8, -0.3, 0.5), (0.0, 0.0, 0.05), width=208, height=116)
    pts = np.random.default_rng(1).uniform([-0.1, -0.1, 0.0], [0.1, 0.1, 0.2], (50, 3))
    uv, z = project(cam, pts)
    np.testing.assert_allclose(backproject(cam, uv, z), pts, atol=1e-9)


@pytest.mark.slow
def test_banana_video_flow_sees_the_lift(tmp_path):
    from chord.assets.tasks import BANANA_LIFT, build_task
    from chord.scene import Scene
    from sim.video_flow import video_flow

    scene = Scene.load(build_task("pick_banana", tmp_path / "pick_banana", points_per_object=200))
    flow = video_flow(scene, resolution=(208, 116), points_per_object=300)
    assert flow.prior == "video" and flow.object_names == ("banana", "mug")
    banana = flow.object_points("banana")
    lift = np.median(banana[-1, :, 2] - banana[0, :, 2])
    assert lift == pytest.approx(BANANA_LIFT, abs=0.03)
    mug = flow.object_points("mug")
    assert np.median(np.linalg.norm(mug[-1] - mug[0], axis=-1)) < 0.005
