"""Part-aware control points: per-part sampling, binding, rigidity weights, joint attachment, a hinge fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from core.scene import Camera
from flowgen.control_points import ControlPointConfig, control_points_from_mesh, split_by_part
from flowgen.gaussians import gaussians_from_meshes
from flowgen.parts import parts_from_meshes
from flowgen.prior import PriorContext
from flowgen.regularizers import knn_edges, part_edge_weights
from flowgen.scene4d import Scene4D
from flowgen.video_fit import VideoFitConfig, VideoFitPrior

HINGE = np.array([-0.1, 0.0, 0.02])  # object frame: the lid turns about y through this point
FRAMES = 9


def hinged() -> tuple[list[trimesh.Trimesh], trimesh.Trimesh, np.ndarray]:
    """A 'laptop': a flat base and an upright lid hinged along the base's back edge (y axis)."""
    base = trimesh.creation.box(extents=(0.2, 0.12, 0.02))
    base.apply_translation((0.0, 0.0, 0.01))
    lid = trimesh.creation.box(extents=(0.02, 0.12, 0.14))
    lid.apply_translation((-0.09, 0.0, 0.02 + 0.07))
    pose = np.eye(4)
    pose[:3, 3] = (0.05, -0.02, 0.0)
    return [base, lid], trimesh.util.concatenate([base, lid]), pose


def hinged_scene(part_aware: bool = True, k: int = 16, gaussians: int = 1500) -> Scene4D:
    links, mesh, pose = hinged()
    parts = parts_from_meshes(["base", "lid"], links, pose, joints=[(0, 1, HINGE, np.array([0.0, 1.0, 0.0]))])
    cps = control_points_from_mesh(
        mesh, pose, ControlPointConfig(num_control_points=k, target_near_surface=1500)
    )
    if part_aware:
        cps = split_by_part(cps, parts.label, k)
    g = gaussians_from_meshes([mesh], pose[None], gaussians, seed=0)
    return Scene4D([mesh], pose[None], [True], g, [cps], FRAMES, 0.0, torch.device("cpu"),
                   parts=[parts if part_aware else None])  # fmt: skip


def turn_lid(model: Scene4D, angle: float, hinge_world: np.ndarray, axis=(0.0, 1.0, 0.0)) -> None:
    """Set the lid's control points to turn by ``angle`` (rad, reached at the last frame) about an axis."""
    d = model.deformation
    lid = (model.control_part == 1).numpy()
    omega = torch.zeros(FRAMES, d.num_control_points, 3)
    trans = torch.zeros_like(omega)
    p = d.positions.numpy().astype(np.float64)
    for t in range(1, FRAMES):
        a = angle * t / (FRAMES - 1)
        R = trimesh.transformations.rotation_matrix(a, axis)[:3, :3]
        moved = (p - hinge_world) @ R.T + hinge_world
        omega[t, lid] = torch.tensor(np.asarray(axis) * a, dtype=torch.float32)
        trans[t, lid] = torch.tensor(moved - p, dtype=torch.float32)[lid]
    with torch.no_grad():
        d.set_frames(omega, trans)


def test_split_by_part_keeps_every_control_point_inside_its_part():
    links, mesh, pose = hinged()
    parts = parts_from_meshes(["base", "lid"], links, pose)
    cps = control_points_from_mesh(
        mesh, pose, ControlPointConfig(num_control_points=12, target_near_surface=1500)
    )
    split = split_by_part(cps, parts.label, 12)
    assert split.part is not None and set(split.part.tolist()) == {0, 1}
    local = (split.positions - pose[:3, 3]) @ pose[:3, :3]
    for i, m in enumerate(links):
        lo, hi = m.bounds  # the links are axis-aligned boxes
        q = local[split.part == i]
        inside = ((q >= lo - 1e-3) & (q <= hi + 1e-3)).all(axis=1)
        assert inside.mean() >= 0.8, f"part {i}: {inside.mean():.2f} of its control points inside it"
    # shared by volume (base 480 cm^3, lid 336 cm^3), each part at least 4
    assert (split.part == 0).sum() > (split.part == 1).sum() >= 4


def test_hinge_straddling_edges_get_the_cross_part_weight():
    model = hinged_scene()
    cp = model.control_part
    edges = knn_edges(model.deformation.positions, model.deformation.object_index)
    w = part_edge_weights(edges, cp, cross_part_weight=0.1)
    cross = cp[edges[:, 0]] != cp[edges[:, 1]]
    assert bool(cross.any()) and bool((~cross).any())
    assert torch.allclose(w[cross], torch.tensor(0.1)) and torch.all(w[~cross] == 1.0)
    # the model's own graph: every within-part kNN edge weighs 1, every hinge-straddling one 0
    own = cp[model.edges[:, 0]] != cp[model.edges[:, 1]]
    assert torch.all(model.edge_weights[own] == 0.0) and torch.all(model.edge_weights[~own] == 1.0)
    with pytest.raises(ValueError, match="cross_part_weight is 2"):
        part_edge_weights(edges, cp, 2.0)


def test_points_bind_only_to_their_own_part():
    model = hinged_scene()
    b = model.gaussian_binding
    point_part = model._point_parts(model.gaussians.means, model.gaussians.object_index)
    cp_of_neighbor = model.control_part[b.neighbors]
    assert torch.all((cp_of_neighbor == point_part[:, None]) | ~b.valid)
    assert bool(b.valid[:, 0].all())
    # without parts, Gaussians near the hinge blend control points of both sides
    plain = hinged_scene(part_aware=False)
    parts = parts_from_meshes(["base", "lid"], *hinged()[::2])
    cp_part = torch.as_tensor(parts.label(plain.deformation.positions.numpy()))
    mixed = (
        cp_part[plain.gaussian_binding.neighbors] != cp_part[plain.gaussian_binding.neighbors[:, :1]]
    ).any(1)
    assert int(mixed.sum()) > 20


def test_joint_attachment_is_zero_for_a_turn_about_the_hinge_and_not_about_another_axis():
    model = hinged_scene()
    hinge_world = HINGE + model.poses[0][:3, 3]
    turn_lid(model, math.radians(60), hinge_world)
    regs = {k: float(v.detach()) for k, v in model.regularisers().items()}
    assert regs["joint"] < 1e-10
    assert regs["spatial"] < 1e-8  # within-part rigid, cross-part edges weigh 0
    turn_lid(model, math.radians(60), hinge_world + np.array([0.0, 0.0, 0.05]))  # axis 5 cm too high
    # each anchor's parent and child copies part by the chord 2 sin(a/2) x 5 cm, a = 60 deg t / 8
    angles = np.radians(60) * np.arange(FRAMES) / (FRAMES - 1)
    expected = np.mean((2 * np.sin(angles / 2) * 0.05) ** 2)
    assert float(model.regularisers()["joint"].detach()) == pytest.approx(expected, rel=1e-3)


def _lid_angle(model: Scene4D, frame: int) -> float:
    """Degrees the lid's Gaussians turned from rest to ``frame`` (Kabsch)."""
    from planner.rigid import kabsch

    with torch.no_grad():
        means, _ = model.deformed_gaussians(torch.tensor([0, frame]))
    lid = (model._point_parts(model.gaussians.means, model.gaussians.object_index) == 1).numpy()
    T = kabsch(means[0, lid].numpy(), means[1, lid].numpy())
    return math.degrees(math.acos(np.clip((np.trace(T[:3, :3]) - 1) / 2, -1, 1)))


@pytest.mark.slow
def test_a_small_rgbd_hinge_fit_recovers_the_lid_angle():
    """Render a 40 deg lid turn with the part-aware model itself, then fit it from rest."""
    torch.manual_seed(0)
    W, H = 64, 48
    camera = Camera.from_look_at((0.45, -0.35, 0.3), (0.0, 0.0, 0.06), (0, 0, 1), 40.0, W, H)
    truth = hinged_scene()
    turn_lid(truth, math.radians(-40), HINGE + truth.poses[0][:3, 3])  # closing: the top goes +x
    with torch.no_grad():
        r = truth.render_frames(torch.arange(FRAMES), camera, (0.0, 0.0, 0.0))
    video = (r.rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    masks = (r.object_masks[..., 0] > 0.5).long().numpy()
    depth = np.where(masks > 0, r.depth[..., 0].numpy(), 0.0)
    prior = VideoFitPrior(video, masks, 1, VideoFitConfig(), depth=depth)
    prior.prepare(PriorContext(first_frame=r.rgb[0], prompt="", num_frames=FRAMES, height=H, width=W))

    model = hinged_scene()
    d = model.deformation
    opt = torch.optim.Adam([d.rot_nodes, d.trans_nodes], lr=0.02, eps=1e-15)
    g = torch.Generator().manual_seed(0)
    for it in range(150):
        frames = torch.randint(1, FRAMES, (1, 3), generator=g)
        out = model.render_frames(frames.flatten(), camera, (0.0, 0.0, 0.0))
        loss = prior.loss(out.rgb[None], progress=it / 150, generator=g, masks=out.object_masks[None],
                          frame_indices=frames, depth=out.depth[None]).loss  # fmt: skip
        reg = model.regularisers()
        loss = loss + 300.0 * reg["spatial"] + 1.6 * reg["temporal"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _lid_angle(truth, FRAMES - 1) == pytest.approx(40.0, abs=0.5)
    assert _lid_angle(model, FRAMES - 1) == pytest.approx(40.0, abs=6.0)
