"""Dense flow export: surface samples carried through all frames, written to flow.npz."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from core.flow import ObjectFlow
from flowgen.control_points import ControlPointConfig, control_points_from_mesh
from flowgen.export import export_flow
from flowgen.fenwick import Deformation


def test_export_moves_one_object_rigidly_and_keeps_the_other(tmp_path):
    meshes = [
        trimesh.creation.box(extents=(0.06, 0.04, 0.03)),
        trimesh.creation.icosphere(subdivisions=2, radius=0.025),
    ]
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[0, :3, 3] = [0.5, 0.0, 0.015]
    poses[1, :3, 3] = [0.3, 0.2, 0.025]
    config = ControlPointConfig(num_control_points=12, target_near_surface=800)
    cps = [control_points_from_mesh(m, T, config) for m, T in zip(meshes, poses, strict=True)]
    T = 5
    d = Deformation.from_control_points(cps, T)
    lift = torch.zeros(T, d.num_control_points, 3)
    lift[:, d.object_index == 0, 2] = torch.linspace(0, 0.1, T)[:, None]  # box rises 10 cm
    d.set_frames(torch.zeros_like(lift), lift)
    flow = export_flow(
        meshes,
        poses,
        d,
        ["box", "ball"],
        fps=8.0,
        prior="ground_truth",
        points_per_object=[300, 200],
        prompt="lift the box",
        camera={"width": 64},
        provenance={"test": True},
        seed=0,
    )
    assert flow.points.shape == (T, 500, 3) and flow.points.dtype == np.float32
    np.testing.assert_allclose(flow.times, np.arange(T) / 8.0)
    box, ball = flow.object_points("box"), flow.object_points("ball")
    assert box.shape == (T, 300, 3) and ball.shape == (T, 200, 3)
    np.testing.assert_allclose(box[-1] - box[0], np.tile([0, 0, 0.1], (300, 1)), atol=1e-6)
    np.testing.assert_allclose(ball, np.broadcast_to(ball[0], ball.shape), atol=0)
    assert np.abs(np.abs(box[0] - [0.5, 0, 0.015]) - [0.03, 0.02, 0.015]).min(1).max() < 1e-6
    path = flow.save(tmp_path / "flow.npz")
    back = ObjectFlow.load(path)
    assert back.prompt == "lift the box" and back.camera == {"width": 64}
    assert back.content_hash() == flow.content_hash()
