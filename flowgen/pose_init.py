"""Start a rigid object's motion where the depth video shows it: frame-to-frame point tracking.

The video fit optimises every frame of an object's deformation at once, starting from rest. A
motion that turns an object far from its rest pose (a mug turned 73 deg) leaves the late frames'
observed points out of the chamfer's reach: the 3D term pulls the model towards the nearest
observed points, which for a turn about a nearly symmetric axis are those of its rest pose, and
the fit ends with the turn missed (72 of 76 deg on a test-split mug, 17 mm mean error).

Tracked frame by frame the motion between two frames is small (a few degrees, a few mm), so a
rigid registration started from the previous frame's pose follows it: ``rigid_track`` aligns the
object's surface samples (posed) to each frame's back-projected depth points by damped
Gauss-Newton on point-to-plane distances (ICP), each observed point matched to its nearest
surface sample: a partial view sees only part of the model, so every observed point lies on it,
not every model point on an observation. Matches farther than ``cap`` are dropped (mask bleed, a
flying pixel). A frame with too few observed points keeps the previous frame's pose.

What it cannot see it does not invent. A body of revolution turned about its own axis looks the
same: ``symmetry_axes`` finds the axes (among the surface's principal axes) about which turning
the surface by any of ``SYMMETRY_ANGLES_DEG`` moves it less than ``SYMMETRY_M``, a depth camera's
noise, and the track never turns the object about them. Without this a cylinder sliding on its
side was tracked rolling instead (the two look alike in depth), 130-140 deg over 40 frames. The
remaining directions are solved with a small Levenberg damping (``DAMPING`` of the mean
curvature of the cost), which only steadies a direction the observations barely constrain.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from torch import Tensor

log = logging.getLogger(__name__)

CAP_M = 0.02  # metres: an observed point farther than this from the posed model is not matched
ITERATIONS = 30  # Gauss-Newton iterations per frame (stops early once the update is below STOP)
STOP_M = 1e-5  # metres (radians times the object's radius): an update this small ends a frame
MIN_POINTS = 16  # observed points a frame needs to be registered
# Levenberg damping, as a fraction of the mean curvature of the point-to-plane cost: directions
# the observations constrain (curvature ~ the mean) move freely, one they barely constrain is
# steadied (a body of revolution's own axis is excluded outright: symmetry_axes).
DAMPING = 1e-3
# A surface that turned by each of these angles about an axis through its centroid stays within
# SYMMETRY_M (mean distance to the unturned surface) is a body of revolution about that axis: a
# depth camera (millimetre noise) cannot see it turn. Several angles, so a surface symmetric under
# one turn only (a box's quarter turn, a hexagonal prism's sixth) is not taken for one.
SYMMETRY_M = 0.001
SYMMETRY_ANGLES_DEG = (17.0, 45.0, 90.0, 135.0)


def turns_onto_itself(
    points: np.ndarray,  # [N, 3] a surface's samples
    normals: np.ndarray,  # [N, 3] their unit normals
    origin: np.ndarray,  # [3] a point on the axis
    axis: np.ndarray,  # [3] unit axis
    tree: cKDTree | None = None,  # on ``points``, if already built
) -> bool:
    """Whether the surface turned about the axis by each of ``SYMMETRY_ANGLES_DEG`` stays within
    ``SYMMETRY_M`` of itself: a turned sample's distance to the surface is that to its nearest
    sample's tangent plane (the distance between two samplings of one surface would be the
    sampling's spacing, not zero)."""
    tree = cKDTree(points) if tree is None else tree
    for angle in SYMMETRY_ANGLES_DEG:
        R = Rotation.from_rotvec(np.deg2rad(angle) * np.asarray(axis)).as_matrix()
        turned = (points - origin) @ R.T + origin
        _, idx = tree.query(turned)
        if np.abs(((turned - points[idx]) * normals[idx]).sum(axis=1)).mean() >= SYMMETRY_M:
            return False
    return True


def symmetry_axes(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """[k, 3] unit axes (k = 0..3, through the centroid of ``points`` [N, 3], a surface's samples
    with unit ``normals``) about which the surface is a body of revolution, to within
    ``SYMMETRY_M`` (module docstring; ``turns_onto_itself``). Candidates are the principal axes
    of the samples' spread."""
    local = points - points.mean(axis=0)
    _, axes = np.linalg.eigh(local.T @ local)
    tree = cKDTree(local)
    out = [a for a in axes.T if turns_onto_itself(local, normals, np.zeros(3), a, tree)]
    return np.array(out).reshape(-1, 3)


def _skew_rows(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """[m, 6] the point-to-plane Jacobian rows (a x n, n) of a small motion (omega, v) about a centre."""
    return np.concatenate([np.cross(a, n), n], axis=1)


def register(
    tree: cKDTree,  # on the surface samples at rest, world metres
    rest: np.ndarray,  # [N, 3] those samples
    normals: np.ndarray,  # [N, 3] their unit outward normals at rest
    observed: np.ndarray,  # [M, 3] world metres
    start: np.ndarray,  # [4, 4] the motion to start from (rest -> now)
    cap: float = CAP_M,
    iterations: int = ITERATIONS,
    fixed_axes: np.ndarray | None = None,  # [k, 3] rest-frame axes through the centroid never turned about
) -> tuple[np.ndarray, float, float]:
    """(motion [4, 4] rest -> now, mean point-to-plane distance m of the matches, fraction of the
    observed points matched within ``cap``): damped
    Gauss-Newton on the observed points' distances to the tangent planes of their nearest
    surface samples, posed by the motion, started at ``start``, turning about the samples'
    centroid but never about ``fixed_axes`` (module docstring)."""
    M = start.copy()
    mean, matched = float("nan"), 0.0
    rest_centre = rest.mean(axis=0)
    radius = float(np.sqrt(((rest - rest_centre) ** 2).sum(axis=1).mean()))
    scale = np.array([radius] * 3 + [1.0] * 3)  # rotation in metres at the object's radius
    fixed = np.zeros((0, 3)) if fixed_axes is None else np.asarray(fixed_axes, dtype=float).reshape(-1, 3)
    for _ in range(iterations):
        inv = np.linalg.inv(M)
        local = observed @ inv[:3, :3].T + inv[:3, 3]  # observed points in the rest frame
        d, idx = tree.query(local, distance_upper_bound=cap)
        ok = np.isfinite(d)
        matched = float(ok.mean())
        if ok.sum() < MIN_POINTS:
            break
        p = rest[idx[ok]] @ M[:3, :3].T + M[:3, 3]  # matched samples, posed now
        n = normals[idx[ok]] @ M[:3, :3].T
        q = observed[ok]
        centre = M[:3, :3] @ rest_centre + M[:3, 3]
        r = ((p - q) * n).sum(axis=1)  # [m] signed point-to-plane distances
        mean = float(np.abs(r).mean())
        J = _skew_rows(p - centre, n) / scale  # scaled parameters: metres for both
        # The allowed steps: every (omega, v) with omega orthogonal to the fixed axes (posed now).
        B = np.eye(6)
        if len(fixed):
            w = fixed @ M[:3, :3].T  # [k, 3] world
            _, _, Vt = np.linalg.svd(w)
            B = np.zeros((6, 6 - len(w)))
            B[:3, : 3 - len(w)] = Vt[len(w) :].T  # rotation axes orthogonal to the fixed ones
            B[3:, 3 - len(w) :] = np.eye(3)
        JB = J @ B
        H = JB.T @ JB
        H += DAMPING * np.trace(H) / len(H) * np.eye(len(H))
        x = -(B @ np.linalg.solve(H, JB.T @ r)) / scale  # (omega rad, v m)
        step = np.eye(4)
        step[:3, :3] = Rotation.from_rotvec(x[:3]).as_matrix()
        step[:3, 3] = centre - step[:3, :3] @ centre + x[3:]
        M = step @ M
        if np.abs(x * scale).max() < STOP_M:
            break
    return M, mean, matched


def rigid_track(
    rest: np.ndarray,  # [N, 3] surface samples of the object at rest, world metres
    normals: np.ndarray,  # [N, 3] their unit outward normals
    observed: list[np.ndarray],  # per frame [M_t, 3] its back-projected depth points, world metres
    cap: float = CAP_M,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, the rigid motion of the object from rest that puts its surface on the observed
    points, tracked from the previous frame's (module docstring).

    Returns ([T, 4, 4] world motions rest -> frame t, frame 0 the identity (the scene gives the
    objects' poses at frame 0); [T] mean point-to-plane distance of each frame's matches, m;
    [T] fraction of each frame's observed points matched within ``cap``). A frame not
    registered (too few points, frame 0) has NaN for both.
    """
    T = len(observed)
    tree = cKDTree(rest)
    fixed = symmetry_axes(rest, normals)
    if len(fixed):
        log.info(
            "rigid start: the surface is a body of revolution about %d axis(es): not turned about them",
            len(fixed),
        )
    motions = np.tile(np.eye(4), (T, 1, 1))
    residual, matched = np.full(T, np.nan), np.full(T, np.nan)
    for t in range(1, T):
        obs = observed[t]
        if len(obs) < MIN_POINTS:
            motions[t] = motions[t - 1]
            continue
        motions[t], residual[t], matched[t] = register(
            tree, rest, normals, obs, motions[t - 1], cap, fixed_axes=fixed
        )
    return motions, residual, matched


def surface_samples(mesh, pose: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """([count, 3] points, [count, 3] unit normals), world: area-uniform samples of a trimesh
    ``mesh`` (object frame) posed by ``pose`` [4, 4], each with its face's normal."""
    import trimesh

    points, faces = trimesh.sample.sample_surface(mesh, count, seed=seed)
    normals = np.asarray(mesh.face_normals)[faces]
    R, t = pose[:3, :3], pose[:3, 3]
    return np.asarray(points) @ R.T + t, normals @ R.T


def motion_summary(motions: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([T] mm the centre moves, [T] deg the object turns) from frame 0, for logs."""
    moved = np.linalg.norm(motions[:, :3, :3] @ centre + motions[:, :3, 3] - centre, axis=1)
    turned = np.degrees(np.linalg.norm(Rotation.from_matrix(motions[:, :3, :3]).as_rotvec(), axis=1))
    return 1000 * moved, turned


def initialise_rigid(
    model,  # flowgen.scene4d.Scene4D
    observed: Tensor,  # [T, O, M, 3] back-projected depth points per object, world metres
    valid: Tensor,  # [T, O, M] bool
    noise: float,  # metres: a track whose every frame's matches lie this close is held (below)
    samples: int = 4000,  # surface samples per object
    seed: int = 0,
) -> dict:
    """Write each movable object without joints' tracked rigid motion (``rigid_track``) into
    ``model``'s deformation: every control point of the object moved rigidly, frame by frame,
    and the object marked placed (the fit's split keeps its frames).

    A track that explains the depth video within the depth's ``noise`` (every registered frame's
    mean point-to-plane distance at most ``noise``, and at least half of its observed points
    matched) is held for the whole fit, as a still root part is: the fit's steps only move it
    away (a box tracked to 0.1 mm ended the fit 5-7 mm off, with 25-34 mm at four late frames).
    One that does not (the object hidden, deformed, or lost) is left for the fit to correct.

    Returns {object index: ([T, 4, 4] world motions rest -> frame t, held)}.
    """
    d = model.deformation
    omega, trans = (x.detach().clone() for x in d.frame_vectors())
    positions = d.positions.detach().double().cpu().numpy()
    cp_object = d.object_index.cpu().numpy()
    found = {}
    T = observed.shape[0]
    for o in range(len(model.movable)):
        parts = model.parts[o]
        if not model.movable[o] or (parts is not None and parts.joints):
            continue
        rest, normals = surface_samples(model.meshes[o], np.asarray(model.poses[o]), samples, seed + o)
        frames = [observed[t, o][valid[t, o]].double().cpu().numpy() for t in range(T)]
        motions, residual, matched = rigid_track(rest, normals, frames)
        moved, turned = motion_summary(motions, rest.mean(axis=0))
        seen = np.isfinite(residual)
        worst = float(residual[seen].max()) if seen.any() else float("nan")
        held = bool(seen.any()) and worst <= noise and float(matched[seen].min()) >= 0.5
        log.info(
            "rigid start: object %d moves %s mm and turns %s deg (every 8th frame); depth points "
            "within %.1f mm of it (worst frame), %s",
            o, np.round(moved[::8], 1).tolist(), np.round(turned[::8], 1).tolist(), 1000 * worst,
            "held there for the fit" if held else "left free for the fit",
        )  # fmt: skip
        cps = np.flatnonzero(cp_object == o)
        rot = torch.as_tensor(Rotation.from_matrix(motions[:, :3, :3]).as_rotvec(), dtype=omega.dtype)
        p = positions[cps]  # [k, 3]
        moved_cp = np.einsum("tij,kj->tki", motions[:, :3, :3], p) + motions[:, None, :3, 3]  # [T, k, 3]
        sel = torch.as_tensor(cps, device=omega.device)
        omega[:, sel] = rot[:, None, :].expand(T, len(cps), 3).to(omega)
        trans[:, sel] = torch.as_tensor(moved_cp - p[None], dtype=trans.dtype).to(trans)
        found[o] = (motions, held)
        if held:
            model.hold_part(int(model.part_offset[o]))
    if found:
        omega[0], trans[0] = 0.0, 0.0  # frame 0 is the rest pose
        d.set_frames(omega, trans)
        model.mark_placed(found_objects=set(found))
    return found
