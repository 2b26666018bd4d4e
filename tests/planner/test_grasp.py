"""Antipodal grasp candidates, gripper collision boxes and pushes."""

from __future__ import annotations

import numpy as np
import pytest

from planner.grasp import (
    GraspConfig,
    _squared_to_faces,
    antipodal_candidates,
    boxes_hit,
    collision_free,
    estimate_normals,
    friction_cos,
    gripper_collisions,
    push_candidates,
)
from planner.synthetic import box_surface


def test_normals_point_out_of_a_box():
    pts = box_surface((0.1, 0.06, 0.04), 3000, np.random.default_rng(0))
    n = estimate_normals(pts)
    # On a face the normal is the face axis; count points whose normal is the expected one.
    face_axis = np.argmax(np.abs(pts) / np.array([0.05, 0.03, 0.02]), axis=1)
    expected = np.zeros_like(pts)
    expected[np.arange(len(pts)), face_axis] = np.sign(pts[np.arange(len(pts)), face_axis])
    # Away from the edges (where a normal is ill-defined) they are right.
    half = np.array([0.05, 0.03, 0.02])
    inner = np.sort(half - np.abs(pts), axis=1)[:, 1] > 0.01  # >= 1 cm from every edge
    assert ((n * expected).sum(1) > 0.95)[inner].mean() > 0.97
    assert ((n * expected).sum(1) > 0)[inner].all()


def test_antipodal_widths_fit_the_gripper():
    rng = np.random.default_rng(1)
    pts = box_surface((0.04, 0.06, 0.12), 3000, rng)
    # A 20 deg cone (mu = tan 20 deg): with the default mu = 0.6 (31 deg) lines tilted across a
    # face's corner are antipodal too, and widths spread between the face distances.
    # The widest grasp held at 60 mm (a 10 mm collision margin each side of the 80 mm hand): lines
    # tilted across the 6 cm side within the cone would be up to 64 mm long.
    cfg = GraspConfig(friction=float(np.tan(np.radians(20))), collision_margin=0.01)
    cands = antipodal_candidates(pts, cfg, rng)
    assert len(cands) > 100
    widths = np.array([c.width for c in cands])
    # Across x (4 cm) or y (6 cm); never along z (12 cm > 8 cm gripper).
    near = np.minimum(np.abs(widths - 0.04), np.abs(widths - 0.06))
    assert (near < 0.004).mean() > 0.95
    assert cfg.max_grasp_width == pytest.approx(0.06)
    assert widths.max() < cfg.max_grasp_width + 1e-9
    for c in cands[:50]:
        R = c.T_part_ee[:3, :3]
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-9)
        y = R[:, 1]  # closing direction: along a box axis x or y
        assert max(abs(y[0]), abs(y[1])) > 0.93
        assert c.quality > np.cos(np.radians(20))
    # Ranked: the best candidates approach from above.
    assert cands[0].T_part_ee[2, 2] < -0.9


def test_too_wide_object_has_no_grasp():
    rng = np.random.default_rng(2)
    pts = box_surface((0.1, 0.1, 0.1), 3000, rng)
    assert antipodal_candidates(pts, GraspConfig(), rng) == []


def test_a_part_wider_than_the_open_clearance_allows_is_grasped_within_the_hands_reach():
    # A 68 mm box (the suite's boxes are 35-70 mm across their narrow side): the Franka hand opens
    # 80 mm, 6 mm clear of it on each side, more than the 3 mm collision margin. Grasps close across
    # its 68 mm side, and the fully open fingers clear it on the way down.
    rng = np.random.default_rng(5)
    size = (0.068, 0.13, 0.11)
    pts = box_surface(size, 3000, rng) + np.array([0.0, 0.0, size[2] / 2])
    cfg = GraspConfig()
    assert cfg.max_grasp_width == pytest.approx(0.08 - 2 * cfg.collision_margin)
    cands = antipodal_candidates(pts, cfg, rng)
    across = [c for c in cands if abs(c.T_part_ee[0, 1]) > 0.95]  # closing along x, the 68 mm side
    assert across and all(abs(c.width - 0.068) < 0.004 for c in across)
    # approaching from above, closing within a finger length of the top (the palm clears it)
    down = [c for c in across if c.T_part_ee[2, 2] < -0.95 and c.T_part_ee[2, 3] > 0.08][:20]
    assert down
    T = np.repeat(np.eye(4)[None], 3, axis=0)
    traj = np.repeat(pts[None], 3, axis=0)
    verdicts = gripper_collisions(down, T, traj, np.zeros((3, 0, 3)), -1e-3, cfg)
    assert sum(v is None for v in verdicts) >= len(down) // 2
    # An 80 mm side is past the hand's reach with any margin: no grasp across it.
    wide = box_surface((0.08, 0.12, 0.12), 3000, rng)
    assert all(c.width < cfg.max_grasp_width + 1e-9 for c in antipodal_candidates(wide, cfg, rng))
    assert not [c for c in antipodal_candidates(wide, cfg, rng) if abs(c.T_part_ee[0, 1]) > 0.95]


def test_boxes_hit_table_and_scene_points():
    cfg = GraspConfig()
    boxes = cfg.hand.boxes(0.05)
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # pointing down
    T[:3, 3] = [0.5, 0.0, 0.03]
    assert boxes_hit(T, boxes, np.zeros((0, 3)), 0.003, 0.0, 0.005) is None  # fingertips 2.4 cm up
    T[2, 3] = 0.005
    assert boxes_hit(T, boxes, np.zeros((0, 3)), 0.003, 0.0, 0.005) == "table"
    T[2, 3] = 0.1
    inside_finger = np.array([[0.5, 0.03, 0.1]])  # y = +3 cm: in a finger at 5 cm opening
    between = np.array([[0.5, 0.0, 0.1]])
    assert boxes_hit(T, boxes, inside_finger, 0.003, 0.0, 0.005) == "scene"
    assert boxes_hit(T, boxes, between, 0.003, 0.0, 0.005) is None


def test_collision_free_sees_obstacles_along_the_track():
    rng = np.random.default_rng(3)
    part = box_surface((0.04, 0.04, 0.1), 1500, rng)
    cands = antipodal_candidates(part, GraspConfig(), rng)
    T_ = 11
    track = np.broadcast_to(np.eye(4), (T_, 4, 4)).copy()
    track[:, :3, 3] = [0.5, 0.0, 0.05]
    track[:, 2, 3] += np.linspace(0, 0.2, T_)  # lifted 20 cm
    part_traj = np.stack([part + track[t, :3, 3] for t in range(T_)])
    empty = np.zeros((T_, 0, 3))
    # A top-down grasp low on the 10 cm box puts the palm into the box's top: rejected.
    deep = [c for c in cands if c.T_part_ee[2, 2] < -0.9 and c.T_part_ee[2, 3] < -0.01][:40]
    assert deep
    verdicts = gripper_collisions(deep, track, part_traj, empty, 0.0)
    assert all(v is not None and v.startswith("scene") for v in verdicts)
    # The batch check and the one-candidate check agree.
    assert [collision_free(c, track, part_traj, empty, 0.0) for c in deep[:5]] == verdicts[:5]
    verdicts = gripper_collisions(cands, track, part_traj, empty, 0.0)
    free = [c for c, v in zip(cands, verdicts, strict=True) if v is None]
    assert free
    top = free[0]
    # A point where the hand will be at the end of the lift, but not at the start.
    T_end = track[-1] @ top.T_part_ee
    obstacle = np.broadcast_to(T_end[:3, 3] - 0.08 * T_end[:3, 2], (T_, 1, 3))
    why = collision_free(top, track, part_traj, obstacle, 0.0)
    assert why is not None and "frame" in why


def test_push_presses_against_the_motion():
    rng = np.random.default_rng(4)
    part = box_surface((0.12, 0.12, 0.06), 2000, rng)
    T_ = 9
    shift = np.linspace(0, 0.1, T_)[:, None, None] * np.array([0.0, 1.0, 0.0])  # slides +y
    traj = part[None] + shift
    pushes = push_candidates(part, traj, GraspConfig(), rng)
    assert pushes
    best = pushes[0]
    assert best.kind == "push" and best.width == 0.0
    # The tool points along the motion (+y) and touches the -y face.
    assert best.T_part_ee[1, 2] > 0.9
    assert best.contacts[0][1] < -0.055


def _frustum_surface(r0, r1, length, n, rng):
    """Points [n, 3] on the lateral surface of a truncated cone about z (radius r0 at z=0, r1 at length)."""
    # Area-weighted along z: the circumference grows linearly with the radius.
    u = rng.uniform(size=n)
    t = (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / (r1 - r0)
    a = rng.uniform(0, 2 * np.pi, n)
    r = r0 + (r1 - r0) * t
    return np.stack([r * np.cos(a), r * np.sin(a), t * length], axis=1)


def test_tapered_part_has_antipodal_grasps():
    # A lamp shade: its side tapers 19 deg, within the 20 deg friction cone about a line straight
    # across it, but the two normals are 38 deg apart (a closing line along one contact's normal
    # leaves the other outside its cone). Grasps exist across the narrow end.
    rng = np.random.default_rng(4)
    r0, r1, length = 0.014, 0.055, 0.12
    pts = _frustum_surface(r0, r1, length, 3000, rng)
    assert len(antipodal_candidates(pts, GraspConfig(), np.random.default_rng(4))) > 20  # mu 0.6: 31 deg
    cfg = GraspConfig(friction=float(np.tan(np.radians(20))))  # the hardest case: 20 deg, just above
    cands = antipodal_candidates(pts, cfg, rng)
    assert len(cands) > 20
    taper = np.arctan2(r1 - r0, length)
    cos_cone = friction_cos(cfg)
    for c in cands:
        a, b = c.contacts
        d = (b - a) / np.linalg.norm(b - a)
        # Exact outward normals of the cone side at both contacts.
        n = [np.r_[p[:2] / np.linalg.norm(p[:2]) * np.cos(taper), -np.sin(taper)] for p in (a, b)]
        assert -n[0] @ d > cos_cone - 0.03 and n[1] @ d > cos_cone - 0.03
        assert abs(d[2]) < 0.2  # straight across the axis
        assert c.width == pytest.approx(np.linalg.norm(b - a), abs=1e-12)
        assert c.width < cfg.max_grasp_width + 1e-9
        np.testing.assert_allclose(c.T_part_ee[:3, 1] @ d, 1.0, atol=1e-9)  # fingers close along it
        np.testing.assert_allclose(c.T_part_ee[:3, 3], 0.5 * (a + b), atol=1e-12)
    # Only the narrow end fits the gripper.
    assert max(c.T_part_ee[2, 3] for c in cands) < length * (cfg.max_grasp_width / 2 - r0) / (r1 - r0) + 0.005


def _laptop_nearly_closed(rest_deg: float, swing_deg: float, frames: int = 5):
    """A laptop (base 0.21 x 0.30 x 0.016 m on the table, lid 7 mm thick hinged at its back top
    edge, resting ``rest_deg`` open) whose lid opens by ``swing_deg``: the lid's points [n, 3] and
    normals at frame 0 (world = part frame), its track [T, 4, 4], its points over it [T, n, 3],
    and the base's points over it [T, m, 3]."""
    rng = np.random.default_rng(7)
    depth, width, tb, tl = 0.21, 0.30, 0.016, 0.007
    base = box_surface((depth, width, tb), 3000, rng) + np.array([0.0, 0.0, tb / 2])
    lid_flat = box_surface((depth, width, tl), 3000, rng) + np.array([depth / 2, 0.0, tl / 2])
    normals_flat = np.zeros_like(lid_flat)  # exact: the face each point lies on
    half = np.array([depth / 2, width / 2, tl / 2])
    local = lid_flat - np.array([depth / 2, 0.0, tl / 2])
    axis = np.argmax(np.abs(local) / half, axis=1)
    normals_flat[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
    hinge = np.array([-depth / 2, 0.0, tb])

    def about_hinge(deg: float) -> np.ndarray:
        a = np.radians(deg)
        R = np.array([[np.cos(a), 0.0, -np.sin(a)], [0.0, 1.0, 0.0], [np.sin(a), 0.0, np.cos(a)]])
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = hinge - R @ hinge
        return T

    rest = about_hinge(rest_deg)
    lid0 = lid_flat @ rest[:3, :3].T + hinge  # the lid's flat frame starts at the hinge
    normals0 = normals_flat @ rest[:3, :3].T
    track = np.stack([about_hinge(swing_deg * k / (frames - 1)) for k in range(frames)])
    lid_traj = np.einsum("tij,nj->tni", track[:, :3, :3], lid0) + track[:, None, :3, 3]
    return lid0, normals0, track, lid_traj, np.repeat(base[None], frames, axis=0)


def test_a_nearly_closed_lid_is_lifted_by_a_fingertip_hooked_under_its_edge():
    # A laptop lid resting 8 deg open: its front edge's underside is 45 mm above the table. A
    # grasp across the lid's 7 mm needs the fingers closing across it, and the hand is 208 mm
    # long that way; a face push on the underside (the only surface facing its upward motion)
    # puts the hand under the lid: both meet the table. Pushes with the fingertip's flank, the
    # fingers pointing in under the edge, leave the hand in front of the laptop.
    cfg = GraspConfig()
    lid0, normals0, track, lid_traj, base_traj = _laptop_nearly_closed(8.0, 40.0)
    pushes = push_candidates(lid0, lid_traj, cfg, np.random.default_rng(0), normals0)
    face = [c for c in pushes if np.allclose(c.T_part_ee[:3, 2], -c.normal)]
    edge = [c for c in pushes if abs(c.T_part_ee[:3, 2] @ c.normal) < 0.51]  # tilted <= 30 deg
    assert face and edge and len(face) + len(edge) == len(pushes)
    free_face = [v for v in gripper_collisions(face, track, lid_traj, base_traj, 0.0, cfg) if v is None]
    assert not free_face
    verdicts = gripper_collisions(edge, track, lid_traj, base_traj, 0.0, cfg)
    free = [c for c, v in zip(edge, verdicts, strict=True) if v is None]
    assert free
    for c in free:
        p, n = c.contacts[0], c.normal
        assert n[2] < -0.9  # under the lid
        # in under the front or a side edge by no more than the finger's length
        to_edge = min(-0.21 / 2 + 0.21 * np.cos(np.radians(8.0)) - p[0], 0.30 / 2 - abs(p[1]))
        assert to_edge < cfg.hand.finger_length
        flank = c.T_part_ee[:3, 0]  # presses along the flank's normal, within the friction cone
        assert flank @ -n > np.cos(np.arctan(cfg.friction)) - 1e-9
        # The fingertip's edge is on the contact: tool (x, z) = (flank face + stand-off, tip).
        tip = c.T_part_ee[:3, :3] @ [
            cfg.hand.finger_width / 2 + cfg.push_standoff,
            0.0,
            cfg.hand.finger_tip,
        ]
        np.testing.assert_allclose(c.T_part_ee[:3, 3] + tip, p, atol=1e-12)


def test_a_push_may_not_cut_through_its_own_part_behind_the_contact():
    # The same edge pushes placed deep under the lid (10 cm in from the edge, 30 deg tilted): the
    # finger behind the tip rises through the lid. Only the pushed surface's slab round the contact
    # is the push's; the lid's top and edge are obstacles like any other.
    cfg = GraspConfig()
    lid0, normals0, track, lid_traj, _ = _laptop_nearly_closed(20.0, 20.0)
    pushes = push_candidates(lid0, lid_traj, cfg, np.random.default_rng(0), normals0)
    deep = [
        c for c in pushes
        if c.normal[2] < -0.9 and c.contacts[0][0] < 0.0 and 0.45 < c.T_part_ee[:3, 2] @ c.normal < 0.55
    ]  # fmt: skip
    assert deep
    # No base and no table: only the lid itself is in the way, at the contact already.
    nothing = np.zeros((len(track), 0, 3))
    verdicts = gripper_collisions(deep, track, lid_traj, nothing, -1.0, cfg)
    assert set(verdicts) == {"scene on approach (0 mm out)"}


def test_pairs_on_parallel_faces_also_close_square_to_them():
    """A 12 mm square bar 80 mm long, exact face normals: pairs of contacts on opposite faces are
    often offset along the bar, and the line through them crosses it at a slant. Flat pads closing
    along that line meet the faces at their edges and turn a jointed bar until its faces lie flat
    on them (a lever turned 5 deg on closing). Each such pair also gives a line along the faces'
    normal through its midpoint, across the bar's 12 mm, with quality 1, so it ranks first; the
    slanted lines stay candidates."""
    rng = np.random.default_rng(0)
    half = np.array([0.006, 0.006, 0.04])
    pts, nrm = [], []
    for axis in (0, 1):  # the four long faces
        for sign in (-1.0, 1.0):
            p = (rng.random((800, 3)) * 2 - 1) * half
            p[:, axis] = sign * half[axis]
            n = np.zeros((800, 3))
            n[:, axis] = sign
            pts.append(p)
            nrm.append(n)
    pts, nrm = np.concatenate(pts), np.concatenate(nrm)
    cands = antipodal_candidates(pts, GraspConfig(), np.random.default_rng(1), normals=nrm)
    square = [c for c in cands if max(abs(c.T_part_ee[0, 1]), abs(c.T_part_ee[1, 1])) > 1 - 1e-9]
    slanted = [c for c in cands if max(abs(c.T_part_ee[0, 1]), abs(c.T_part_ee[1, 1])) < 1 - 1e-6]
    assert len(square) > len(cands) // 4 and len(slanted) > len(cands) // 4
    for c in square:
        assert c.width == pytest.approx(0.012, abs=1e-9)
        assert c.quality == pytest.approx(1.0, abs=1e-9)
        a, b = c.contacts  # on the faces, on the closing line through the TCP
        y, tcp = c.T_part_ee[:3, 1], c.T_part_ee[:3, 3]
        assert np.linalg.norm(np.cross(b - a, y)) < 1e-9 and np.linalg.norm(np.cross(tcp - a, y)) < 1e-9
        assert np.abs(np.abs(a[:2]).max() - 0.006) < 1e-9 and np.abs(np.abs(b[:2]).max() - 0.006) < 1e-9
    assert all(c.quality < 1.0 - 1e-9 for c in slanted)
    best = max(cands, key=lambda c: c.quality)
    assert max(abs(best.T_part_ee[0, 1]), abs(best.T_part_ee[1, 1])) > 1 - 1e-9


def test_a_squared_line_that_meets_more_of_the_part_than_the_faces_gap_is_not_added():
    """A 12 mm bar with a 10 mm rib across one face at z in [-2, 2] mm. Two contacts on opposite
    faces, 8 mm apart along the bar: squared through their midpoint the line meets the rib (the
    part is 22 mm across there, not the faces' 12 mm gap), so no squared line is added; the same
    pair moved clear of the rib gets one, across 12 mm, through the midpoint."""
    rng = np.random.default_rng(0)
    pts, nrm = [], []
    for axis in (0, 1):
        for sign in (-1.0, 1.0):
            p = (rng.random((1500, 3)) * 2 - 1) * [0.006, 0.006, 0.04]
            p[:, axis] = sign * 0.006
            n = np.zeros((1500, 3))
            n[:, axis] = sign
            pts.append(p)
            nrm.append(n)
    rib = (rng.random((400, 3)) * 2 - 1) * [0.0, 0.006, 0.002]
    rib[:, 0] = 0.016  # the rib's top, 10 mm out from the face at x = +0.006
    pts.append(rib)
    nrm.append(np.tile([1.0, 0.0, 0.0], (len(rib), 1)))
    base = np.concatenate(pts)
    normals = np.concatenate(nrm)
    cfg = GraspConfig()

    def squared(z_mid: float):
        a = np.array([[-0.006, 0.0, z_mid - 0.004]])  # contact on the -x face
        b = np.array([[0.006, 0.001, z_mid + 0.004]])  # and on the +x face, 8 mm along the bar
        allp = np.concatenate([base, a, b])
        alln = np.concatenate([normals, [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
        n = len(base)
        return _squared_to_faces(allp, alln, np.array([n]), np.array([n + 1]), 0.004, cfg)

    d, c, w, q, contacts = squared(0.0)
    assert len(d) == 0
    d, c, w, q, contacts = squared(0.02)
    assert len(d) == 1
    np.testing.assert_allclose(d[0], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(c[0], [0.0, 0.0005, 0.02], atol=1e-9)
    assert w[0] == pytest.approx(0.012, abs=1e-9) and q[0] == pytest.approx(1.0)
    np.testing.assert_allclose(contacts[0], [[-0.006, 0.0005, 0.02], [0.006, 0.0005, 0.02]], atol=1e-9)
