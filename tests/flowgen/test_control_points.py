"""Control points: the |S| ~ 7,500 voxel search on four shapes, inside test, FPS + K-means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from flowgen.control_points import (
    ControlPointConfig,
    control_points_from_mesh,
    farthest_point_sampling,
    near_surface_voxels,
    point_triangle_distance,
    winding_numbers,
)


def _banana() -> trimesh.Trimesh:
    """A capsule bent along an arc: curved, elongated, concave on one side."""
    m = trimesh.creation.capsule(height=0.14, radius=0.018, count=[24, 24])
    v = m.vertices.copy()
    bend = 0.15  # radius of the arc, metres
    ang, r = v[:, 2] / bend, bend + v[:, 0]
    return trimesh.Trimesh(np.stack([r * np.sin(ang), v[:, 1], bend - r * np.cos(ang)], 1), m.faces)


def _cropped_sphere() -> trimesh.Trimesh:
    """An open partial scan: a sphere of radius 5 cm with its bottom cap (z < -3 cm) missing."""
    m = trimesh.creation.icosphere(subdivisions=3, radius=0.05)
    keep = m.triangles_center[:, 2] > -0.03
    return trimesh.Trimesh(m.vertices, m.faces[keep])


SHAPES = {
    "banana": (_banana, None),
    "cube": (lambda: trimesh.creation.box(extents=(0.08, 0.08, 0.08)), 0.08**3),
    "thin_plate": (lambda: trimesh.creation.box(extents=(0.20, 0.15, 0.003)), 0.20 * 0.15 * 0.003),
    # volume of the sphere above the cut: the hole must not empty the inside
    "open_cropped": (_cropped_sphere, 4 / 3 * math.pi * 0.05**3 - math.pi * 0.02**2 * 0.13 / 3),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_voxel_search_lands_within_tolerance(name, monkeypatch):
    import flowgen.control_points as C

    steps = []
    measure = C.near_surface_voxels
    monkeypatch.setattr(C, "near_surface_voxels", lambda m, s: steps.append(s) or measure(m, s))
    make, volume = SHAPES[name]
    mesh = make()
    if name == "banana":
        volume = mesh.volume
    assert mesh.is_watertight == (name != "open_cropped")
    pose = trimesh.transformations.rotation_matrix(0.7, [0, 0, 1])
    pose[:3, 3] = [0.5, -0.1, 0.02]
    config = ControlPointConfig(num_control_points=40)
    cp = control_points_from_mesh(mesh, pose, config, seed=0)
    s = cp.voxel_size
    assert abs(len(cp.near_surface) / 7500 - 1) <= 0.05
    # The power law |S| ~ s^-p lands in a few steps (bisection took five or six on a laptop's mesh).
    assert 1 <= len(steps) <= 3 and steps[-1] == s, steps
    # S is exactly the voxel centres within s*sqrt(3)/2 of the surface
    some = np.random.default_rng(0).choice(len(cp.near_surface), 1000, replace=False)
    local = (cp.near_surface[some] - pose[:3, 3]) @ pose[:3, :3]
    dist = _distance(mesh, local)
    assert dist.max() <= s * math.sqrt(3) / 2 + 1e-9
    # I approximates the solid: its voxel volume is the mesh's within a few percent
    assert len(cp.inside) * s**3 == pytest.approx(volume, rel=0.06)
    # control points: K of them, distinct, inside the object's bounding box, scales positive
    assert cp.positions.shape == (40, 3) and len(np.unique(cp.positions, axis=0)) == 40
    lp = (cp.positions - pose[:3, 3]) @ pose[:3, :3]
    assert (lp >= mesh.bounds[0] - s).all() and (lp <= mesh.bounds[1] + s).all()
    assert (cp.scales > 0).all() and cp.scales.max() < mesh.extents.max()


def _distance(mesh, points):
    """Brute force distance of each point to the mesh (all triangles), for checking S."""
    tri = mesh.triangles
    best = np.full(len(points), np.inf)
    for i in range(0, len(tri), 64):
        t = tri[i : i + 64]
        d = point_triangle_distance(np.repeat(points, len(t), 0), np.tile(t, (len(points), 1, 1)))
        best = np.minimum(best, d.reshape(len(points), len(t)).min(axis=1))
    return best


def test_near_surface_set_is_exact_on_a_box():
    box = trimesh.creation.box(extents=(0.05, 0.04, 0.03))
    s = 0.004
    ijk = near_surface_voxels(box, s)
    # brute force over the padded grid
    lo = box.bounds[0]
    n = np.floor(box.extents / s).astype(int) + 4
    grid = np.stack(np.meshgrid(*[np.arange(-2, k - 2) for k in n], indexing="ij"), -1).reshape(-1, 3)
    centres = lo + (grid + 0.5) * s
    half = box.extents / 2
    q = np.abs(centres) - half  # box SDF
    sdf = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)
    expect = grid[np.abs(sdf) <= s * math.sqrt(3) / 2]
    assert {tuple(r) for r in ijk} == {tuple(r) for r in expect}


def test_winding_numbers_closed_and_open():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    q = np.array([[0, 0, 0], [0.5, 0.2, -0.3], [1.5, 0, 0], [0, 3, 0]], dtype=float)
    np.testing.assert_allclose(winding_numbers(sphere.vertices, sphere.faces, q), [1, 1, 0, 0], atol=1e-4)
    upper = sphere.faces[sphere.triangles_center[:, 2] > 0]  # a hemisphere: fully open below
    w = winding_numbers(sphere.vertices, upper, np.array([[0, 0, 0.5], [0, 0, 0.0], [0, 0, -2.0]]))
    assert w[0] > 0.6 and 0.4 < w[1] < 0.6 and abs(w[2]) < 0.1


def test_farthest_point_sampling_spreads_out():
    pts = np.concatenate([np.zeros((50, 3)), np.eye(3), -np.eye(3)])
    idx = farthest_point_sampling(pts, 7, seed=0)
    assert len(set(map(tuple, pts[idx]))) == 7  # the 6 unit points and the origin cluster
    with pytest.raises(ValueError, match="k = 60, expected 1..56"):
        farthest_point_sampling(pts, 60)


def test_too_many_control_points_is_an_error():
    from core.errors import ChordError

    box = trimesh.creation.box(extents=(0.05, 0.05, 0.05))
    config = ControlPointConfig(num_control_points=10**6, target_near_surface=500)
    with pytest.raises(ChordError, match="for num_control_points = 1000000; lower it"):
        control_points_from_mesh(box, np.eye(4), config)


def test_sheet_thinner_than_a_voxel_falls_back_to_near_surface(caplog):
    sheet = trimesh.creation.box(extents=(0.20, 0.15, 0.0005))  # 0.5 mm: s is ~7x thicker
    config = ControlPointConfig(num_control_points=200)  # I holds ~ volume / s^3 ~ 670 < 4 K
    with caplog.at_level("WARNING", logger="flowgen.control_points"):
        cp = control_points_from_mesh(sheet, np.eye(4), config)
    assert abs(len(cp.near_surface) / 7500 - 1) <= 0.05
    assert len(cp.inside) < 4 * 200 and "using inside plus near-surface voxels" in caplog.text
    assert cp.positions.shape == (200, 3)
    # spread over the sheet, within a voxel of its plane
    assert np.abs(cp.positions[:, 2]).max() <= cp.voxel_size
    assert np.ptp(cp.positions[:, 0]) > 0.12 and np.ptp(cp.positions[:, 1]) > 0.08
