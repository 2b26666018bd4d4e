"""flowgen.pose_init: a rigid object's motion tracked frame by frame from its depth points."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from flowgen.pose_init import rigid_track, surface_samples, symmetry_axes

CAMERA = np.array([0.0, -0.6, 0.5])  # the observed points are those facing this point


def _motions(T: int, turn_deg: float, axis, shift) -> np.ndarray:
    """[T, 4, 4] a turn about ``axis`` through the origin and a shift, both growing linearly."""
    out = np.tile(np.eye(4), (T, 1, 1))
    for t in range(T):
        s = t / (T - 1)
        out[t, :3, :3] = Rotation.from_rotvec(np.deg2rad(turn_deg * s) * np.asarray(axis, float)).as_matrix()
        out[t, :3, 3] = s * np.asarray(shift, float)
    return out


def _observe(mesh: trimesh.Trimesh, motions: np.ndarray, count: int = 1500) -> list[np.ndarray]:
    """Per frame, a fresh sampling of the moved surface, only what faces the camera (a partial
    view: the far side is never observed)."""
    frames = []
    for t, M in enumerate(motions):
        p, n = surface_samples(mesh, M, count, seed=100 + t)
        facing = ((CAMERA - p) * n).sum(axis=1) > 0
        frames.append(p[facing])
    return frames


def _errors(found: np.ndarray, truth: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """(mean point error mm over all frames, rotation error deg at the last frame)."""
    a = np.einsum("tij,nj->tni", found[:, :3, :3], points) + found[:, None, :3, 3]
    b = np.einsum("tij,nj->tni", truth[:, :3, :3], points) + truth[:, None, :3, 3]
    R = found[-1, :3, :3] @ truth[-1, :3, :3].T
    return 1000 * float(np.linalg.norm(a - b, axis=2).mean()), float(
        np.degrees(np.linalg.norm(Rotation.from_matrix(R).as_rotvec()))
    )


def test_a_box_turned_70_degrees_and_lifted_is_tracked_from_a_partial_view():
    box = trimesh.creation.box((0.12, 0.07, 0.05))
    box.apply_translation((0.02, 0.0, 0.025))
    truth = _motions(25, 70.0, (0.1, 0.2, 1.0) / np.linalg.norm((0.1, 0.2, 1.0)), (0.03, -0.02, 0.12))
    rest, normals = surface_samples(box, np.eye(4), 4000)
    found, residual, matched = rigid_track(rest, normals, _observe(box, truth))
    mean_mm, last_deg = _errors(found, truth, rest)
    assert np.array_equal(found[0], np.eye(4))  # frame 0 is the rest pose
    assert np.isnan(residual[0]) and np.nanmax(residual) < 1e-3 and np.nanmin(matched) > 0.95
    assert mean_mm < 1.0 and last_deg < 1.0, (mean_mm, last_deg)
    # Not tracked (the rest pose held): the motion itself, tens of millimetres and 70 degrees off.
    still_mm, still_deg = _errors(np.tile(np.eye(4), (25, 1, 1)), truth, rest)
    assert still_mm > 40.0 and still_deg > 69.0


def test_a_body_of_revolution_is_found_and_not_rolled_while_it_slides():
    cylinder = trimesh.creation.cylinder(radius=0.03, height=0.14, sections=64)
    rest, normals = surface_samples(cylinder, np.eye(4), 4000)
    (axis,) = symmetry_axes(rest, normals)
    assert abs(axis[2]) > 0.99  # trimesh's cylinder stands along z
    for mesh in (trimesh.creation.box((0.12, 0.07, 0.05)), trimesh.creation.box((0.08, 0.08, 0.03))):
        p, n = surface_samples(mesh, np.eye(4), 4000)
        assert len(symmetry_axes(p, n)) == 0  # a square prism turns onto itself by 90 deg only
    # Lying on its side and pushed across its axis it looks exactly as if it rolled: the track
    # must slide it (the truth) and not turn it about its own axis.
    lying = np.eye(4)
    lying[:3, :3] = Rotation.from_rotvec([np.pi / 2, 0.0, 0.0]).as_matrix()  # axis along y
    lying[2, 3] = 0.03
    on_side = cylinder.copy().apply_transform(lying)
    rest, normals = surface_samples(on_side, np.eye(4), 4000)
    truth = _motions(25, 0.0, (0.0, 0.0, 1.0), (0.12, 0.0, 0.0))
    found, _, _ = rigid_track(rest, normals, _observe(on_side, truth))
    mean_mm, last_deg = _errors(found, truth, rest)
    assert mean_mm < 1.5 and last_deg < 1.0, (mean_mm, last_deg)


@pytest.mark.parametrize("few", [0, 5])
def test_frames_with_too_few_points_keep_the_previous_pose(few):
    box = trimesh.creation.box((0.12, 0.07, 0.05))
    truth = _motions(9, 30.0, (0.0, 0.0, 1.0), (0.05, 0.0, 0.0))
    frames = _observe(box, truth)
    frames[4] = frames[4][:few]  # the object hidden in frame 4
    rest, normals = surface_samples(box, np.eye(4), 4000)
    found, residual, _ = rigid_track(rest, normals, frames)
    assert np.array_equal(found[4], found[3]) and np.isnan(residual[4])
    mean_mm, last_deg = _errors(found, truth, rest)
    assert mean_mm < 3.0 and last_deg < 1.0  # picked up again after the gap
