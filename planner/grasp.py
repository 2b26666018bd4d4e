"""Grasp and push candidates on a moving part, checked against the scene, ranked with a reason.

Tool frame (the TCP, Panda ``panda_grasptarget``): z is the approach direction (from the palm
towards the fingertips), y the closing direction of the fingers, the origin between the
fingertips. A grasp is T_part_ee, held rigid while the part follows its track.

Antipodal candidates pair a surface point with a point across the part such that both normals
lie in the friction cone of the closing line, the line through the two contacts. Each is tried at
several approach angles about the closing line, then filtered by gripper width, collision of
simple finger/palm boxes with the table plane and every other point of the scene (at the first
frame, on the way in, and along the track), and finally reachability (IK at every frame).
Where no grasp survives, a push: the closed fingertips press on a surface point whose normal
faces against its motion, and the tool follows that point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def antipodal_candidates(
    part_pts: np.ndarray,  # [n, 3] the part's points in the part frame
    config: GraspConfig = GraspConfig(),
    rng: np.random.Generator | None = None,
) -> list[GraspCandidate]:
    """All antipodal grasps on the part's points that fit the gripper, before collision checks."""
    rng = np.random.default_rng(0) if rng is None else rng
    normals = estimate_normals(part_pts)
    cos_cone = np.cos(np.radians(config.friction_cone_deg))
    max_w = config.gripper.max_width - config.open_clearance
    anchors = rng.choice(len(part_pts), min(config.anchors, len(part_pts)), replace=False)
    size = float(np.linalg.norm(np.ptp(part_pts, axis=0)))
    centre = part_pts.mean(0)
    # The second contact must lie near the closing line; sparse samples need a wider tube.
    spacing = float(np.median(cKDTree(part_pts).query(part_pts, k=2)[0][:, 1]))
    line_tol = max(config.line_tolerance, 1.5 * spacing)
    out: list[GraspCandidate] = []
    for i in anchors:
        n_in = -normals[i]  # into the part
        v = part_pts - part_pts[i]
        dist = np.linalg.norm(v, axis=1)
        u = v / np.maximum(dist, 1e-9)[:, None]  # candidate closing lines through the anchor
        along = v @ n_in
        # The closing line is the line through both contacts, and each contact's normal must lie
        # in its friction cone about that line. (Taking the anchor's normal as the line would
        # demand the two normals be within one cone of each other: a taper of more than half the
        # cone, such as a lamp's conical shade, would then have no grasp at all.)
        q_ij = np.minimum(u @ n_in, (normals * u).sum(1))
        ok = (dist > 0.005) & (dist < max_w) & (q_ij > cos_cone)
        if not ok.any():
            continue
        cand = np.flatnonzero(ok)
        # The outermost contacts along the anchor's normal (the fingers enclose it all); among
        # those within the sampling tolerance of the outermost, the best-aligned pair.
        cand = cand[along[cand] > along[cand].max() - line_tol]
        j = int(cand[np.argmax(q_ij[cand])])
        d = u[j]
        quality = float(q_ij[j])
        c = 0.5 * (part_pts[i] + part_pts[j])
        a = np.cross(d, [1.0, 0, 0] if abs(d[0]) < 0.9 else [0, 1.0, 0])
        a /= np.linalg.norm(a)
        b = np.cross(d, a)
        for k in range(config.approach_angles):
            ang = 2 * np.pi * k / config.approach_angles
            z = np.cos(ang) * a + np.sin(ang) * b
            T = np.eye(4)
            T[:3, :3] = _frame_from(z, d)
            T[:3, 3] = c
            top = float(-z[2])  # 1 when approaching straight down (part axes are world axes at t=0)
            centred = 1.0 - min(float(np.linalg.norm(c - centre)) / max(size, 1e-6), 1.0)
            score = quality + config.top_down_weight * top + 0.3 * centred
            out.append(
                GraspCandidate(
                    T, float(dist[j]), "grasp", quality, score, np.stack([part_pts[i], part_pts[j]])
                )
            )
    out.sort(key=lambda g: -g.score)
    return out


def push_candidates(
    part_pts: np.ndarray,  # [n, 3] part frame
    motion_pts: np.ndarray,  # [T, n, 3] the same points in the world over time
    config: GraspConfig = GraspConfig(),
    rng: np.random.Generator | None = None,
) -> list[GraspCandidate]:
    """Pushes: the closed fingertips on a point whose outward normal faces against its motion."""
    rng = np.random.default_rng(0) if rng is None else rng
    normals = estimate_normals(part_pts)
    # Direction each point starts moving in (over the first quarter of the flow), world axes
    # equal part axes at frame 0.
    k = max(1, motion_pts.shape[0] // 4)
    v = motion_pts[k] - motion_pts[0]
    speed = np.linalg.norm(v, axis=1)
    vhat = v / np.maximum(speed, 1e-9)[:, None]
    facing = -(normals * vhat).sum(1)  # 1: normal exactly against the motion
    score = facing + speed / max(speed.max(), 1e-9)  # prefer points that move far (leverage)
    idx = np.argsort(-score)[: min(60, len(score))]
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
            T[:3, 3] = part_pts[i] - z * (config.push_standoff + config.gripper.finger_tip)
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
                    )
                )
    out.sort(key=lambda g: -g.score)
    return out


def collision_free(
    cand: GraspCandidate,
    T_world_part: np.ndarray,  # [T, 4, 4]
    part_traj: np.ndarray,  # [T, n, 3] the part's own points (world)
    other_traj: np.ndarray,  # [T, m, 3] every other point of the scene (world)
    table_height: float,
    config: GraspConfig = GraspConfig(),
    frame_step: int = 5,
) -> str | None:
    """Why ``cand`` collides (approach, first frame, or along the track), or None if it does not."""
    g = config.gripper
    if cand.kind == "grasp":
        opening = min(g.max_width, cand.width + config.open_clearance)
        hold = max(0.0, cand.width - config.squeeze)
    else:
        opening = hold = 0.0
    T0 = T_world_part[0] @ cand.T_part_ee
    pts0 = np.concatenate([part_traj[0], other_traj[0]])
    app = T_world_part[0, :3, :3] @ cand.approach_dir()
    for s in np.linspace(0.0, 1.0, 5):
        back = np.eye(4)
        back[:3, 3] = -config.approach_distance * s * app
        # A push touches its own part at the end of the approach: that contact is the point.
        pts = other_traj[0] if (cand.kind == "push" and s == 0.0) else pts0
        why = boxes_hit(
            back @ T0, g.boxes(opening), pts, config.collision_margin, table_height, config.table_clearance
        )
        if why:
            return f"{why} on approach ({1000 * config.approach_distance * s:.0f} mm out)"
    # While holding, the part itself is between the fingers; only the rest of the scene counts.
    boxes_hold = g.boxes(hold)
    T = len(T_world_part)
    for t in sorted(set(range(0, T, frame_step)) | {T - 1}):
        why = boxes_hit(
            T_world_part[t] @ cand.T_part_ee,
            boxes_hold,
            other_traj[t],
            config.collision_margin,
            table_height,
            config.table_clearance,
        )
        if why:
            return f"{why} at frame {t}"
    return None


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
    return (
        f"antipodal grasp across {1000 * cand.width:.0f} mm (quality {cand.quality:.2f}), approach "
        f"{tilt:.0f} deg from vertical, reachable at all {frames} frames with joint-limit margin "
        f"{margin:.2f} rad; rank {rank + 1} by score among {n_free} collision-free of {n_total} candidates"
    )


def part_frame_points(T_world_part0: np.ndarray, pts_world0: np.ndarray) -> np.ndarray:
    """Points [n, 3] at frame 0 expressed in the part frame."""
    return apply(np.linalg.inv(T_world_part0), pts_world0)
