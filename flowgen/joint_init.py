"""Start a jointed object's parts where an RGB-D video shows them: every joint's value per frame.

The video fit's per-pixel losses have a barrier along a large hinge turn (a laptop lid closing
95 deg: the depth L1 rises before it falls, docs/flowgen.md), and nothing in them tells a drawer's
hidden body from its cabinet. A joint has one degree of freedom, so each frame's value can be
found by brute force instead: the joint's child part (with the parts it carries) is turned about,
or slid along, the joint's axis through a grid of values, and the value whose posed parts lie
closest to the frame's back-projected depth points wins, searched near the previous frame's
value so the motion stays continuous. Joints are searched parents first, each with its parent's
motion found, so chains of any length are covered. Every joint is written, whatever the size of
its motion: a joint that does not move is found at (about) 0, which is where it starts anyway.

The values go into the Fenwick nodes of the parts' control points before the optimisation starts.
The object's root part is held at rest for the whole fit when the depth video shows it at rest
(``root_moves``): its control points keep a zero deformation, so it cannot drift.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from torch import Tensor

from flowgen.rotations import axis_angle_to_quat, quat_to_matrix

log = logging.getLogger(__name__)

# Search grids. A revolute joint: every 2 deg over the full turn, within 30 deg of the previous
# frame's angle (480 deg/s at 16 fps: faster than a hand turns a lid or a door). A prismatic joint:
# every 2 mm (a fifth of the 10 mm a moving part may be off), within 50 mm of the previous frame's
# value (0.8 m/s at 16 fps: faster than a hand pulls a drawer), over the object's whole extent.
REVOLUTE_STEP_DEG = 2.0
REVOLUTE_WINDOW_DEG = 30.0
PRISMATIC_STEP_M = 0.002
PRISMATIC_WINDOW_M = 0.05
# Two joints of a chain searched together (pair_track): a grid of pairs is the product of two
# grids, so each is coarser and nearer the previous frame's value than one joint's search (11 x 11
# pairs): every 4 deg within 20 deg (320 deg/s at 16 fps, still faster than a hand turns a lamp's
# joint), every 5 mm within 25 mm (0.4 m/s). The one-joint rounds that follow refine each value
# to the fine grid.
PAIR_STEP_DEG = 4.0
PAIR_WINDOW_DEG = 20.0
PAIR_STEP_M = 0.005
PAIR_WINDOW_M = 0.025
# The pair search is coarse (the grid above) and the one-joint rounds refine it with all samples,
# so it sees fewer points: this many of the observed ones and of each posed side per frame, about
# one per 1.5 cm on a 30 cm part, finer than the 2 cm a 4 deg step moves a point 30 cm out.
PAIR_SAMPLES = 400
# Each frame's best grid value is refined on a grid this many times finer, within one step of it:
# 0.25 deg and 0.25 mm, below the depth noise's reach (a 0.25 deg turn moves a 30 cm door's edge 1.3 mm).
REFINE = 8
# A point's distance counts at most this much in a frame's cost, metres: a point the model cannot
# explain (an occluder's mask bleeding onto the object, a flying pixel) weighs no more than this.
COST_CAP_M = 0.05


def _rotations(axis: Tensor, angles: Tensor) -> Tensor:  # [3], [G] -> [G, 3, 3]
    return quat_to_matrix(axis_angle_to_quat(angles[:, None] * axis[None, :]))


def _posed(kind: str, points: Tensor, origin: Tensor, axis: Tensor, values: Tensor) -> Tensor:
    """[G, N, 3]: ``points`` [N, 3] turned about (rad) or slid along (m) the axis by each of ``values`` [G]."""
    if kind == "prismatic":
        return points[None] + values[:, None, None] * axis
    return torch.einsum("gij,nj->gni", _rotations(axis, values), points - origin) + origin


def _nearest(points: Tensor, query: Tensor, cap: float = COST_CAP_M) -> Tensor:
    """[...] distance (m) from each of ``query`` [..., 3] to its nearest of ``points`` [N, 3],
    at most ``cap`` (``cap`` too if N = 0): the costs below clamp every distance there.

    A k-d tree on the points, queried with every candidate's points at once and searching no
    farther than the cap: the grid searches ask for G candidate poses x M observed points x N
    model points, which a dense distance matrix (torch.cdist) took 20 s to answer for a laptop
    lid's 41 frames.
    """
    if len(points) == 0:
        return torch.full(query.shape[:-1], float(cap), dtype=query.dtype)
    d, _ = cKDTree(points.detach().double().numpy()).query(
        query.detach().reshape(-1, 3).double().numpy(), distance_upper_bound=cap
    )
    return torch.from_numpy(np.minimum(d, cap)).to(query.dtype).reshape(query.shape[:-1])


def joint_track(
    kind: str,  # "revolute" or "prismatic"
    static: list[Tensor] | Tensor,  # per frame [S_t, 3] (or one [S, 3] for all): the other parts, posed
    moving: list[Tensor] | Tensor,  # per frame [N, 3] (or one): the child's subtree at joint value 0
    origin: list[Tensor] | Tensor,  # per frame [3] (or one): a point on the axis, world metres
    axis: list[Tensor] | Tensor,  # per frame [3] (or one): unit axis, world
    observed: list[Tensor],  # per frame [M_t, 3]: the object's back-projected depth points
    step: float,  # grid step: rad (revolute) or m (prismatic)
    window: float,  # the search's reach from the previous frame's value, same unit
    span: float = np.pi,  # values searched lie in [-span, span]
    cap: float = COST_CAP_M,
    free_space: list | None = None,  # per frame: posed points [G, N, 3] -> [G, N] metres in front of
    # the observed surface (free_space_violation), or None: the observed points alone decide
    limits: tuple[float, float] | None = None,  # the joint's range (rad or m); None: the whole span
    refine: int = REFINE,  # the best grid value is refined on a grid this many times finer (1: not)
) -> np.ndarray:  # [T] rad or m, frame 0 = 0 (the rest pose)
    """Per frame, the joint value whose posed parts best explain the observed points.

    The cost of a value is the mean distance from each observed point to the posed parts, plus
    (with ``free_space``) the mean distance by which the moving parts stand in front of what the
    camera sees: a surface hidden at rest (a drawer front's inner face) can explain the observed
    front as well as the front itself, but then the front would float in the camera's free space.
    The best value on the grid is then refined on a grid ``refine`` times finer within one step
    of it. A frame with fewer than 8 observed points keeps the previous frame's value.
    """
    T = len(observed)

    def at(x, t):
        return x[t] if isinstance(x, list) else x

    n = int(np.floor(span / step + 1e-9))
    grid = (torch.arange(-n, n + 1, dtype=torch.float64) * step).float()  # symmetric: 0 is on it
    lo, hi = -span, span
    if limits is not None:  # a joint cannot leave its range (the rest, 0, always stays a candidate)
        lo, hi = min(limits[0], 0.0), max(limits[1], 0.0)
        grid = grid[(grid >= lo - 1e-9) & (grid <= hi + 1e-9)]
    values = np.zeros(T)
    for t in range(1, T):
        obs = observed[t]
        if len(obs) < 8:
            values[t] = values[t - 1]
            continue
        prev = values[t - 1]
        if kind == "revolute":
            gap = np.abs(np.angle(np.exp(1j * (grid.numpy() - prev))))
        else:
            gap = np.abs(grid.numpy() - prev)
        idx = torch.from_numpy(np.flatnonzero(gap <= window + 1e-9))  # ties go to the first, in grid order
        if len(idx) == 0:
            values[t] = prev
            continue
        d_static = _nearest(at(static, t), obs, cap)  # [M]

        def cost(candidates: Tensor, t=t, obs=obs, d_static=d_static) -> Tensor:  # [G'] -> [G']
            # The distance from an observed point to the part turned (slid) by v is that from the
            # point turned (slid) by -v to the part at rest: one tree on the part serves every candidate.
            unposed = _posed(kind, obs, at(origin, t), at(axis, t), -candidates)  # [G', M, 3]
            d_moving = _nearest(at(moving, t), unposed, cap)  # [G', M]
            c = torch.minimum(d_moving, d_static[None]).clamp(max=cap).mean(dim=1)
            if free_space is not None:
                posed = _posed(kind, at(moving, t), at(origin, t), at(axis, t), candidates)  # [G', N, 3]
                c = c + free_space[t](posed).clamp(max=cap).mean(dim=1)
            return c

        best = float(grid[idx[int(cost(grid[idx]).argmin())]])
        if refine > 1:
            # Then a grid `refine` times finer within one step of the best: the coarse step is
            # the search's reach per frame, not a resolution the joint's value should keep (2 deg
            # moves a door's edge 10 mm, the whole error a moving part may have).
            fine = best + step * torch.arange(-refine, refine + 1, dtype=torch.float64) / refine
            fine = fine[(fine >= lo - 1e-9) & (fine <= hi + 1e-9)].float()
            best = float(fine[int(cost(fine).argmin())])  # the best itself is on it: never worse
        values[t] = best
    return values


def _grid(step: float, span: float, limits) -> Tensor:
    """[G] grid values in [-span, span] (inside ``limits``), 0 on the grid."""
    n = int(np.floor(span / step + 1e-9))
    grid = torch.arange(-n, n + 1, dtype=torch.float64) * step
    if limits is not None:
        lo, hi = min(limits[0], 0.0), max(limits[1], 0.0)
        grid = grid[(grid >= lo - 1e-9) & (grid <= hi + 1e-9)]
    return grid.float()


def _near(kind: str, grid: Tensor, prev: float, window: float) -> Tensor:
    """The grid values within ``window`` of ``prev`` (angles wrap)."""
    g = grid.numpy()
    gap = np.abs(np.angle(np.exp(1j * (g - prev)))) if kind == "revolute" else np.abs(g - prev)
    return grid[torch.from_numpy(gap <= window + 1e-9)]


def pair_track(
    kinds: tuple[str, str],  # the outer joint's kind (j, nearer the root), the inner's (k, carried by j)
    static: list[Tensor],  # per frame [S_t, 3]: parts neither joint moves, posed
    middle: list[Tensor],  # per frame [N1, 3]: parts j moves and k does not, at j = k = 0
    inner: list[Tensor],  # per frame [N2, 3]: parts k moves (with j), at j = k = 0
    origins: tuple[list[Tensor], list[Tensor]],  # per frame [3]: a point on each axis at j = k = 0
    axes: tuple[list[Tensor], list[Tensor]],  # per frame [3]: each unit axis at j = k = 0
    observed: list[Tensor],  # per frame [M_t, 3]
    steps: tuple[float, float],  # grid steps, rad or m
    windows: tuple[float, float],  # each value's reach from the previous frame's, same unit
    spans: tuple[float, float] = (np.pi, np.pi),
    limits: tuple = (None, None),  # each joint's range, or None
    cap: float = COST_CAP_M,
    free_space: list | None = None,  # as joint_track's
) -> np.ndarray:  # [T, 2] (j, k) per frame, frame 0 = (0, 0)
    """Per frame, the pair of values of two joints in a chain (k carried by j) whose posed parts
    best explain the observed points, searched together over the grid of pairs near the previous
    frame's pair.

    Searched one at a time, the outer joint of a lamp (its shoulder) is turned to explain where
    the head went when only the elbow moved: the shoulder, with the elbow at rest, is the one joint
    that can bring the head near its observed points. Over pairs the elbow turn explains both the
    head and the still upper arm, which the shoulder turn cannot. The cost of a pair is
    joint_track's (capped distances of the observed points to the posed parts, plus free space).
    """
    T = len(observed)
    grids = [_grid(steps[i], spans[i], limits[i]) for i in range(2)]
    values = np.zeros((T, 2))
    for t in range(1, T):
        obs = observed[t]
        if len(obs) < 8:
            values[t] = values[t - 1]
            continue
        gj = _near(kinds[0], grids[0], values[t - 1, 0], windows[0])
        gk = _near(kinds[1], grids[1], values[t - 1, 1], windows[1])
        if len(gj) == 0 or len(gk) == 0:
            values[t] = values[t - 1]
            continue
        (oj, ok), (aj, ak) = (origins[0][t], origins[1][t]), (axes[0][t], axes[1][t])
        M = len(obs)
        # Undo j, then k, on the observed points (see joint_track): one tree per part at rest.
        un_j = _posed(kinds[0], obs, oj, aj, -gj)  # [Gj, M, 3]
        d_mid = _nearest(middle[t], un_j, cap)  # [Gj, M]
        un_jk = _posed(kinds[1], un_j.reshape(-1, 3), ok, ak, -gk).reshape(len(gk), len(gj), M, 3)
        d_inner = _nearest(inner[t], un_jk, cap).transpose(0, 1)  # [Gj, Gk, M]
        d_static = _nearest(static[t], obs, cap)  # [M]
        d = torch.minimum(torch.minimum(d_mid[:, None], d_inner), d_static)  # [Gj, Gk, M]
        cost = d.clamp(max=cap).mean(dim=2).flatten()  # pairs in (j, k) grid order
        if free_space is not None:
            inner_k = _posed(kinds[1], inner[t], ok, ak, gk)  # [Gk, N2, 3]: k turned, j at 0
            both = _posed(kinds[0], inner_k.reshape(-1, 3), oj, aj, gj).reshape(len(gj), len(gk), -1, 3)
            mid = _posed(kinds[0], middle[t], oj, aj, gj)  # [Gj, N1, 3]
            posed = torch.cat([mid[:, None].expand(-1, len(gk), -1, -1), both], dim=2).flatten(0, 1)
            cost = cost + free_space[t](posed).clamp(max=cap).mean(dim=1)
        best = int(cost.argmin())  # ties go to the first, in grid order
        values[t] = float(gj[best // len(gk)]), float(gk[best % len(gk)])
    return values


def hinge_angles(
    static: Tensor,  # [S, 3] the object's other parts at rest, world metres
    moving: Tensor,  # [N, 3] the child part at rest
    pivot: Tensor,  # [3] a point on the joint axis
    axis: Tensor,  # [3] unit joint axis
    observed: list[Tensor],  # per frame [M_t, 3]: the object's back-projected depth points
    step_deg: float = REVOLUTE_STEP_DEG,
    window_deg: float = REVOLUTE_WINDOW_DEG,
    cap: float = COST_CAP_M,
) -> np.ndarray:  # [T] radians, frame 0 = 0 (the rest pose)
    """Per frame, the hinge angle of a single revolute joint (``joint_track`` with a fixed parent)."""
    return joint_track(
        "revolute", static, moving, pivot, axis, observed, np.deg2rad(step_deg), np.deg2rad(window_deg), cap=cap
    )  # fmt: skip


def slide_track(
    static: Tensor,  # [S, 3] the object's other parts at rest, world metres
    moving: Tensor,  # [N, 3] the child part at rest
    axis: Tensor,  # [3] unit joint axis
    observed: list[Tensor],  # per frame [M_t, 3]
    span: float,  # metres: values searched lie in [-span, span)
    step: float = PRISMATIC_STEP_M,
    window: float = PRISMATIC_WINDOW_M,
    cap: float = COST_CAP_M,
) -> np.ndarray:  # [T] metres, frame 0 = 0
    """Per frame, the slide of a single prismatic joint (``joint_track`` with a fixed parent)."""
    origin = moving.mean(dim=0)
    return joint_track("prismatic", static, moving, origin, axis, observed, step, window, span=span, cap=cap)


def free_space_violation(
    points: Tensor,  # [..., 3] world metres
    depth: Tensor,  # [H, W] observed depth, metres along the optical axis (NaN or 0: unknown)
    camera,  # core.scene.Camera at the depth map's resolution
    margin: float,  # metres: closer than this to the observed surface is depth noise
) -> Tensor:
    """[...] metres by which each point stands in front of the surface the camera sees along its
    ray (0 behind it, outside the image, or where the depth is unknown).

    The surface seen along a point's ray is the nearest known depth of the four pixels whose
    centres surround the point's projection, not the one pixel it falls in. A depth map knows
    free space to a pixel: a pixel shows an object when the object covers its centre, so the
    object's true silhouette lies anywhere within half a pixel of the last pixel that shows it,
    and a model point on that silhouette falls in the pixel beside it (the table, the wall
    behind) as often as in its own. Against that one pixel such a point stands centimetres in
    front of the surface seen; against the four around it, it does not. A point more than half a
    pixel outside the silhouette, or floating in front of the object itself, is still caught.
    Measured on test chain_003 (a lamp, 208 x 116 depth, 145 of the head's depth points): against
    each point's own pixel the head's samples stood 5.6-7.2 mm in front of the surface seen on
    average over head angles -15..-9 deg, lowest 1.9 deg from the truth, and that pulled the
    head's search 1.7 deg off.
    """
    T = torch.as_tensor(camera.T_world_cam.matrix(), dtype=points.dtype)
    p = (points - T[:3, 3]) @ T[:3, :3]  # world -> camera
    z = p[..., 2]
    H, W = depth.shape
    zs = z.clamp_min(1e-6)
    u = camera.fx * p[..., 0] / zs + camera.cx  # pixel coordinates: pixel (r, c) covers [c, c + 1)
    v = camera.fy * p[..., 1] / zs + camera.cy
    inside = (z > camera.near) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    c0 = torch.floor(u - 0.5).long()  # the two columns (rows) whose centres c + 0.5 surround u (v)
    r0 = torch.floor(v - 0.5).long()
    seen = torch.full_like(z, float("inf"))
    for dr in (0, 1):
        for dc in (0, 1):
            r, c = r0 + dr, c0 + dc
            ok = (r >= 0) & (r < H) & (c >= 0) & (c < W)
            d = depth[r.clamp(0, H - 1), c.clamp(0, W - 1)]
            ok = ok & torch.isfinite(d) & (d > 0)
            seen = torch.where(ok, torch.minimum(seen, d), seen)
    known = inside & torch.isfinite(seen)
    return torch.where(known, (seen - z - margin).clamp_min(0.0), torch.zeros_like(z))


def _transform(M: np.ndarray, p: Tensor) -> Tensor:  # [4, 4], [N, 3]
    m = torch.as_tensor(M, dtype=p.dtype)
    return p @ m[:3, :3].T + m[:3, 3]


def root_moves(
    root: Tensor,  # [R, 3] the root part's points at rest, world metres
    others: list[Tensor],  # per frame [S_t, 3]: the other parts posed at their found joint values
    observed: list[Tensor],  # per frame [M_t, 3]
    tolerance: float,  # metres: a root offset this small is depth noise, not motion
) -> tuple[bool, float]:
    """Whether the depth video shows the root part away from its rest pose, and by how much (m).

    Per frame, the observed points nearer the root at rest than the other (posed) parts measure
    the root's offset: the median of their distances to the root at rest. Frame 0 is the rest
    pose by definition, so its offset is the floor of depth noise and model sampling; the root
    moves when a later frame's offset exceeds that floor by more than ``tolerance``. (A rigid
    ICP per frame was tried first: on a partial view of a slab it slides along the plane, 3.5 to
    7.9 mm of "motion" of a laptop base that stands still.)
    """

    def offset(t: int) -> float | None:
        obs = observed[t]
        if len(obs) < 8:
            return None
        d_root = _nearest(root, obs)
        if len(others[t]):
            d_root = d_root[d_root <= _nearest(others[t], obs)]
        d_root = d_root[d_root < COST_CAP_M]  # not the object's (a mask's bleed, a flying pixel)
        return float(d_root.median()) if len(d_root) >= 8 else None

    floor = offset(0)
    if floor is None:
        return False, 0.0
    worst = max([0.0] + [o - floor for t in range(1, len(observed)) if (o := offset(t)) is not None])
    return worst > tolerance, worst


def track_residuals(
    parts,  # flowgen.parts.ObjectParts
    T_world_obj: np.ndarray,  # [4, 4]
    motions: np.ndarray,  # [T, P, 4, 4] each part's world motion, rest -> frame t
    observed: list[Tensor],  # per frame [M_t, 3] world metres
    samples: int = 4000,  # surface samples per part
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """How well the posed parts explain each frame's depth points: ([T] mean point-to-plane
    distance of the matched points, metres, NaN for a frame too few points see; [T] the share of
    observed points matched, i.e. within ``pose_init.CAP_M`` of a surface sample).

    Point-to-plane, as the rigid start measures its track: point to point, the samples' spacing
    (4-7 mm on a cabinet) would read as a residual as large as the depth noise it is compared with.
    """
    from flowgen.pose_init import CAP_M, MIN_POINTS, surface_samples

    rest = [
        surface_samples(m, np.asarray(T_world_obj), samples, seed + p) for p, m in enumerate(parts.meshes)
    ]
    T = len(observed)
    residual, matched = np.full(T, np.nan), np.zeros(T)
    for t in range(T):
        obs = observed[t].detach().double().numpy()
        if len(obs) < MIN_POINTS:
            continue
        M = motions[t]
        pts = np.concatenate([x @ M[p, :3, :3].T + M[p, :3, 3] for p, (x, _) in enumerate(rest)])
        nrm = np.concatenate([n @ M[p, :3, :3].T for p, (_, n) in enumerate(rest)])
        d, i = cKDTree(pts).query(obs, distance_upper_bound=CAP_M)
        ok = np.isfinite(d)
        matched[t] = ok.mean()
        if ok.any():
            residual[t] = np.abs(np.einsum("ij,ij->i", obs[ok] - pts[i[ok]], nrm[i[ok]])).mean()
    return residual, matched


def turn_unseen(parts, joint, T_world_obj: np.ndarray, samples: int = 4000, seed: int = 0) -> bool:
    """Whether a revolute ``joint``'s subtree is a body of revolution about the joint's axis, so
    that depth cannot see it turn (``pose_init.turns_onto_itself`` about the joint's axis): a
    round knob's surface turned by 17-135 deg stays within 0.2-0.5 mm of itself (its pointer
    ridge), a lever's moves 9-60 mm. A prismatic joint: False."""
    from flowgen.pose_init import surface_samples, turns_onto_itself

    if joint.kind != "revolute":
        return False
    sub = _subtree(parts, joint.child)
    rest = [surface_samples(parts.meshes[p], np.asarray(T_world_obj), samples, seed + p) for p in sorted(sub)]
    pts, nrm = np.concatenate([x for x, _ in rest]), np.concatenate([n for _, n in rest])
    return turns_onto_itself(pts, nrm, np.asarray(joint.origin), np.asarray(joint.axis))


def initialise_joints(
    model,
    observed: Tensor,
    valid: Tensor,
    root_tolerance: float,
    depth: Tensor | None = None,  # [T, H, W] the observed depth maps (free-space term), metres
    camera=None,  # the camera at the depth maps' resolution
    seed: int = 0,
    samples: int = 1500,
    noise: float | None = None,  # metres: joint values that explain every frame this well are held
) -> dict:
    """Write per-frame joint values found in ``observed`` ([T, O, M, 3], ``valid`` [T, O, M]) into
    ``model``'s (a Scene4D) deformation for every revolute and prismatic joint of every movable
    object with parts, and hold the object's root part where ``root_moves`` (with
    ``root_tolerance``, metres) finds it at rest.

    With ``noise``, an object whose found joint values explain the depth video within it (every
    seen frame's mean point-to-plane distance at most ``noise`` with at least half of its points
    matched, ``track_residuals``) also has its joint values held for the whole fit, as the rigid
    start holds a track (flowgen.pose_init): the search found them to a quarter of a degree or
    millimetre, and the fit's steps only move them away (train drawers found within 2 mm ended
    the fit 15-25 mm off). An object the values do not explain (hidden, mis-masked, a part the
    model lacks) is left for the fit to correct.

    Returns {(object index, joint name): values [T] (deg for revolute, mm for prismatic)}.
    """
    d = model.deformation
    rng = torch.Generator().manual_seed(seed)
    omega, trans = (x.detach().clone() for x in d.frame_vectors())
    positions = d.positions.detach().float().cpu()
    control_part = model.control_part.cpu()
    found = {}
    written = False

    def subsample(x: Tensor, n: int = samples) -> Tensor:
        return x[torch.randperm(len(x), generator=rng)[:n]] if len(x) > n else x

    def few(x: Tensor) -> Tensor:
        return subsample(x, min(samples, PAIR_SAMPLES))

    for o, parts in enumerate(model.parts):
        if parts is None or not model.movable[o] or not parts.joints:
            continue
        T = observed.shape[0]
        frames = [observed[t, o][valid[t, o]].float().cpu() for t in range(T)]
        base = int(model.part_offset[o])
        # Each part's surface samples at rest (world), not its Gaussians: those are spread by
        # area over the whole object, so a small part (a lever) would get a few dozen. All of
        # them (20,000 a part), not a fixed count a part: with 1,500 each, a door's samples lay
        # 1 cm apart and a lever's 2 mm, and the lever turned over the door explained the door's
        # observed points better than the door's own sparse samples did, so its search drifted
        # towards lying across the door (test chain_000's lever 7.5 deg past the truth, held
        # there). A search's trees are built once on these; its cost is per observed point.
        surface = torch.as_tensor(parts.surface, dtype=torch.float32)
        pts = [surface[torch.as_tensor(parts.owner == p)] for p in range(parts.count)]
        T_wo = np.asarray(model.poses[o], dtype=np.float64)
        T_ow = np.linalg.inv(T_wo)
        values = np.zeros((T, len(parts.joints)))

        def world_motions(v: np.ndarray, parts=parts, T_wo=T_wo, T_ow=T_ow) -> np.ndarray:
            return T_wo @ parts.motions(v) @ T_ow  # [T, J] -> [T, P, 4, 4] world motions

        free = None
        if depth is not None and camera is not None:
            free = [
                (lambda pts_, t=t: free_space_violation(pts_, depth[t], camera, root_tolerance))
                for t in range(T)
            ]
        children = {j: _subtree(parts, joint.child) for j, joint in enumerate(parts.joints)}
        extent = float(np.ptp(parts.surface, axis=0).max())
        # Parents first, then (in a chain) a second round in which every joint is searched again
        # with all the others' values found: a door's hinge searched with its lever at rest is
        # pulled towards the pressed lever's points, which the second round no longer sees as misplaced.
        rounds = 2 if len(parts.joints) > 1 else 1
        # Chains: first every joint with the joint that carries it, searched over pairs
        # (pair_track), so a lamp's elbow turn is not taken for a shoulder turn. With more than
        # one pair (a lamp's shoulder-elbow and elbow-head) the pairs are searched twice: the
        # first shoulder-elbow search sees the head at rest, the second the head found.
        pairs = [
            (j, k)
            for k, inner in enumerate(parts.joints)
            for j, jt in enumerate(parts.joints)
            if jt.child == inner.parent
        ]

        def search(
            order: list, values: np.ndarray, parts=parts, children=children, pts=pts, T=T, extent=extent,
            frames=frames, free=free, o=o, rounds=rounds, world_motions=world_motions,
        ) -> np.ndarray:  # fmt: skip
            """Every joint's values [T, J]: the pairs in ``order`` (twice with more than one),
            then ``rounds`` one-joint rounds; logs each search."""
            for j, k in order * (2 if len(order) > 1 else 1):
                outer, inner = parts.joints[j], parts.joints[k]
                others = values.copy()
                others[:, [j, k]] = 0.0
                W = world_motions(others)
                sub_j, sub_k = children[j], children[k]

                def posed(sel, W=W, pts=pts, T=T):
                    return [
                        few(
                            torch.cat(
                                [_transform(W[t, p], pts[p]) for p in sorted(sel)] or [torch.zeros(0, 3)]
                            )
                        )
                        for t in range(T)
                    ]

                static = posed(set(range(parts.count)) - sub_j)
                middle, carried = posed(sub_j - sub_k), posed(sub_k)
                ends = []
                for jt in (outer, inner):
                    Wp = W[:, jt.parent]
                    ends.append((
                        [_transform(Wp[t], torch.as_tensor(jt.origin[None]).float())[0] for t in range(T)],
                        [torch.as_tensor(Wp[t][:3, :3] @ jt.axis).float() for t in range(T)],
                    ))  # fmt: skip
                rev = [jt.kind == "revolute" for jt in (outer, inner)]
                steps = tuple(np.deg2rad(PAIR_STEP_DEG) if r else PAIR_STEP_M for r in rev)
                windows = tuple(np.deg2rad(PAIR_WINDOW_DEG) if r else PAIR_WINDOW_M for r in rev)
                spans = tuple(np.pi if r else extent for r in rev)
                pair = pair_track(
                    (outer.kind, inner.kind), static, middle, carried, (ends[0][0], ends[1][0]),
                    (ends[0][1], ends[1][1]), [few(f) for f in frames], steps, windows, spans,
                    (outer.limits, inner.limits), free_space=free,
                )  # fmt: skip
                values[:, [j, k]] = pair
                shown = [
                    np.rad2deg(v) if jt.kind == "revolute" else 1000 * v
                    for v, jt in zip(pair.T, (outer, inner), strict=True)
                ]
                log.info(
                    "joint start: object %d joints %r and %r searched as a pair: %s and %s (deg or mm, every 8th frame)",
                    o, outer.name, inner.name, np.round(shown[0][::8], 1).tolist(), np.round(shown[1][::8], 1).tolist(),
                )  # fmt: skip
            for j, joint in [(j, jt) for _ in range(rounds) for j, jt in enumerate(parts.joints)]:
                others = values.copy()
                others[:, j] = 0.0  # this joint at rest, every other at its value found so far
                W = world_motions(others)
                sub = children[j]
                static = [
                    torch.cat([_transform(W[t, p], pts[p]) for p in range(parts.count) if p not in sub])
                    for t in range(T)
                ]
                # The subtree at this joint's value 0: carried by the parent's motion (and, for the
                # parts further down, their own joints' found values).
                moving = [torch.cat([_transform(W[t, p], pts[p]) for p in sorted(sub)]) for t in range(T)]
                parent_W = W[:, joint.parent]
                origin = [
                    _transform(parent_W[t], torch.as_tensor(joint.origin[None]).float())[0] for t in range(T)
                ]
                axis = [torch.as_tensor(parent_W[t][:3, :3] @ joint.axis).float() for t in range(T)]
                if joint.kind == "revolute":
                    # Only the observed points a turn of the subtree can reach change the cost: those
                    # within the subtree's reach of the axis (plus the cap). Sampling among them alone
                    # gives a small part (a door's lever) as many points as a large one.
                    reach = float((moving[0] - origin[0]).norm(dim=1).max()) + COST_CAP_M
                    near = [subsample(f[(f - origin[t]).norm(dim=1) <= reach]) for t, f in enumerate(frames)]
                    track = joint_track(
                        "revolute", static, moving, origin, axis, near,
                        np.deg2rad(REVOLUTE_STEP_DEG), np.deg2rad(REVOLUTE_WINDOW_DEG), free_space=free,
                        limits=joint.limits,
                    )  # fmt: skip
                else:
                    track = joint_track(
                        "prismatic", static, moving, origin, axis, [subsample(f) for f in frames], PRISMATIC_STEP_M, PRISMATIC_WINDOW_M,
                        span=extent, free_space=free, limits=joint.limits,
                    )  # fmt: skip
                values[:, j] = track
                shown = np.rad2deg(track) if joint.kind == "revolute" else 1000 * track
                log.info(
                    "joint start: object %d joint %r (%s) at %s %s (every 8th frame)",
                    o, joint.name, joint.kind, np.round(shown[::8], 1).tolist(),
                    "deg" if joint.kind == "revolute" else "mm",
                )  # fmt: skip
            return values

        values = search(pairs, values.copy())
        if len(parts.joints) > 1:  # a chain: the whole configuration is judged, and polished
            seen_points = [subsample(f) for f in frames]  # the points that judge configurations
        if len(pairs) > 1:
            # A chain of several pairs (a lamp's shoulder-elbow and elbow-head) is searched in
            # both orders and the values that explain the video better are kept. The first pair
            # searched sees the joints below it at rest: a lamp's shoulder-elbow search with its
            # head at rest moved the shoulder to bring the resting head near the observed one
            # (train chain_002: shoulder 4.2 deg for 0, held by the rounds that followed; the cost
            # of the truth's values at the last frame 0.65 mm against 5.4 mm at those found).
            other = search(pairs[::-1], np.zeros_like(values))
            costs = [configuration_cost(world_motions(v), pts, seen_points, free) for v in (values, other)]
            log.info(
                "joint start: object %d searched root-first %.2f mm, tip-first %.2f mm (mean over frames): %s kept",
                o, 1000 * costs[0], 1000 * costs[1], "root-first" if costs[0] <= costs[1] else "tip-first",
            )  # fmt: skip
            if costs[1] < costs[0]:
                values = other
        if len(parts.joints) > 1:
            before = configuration_cost(world_motions(values), pts, seen_points, free)
            values = polish_chain(
                values, [jt.kind for jt in parts.joints], [jt.limits for jt in parts.joints], world_motions,
                pts, seen_points, free,
            )  # fmt: skip
            after = configuration_cost(world_motions(values), pts, seen_points, free)
            log.info(
                "joint start: object %d's joints polished together: cost %.2f -> %.2f mm (mean over "
                "frames); at the last frame %s",
                o, 1000 * before, 1000 * after,
                [round(float(np.rad2deg(v) if jt.kind == "revolute" else 1000 * v), 1)
                 for v, jt in zip(values[-1], parts.joints, strict=True)],
            )  # fmt: skip
        for j, joint in enumerate(parts.joints):
            track = values[:, j]
            found[(o, joint.name or f"joint{j}")] = (
                np.rad2deg(track) if joint.kind == "revolute" else 1000 * track
            )
        W = world_motions(values)
        kin = getattr(model, "kinematics", None)
        if kin is not None and kin.covers(o):  # the object moves through its joints: write their values
            kin.set_values(o, values)
        for p in range(1, parts.count) if kin is None or not kin.covers(o) else ():
            # (parts without rest frames: each part's control points are placed by its motion)
            cps = control_part == base + p
            if not bool(cps.any()):
                continue
            rot = torch.as_tensor(Rotation.from_matrix(W[:, p, :3, :3]).as_rotvec(), dtype=torch.float32)
            moved = torch.stack([_transform(W[t, p], positions[cps]) for t in range(T)])  # [T, k, 3]
            omega[:, cps.to(omega.device)] = rot[:, None, :].expand(T, int(cps.sum()), 3).to(omega)
            trans[:, cps.to(trans.device)] = (moved - positions[cps]).to(trans)
        written = True
        others = [torch.cat([_transform(W[t, p], pts[p]) for p in range(1, parts.count)]) for t in range(T)]
        moves, worst = root_moves(pts[0], others, [subsample(f) for f in frames], root_tolerance)
        if moves:
            log.info(
                "joint start: object %d root part %r moves %.1f mm in the depth video: left free",
                o, parts.names[0], 1000 * worst,
            )  # fmt: skip
        else:
            model.hold_part(base)
            log.info(
                "joint start: object %d root part %r held at rest (it moves at most %.1f mm in the depth video)",
                o, parts.names[0], 1000 * worst,
            )  # fmt: skip
        if noise is not None and not moves and parts.meshes:
            residual, matched = track_residuals(parts, T_wo, W, frames, seed=seed + o)
            seen = np.isfinite(residual)
            worst_res = float(residual[seen].max()) if seen.any() else float("nan")
            hold = bool(seen.any()) and worst_res <= noise and float(matched[seen].min()) >= 0.5
            # A round knob fits its depth points at any angle: the residual says nothing of its
            # turn, which only the video's colours show. Left free for the fit's image terms.
            unseen = [jt.name for jt in parts.joints if turn_unseen(parts, jt, T_wo, seed=seed + o)]
            if unseen:
                hold = False
                log.info(
                    "joint start: object %d joints %s turn bodies of revolution (depth cannot see the turn)",
                    o, unseen,
                )  # fmt: skip
            if hold:
                if kin is not None and kin.covers(o):
                    kin.hold_joints(o)
                else:
                    for p in range(1, parts.count):
                        model.hold_part(base + p)
            log.info(
                "joint start: object %d's depth points lie within %.1f mm of its posed parts (worst "
                "frame; at least %.0f%% matched): joint values %s",
                o, 1000 * worst_res, 100 * float(matched[seen].min()) if seen.any() else 0.0,
                "held for the fit" if hold else "left free for the fit",
            )  # fmt: skip
    if written:
        omega[0], trans[0] = 0.0, 0.0  # frame 0 is the rest pose (exactly: no rounding of R(0) p)
        d.set_frames(omega, trans)
        model.mark_placed(found_objects={o for o, _ in found})
    return found


class _FrameCost:
    """The searches' cost of one frame with every part posed (configuration_cost), for any
    configuration: trees built once a part on its samples at rest, each candidate turning the
    observed points into every part's frame instead of rebuilding a tree on the posed parts.

    ``moving_samples`` caps the samples of the parts other than the root that the free-space term
    poses (None: all of them)."""

    def __init__(self, pts: list[Tensor], free_space: list | None, cap: float, moving_samples: int | None):
        self.trees = [cKDTree(p.double().numpy()) if len(p) else None for p in pts]
        self.free_space, self.cap = free_space, cap
        # The parts other than the root, as samples each tagged with its part.
        self.moving = torch.cat(pts[1:]).double().numpy() if len(pts) > 1 else np.zeros((0, 3))
        self.owner = (
            np.concatenate([np.full(len(p), i) for i, p in enumerate(pts) if i > 0])
            if len(pts) > 1
            else np.zeros(0, int)
        )
        if moving_samples is not None and len(self.moving) > moving_samples:
            keep = np.random.default_rng(0).choice(len(self.moving), moving_samples, replace=False)
            self.moving, self.owner = self.moving[keep], self.owner[keep]

    def __call__(self, t: int, W: np.ndarray, obs: np.ndarray) -> float:  # W [P, 4, 4], obs [M, 3]
        cap = self.cap
        d = np.full(len(obs), cap)
        for p, tree in enumerate(self.trees):
            if tree is None:
                continue
            Wi = np.linalg.inv(W[p])
            dp, _ = tree.query(obs @ Wi[:3, :3].T + Wi[:3, 3], distance_upper_bound=cap)
            d = np.minimum(d, dp)
        c = float(np.minimum(d, cap).mean())
        if self.free_space is not None and len(self.moving):
            Wm = W[self.owner]  # [n, 4, 4] each sample's part motion
            posed = np.einsum("nij,nj->ni", Wm[:, :3, :3], self.moving) + Wm[:, :3, 3]
            c += float(self.free_space[t](torch.as_tensor(posed, dtype=torch.float32)).clamp(max=cap).mean())
        return c


def configuration_cost(
    W: np.ndarray,  # [T, P, 4, 4] each part's world motion per frame
    pts: list[Tensor],  # per part [N_p, 3]: its surface samples at rest, world
    observed: list[Tensor],  # per frame [M_t, 3]: the object's back-projected depth points
    free_space: list | None = None,  # per frame, as joint_track's
    cap: float = COST_CAP_M,
) -> float:
    """Metres: how well a whole object's configuration explains the video, the searches' cost
    with every part posed, averaged over the frames with at least 8 observed points (frame 0
    included): the mean distance from each observed point to the posed parts, plus the mean
    distance by which the parts other than the root stand in front of what the camera sees."""
    frame_cost = _FrameCost(pts, free_space, cap, moving_samples=None)
    costs = [frame_cost(t, W[t], obs.double().numpy()) for t, obs in enumerate(observed) if len(obs) >= 8]
    return float(np.mean(costs)) if costs else 0.0


def polish_chain(
    values: np.ndarray,  # [T, J] every joint's values found, rad or m
    kinds: list[str],  # per joint: "revolute" or "prismatic"
    limits: list,  # per joint: (lower, upper) or None
    world_motions,  # [T, J] -> [T, P, 4, 4] each part's world motion
    pts: list[Tensor],  # per part [N_p, 3]: its surface samples at rest, world
    observed: list[Tensor],  # per frame [M_t, 3]: the object's back-projected depth points
    free_space: list | None = None,  # per frame, as joint_track's
    cap: float = COST_CAP_M,
    moving_samples: int = 2000,  # samples of the parts other than the root the free-space term poses
) -> np.ndarray:
    """[T, J] a chain's values moved jointly, frame by frame, to a minimum of the whole
    configuration's cost (configuration_cost, on ``moving_samples`` of the moving parts' samples
    for the free-space term) near those found.

    The searches move one joint, or one pair, at a time with the others held: where the depth
    fits almost as well with one joint turned and the next turned back (a lamp's elbow and head),
    they stop in that valley short of its lowest point (train chain_008: head 10.5 deg for the
    truth's 13.1, whose configuration cost 0.71 mm against 1.18 mm at the values found). A pattern
    search per frame steps every joint alone and every pair of joints together, the same way or
    opposite, by 2 deg (mm), then 1, 0.5 and 0.25, taking every step that lowers the cost, within
    the joints' ranges.
    """
    T, J = values.shape
    frame_cost = _FrameCost(pts, free_space, cap, moving_samples)
    unit = np.array([np.deg2rad(1.0) if k == "revolute" else 0.001 for k in kinds])
    lo = np.array([-np.inf if lim is None else min(lim[0], 0.0) for lim in limits])
    hi = np.array([np.inf if lim is None else max(lim[1], 0.0) for lim in limits])
    dirs = [np.eye(J)[j] * s for j in range(J) for s in (1.0, -1.0)]
    dirs += [(np.eye(J)[j] + b * np.eye(J)[k]) * s for j in range(J) for k in range(j + 1, J)
             for b in (1.0, -1.0) for s in (1.0, -1.0)]  # fmt: skip
    out = values.copy()
    for t in range(1, T):
        obs = observed[t].double().numpy()
        if len(obs) < 8:
            continue

        def cost(v: np.ndarray, t=t, obs=obs) -> float:
            return frame_cost(t, world_motions(v[None])[0], obs)  # the motions depend on the values alone

        x = np.clip(out[t], lo, hi)  # never outside the joints' ranges
        best = cost(x)
        for scale in (2.0, 1.0, 0.5, 0.25):
            improved = True
            while improved:
                improved = False
                for d in dirs:
                    y = np.clip(x + scale * unit * d, lo, hi)
                    if np.array_equal(y, x):
                        continue
                    c = cost(y)
                    if c < best - 1e-9:
                        x, best, improved = y, c, True
        out[t] = x
    return out


def _subtree(parts, child: int) -> set[int]:
    """The part ``child`` and every part its joints carry, down the chain."""
    out, frontier = {child}, [child]
    while frontier:
        p = frontier.pop()
        for j in parts.joints:
            if j.parent == p and j.child not in out:
                out.add(j.child)
                frontier.append(j.child)
    return out
