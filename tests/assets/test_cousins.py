"""Digital cousins match their measurements within 1 mm, measured on the written meshes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from assets.urdf import write_asset
from core.cousin_params import (
    BananaParams,
    BoxParams,
    CylinderParams,
    LampParams,
    LaptopParams,
    params_from_dict,
    params_to_dict,
)
from core.cousins import build_cousin
from core.errors import ChordError
from core.mesh import load_mesh

MM = 1e-3


def _written(params, tmp_path, name=None):
    files = write_asset(build_cousin(params, name), tmp_path / (name or "obj"))
    return files, load_mesh(files.mesh)


def _principal_extent(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Extent of ``points`` along their principal axis, and that axis."""
    c = points - points.mean(0)
    axis = np.linalg.svd(c, full_matrices=False)[2][0]
    proj = c @ axis
    return float(proj.max() - proj.min()), axis


def _circle_radius(xy: np.ndarray) -> float:
    """Least-squares (Kasa) circle fit."""
    A = np.column_stack([2 * xy, np.ones(len(xy))])
    b = (xy**2).sum(1)
    cx, cy, c = np.linalg.lstsq(A, b, rcond=None)[0]
    return math.sqrt(c + cx * cx + cy * cy)


@pytest.mark.parametrize(
    ("length", "curvature", "thickness"), [(0.19, 6.0, 0.036), (0.22, 4.0, 0.04), (0.15, 0.0, 0.03)]
)
def test_banana_matches_length_thickness_and_curvature(tmp_path, length, curvature, thickness):
    _files, mesh = _written(BananaParams(length=length, curvature=curvature, thickness=thickness), tmp_path)
    v = mesh.vertices
    assert mesh.is_watertight
    assert abs(np.ptp(v[:, 0]) - length) < MM
    assert abs(np.ptp(v[:, 2]) - thickness) < MM
    assert abs(v[:, 2].min()) < 1e-9  # lies on the table
    # Curvature of the centreline, from the top ridge: in each slice across x the highest vertex
    # sits right above the centreline.
    xs = np.linspace(-0.3 * length, 0.3 * length, 25)
    ridge = []
    for x in xs:
        sl = v[np.abs(v[:, 0] - x) < 0.004]
        ridge.append(sl[np.argmax(sl[:, 2]), :2])
    ridge = np.array(ridge)
    if curvature == 0:
        assert np.ptp(ridge[:, 1]) < MM
    else:
        radius = _circle_radius(ridge)
        # The bend (sagitta) over the banana's length is what a ruler sees: within 1 mm.
        sag_measured = length**2 / (8 * radius)
        sag_wanted = length**2 / (8 / curvature)
        assert abs(sag_measured - sag_wanted) < MM, (radius, 1 / curvature)


def test_lamp_links_match_measurements(tmp_path):
    p = LampParams(base_radius=0.075, base_height=0.025, lower_arm_length=0.31, upper_arm_length=0.27,
                   arm_radius=0.009, head_length=0.11, head_radius=0.05)  # fmt: skip
    files, whole = _written(p, tmp_path, "lamp")
    assert whole.is_watertight
    base = load_mesh(files.link_meshes["base"]).vertices
    np.testing.assert_allclose(np.ptp(base, axis=0), [0.15, 0.15, 0.025], atol=MM)
    for link, length in (("lower_arm", 0.31), ("upper_arm", 0.27)):
        ext, _ = _principal_extent(load_mesh(files.link_meshes[link]).vertices)
        assert abs(ext - length) < MM, link
    head = load_mesh(files.link_meshes["head"]).vertices
    rec = json.loads(files.record.read_text())
    T_head = np.array(next(lk["T_obj_link"] for lk in rec["links"] if lk["name"] == "head"))
    local = (head - T_head[:3, 3]) @ T_head[:3, :3]  # head frame: the shade opens along +z
    assert abs(np.ptp(local[:, 2]) - 0.11) < MM
    assert abs(np.linalg.norm(local[:, :2], axis=1).max() - 0.05) < MM
    # Joint origins are one arm length apart.
    origins = {j["name"]: np.array(j["origin"]) for j in rec["joints"]}
    assert abs(np.linalg.norm(origins["elbow"][:3, 3]) - 0.31) < MM
    assert abs(np.linalg.norm(origins["head"][:3, 3]) - 0.27) < MM
    assert abs(origins["shoulder"][2, 3] - 0.025) < MM
    limits = {j["name"]: j["limits_deg_absolute"] for j in rec["joints"]}
    np.testing.assert_allclose(limits["head"], p.head_limits_deg, atol=1e-9)


@pytest.mark.parametrize("opening", [100.0, 60.0])
def test_laptop_matches_measurements_and_opening_angle(tmp_path, opening):
    p = LaptopParams(width=0.3, depth=0.21, base_thickness=0.018, lid_thickness=0.006, opening_deg=opening)
    files, whole = _written(p, tmp_path, "laptop")
    assert whole.is_watertight  # base and lid fused into one closed surface
    parts = [load_mesh(files.link_meshes[k]) for k in ("base", "lid")]
    assert abs(whole.volume - sum(m.volume for m in parts)) < 0.05 * whole.volume
    base = load_mesh(files.link_meshes["base"]).vertices
    np.testing.assert_allclose(np.ptp(base, axis=0), [0.21, 0.3, 0.018], atol=MM)
    lid = load_mesh(files.link_meshes["lid"]).vertices
    assert abs(np.ptp(lid[:, 1]) - 0.3) < MM
    ext, axis = _principal_extent(lid[:, [0, 2]])
    assert abs(ext - 0.21) < MM
    hinge = np.array([-0.105, 0.018])
    direction = lid[:, [0, 2]].mean(0) - hinge
    axis = axis if axis @ direction > 0 else -axis
    angle = math.degrees(math.atan2(axis[1], axis[0]))
    assert abs(angle - opening) < 0.2  # 0.2 deg = 0.7 mm at the lid's edge
    thickness = np.ptp(lid[:, [0, 2]] @ np.array([-axis[1], axis[0]]))
    assert abs(thickness - 0.006) < MM


def test_box_and_cylinder(tmp_path):
    _, box = _written(BoxParams(size=(0.2, 0.13, 0.035)), tmp_path, "book")
    np.testing.assert_allclose(np.ptp(box.vertices, axis=0), [0.2, 0.13, 0.035], atol=MM)
    _, cyl = _written(CylinderParams(radius=0.041, height=0.095), tmp_path, "mug")
    np.testing.assert_allclose(np.ptp(cyl.vertices, axis=0), [0.082, 0.082, 0.095], atol=MM)
    assert abs(cyl.vertices[:, 2].min()) < 1e-9


def test_vertex_colours_written(tmp_path):
    _files, mesh = _written(BananaParams(color=(0.9, 0.8, 0.1)), tmp_path, "banana")
    rgb = mesh.visual.vertex_colors[:, :3] / 255.0
    middle = np.abs(mesh.vertices[:, 0]) < 0.02
    np.testing.assert_allclose(rgb[middle].mean(0), [0.9, 0.8, 0.1], atol=0.01)


def test_params_round_trip_through_dict():
    p = LampParams(head_deg=20.0, head_limits_deg=(-10.0, 90.0))
    d = params_to_dict(p)
    assert d["kind"] == "lamp" and d["head_limits_deg"] == [-10.0, 90.0]
    assert params_from_dict(d) == p


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (BananaParams(length=-0.19), "length is -0.19 m, expected a positive length"),
        (BananaParams(thickness=0.0), "thickness is 0.0 m"),
        (BananaParams(length=float("nan")), "length is nan"),
        (BananaParams(length=190.0), "length is 190.0 m, expected 1 mm to 3 m"),
        (BananaParams(curvature=30.0), "curvature 30 1/m is too strong"),
        (LampParams(head_limits_deg=(120.0, -45.0)), "head_limits_deg is [120, -45]: limits reversed"),
        (LampParams(elbow_deg=170.0), "elbow_deg is 170 deg, outside elbow_limits_deg [0, 160]"),
        (LampParams(friction=-1.0), "friction is -1.0"),
        (LaptopParams(lid_limits_deg=(135.0, 0.0)), "lid_limits_deg is [135, 0]: limits reversed"),
        (LaptopParams(opening_deg=150.0), "opening_deg is 150 deg"),
        (BoxParams(size=(0.1, -0.2, 0.1)), "size[1] is -0.2 m"),
        (CylinderParams(radius=0.04, density=0.0), "density is 0.0"),
    ],
)
def test_bad_measurements_name_the_value(params, message):
    with pytest.raises(ChordError) as e:
        build_cousin(params)
    assert message in str(e.value)


def test_unknown_kind_and_parameter():
    with pytest.raises(ChordError, match="cousin kind 'teapot' is unknown"):
        params_from_dict({"kind": "teapot"})
    with pytest.raises(ChordError, match="unknown parameter 'lenght'"):
        params_from_dict({"kind": "banana", "lenght": 0.2})
