"""Dense flow export: surface samples carried through all frames, written to flow.npz."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from core.flow import ObjectFlow
from core.mesh import allocate_part_samples
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


def test_allocation_gives_every_part_its_floor_and_the_rest_by_area():
    rng = np.random.default_rng(0)
    n = 2048
    pool = rng.permutation(np.repeat([0, 1, 2], [29000, 3000, 768]))  # 88.5%, 9.2%, 2.3% of 16 n
    keep = allocate_part_samples(pool, n, 256)
    counts = np.bincount(pool[keep], minlength=3)
    assert len(keep) == n and len(np.unique(keep)) == n and np.all(np.diff(keep) > 0)
    assert counts.min() >= 256 and counts[2] < 300  # 47 by area
    # The rest, 2048 - 3 x 256 = 1280, in proportion to what each part has beyond its floor.
    beyond = np.array([29000, 3000, 768]) - 256
    np.testing.assert_allclose(counts - 256, 1280 * beyond / beyond.sum(), atol=1)
    # Each part's samples are its first in the pool's order (uniform by area within the part).
    for q in range(3):
        np.testing.assert_array_equal(keep[pool[keep] == q], np.flatnonzero(pool == q)[: counts[q]])
    # A part with fewer samples than the floor gives all it has; floors that do not fit share n.
    few = np.repeat([0, 1], [4000, 50])
    assert np.bincount(few[allocate_part_samples(few, 300, 256)]).tolist() == [250, 50]
    four = np.repeat([0, 1, 2, 3], 100)
    assert np.bincount(four[allocate_part_samples(four, 200, 256)]).tolist() == [50, 50, 50, 50]
    # No floor: the area shares.
    assert np.bincount(pool[allocate_part_samples(pool, n, 0)]).tolist()[2] in (47, 48)
    with pytest.raises(ValueError, match="pool of 10 samples for 20 points"):
        allocate_part_samples(np.zeros(10, int), 20, 4)
    with pytest.raises(ValueError, match="floor is -1, expected an integer >= 0"):
        allocate_part_samples(np.zeros(10, int), 5, -1)
    with pytest.raises(ValueError, match="n is 0, expected an integer >= 1"):
        allocate_part_samples(np.zeros(10, int), 0, 4)
    with pytest.raises(ValueError, match=r"pool_part is float64 \[10\], expected \[m\] integer labels"):
        allocate_part_samples(np.full(10, np.nan), 5, 4)


def test_flow_config_refuses_a_negative_part_floor_and_keeps_it_out_of_the_optimisation_hash():
    from flowgen.config import FlowConfig

    with pytest.raises(
        ValueError, match="FlowConfig.flow_min_points_per_part is -1, expected an integer >= 0"
    ):
        FlowConfig(flow_min_points_per_part=-1)
    # Only the export changes: a finished run re-exports with another floor under --resume.
    assert FlowConfig(flow_min_points_per_part=0).optimisation_hash() == FlowConfig().optimisation_hash()
    assert FlowConfig(flow_points_per_object=1000).optimisation_hash() != FlowConfig().optimisation_hash()


def test_export_floor_samples_a_small_part_where_it_is_and_moves_it_with_its_control_points():
    # A 20 x 10 x 2 cm plate whose last 5 mm (x > 0.095, with its end face) is a part of its own: 6% of its area.
    mesh = trimesh.creation.box(extents=(0.2, 0.1, 0.02))
    pose = np.eye(4)[None]
    strip = 0.095

    def part_of(points, obj):
        return (points[:, 0] > strip).astype(np.int64)

    positions = torch.tensor([[-0.05, 0.0, 0.0], [0.05, 0.0, 0.0], [0.098, 0.0, 0.0], [0.098, 0.03, 0.0]])
    cp_object = torch.zeros(4, dtype=torch.long)
    control_part = torch.tensor([0, 0, 1, 1])
    T = 3
    d = Deformation(positions, cp_object, torch.full((4,), 0.02), T)
    shift = torch.zeros(T, 4, 3)
    shift[:, 2:, 2] = torch.linspace(0, 0.05, T)[:, None]  # the strip rises 5 cm, the plate stays
    d.set_frames(torch.zeros_like(shift), shift)
    args = dict(
        fps=8.0, prior="ground_truth", points_per_object=512, part_of=part_of, control_part=control_part
    )
    by_area = export_flow([mesh], pose, d, ["plate"], **args)
    floored = export_flow([mesh], pose, d, ["plate"], min_points_per_part=128, **args)
    for flow in (by_area, floored):
        on_strip = flow.points[0, :, 0] > strip
        rise = flow.points[-1, :, 2] - flow.points[0, :, 2]
        np.testing.assert_allclose(rise[on_strip], 0.05, atol=1e-6)
        np.testing.assert_allclose(rise[~on_strip], 0.0, atol=1e-6)
        assert flow.num_points == 512
    assert 16 <= (by_area.points[0, :, 0] > strip).sum() <= 56  # 6.2% of the area: ~32
    assert 128 <= (floored.points[0, :, 0] > strip).sum() <= 128 + 32  # the floor + 6% of the rest
    with pytest.raises(ValueError, match="min_points_per_part is -1"):
        export_flow([mesh], pose, d, ["plate"], min_points_per_part=-1, **args)


def test_a_floor_leaves_an_object_of_one_part_sampled_as_without_it():
    mesh = trimesh.creation.box(extents=(0.06, 0.04, 0.03))
    d = Deformation(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), torch.full((1,), 0.02), 2)
    args = dict(
        fps=8.0, prior="ground_truth", points_per_object=200, control_part=torch.zeros(1, dtype=torch.long)
    )
    one_part = dict(part_of=lambda p, o: np.zeros(len(p), np.int64))
    a = export_flow([mesh], np.eye(4)[None], d, ["box"], **args, **one_part)
    b = export_flow([mesh], np.eye(4)[None], d, ["box"], **args, **one_part, min_points_per_part=64)
    np.testing.assert_array_equal(a.points, b.points)
