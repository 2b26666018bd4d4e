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


def _rigid_model(mesh: trimesh.Trimesh, frames: int):
    """A one-object Scene4D (object frame = world), as Scene4D.build makes it for a rigid object."""
    import torch

    from flowgen.control_points import ControlPointConfig, control_points_from_mesh
    from flowgen.gaussians import gaussians_from_meshes
    from flowgen.scene4d import Scene4D

    torch.manual_seed(0)
    gaussians = gaussians_from_meshes([mesh], np.eye(4)[None], 600, seed=0)
    cps = control_points_from_mesh(
        mesh, np.eye(4), ControlPointConfig(num_control_points=12, target_near_surface=600)
    )
    return Scene4D([mesh], np.eye(4)[None], [True], gaussians, [cps], frames, -1.0, torch.device("cpu"))


@pytest.mark.parametrize("explained", [True, False])
def test_the_track_is_written_into_the_deformation_and_held_when_the_depth_explains_it(explained):
    import torch

    from flowgen.pose_init import initialise_rigid

    box = trimesh.creation.box((0.12, 0.07, 0.05))
    box.apply_translation((0.0, 0.0, 0.025))
    truth = _motions(9, 50.0, (0.0, 0.0, 1.0), (0.06, 0.02, 0.05))
    frames = _observe(box, truth, 800)
    if not explained:  # two thirds of every later frame's points lie 30-60 mm off the box: not this box
        off = np.array([0.0, 0.0, 0.03])
        frames = [f if t == 0 else np.concatenate([f, f + off, f + 2 * off]) for t, f in enumerate(frames)]
    n = max(len(f) for f in frames)
    observed = torch.zeros(len(frames), 1, n, 3)
    valid = torch.zeros(len(frames), 1, n, dtype=torch.bool)
    for t, f in enumerate(frames):
        observed[t, 0, : len(f)], valid[t, 0, : len(f)] = torch.from_numpy(f).float(), True
    model = _rigid_model(box, 9)
    ((motions, held),) = initialise_rigid(model, observed, valid, noise=0.005).values()
    assert held == explained and bool(model.held.all()) == explained
    assert bool(model.placed.all())  # the fit's split keeps the tracked frames
    with torch.no_grad():
        means, _ = model.deformed_gaussians(torch.arange(9))
    rest = means[0].double().numpy()
    want = rest @ truth[-1, :3, :3].T + truth[-1, :3, 3]
    err = np.linalg.norm(means[-1].double().numpy() - want, axis=1).mean()
    assert np.allclose(means[0].numpy(), model.gaussians.means.numpy(), atol=1e-6)  # frame 0 is rest
    if explained:
        assert err < 1e-3 and np.allclose(motions[-1], truth[-1], atol=2e-3)
