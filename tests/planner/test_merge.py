"""Merging rigid parts whose relative motion is within the flow's own error (planner.segment.merge_parts).

Slow drift (a 2D tracker sliding along a smooth object) bends one rigid object's flow, and RANSAC's
8 mm threshold splits it into pieces; the merge puts them back together, because one track keeps
them within noise_factor x their own residual (the drift that bends them). Real joints stay,
however small, on a flow whose parts are rigid to its noise.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from planner import synthetic
from planner.analysis import analyse_flow
from planner.config import NestedConfigError
from planner.pipeline import PlannerConfig, plan_flow
from planner.rigid import apply
from planner.segment import SegmentConfig, merge_bound, rms_deviation, track_deviation

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


def bent_pick(drift: float, seed: int = 0):
    """The same box and lift, its flow bent by a smooth drift field: each point slides (linearly in
    time) up to ``drift`` metres at the last frame, in a direction that turns along the box's
    length, as a tracker sliding along a smooth surface does. No piece of it is rigid."""
    sf = synthetic.rigid_pick(n=3000, seed=seed, box=(0.04, 0.04, 0.20))
    pts = sf.flow.points.astype(float)
    box = sf.flow.object_index == 0
    z0 = pts[0, box, 2]
    u = (z0 - z0.min()) / np.ptp(z0)  # 0..1 along the length
    field = np.stack([np.cos(np.pi * u), np.sin(np.pi * u), np.zeros_like(u)], axis=-1)
    ramp = np.linspace(0.0, 1.0, pts.shape[0])[:, None, None]
    pts[:, box] += ramp * drift * field[None]
    return sf, replace(sf.flow, points=pts.astype(np.float32))


@pytest.fixture(scope="module")
def drifted():
    return bent_pick(0.03)


def _centroid_error(sf, analysis) -> float:
    """Largest distance (m) over frames between the fitted and the true motion of the box's centroid."""
    c = analysis.target.track.T_world_part[0, :3, 3]
    M, M_true = analysis.target.track.motion, sf.motions["box"]
    return float(np.linalg.norm(apply(M, c[None]) - apply(M_true, c[None]), axis=-1).max())


def test_drift_pieces_of_a_rigid_box_merge_into_one_part(drifted):
    sf, flow = drifted
    # Without merging, the 3 cm drift splits the box into pieces, joined by a fake joint.
    split = analyse_flow(flow, SegmentConfig(merge=False))
    assert len(split.objects[0].parts) >= 2 and split.joint is not None
    a = analyse_flow(flow)
    seg = a.objects[0]
    assert len(seg.parts) == 1 and len(seg.parts[0].indices) >= 0.99 * BOX_POINTS
    assert seg.merged == len(split.objects[0].parts) - 1
    assert a.summary()["objects"]["box"]["parts_merged"] == seg.merged
    assert a.joint is None and a.target.moving
    # The merged track averages the drift: closer to the truth than the split target part.
    assert _centroid_error(sf, a) < _centroid_error(sf, split)


def test_drifting_rigid_box_is_planned_as_one_part(drifted):
    _, flow = drifted
    result = plan_flow(flow, None, PlannerConfig())
    assert result.analysis.joint is None
    assert len(result.report["analysis"]["objects"]["box"]["parts"]) == 1
    assert result.report["grasp"]["kind"] == "grasp"


def test_rigid_pieces_of_a_clean_flow_stay_joints():
    # Three bands of an exact flow, each perfectly rigid, sliding 12 mm apart: that is what a
    # drawer pulled 12 mm looks like, and nothing in the flow says otherwise (no noise, no bend).
    # The old fixed 2 cm / 15 deg tolerance merged them; the flow's own error (zero) does not.
    sf = synthetic.rigid_pick(n=3000, seed=0, box=(0.04, 0.04, 0.20))
    pts = sf.flow.points.astype(float)
    box = sf.flow.object_index == 0
    z0 = pts[0, box, 2]
    band = np.digitize(z0, np.quantile(z0, [1 / 3, 2 / 3]))
    dirs = np.array([[1.0, 0.0, 0.0], [-1.0, 0.5, 0.0], [0.0, -1.0, 0.0]])
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pts[:, box] += np.linspace(0.0, 1.0, pts.shape[0])[:, None, None] * 0.012 * dirs[band][None]
    a = analyse_flow(replace(sf.flow, points=pts.astype(np.float32)))
    assert [len(p.indices) for p in a.objects[0].parts] == [750, 750, 750]
    assert a.objects[0].merged == 0 and a.joint is not None


@pytest.mark.parametrize("swing_deg", [8.0, 10.0])
def test_a_small_hinge_turn_stays_a_joint(swing_deg):
    # A lid turned 8-10 deg (its front edge moves 30-40 mm) with 1 mm noise: RANSAC finds the
    # lid, and the old fixed 2 cm / 15 deg tolerance merged it back into the base (one rigid
    # object). The flow's noise is jitter, not drift: it stays a joint.
    sf = synthetic.hinged_lid(n=3000, seed=3, noise=0.001, open_deg=40.0, close_deg=40.0 - swing_deg)
    a = analyse_flow(sf.flow)
    assert len(a.objects[0].parts) == 2 and a.objects[0].merged == 0
    assert a.joint is not None and a.joint.kind == "revolute"
    assert np.degrees(np.ptp(a.joint.values)) == pytest.approx(swing_deg, abs=1.0)


def test_merge_bound_follows_the_flow_error():
    T, cfg = 5, SegmentConfig()
    rng = np.random.default_rng(0)
    pts = rng.normal(0.0, 0.05, (T, 40, 3))
    still = np.broadcast_to(np.eye(4), (T, 4, 4)).copy()
    frozen = np.broadcast_to(pts[:1], pts.shape).copy()  # exactly rigid (static) trajectories
    groups = [np.arange(20), np.arange(20, 40)]
    tracks = [SimpleNamespace(motion=still)] * 2  # merge_bound reads only a track's motion
    # An exact flow has no error: nothing merges on it.
    assert merge_bound(frozen, groups, tracks, 0.0, cfg) == 0.0
    assert merge_bound(frozen, groups, tracks, 0.002, cfg) == 0.0
    # Points off their tracks by 2 mm RMS (frames 1..4): noise_factor x the part of it jitter
    # does not explain, all of it without jitter, sqrt(2^2 - 6 x 0.5^2) mm with sigma 0.5 mm.
    bent = frozen.copy()
    bent[1:, :, 0] += 0.002 * np.sqrt(T / (T - 1))
    assert merge_bound(bent, groups, tracks, 0.0, cfg) == pytest.approx(3.0 * 0.002)
    assert merge_bound(bent, groups, tracks, 0.0005, cfg) == pytest.approx(
        3.0 * np.sqrt(4e-6 - 6 * 0.0005**2)
    )
    # Residual jitter explains in full: no drift, nothing merges.
    assert merge_bound(bent, groups, tracks, 0.002 / np.sqrt(6.0), cfg) == pytest.approx(0.0, abs=1e-9)


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
    chords = 2 * 0.1 * np.sin(angles / 2)  # every point of the ring moves this far at each frame
    rms = rms_deviation(np.tile(np.eye(4), (T, 1, 1)), M_b, ring)
    assert rms == pytest.approx(float(np.sqrt((chords**2).mean())), abs=1e-9)


def test_merge_settings_are_checked():
    with pytest.raises(NestedConfigError, match="noise_factor is 0"):
        SegmentConfig(noise_factor=0)
    with pytest.raises(NestedConfigError, match="noise_factor is nan"):
        SegmentConfig(noise_factor=float("nan"))
    with pytest.raises(NestedConfigError, match="merge is 'yes', expected True or False"):
        SegmentConfig(merge="yes")
