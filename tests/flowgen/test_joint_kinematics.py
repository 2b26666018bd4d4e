"""Jointed objects move only through their joints under the video fit (flowgen.kinematics).

Synthetic parts made here (boxes, no files): a door on a frame, a drawer in a cabinet, and a
two-joint lamp, fitted to points of the known motion with the fit's own model (Scene4D).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from flowgen.control_points import ControlPointConfig, control_points_from_mesh, split_by_part
from flowgen.gaussians import gaussians_from_meshes
from flowgen.joint_init import initialise_joints
from flowgen.parts import parts_from_meshes
from flowgen.rotations import matrix_to_quat, quat_to_axis_angle, quat_to_matrix
from flowgen.scene4d import Scene4D
from flowgen.video_fit import chamfer


def _box(size, centre) -> trimesh.Trimesh:
    return trimesh.creation.box(size, trimesh.transformations.translation_matrix(centre))


def _model(names, meshes, joints, rest_frames, frames: int) -> Scene4D:
    """A one-object Scene4D of parts (object frame = world), as Scene4D.build makes it."""
    torch.manual_seed(0)
    parts = parts_from_meshes(names, meshes, np.eye(4), 0, joints, rest_frames=np.stack(rest_frames))
    mesh = parts.mesh()
    gaussians = gaussians_from_meshes([mesh], np.eye(4)[None], 600, seed=0)
    cfg = ControlPointConfig(num_control_points=12, target_near_surface=600)
    cps = split_by_part(control_points_from_mesh(mesh, np.eye(4), cfg, seed=0), parts.label, 12, seed=0)
    return Scene4D(
        [mesh], np.eye(4)[None], [True], gaussians, [cps], frames, -1.0, torch.device("cpu"), parts=[parts]
    )


def _door():
    frame = _box((0.02, 0.04, 0.4), (0.0, 0.0, 0.2))
    door = _box((0.3, 0.02, 0.38), (0.16, 0.0, 0.2))
    hinge = np.eye(4)
    hinge[:3, 3] = (0.01, 0.0, 0.2)
    return (
        ["frame", "door"],
        [frame, door],
        [(0, 1, hinge[:3, 3], (0.0, 0.0, 1.0), "revolute", "hinge")],
        [np.eye(4), hinge],
    )


def _drawer():
    cabinet = _box((0.3, 0.3, 0.02), (0.0, 0.0, 0.01))
    drawer = _box((0.02, 0.26, 0.15), (0.16, 0.0, 0.1))
    slide = np.eye(4)
    slide[:3, 3] = (0.16, 0.0, 0.1)
    return (
        ["cabinet", "drawer"],
        [cabinet, drawer],
        [(0, 1, slide[:3, 3], (1.0, 0.0, 0.0), "prismatic", "slide")],
        [np.eye(4), slide],
    )


def _motion(kind: str, value: float, origin: np.ndarray, axis: np.ndarray) -> np.ndarray:
    if kind == "prismatic":
        return trimesh.transformations.translation_matrix(value * np.asarray(axis))
    return trimesh.transformations.rotation_matrix(value, axis, origin)


@pytest.mark.parametrize(("make", "truth"), [(_door, np.deg2rad(30.0)), (_drawer, 0.06)])
def test_a_jointed_part_stays_on_its_joints_track_and_the_held_root_stays_put_under_the_fit(make, truth):
    names, meshes, joints, rest = make()
    T = 4
    model = _model(names, meshes, joints, rest, T)
    model.hold_part(0)  # the root the depth video shows still (joint_init's root_moves)
    kind, origin, axis = joints[0][4], np.asarray(joints[0][2]), np.asarray(joints[0][3])
    g = model.gaussians.means.detach()
    part = torch.as_tensor(model.parts[0].label(g.numpy()))
    # Targets: the moving part at the true value per frame, and the root pulled 15 mm sideways
    # (a mask bleeding onto it): a free deformation follows both.
    targets = []
    for t in range(T):
        M = torch.as_tensor(_motion(kind, truth * t / (T - 1), origin, axis), dtype=torch.float32)
        moved = g[part == 1] @ M[:3, :3].T + M[:3, 3]
        targets.append(torch.cat([g[part == 0] + torch.tensor([0.0, 0.015, 0.0]), moved]))

    def fit(m: Scene4D) -> torch.Tensor:
        opt = torch.optim.Adam(m.param_groups(_schedule()), lr=0.03, eps=1e-15)
        for group in opt.param_groups:
            group["lr"] = 0.03 if group["name"] == "deformation" else 0.0
        for _ in range(40):
            means, _ = m.deformed_gaussians(torch.arange(T))
            seen = torch.ones(len(g), dtype=torch.bool)
            loss = sum(chamfer(means[t], targets[t], seen, 0.005) for t in range(1, T))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return m.deformed_gaussians(torch.arange(T))[0]

    means = fit(model)
    # The held root did not move at all: its control points' transforms are exactly the rest's
    # (its Gaussians are then off only by float32 rounding of the skin weights' sum, < 1 um).
    root_cp = model.control_part == 0
    with torch.no_grad():
        omega, trans = model.deformation.frame_vectors()
    assert float(omega[:, root_cp].abs().max()) == 0.0 and float(trans[:, root_cp].abs().max()) == 0.0
    assert float((means[:, part == 0] - g[part == 0]).abs().max()) < 1e-6
    # Every point of the moving part is on its joint's track: a turn keeps each point's distance
    # from the axis and its height along it; a slide moves every point by one vector along the axis.
    a = torch.as_tensor(axis, dtype=torch.float32)
    o = torch.as_tensor(origin, dtype=torch.float32)
    rest_d = g[part == 1] - o
    for t in range(T):
        d = means[t, part == 1] - o
        if kind == "revolute":
            torch.testing.assert_close((d @ a), (rest_d @ a), atol=2e-5, rtol=0)
            torch.testing.assert_close(
                (d - (d @ a)[:, None] * a).norm(dim=1), (rest_d - (rest_d @ a)[:, None] * a).norm(dim=1),
                atol=2e-5, rtol=0,
            )  # fmt: skip
        else:
            shift = means[t, part == 1] - g[part == 1]
            torch.testing.assert_close(
                shift, (shift @ a)[:, None] * a[None].expand_as(shift), atol=2e-5, rtol=0
            )
    found = float(model.kinematics.values(model.deformation.path)[T - 1, 0])
    assert found == pytest.approx(truth, abs=0.07 * abs(truth))  # the fit found the joint's value
    # Without the joint model (the free per-control-point deformation) the same fit pulls the
    # part off its track and the root part's neighbours with it.
    free = _model(names, meshes, joints, rest, T)
    free.hold_part(0)
    free.deformation.kinematics = None
    means = fit(free)
    d = means[T - 1, part == 1] - o
    if kind == "revolute":
        off = float(((d @ a) - (rest_d @ a)).abs().max())
    else:
        shift = means[T - 1, part == 1] - g[part == 1]
        off = float((shift - (shift @ a)[:, None] * a).norm(dim=1).max())
    assert off > 1e-3


def _schedule():
    from flowgen.config import ScheduleConfig

    return ScheduleConfig()


def _lamp():
    """The suite's lamp: a base, a lower arm up from the shoulder, an upper arm out from the
    elbow, a head at its end; three joints about y."""
    base = _box((0.16, 0.16, 0.03), (0.0, 0.0, 0.015))
    lower = _box((0.06, 0.016, 0.25), (-0.02, 0.0, 0.155))
    upper = _box((0.3, 0.016, 0.04), (0.1, 0.0, 0.28))
    head = _box((0.14, 0.11, 0.11), (0.32, 0.0, 0.22))  # a shade, out and down from its joint
    frames = [np.eye(4) for _ in range(4)]
    for f, xyz in zip(frames[1:], [(0.0, 0.0, 0.03), (0.0, 0.0, 0.28), (0.25, 0.0, 0.28)], strict=True):
        f[:3, 3] = xyz
    joints = [
        (p, p + 1, frames[p + 1][:3, 3], (0.0, 1.0, 0.0), "revolute", name)
        for p, name in enumerate(("shoulder", "elbow", "head"))
    ]
    return ["base", "lower", "upper", "head"], [base, lower, upper, head], joints, frames


def test_a_chains_pair_search_finds_the_elbow_as_the_elbow():
    """The elbow and the head turn together (the suite's lamps), the shoulder stays: searched one
    joint at a time, the shoulder (with the others at rest) is turned to bring the head towards
    its points; searched over pairs, the elbow's turn is found as the elbow's."""
    names, meshes, joints, rest = _lamp()
    T = 6
    model = _model(names, meshes, joints, rest, T)
    parts = model.parts[0]
    truth = np.zeros((T, 3))  # the suite's lamps: the elbow and the head turned together
    truth[:, 1] = np.deg2rad(np.linspace(0.0, -30.0, T))
    truth[:, 2] = np.deg2rad(np.linspace(0.0, -30.0, T))
    motions = parts.motions(truth)  # [T, P, 4, 4]
    g = torch.Generator().manual_seed(0)
    area = np.array([m.area for m in parts.meshes])
    count = (1500 * area / area.sum()).astype(int)  # depth pixels go by area
    observed = []
    for t in range(T):
        pts = [
            trimesh.sample.sample_surface(parts.meshes[p], count[p], seed=p)[0] @ motions[t, p, :3, :3].T
            + motions[t, p, :3, 3]
            for p in range(parts.count)
        ]
        x = torch.as_tensor(np.concatenate(pts), dtype=torch.float32)
        observed.append(x + 0.001 * torch.randn(x.shape, generator=g))  # 1 mm depth noise
    M = max(len(x) for x in observed)
    obs = torch.zeros(T, 1, M, 3)
    valid = torch.zeros(T, 1, M, dtype=torch.bool)
    for t, x in enumerate(observed):
        obs[t, 0, : len(x)], valid[t, 0, : len(x)] = x, True
    found = initialise_joints(model, obs, valid, root_tolerance=0.005, samples=250)
    # One joint at a time this finds the shoulder at -20 deg and the elbow at -4 (truth 0, -30).
    # The head, a shade about as deep as it is wide, is found to 6 deg (the pair grid's 4 deg
    # plus its one-joint refinement); the shoulder to 1 deg. The elbow and the head turn together,
    # and 250 samples of each leave how the turn splits between them uncertain by 2-3 deg: the
    # grid's 2 deg steps landed the elbow 2.0 deg off, the quarter-degree refinement 2.5.
    for j, name, tol in ((0, "shoulder", 1.0), (1, "elbow", 3.0), (2, "head", 6.1)):
        np.testing.assert_allclose(found[(0, name)], np.rad2deg(truth[:, j]), atol=tol, err_msg=name)
    # The values went into the joint model, and the base (still in the points) is held.
    values = model.kinematics.values(model.deformation.path).detach().numpy()
    np.testing.assert_allclose(np.rad2deg(values), found_array(found), atol=1e-3)
    assert model.kinematics.held_objects() == [0]


def found_array(found: dict) -> np.ndarray:
    return np.stack([found[(0, name)] for name in ("shoulder", "elbow", "head")], axis=1)


def test_quaternions_read_off_matrices_round_trip_for_any_rotation():
    g = torch.Generator().manual_seed(1)
    omega = torch.randn(200, 3, generator=g)
    omega = omega / omega.norm(dim=1, keepdim=True) * torch.rand(200, 1, generator=g) * (np.pi - 1e-3)
    omega[0] = 0.0
    omega[1] = torch.tensor([np.pi - 1e-4, 0.0, 0.0])  # near a half turn: w ~ 0
    from flowgen.rotations import axis_angle_to_quat

    R = quat_to_matrix(axis_angle_to_quat(omega))
    q = matrix_to_quat(R)
    torch.testing.assert_close(quat_to_matrix(q), R, atol=1e-5, rtol=0)
    torch.testing.assert_close(quat_to_axis_angle(q), omega, atol=2e-4, rtol=0)


def test_the_joint_values_and_the_held_root_travel_in_the_checkpoint():
    names, meshes, joints, rest = _door()
    T = 4
    model = _model(names, meshes, joints, rest, T)
    model.hold_part(0)
    model.kinematics.set_values(0, np.deg2rad([[0.0], [10.0], [20.0], [30.0]]))
    model.mark_placed({0})
    state = model.state_tensors()
    again = _model(names, meshes, joints, rest, T)
    again.load_state_tensors(state)
    with torch.no_grad():
        torch.testing.assert_close(
            again.deformed_gaussians(torch.arange(T))[0], model.deformed_gaussians(torch.arange(T))[0]
        )
        door = again.kinematics.values(again.deformation.path)[:, 0]
    assert np.rad2deg(float(door[-1])) == pytest.approx(30.0, abs=1e-4)
    assert again.kinematics.held_objects() == [0] and again.kinematics.placed == {0}
    # The split leaves the placed values alone; an unplaced object's later frames take the split frame's.
    again.split(1)
    assert np.rad2deg(float(again.kinematics.values(again.deformation.path)[-1, 0])) == pytest.approx(
        30.0, abs=1e-4
    )
    fresh = _model(names, meshes, joints, rest, T)
    fresh.kinematics.set_values(0, np.deg2rad([[0.0], [10.0], [20.0], [30.0]]))
    fresh.split(1)
    after = np.rad2deg(fresh.kinematics.values(fresh.deformation.path)[:, 0].detach().numpy())
    np.testing.assert_allclose(after, [0.0, 10.0, 10.0, 10.0], atol=1e-4)
