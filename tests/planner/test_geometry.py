"""Grasp geometry from the scene's mesh: a one-sided flow gets its far side, carried by the part's track."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from core.errors import ChordError
from core.flow import ObjectFlow
from core.scene import Camera, Pose, Scene, SceneObject
from planner.analysis import analyse_flow
from planner.geometry import flow_geometry, mesh_geometry
from planner.grasp import antipodal_candidates, part_frame_points
from planner.pipeline import PlannerConfig, plan_flow

SIZE = np.array([0.04, 0.05, 0.06])  # m, box extents
CENTRE = np.array([0.5, 0.05, 0.03])  # m, box centre on the table (pose origin)
YAW = 30.0  # degrees, box yaw in the scene
T = 15  # frames


def _motion() -> np.ndarray:
    """[T, 4, 4] world motion: lifted 10 cm while turning 20 degrees about z through the centre."""
    out = np.tile(np.eye(4), (T, 1, 1))
    for t, s in enumerate(np.linspace(0.0, 1.0, T)):
        R = Rotation.from_euler("z", 20.0 * s, degrees=True).as_matrix()
        out[t, :3, :3] = R
        out[t, :3, 3] = CENTRE - R @ CENTRE + [0.0, 0.0, 0.10 * s]
    return out


def _scene_and_flow(tmp_path, rng) -> tuple[Scene, ObjectFlow]:
    mesh = tmp_path / "box.ply"
    trimesh.creation.box(extents=SIZE).export(mesh)
    q = Rotation.from_euler("z", YAW, degrees=True).as_quat()  # xyzw
    pose = Pose(tuple(CENTRE), (q[3], q[0], q[1], q[2]))
    scene = Scene(
        name="box",
        prompt="lift the box",
        objects=(SceneObject("box", pose, mesh=mesh),),
        camera=Camera.from_look_at((1.0, 0.0, 0.6), (0.5, 0.0, 0.05), width=208, height=116),
        frames=T,
        fps=10.0,
    )
    # What one camera above sees: the top face only (z = 0.06), in the box's yawed frame.
    local = np.c_[rng.uniform(-0.5, 0.5, (300, 2)) * SIZE[:2], np.full(300, SIZE[2] / 2)]
    p0 = local @ pose.matrix()[:3, :3].T + CENTRE
    M = _motion()
    pts = np.einsum("tij,nj->tni", M[:, :3, :3], p0) + M[:, None, :3, 3]
    flow = ObjectFlow(
        points=pts.astype(np.float32),
        object_index=np.zeros(300, np.int32),
        times=(np.arange(T) / 10.0).astype(np.float32),
        object_names=("box",),
        fps=10.0,
        prior="video",
        prompt="lift the box",
    )
    return scene, flow


def test_mesh_geometry_completes_a_one_sided_flow(tmp_path):
    scene, flow = _scene_and_flow(tmp_path, np.random.default_rng(0))
    analysis = analyse_flow(flow)
    seen = flow_geometry(analysis)
    full = mesh_geometry(analysis, scene, samples=2000)
    assert seen.source == "flow" and full.source == "mesh"
    # The flow has only the top face; the mesh adds the sides and the bottom at frame 0.
    assert seen.part[0, :, 2].min() > 0.059
    assert full.part[0, :, 2].min() == pytest.approx(0.0, abs=1e-6)
    assert full.part[0, :, 2].max() == pytest.approx(0.06, abs=1e-6)
    assert full.part.shape[1] == 2000 and full.other.shape[1] == 0
    # Every mesh sample follows the flow's motion (the part's fitted track).
    M = _motion()
    expected = full.part[0] @ M[-1, :3, :3].T + M[-1, :3, 3]
    np.testing.assert_allclose(full.part[-1], expected, atol=1e-4)
    # The mesh sits where the scene puts it: inside the yawed box.
    local = (full.part[0] - CENTRE) @ scene.objects[0].pose.matrix()[:3, :3]
    assert (np.abs(local) <= SIZE / 2 + 1e-6).all()

    # A grasp needs two opposite faces: none on the one-sided flow, many across the mesh.
    track0 = analysis.target.track.T_world_part[0]
    rng = np.random.default_rng(0)
    assert antipodal_candidates(part_frame_points(track0, seen.part[0]), rng=rng) == []
    cands = antipodal_candidates(part_frame_points(track0, full.part[0]), rng=rng)
    assert len(cands) > 20
    assert min(c.width for c in cands) == pytest.approx(SIZE[0], abs=0.003)


def test_mesh_samples_far_from_the_flow_are_dropped(tmp_path):
    scene, flow = _scene_and_flow(tmp_path, np.random.default_rng(1))
    near = mesh_geometry(analyse_flow(flow), scene, samples=2000, max_distance=0.01)
    # The bottom and the lower sides lie more than 1 cm from every top-face point.
    assert near.part[0, :, 2].min() > 0.06 - 0.0105
    assert 0 < near.part.shape[1] < 2000


def test_planner_geometry_is_checked(tmp_path):
    scene, flow = _scene_and_flow(tmp_path, np.random.default_rng(2))
    with pytest.raises(ChordError, match="geometry: 'meshes'"):
        plan_flow(flow, scene, PlannerConfig(geometry="meshes"))
    with pytest.raises(ChordError, match="needs the scene"):
        plan_flow(flow, None, PlannerConfig(geometry="mesh"))
