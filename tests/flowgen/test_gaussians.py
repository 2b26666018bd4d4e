"""Gaussians from meshes: on the surface, coloured, flat along the normal; save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from core.errors import ContractError
from flowgen.gaussians import Gaussians, gaussians_from_meshes, normal_to_quat
from flowgen.rotations import quat_to_matrix


def _meshes():
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    box.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(box.vertices), 1))
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.03)
    ball.visual.vertex_colors = np.tile([0, 0, 255, 255], (len(ball.vertices), 1))
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[0, :3, 3] = [0.5, 0, 0.05]
    poses[1, :3, :3] = trimesh.transformations.rotation_matrix(1.0, [1, 1, 0])[:3, :3]
    poses[1, :3, 3] = [0.3, 0.2, 0.03]
    return [box, ball], poses


def test_gaussians_lie_on_posed_surfaces_with_colours_and_normals():
    meshes, poses = _meshes()
    g = gaussians_from_meshes(meshes, poses, count_per_object=[800, 300], seed=0)
    assert g.num_gaussians == 1100
    assert torch.equal(torch.bincount(g.object_index), torch.tensor([800, 300]))
    box = g.means[g.object_index == 0].double() - torch.tensor([0.5, 0, 0.05])
    assert (box.abs().amax(1) - 0.05).abs().max() < 1e-6  # on the box surface
    ball = g.means[g.object_index == 1].double() - torch.tensor([0.3, 0.2, 0.03])
    assert (ball.norm(dim=1) - 0.03).abs().max() < 1.5e-3  # icosphere facets vs sphere
    torch.testing.assert_close(g.colors[g.object_index == 0], torch.tensor([[1.0, 0, 0]]).expand(800, 3))
    torch.testing.assert_close(g.colors[g.object_index == 1], torch.tensor([[0, 0, 1.0]]).expand(300, 3))
    # local z axis = outward normal; flat along it
    z = quat_to_matrix(g.quats)[..., 2]
    outward = torch.where(box.abs() >= box.abs().amax(1, keepdim=True) - 1e-6, box.sign(), 0.0)
    torch.testing.assert_close(z[g.object_index == 0].double(), outward, atol=1e-5, rtol=0)
    s = g.scales
    torch.testing.assert_close(s[:, 2], 0.1 * s[:, 0])
    torch.testing.assert_close(s[:, 0], s[:, 1])
    # spacing ~ sqrt(area / n): 0.06 m^2 over 800 samples -> ~9 mm, within a factor 2
    assert 0.004 < float(s[g.object_index == 0, 0].median()) < 0.018
    torch.testing.assert_close(g.opacities, torch.full((1100,), 0.8))


def test_normal_to_quat_handles_both_poles():
    n = np.array([[0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0], [0, 0.6, 0.8]])
    R = quat_to_matrix(torch.as_tensor(normal_to_quat(n)))
    torch.testing.assert_close(R[:, :, 2], torch.as_tensor(n), atol=1e-12, rtol=0)


def test_save_load_round_trip(tmp_path):
    meshes, poses = _meshes()
    g = gaussians_from_meshes(meshes, poses, count_per_object=50, seed=1)
    path = g.save(tmp_path / "g.safetensors")
    h = Gaussians.load(path)
    for name in ("means", "quats", "log_scales", "opacity_logits", "colors", "object_index"):
        assert torch.equal(getattr(g, name), getattr(h, name)), name
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    with pytest.raises(ContractError, match="bad.safetensors: file: cannot read"):
        Gaussians.load(tmp_path / "bad.safetensors")


def test_bad_inputs():
    meshes, poses = _meshes()
    with pytest.raises(ValueError, match=r"T_world_obj must be \[2, 4, 4\], got \[1, 4, 4\]"):
        gaussians_from_meshes(meshes, poses[:1])
    with pytest.raises(ValueError, match="count_per_object"):
        gaussians_from_meshes(meshes, poses, count_per_object=[10])
    with pytest.raises(ContractError, match=r"quats: has shape \[3, 3\], expected \[2, 4\]"):
        Gaussians(
            torch.zeros(2, 3),
            torch.zeros(3, 3),
            torch.zeros(2, 3),
            torch.zeros(2),
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
        )
