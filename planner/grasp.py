"""Grasp and push candidates on a moving part, checked against the scene, ranked with a reason.

Tool frame (the TCP, the robot entry's ``tcp_frame``, the Panda's ``panda_grasptarget``): z is the approach direction (from the palm
towards the fingertips), y the closing direction of the fingers, the origin between the
fingertips. A grasp is T_part_ee, held rigid while the part follows its track.

Antipodal candidates pair a surface point with a point across the part such that both normals
lie in the friction cone (half-angle atan(mu)) of the closing line, the line through the two
contacts. Anchors are spread over the whole part surface (mesh samples with the mesh's normals
where the scene has a mesh), so the candidates do not depend on where a flow's points happen to
lie. Each pair is tried at approach directions all round its closing line (from above, from
the sides, from below), then filtered by gripper width, by whether the grasp holds the part's
load (planner.load), by collision of the robot's gripper boxes (``GraspConfig.hand``: fingers at the opening used,
hand, wrist flange) with the table plane and every other point of the scene (at the first frame, on
the way in, and along the track), and finally reachability (IK at every frame). Where no grasp
survives, a push: the closed fingertips press on a surface point whose normal faces against its
motion, and the tool follows that point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial import cKDTree

from planner.config import GraspConfig as GraspConfig  # re-exported: callers import it from here
from planner.config import GripperGeometry as GripperGeometry
from planner.rigid import apply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraspCandidate:
    """A grasp (or push) held rigid on the part."""

    T_part_ee: np.ndarray  # [4, 4] TCP pose in the part frame
    width: float  # metres: part width between the contacts (0 for a push)
    kind: str  # "grasp" or "push"
    quality: float  # antipodal quality: min cosine of contact normals to the closing line
    score: float  # ranking score (higher is better)
    contacts: np.ndarray  # [2, 3] contact points in the part frame (push: the same point twice)
    approach: np.ndarray | None = None  # [3] unit direction of the final approach, part frame (None: tool z)
    reason: str = ""  # why this candidate was chosen (filled when chosen)
    # How many times the part's load the contacts could hold with the gripper's force (planner.load);
    # None: not evaluated (pushes, or no load model)
    load_margin: float | None = None
    # [3] push: the pushed surface's outward unit normal at the contact, part frame (None: a grasp,
    # or unknown: then the part's points near the contact are not told from the rest)
    normal: np.ndarray | None = None

    def approach_dir(self) -> np.ndarray:
        """[3] unit direction (part frame) the tool moves along into the grasp or contact."""
        return self.T_part_ee[:3, 2] if self.approach is None else self.approach


def estimate_normals(pts: np.ndarray, k: int = 16) -> np.ndarray:  # pts: [n, 3]
    """Unit normals [n, 3] by local PCA, oriented away from the centroid."""
    k = min(k, len(pts))
    _, nn = cKDTree(pts).query(pts, k=k)
    nb = pts[nn] - pts[nn].mean(1, keepdims=True)  # [n, k, 3]
    _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", nb, nb))
    normals = vecs[:, :, 0]
    flip = ((pts - pts.mean(0)) * normals).sum(1) < 0
    normals[flip] *= -1
    return normals


def _frame_from(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[3, 3] rotation with columns x, y, z (y orthogonalised against z)."""
    z = z / np.linalg.norm(z)
    y = y - (y @ z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z], axis=1)


def boxes_hit(
    T_world_ee: np.ndarray,  # [4, 4]
    boxes: list[tuple[np.ndarray, np.ndarray]],
    points: np.ndarray,  # [m, 3] world
    margin: float,
    table_height: float,
    table_clearance: float,
) -> str | None:
    """What the gripper boxes collide with at this pose ("table", "scene"), or None."""
    R, t = T_world_ee[:3, :3], T_world_ee[:3, 3]
    for lo, hi in boxes:
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        if ((corners @ R.T + t)[:, 2] < table_height + table_clearance).any():
            return "table"
    if len(points):
        local = (points - t) @ R  # world -> TCP frame
        for lo, hi in boxes:
            if ((local > lo - margin) & (local < hi + margin)).all(1).any():
                return "scene"
    return None


def friction_cos(config: GraspConfig) -> float:
    """Cosine of the friction cone's half-angle, atan(mu)."""
    return float(1.0 / np.sqrt(1.0 + config.friction**2))


# Contacts whose outward normals are within this of opposite lie on parallel faces: the fingers
# may close along the normals there (_squared_to_faces).
PARALLEL_DEG = 10.0
# A closing line within this of the faces' normal is square to them already.
SQUARE_DEG = 1.0


def _squared_to_faces(
    pts: np.ndarray,  # [n, 3] the part's search points
    normals: np.ndarray,  # [n, 3] their outward unit normals
    i_idx: np.ndarray,  # [P] first contact of each pair
    j_idx: np.ndarray,  # [P] second contact
    line_tol: float,  # metres: the tube round a closing line whose points it meets
    config: GraspConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(d [S, 3], c [S, 3], width [S], quality [S], contacts [S, 2, 3]): closing lines square to
    the faces of the pairs that lie on parallel faces, to be tried beside the pairs' own lines.

    The pads are flat. Closing along the line through two contacts on parallel faces that it
    crosses at a slant (contacts offset along a bar), a pad meets its face at the pad's edge and
    turns the part until the face lies flat on it: a lever pinched across its 12 mm bar turned
    5 deg on closing, and a drawer's 16 mm handle pinched on a 5 deg slant put a fingertip into
    the drawer's front. Where both contacts' normals are within ``PARALLEL_DEG`` of opposite and
    within half a pad of the line along their bisector through their midpoint, that line is a
    candidate too, if the part's extent along it (its points within ``line_tol`` of it, out to
    where the opened fingers would reach) is the faces' gap within ``line_tol``: the fingers
    then meet those faces there, square. The pair's own line stays a candidate: where the squared
    fingers collide (tilted a few degrees on a curved part lying on the table), it may not.
    """
    n_i, n_j = normals[i_idx], normals[j_idx]
    n_pad = n_j - n_i
    n_len = np.linalg.norm(n_pad, axis=1)
    d_pad = n_pad / np.maximum(n_len, 1e-9)[:, None]
    span = pts[j_idx] - pts[i_idx]
    along = np.einsum("pi,pi->p", span, d_pad)  # the faces' gap along the bisector
    off = np.linalg.norm(span - along[:, None] * d_pad, axis=1)  # the contacts' offset across the pads
    parallel = -np.einsum("pi,pi->p", n_i, n_j) > np.cos(np.radians(PARALLEL_DEG))
    # (pairs whose own line is within SQUARE_DEG of square have their squared line already)
    slant = off > along * np.tan(np.radians(SQUARE_DEG))
    pick = parallel & slant & (n_len > 1.0) & (along > 0.005) & (off < config.hand.finger_width / 2)
    out: tuple[list, list, list, list, list] = ([], [], [], [], [])
    for p in np.flatnonzero(pick):
        mid = 0.5 * (pts[i_idx[p]] + pts[j_idx[p]])
        v = pts - mid
        t = v @ d_pad[p]
        r = np.linalg.norm(v - t[:, None] * d_pad[p], axis=1)
        reach = 0.5 * (along[p] + config.open_clearance) + line_tol  # the opened fingers' inner faces
        tube = (r < line_tol) & (np.abs(t) < reach)
        if not tube.any():
            continue
        lo, hi = float(t[tube].min()), float(t[tube].max())
        if abs((hi - lo) - along[p]) > line_tol or hi - lo > config.max_grasp_width:
            continue
        c = mid + 0.5 * (lo + hi) * d_pad[p]
        w = hi - lo
        out[0].append(d_pad[p])
        out[1].append(c)
        out[2].append(w)
        out[3].append(min(float(-n_i[p] @ d_pad[p]), float(n_j[p] @ d_pad[p])))
        out[4].append([c - 0.5 * w * d_pad[p], c + 0.5 * w * d_pad[p]])
    if not out[0]:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros((0, 2, 3))
    return tuple(np.array(x, dtype=float) for x in out)  # type: ignore[return-value]


def antipodal_candidates(
    part_pts: np.ndarray,  # [n, 3] the part's points in the part frame
    config: GraspConfig = GraspConfig(),
    rng: np.random.Generator | None = None,
    normals: np.ndarray | None = None,  # [n, 3] unit outward normals; None = estimated (PCA)
) -> list[GraspCandidate]:
    """All antipodal grasps on the part's points that fit the gripper, before collision checks.

    ``config.anchors`` first contacts are drawn over all the points (deterministic given
    ``rng``); each gives at most one closing line and ``config.approach_angles`` approach
    directions spread evenly round it. Sorted best score first.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    normals = estimate_normals(part_pts) if normals is None else np.asarray(normals, dtype=float)
    if len(part_pts) > config.search_points:  # a uniform subsample of a uniform sampling
        keep = np.sort(rng.choice(len(part_pts), config.search_points, replace=False))
        part_pts, normals = part_pts[keep], normals[keep]
    cos_cone = friction_cos(config)
    max_w = config.max_grasp_width
    anchors = np.sort(rng.choice(len(part_pts), min(config.anchors, len(part_pts)), replace=False))
    size = float(np.linalg.norm(np.ptp(part_pts, axis=0)))
    centre = part_pts.mean(0)
    # The second contact must lie near the closing line; sparse samples need a wider tube.
    spacing = float(np.median(cKDTree(part_pts).query(part_pts, k=2)[0][:, 1]))
    line_tol = max(config.line_tolerance, 1.5 * spacing)
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    pts32, nrm32 = part_pts.astype(np.float32), normals.astype(np.float32)  # half the memory traffic
    for chunk in np.array_split(anchors, max(1, len(anchors) // 64)):  # [C] anchors at a time
        n_in = -nrm32[chunk]  # [C, 3] into the part
        v = pts32[None] - pts32[chunk][:, None]  # [C, n, 3]
        dist = np.sqrt(np.einsum("cni,cni->cn", v, v))
        inv = 1.0 / np.maximum(dist, 1e-9)
        along = np.einsum("cni,ci->cn", v, n_in)  # depth along the anchor's inward normal
        # The closing line is the line through both contacts, and each contact's normal must lie
        # in its friction cone about that line. (Taking the anchor's normal as the line would
        # demand the two normals be within one cone of each other: a taper of more than half the
        # cone, such as a lamp's conical shade, would then have no grasp at all.)
        q_ij = np.minimum(along, np.einsum("cni,ni->cn", v, nrm32)) * inv
        ok = (dist > 0.005) & (dist < max_w) & (q_ij > cos_cone)
        # The outermost contacts along the anchor's normal (the fingers enclose it all); among
        # those within the sampling tolerance of the outermost, the best-aligned pair.
        along = np.where(ok, along, -np.inf)
        near_out = ok & (along > along.max(1, keepdims=True) - line_tol)
        k = np.argmax(np.where(near_out, q_ij, -np.inf), axis=1)
        has = ok.any(1)
        rows = np.flatnonzero(has)
        pairs.append(
            (chunk[rows], k[rows], q_ij[rows, k[rows]].astype(float), dist[rows, k[rows]].astype(float))
        )
    i_idx = np.concatenate([p[0] for p in pairs])
    j_idx = np.concatenate([p[1] for p in pairs])
    quality = np.concatenate([p[2] for p in pairs])
    width = np.concatenate([p[3] for p in pairs])
    if not len(i_idx):
        return []
    contacts = np.stack([part_pts[i_idx], part_pts[j_idx]], axis=1)  # [P, 2, 3]
    width = np.linalg.norm(contacts[:, 1] - contacts[:, 0], axis=1)  # exact, float64
    d = (contacts[:, 1] - contacts[:, 0]) / width[:, None]  # [P, 3] closing directions
    c = contacts.mean(1)
    sq = _squared_to_faces(part_pts, normals, i_idx, j_idx, line_tol, config)
    d, c, width, quality, contacts = (
        np.concatenate([a, b]) for a, b in zip((d, c, width, quality, contacts), sq, strict=True)
    )
    ref = np.where((np.abs(d[:, 0]) < 0.9)[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    a = np.cross(d, ref)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = np.cross(d, a)
    angles = 2 * np.pi * np.arange(config.approach_angles) / config.approach_angles
    z = np.cos(angles)[None, :, None] * a[:, None] + np.sin(angles)[None, :, None] * b[:, None]  # [P, A, 3]
    y = np.broadcast_to(d[:, None], z.shape)
    R = np.stack([np.cross(y, z), y, z], axis=-1)  # [P, A, 3, 3], columns x, y, z
    centred = 1.0 - np.minimum(np.linalg.norm(c - centre, axis=1) / max(size, 1e-6), 1.0)
    top = -z[..., 2]  # 1 when approaching straight down (part axes are world axes at t=0)
    score = quality[:, None] + config.top_down_weight * top + 0.3 * centred[:, None]
    out: list[GraspCandidate] = []
    for p in range(len(c)):
        for k in range(len(angles)):
            T = np.eye(4)
            T[:3, :3] = R[p, k]
            T[:3, 3] = c[p]
            out.append(
                GraspCandidate(
                    T, float(width[p]), "grasp", float(quality[p]), float(score[p, k]), contacts[p].copy()
                )
            )
    out.sort(key=lambda g: -g.score)
    return out


def with_load(
    cands: list[GraspCandidate],
    load,  # planner.load.PartLoad or None
    config: GraspConfig = GraspConfig(),
) -> tuple[list[GraspCandidate], int]:
    """Grasps that hold ``load``, each with its ``load_margin`` and a score raised by it; and how
    many were rejected as too weak (the contacts cannot resist the load with the gripper's
    force). Sorted best first. Pushes and ``load`` None pass unchanged.
    """
    grasps = [c for c in cands if c.kind == "grasp"]
    if load is None or not grasps:
        return cands, 0
    from planner.load import grasp_utilisation

    g = config.hand
    util = grasp_utilisation(
        load,
        np.stack([c.T_part_ee for c in grasps]),
        np.array([c.width for c in grasps]),
        config.friction,
        g.grasp_force,
        g.pad_radius,
    )
    kept, weak = [], 0
    for c, u in zip(grasps, util, strict=True):
        if not u < 1.0:  # NaN (no finite load) is rejected too
            weak += 1
            continue
        # A stronger hold ranks higher, up to +0.5 at a margin of 2x the load (a mild preference).
        kept.append(replace(c, score=c.score + min(1.0 - u, 0.5), load_margin=float(1.0 / max(u, 1e-6))))
    kept += [c for c in cands if c.kind != "grasp"]
    kept.sort(key=lambda c: -c.score)
    return kept, weak


def push_candidates(
    part_pts: np.ndarray,  # [n, 3] part frame
    motion_pts: np.ndarray,  # [T, n, 3] the same points in the world over time
    config: GraspConfig = GraspConfig(),
    rng: np.random.Generator | None = None,
    normals: np.ndarray | None = None,  # [n, 3] unit outward normals; None = estimated (PCA)
) -> list[GraspCandidate]:
    """Pushes: the closed fingertips on a point whose outward normal faces against its motion."""
    rng = np.random.default_rng(0) if rng is None else rng
    normals = estimate_normals(part_pts) if normals is None else np.asarray(normals, dtype=float)
    # Direction each point starts moving in (over the first quarter of the flow), world axes
    # equal part axes at frame 0.
    k = max(1, motion_pts.shape[0] // 4)
    v = motion_pts[k] - motion_pts[0]
    speed = np.linalg.norm(v, axis=1)
    vhat = v / np.maximum(speed, 1e-9)[:, None]
    facing = -(normals * vhat).sum(1)  # 1: normal exactly against the motion
    score = facing + speed / max(speed.max(), 1e-9)  # prefer points that move far (leverage)
    # The best point of every cell of a finger pad's width, so the pushes spread over every face
    # that meets the motion instead of crowding where it moves fastest (next to a frame, say).
    order = np.argsort(-score)
    cell = config.hand.finger_width
    _, first = np.unique(np.floor(part_pts[order] / cell).astype(np.int64), axis=0, return_index=True)
    idx = order[np.sort(first)][:100]
    out = []
    for i in idx:
        if facing[i] < np.cos(np.radians(45)):
            continue
        z = -normals[i]
        a = np.cross(z, [1.0, 0, 0] if abs(z[0]) < 0.9 else [0, 1.0, 0])
        a /= np.linalg.norm(a)
        b = np.cross(z, a)
        # Roll about the pushing direction: the hand is long along y, so its roll decides
        # whether the palm clears the table. The tool comes in along its axis, or from above
        # (sliding down past the surface) where that does not drive it into the surface.
        approaches = [None]
        if z[2] > -0.95 and normals[i][2] < 0.3:
            approaches.append(np.array([0.0, 0.0, -1.0]))
        for k in range(4):
            ang = np.pi * k / 4
            T = np.eye(4)
            T[:3, :3] = _frame_from(z, np.cos(ang) * a + np.sin(ang) * b)
            T[:3, 3] = part_pts[i] - z * (config.push_standoff + config.hand.finger_tip)
            level = 1.0 - abs(float(T[2, 1]))  # prefer the long palm axis horizontal
            for app in approaches:
                out.append(
                    GraspCandidate(
                        T,
                        0.0,
                        "push",
                        float(facing[i]),
                        float(score[i]) + 0.2 * level,
                        np.stack([part_pts[i]] * 2),
                        app,
                        normal=normals[i].copy(),
                    )
                )
        out += _edge_pushes(part_pts[i], normals[i], float(facing[i]), float(score[i]), config)
    out.sort(key=lambda g: -g.score)
    return out


# Tilts (degrees) of an edge push's fingers away from the pushed surface, tip first: 0 slides
# them along it, steeper ones raise the hand behind the fingertip above what lies below the
# contact (a lid resting nearly closed on its base leaves a gap too low for a level hand). The
# flank presses along its own normal, as far off the surface's normal as the tilt: at most the
# friction cone's half-angle (atan 0.6 = 31 deg), or the contact slides instead of pushing (at
# 60 deg the flank drove a lid's edge towards its hinge and the lid did not rise).
EDGE_TILTS_DEG = (0.0, 15.0, 30.0)
# Directions round the surface's normal that the fingers may point along it.
EDGE_HEADINGS = 8
# Score below a face push at the same point: the fingertip's edge, not its pad, carries the push.
EDGE_PENALTY = 0.2


def _edge_pushes(
    p: np.ndarray,  # [3] contact point, part frame
    n: np.ndarray,  # [3] its outward unit normal
    facing: float,  # cos between the normal and the point's motion (reversed)
    score: float,  # the point's push score
    config: GraspConfig,
) -> list[GraspCandidate]:
    """Pushes with the closed fingertip's upper edge: the fingers slide in along the surface
    (tip first, tilted ``EDGE_TILTS_DEG`` away from it) and their flank presses on ``p``.

    A face push (tool axis against the normal) puts the hand on the side of the surface the
    push comes from; where that side is a gap (under a lid resting nearly closed), the hand
    would stand inside whatever bounds the gap. Here the tool axis runs along the surface, so
    the hand stays outside the gap, behind the fingertip: a finger hooked under an edge. Tool
    frame: x = the flank's outward normal (against ``n`` when level), z along the surface; the
    contact is the fingertip's edge at (x, z) = (finger_width / 2 + push_standoff, finger_tip).
    The approach is along the surface (the finger slides in under the edge), not along the
    tilted tool axis (which would bring the tip through the part's edge).
    """
    g = config.hand
    a = np.cross(n, [1.0, 0, 0] if abs(n[0]) < 0.9 else [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    out = []
    for k in range(EDGE_HEADINGS):
        ang = 2 * np.pi * k / EDGE_HEADINGS
        t = np.cos(ang) * a + np.sin(ang) * b  # along the surface, where the fingertip points
        for tilt in np.radians(EDGE_TILTS_DEG):
            z = np.cos(tilt) * t + np.sin(tilt) * n  # the tip tilted away from the surface
            x = np.sin(tilt) * t - np.cos(tilt) * n  # the flank, facing the surface
            R = np.stack([x, np.cross(z, x), z], axis=1)
            T = np.eye(4)
            T[:3, :3] = R
            T[:3, 3] = p - R @ np.array([g.finger_width / 2 + config.push_standoff, 0.0, g.finger_tip])
            out.append(
                GraspCandidate(
                    T, 0.0, "push", facing, score - EDGE_PENALTY, np.stack([p, p]), t.copy(), normal=n.copy()
                )
            )
    return out


def _box_arrays(g: GripperGeometry, openings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lo, hi [B, K, 3]: the gripper's K boxes (TCP frame) at each of B finger openings (m)."""
    boxes = [g.boxes(float(w)) for w in openings]
    lo = np.array([[b[0] for b in bs] for bs in boxes])
    hi = np.array([[b[1] for b in bs] for bs in boxes])
    return lo, hi


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[B, K, 8, 3] corners of boxes lo, hi [B, K, 3]."""
    sel = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=bool)  # [8, 3]
    return np.where(sel[None, None], hi[:, :, None], lo[:, :, None])


def _hits(
    T: np.ndarray,  # [B, 4, 4] world TCP poses
    lo: np.ndarray,  # [B, K, 3] boxes, TCP frame
    hi: np.ndarray,
    points: np.ndarray,  # [m, 3] world
    margin: float,
    table_height: float,
    table_clearance: float,
) -> np.ndarray:
    """[B] 0: free, 1: a box below the table top + clearance, 2: a scene point inside a box."""
    R, t = T[:, :3, :3], T[:, :3, 3]
    corners = np.einsum("bkci,bji->bkcj", _corners(lo, hi), R) + t[:, None, None]
    out = np.where((corners[..., 2] < table_height + table_clearance).any((1, 2)), 1, 0)
    rest = np.flatnonzero(out == 0)
    if not (len(points) and len(rest)):
        return out
    # Points in each TCP frame, one coordinate at a time: (p - t) . R[:, a] is one matrix product
    # [m, 3] x [3, b] per axis (float32: sub-micrometre error, half the memory).
    pts = points.astype(np.float32)
    Rr, tr = R[rest].astype(np.float32), t[rest].astype(np.float32)
    lo_r, hi_r = lo[rest] - margin, hi[rest] + margin  # [b, K, 3]
    blo, bhi = lo_r.min(1), hi_r.max(1)  # [b, 3] the boxes' common bounding box
    local = []
    mask = np.ones((len(pts), len(rest)), bool)
    for a in range(3):
        c = pts @ Rr[:, :, a].T - (tr * Rr[:, :, a]).sum(1)  # [m, b]
        mask &= (c > blo[:, a]) & (c < bhi[:, a])
        local.append(c)
    mi, bi = np.nonzero(mask)  # point-pose pairs inside the bounding box: test each box
    if len(mi):
        xyz = np.stack([c[mi, bi] for c in local], axis=1)[:, None]  # [p, 1, 3]
        inside = ((xyz > lo_r[bi]) & (xyz < hi_r[bi])).all(-1).any(-1)  # [p]
        out[rest[np.unique(bi[inside])]] = 2
    return out


def gripper_collisions(
    cands: list[GraspCandidate],
    T_world_part: np.ndarray,  # [T, 4, 4]
    part_traj: np.ndarray,  # [T, n, 3] the part's own points (world)
    other_traj: np.ndarray,  # [T, m, 3] every other point of the scene (world)
    table_height: float,
    config: GraspConfig = GraspConfig(),
    frame_step: int = 5,
) -> list[str | None]:
    """Why each candidate collides (approach, first frame, or along the track), or None if free.

    The gripper is ``config.hand``'s boxes: both fingers at the candidate's opening on the way
    in (its width plus the clearance) and at its hold width on the track, the hand, the wrist
    flange. Checked against the table plane and the scene's points: on the approach (5 poses
    from ``approach_distance`` out to the grasp, against the part and the rest, at frame 0; a
    push's own contact point excepted at the end) and along the track (every ``frame_step``-th
    frame and the last, against the rest of the scene: the part is between the fingers). All
    candidates at once, pose by pose; a candidate stops at its first collision.
    """
    out: list[str | None] = [None] * len(cands)
    if not cands:
        return out
    g = config.hand
    is_grasp = np.array([c.kind == "grasp" for c in cands])
    widths = np.array([c.width for c in cands])
    opening = np.where(is_grasp, np.minimum(g.max_width, widths + config.open_clearance), 0.0)
    hold = np.where(is_grasp, np.maximum(0.0, widths - config.squeeze), 0.0)
    lo_o, hi_o = _box_arrays(g, opening)
    lo_h, hi_h = _box_arrays(g, hold)
    T_pe = np.stack([c.T_part_ee for c in cands])
    T0 = T_world_part[0] @ T_pe  # [B, 4, 4]
    app = np.stack([c.approach_dir() for c in cands]) @ T_world_part[0, :3, :3].T  # world
    pts0 = np.concatenate([part_traj[0], other_traj[0]])
    alive = np.ones(len(cands), bool)
    what = {1: "table", 2: "scene"}

    def check(idx: np.ndarray, T: np.ndarray, lo, hi, points: np.ndarray, label: str) -> None:
        if not len(idx):
            return
        hit = _hits(T, lo, hi, points, config.collision_margin, table_height, config.table_clearance)
        for k in np.flatnonzero(hit):
            out[idx[k]] = label.format(what[int(hit[k])])
            alive[idx[k]] = False

    for s in np.linspace(0.0, 1.0, 5):
        T = T0.copy()
        T[:, :3, 3] -= config.approach_distance * s * app
        label = f"{{}} on approach ({1000 * config.approach_distance * s:.0f} mm out)"
        for grasp in (True, False):
            idx = np.flatnonzero(alive & (is_grasp == grasp))
            if grasp or s > 0.0:
                check(idx, T[idx], lo_o[idx], hi_o[idx], pts0, label)
                continue
            # A push touches its own part at the contact: the pushed surface there is the push,
            # the rest of the part is not (_off_surface).
            for k in idx:
                pts = np.concatenate(
                    [_off_surface(cands[k], T_world_part[0], part_traj[0], config), other_traj[0]]
                )
                check(np.array([k]), T[k : k + 1], lo_o[k : k + 1], hi_o[k : k + 1], pts, label)
    # While holding, the part itself is between the fingers; only the rest of the scene counts.
    n_frames = len(T_world_part)
    for t in sorted(set(range(0, n_frames, frame_step)) | {n_frames - 1}):
        idx = np.flatnonzero(alive)
        check(idx, T_world_part[t] @ T_pe[idx], lo_h[idx], hi_h[idx], other_traj[t], f"{{}} at frame {t}")
    return out


def _off_surface(
    cand: GraspCandidate,
    T_world_part0: np.ndarray,  # [4, 4]
    part_pts: np.ndarray,  # [n, 3] the part's points (world, frame 0)
    config: GraspConfig,
) -> np.ndarray:
    """[m, 3] the part's points a push's tool must clear at its contact: all but those the fingers
    lie on by design, within the pushed surface's slab (the stand-off plus the collision margin
    either side of the plane through the contact, normal to the surface) and in front of the
    palm (tool z above the hand's front). The rest of the part counts: a finger tilted across an
    edge must not cut through the part behind it, nor the hand reach in under a lid after the
    fingers. A push with no surface normal clears none of them (the contact is the point)."""
    if cand.normal is None:
        return part_pts[:0]
    p = T_world_part0[:3, :3] @ cand.contacts[0] + T_world_part0[:3, 3]
    n = T_world_part0[:3, :3] @ cand.normal
    T_world_ee = T_world_part0 @ cand.T_part_ee
    tool_z = (part_pts - T_world_ee[:3, 3]) @ T_world_ee[:3, 2]
    slab = config.push_standoff + config.collision_margin
    on_surface = (np.abs((part_pts - p) @ n) <= slab) & (
        tool_z > config.hand.palm_z[1] + config.collision_margin
    )
    return part_pts[~on_surface]


def collision_free(
    cand: GraspCandidate,
    T_world_part: np.ndarray,  # [T, 4, 4]
    part_traj: np.ndarray,  # [T, n, 3] the part's own points (world)
    other_traj: np.ndarray,  # [T, m, 3] every other point of the scene (world)
    table_height: float,
    config: GraspConfig = GraspConfig(),
    frame_step: int = 5,
) -> str | None:
    """Why ``cand`` collides (approach, first frame, or along the track), or None if it does not.

    One candidate of :func:`gripper_collisions`.
    """
    return gripper_collisions([cand], T_world_part, part_traj, other_traj, table_height, config, frame_step)[
        0
    ]


def describe(cand: GraspCandidate, rank: int, n_free: int, n_total: int, margin: float, frames: int) -> str:
    """A one-line reason for choosing ``cand``."""
    z = cand.T_part_ee[:3, 2]
    tilt = float(np.degrees(np.arccos(np.clip(-z[2], -1, 1))))
    if cand.kind == "push":
        return (
            f"push: no antipodal grasp survived width/collision/reachability; contact normal faces "
            f"against the motion (cos {cand.quality:.2f}), tool {tilt:.0f} deg from vertical, reachable at "
            f"all {frames} frames, joint-limit margin {margin:.2f} rad; best of {n_free} collision-free pushes"
        )
    load = "" if cand.load_margin is None else f", holds {cand.load_margin:.1f}x the part's load"
    return (
        f"antipodal grasp across {1000 * cand.width:.0f} mm (quality {cand.quality:.2f}{load}), approach "
        f"{tilt:.0f} deg from vertical, reachable at all {frames} frames with joint-limit margin "
        f"{margin:.2f} rad; rank {rank + 1} by score among {n_free} collision-free of {n_total} candidates"
    )


def part_frame_points(T_world_part0: np.ndarray, pts_world0: np.ndarray) -> np.ndarray:
    """Points [n, 3] at frame 0 expressed in the part frame."""
    return apply(np.linalg.inv(T_world_part0), pts_world0)
