"""Merging rigid parts whose relative motion is below the merge tolerance (planner.segment.merge_parts).

Slow drift (a 2D tracker sliding along a smooth object) splits one rigid object into pieces that
RANSAC's 8 mm threshold keeps apart; the merge puts them back together, and real joints stay.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from planner import synthetic
from planner.analysis import analyse_flow
from planner.pipeline import PlannerConfig, plan_flow
from planner.rigid import apply
from planner.segment import SegmentConfig, track_deviation

BOX_POINTS = 2250  # rigid_pick(n=3000): three quarters on the box, the rest on the obstacle


def drifting_pick(drift: float, seed: int = 0):
    """A 20 cm box lifted 15 cm and turned 30 deg, whose flow drifts apart in three bands.

    The bands along the box's length slide in three directions, linearly in time, up to
    ``drift`` metres at the last frame: each band stays rigid, so RANSAC finds three parts.
    """
    sf = synthetic.rigid_pick(n=3000, seed=seed, box=(0.04, 0.04, 0.20))
    pts = sf.flow.points.astype(float)
    box = sf.flow.object_index == 0
    z0 = pts[0, box, 2]
    band = np.digitize(z0, np.quantile(z0, [1 / 3, 2 / 3]))  # [n_box] 0, 1, 2 along the length
    dirs = np.array([[1.0, 0.0, 0.0], [-1.0, 0.5, 0.0], [0.0, -1.0, 0.0]])
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ramp = np.linspace(0.0, 1.0, pts.shape[0])[:, None, None]
    pts[:, box] += ramp * drift * dirs[band][None]
    return sf, replace(sf.flow, points=pts.astype(np.float32))


@pytest.fixture(scope="module")
def drifted():
    return drifting_pick(0.012)


def _centroid_error(sf, analysis) -> float:
    """Largest distance (m) over frames between the fitted and the true motion of the box's centroid."""
    c = analysis.target.track.T_world_part[0, :3, 3]
    M, M_true = analysis.target.track.motion, sf.motions["box"]
    return float(np.linalg.norm(apply(M, c[None]) - apply(M_true, c[None]), axis=-1).max())


def test_drift_pieces_of_a_rigid_box_merge_into_one_part(drifted):
    sf, flow = drifted
    # Without merging, the 12 mm drift splits the box into its three bands, joined by a fake joint.
    split = analyse_flow(flow, SegmentConfig(merge_tolerance=0.0))
    assert [len(p.indices) for p in split.objects[0].parts] == [750, 750, 750]
    assert split.joint is not None
    a = analyse_flow(flow)
    seg = a.objects[0]
    assert [len(p.indices) for p in seg.parts] == [BOX_POINTS]
    assert seg.merged == 2 and a.summary()["objects"]["box"]["parts_merged"] == 2
    assert a.joint is None and a.target.moving
    # The merged track averages the bands' drift: closer to the truth than the drift itself
    # (measured 5.5 mm, against 12 mm for the split target part).
    assert _centroid_error(sf, a) < 0.008
    assert _centroid_error(sf, split) > 0.010


def test_drifting_rigid_box_is_planned_as_one_part(drifted):
    _, flow = drifted
    result = plan_flow(flow, None, PlannerConfig())
    assert result.analysis.joint is None
    assert result.report["analysis"]["objects"]["box"]["parts"] == [BOX_POINTS]
    assert len(result.analysis.target.indices) == BOX_POINTS
    assert result.report["grasp"]["kind"] == "grasp"


def test_relative_motion_beyond_the_tolerance_stays_split(drifted):
    _, flow = drifted
    # Two adjacent bands fit one track within 2.8-3.0 mm / 5.8 deg (a tilt absorbs their drift);
    # the third deviates 17 mm from it. Each bound, tightened below those, keeps them apart.
    for tight, parts in [
        (SegmentConfig(merge_angle_deg=5.0), [750, 750, 750]),
        (SegmentConfig(merge_tolerance=0.002), [750, 750, 750]),
        (SegmentConfig(merge_tolerance=0.015), [1500, 750]),
    ]:
        assert [len(p.indices) for p in analyse_flow(flow, tight).objects[0].parts] == parts, tight
    # Bands 30 mm apart: one track cannot hold all of them within 2 cm.
    _, far = drifting_pick(0.03)
    a = analyse_flow(far)
    assert len(a.objects[0].parts) >= 2 and a.joint is not None


@pytest.mark.parametrize(("open_deg", "close_deg"), [(45.0, 15.0), (100.0, 5.0)])
def test_real_hinges_keep_their_joint(open_deg, close_deg):
    # 30 deg: the lamp head's range (0.52 rad); 95 deg: the laptop lid's (1.66 rad).
    sf = synthetic.hinged_lid(n=3000, seed=3, noise=0.002, open_deg=open_deg, close_deg=close_deg)
    a = analyse_flow(sf.flow)
    assert len(a.objects[0].parts) == 2 and a.objects[0].merged == 0
    assert a.joint is not None and a.joint.kind == "revolute"
    assert np.degrees(np.ptp(a.joint.values)) == pytest.approx(open_deg - close_deg, abs=1.0)


def test_track_deviation_of_a_known_rotation():
    T = 5
    angles = np.radians(np.linspace(0.0, 10.0, T))
    M_b = np.tile(np.eye(4), (T, 1, 1))
    M_b[:, :3, :3] = Rotation.from_rotvec(angles[:, None] * [0.0, 0.0, 1.0]).as_matrix()
    ring = 0.1 * np.array(
        [[np.cos(a), np.sin(a), 0.0] for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    )
    dist, deg = track_deviation(np.tile(np.eye(4), (T, 1, 1)), M_b, ring)
    assert deg == pytest.approx(10.0, abs=1e-6)
    assert dist == pytest.approx(2 * 0.1 * np.sin(np.radians(5.0)), abs=1e-9)  # chord of a 10 deg turn


def test_merge_settings_are_checked():
    with pytest.raises(ValueError, match="merge_tolerance is -0.01"):
        SegmentConfig(merge_tolerance=-0.01)
    with pytest.raises(ValueError, match="merge_angle_deg is nan"):
        SegmentConfig(merge_angle_deg=float("nan"))
