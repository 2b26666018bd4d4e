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
) -> np.ndarray:  # [T] rad or m, frame 0 = 0 (the rest pose)
    """Per frame, the joint value whose posed parts best explain the observed points.

    The cost of a value is the mean distance from each observed point to the posed parts, plus
    (with ``free_space``) the mean distance by which the moving parts stand in front of what the
    camera sees: a surface hidden at rest (a drawer front's inner face) can explain the observed
    front as well as the front itself, but then the front would float in the camera's free space.
    A frame with fewer than 8 observed points keeps the previous frame's value.
    """
    T = len(observed)

    def at(x, t):
        return x[t] if isinstance(x, list) else x

    n = int(np.floor(span / step + 1e-9))
    grid = (torch.arange(-n, n + 1, dtype=torch.float64) * step).float()  # symmetric: 0 is on it
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
        static_t = at(static, t)
        d_static = (
            torch.cdist(obs, static_t).amin(dim=1) if len(static_t) else torch.full((len(obs),), float(cap))
        )
        posed = _posed(kind, at(moving, t), at(origin, t), at(axis, t), grid[idx])  # [G', N, 3]
        d_moving = torch.cdist(obs[None].expand(len(idx), -1, -1), posed).amin(dim=2)  # [G', M]
        cost = torch.minimum(d_moving, d_static[None]).clamp(max=cap).mean(dim=1)  # [G']
        if free_space is not None:
            cost = cost + free_space[t](posed).clamp(max=cap).mean(dim=1)
        values[t] = float(grid[idx[int(cost.argmin())]])
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
    ray (0 behind it, outside the image, or where the depth is unknown)."""
    T = torch.as_tensor(camera.T_world_cam.matrix(), dtype=points.dtype)
    p = (points - T[:3, 3]) @ T[:3, :3]  # world -> camera
    z = p[..., 2]
    H, W = depth.shape
    zs = z.clamp_min(1e-6)
    col = torch.floor(camera.fx * p[..., 0] / zs + camera.cx).long()
    row = torch.floor(camera.fy * p[..., 1] / zs + camera.cy).long()
    inside = (z > camera.near) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    seen = depth[row.clamp(0, H - 1), col.clamp(0, W - 1)]
    known = inside & torch.isfinite(seen) & (seen > 0)
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
        d_root = torch.cdist(obs, root).amin(dim=1)
        if len(others[t]):
            d_root = d_root[d_root <= torch.cdist(obs, others[t]).amin(dim=1)]
        d_root = d_root[d_root < COST_CAP_M]  # not the object's (a mask's bleed, a flying pixel)
        return float(d_root.median()) if len(d_root) >= 8 else None

    floor = offset(0)
    if floor is None:
        return False, 0.0
    worst = max([0.0] + [o - floor for t in range(1, len(observed)) if (o := offset(t)) is not None])
    return worst > tolerance, worst


def initialise_joints(
    model,
    observed: Tensor,
    valid: Tensor,
    root_tolerance: float,
    depth: Tensor | None = None,  # [T, H, W] the observed depth maps (free-space term), metres
    camera=None,  # the camera at the depth maps' resolution
    seed: int = 0,
    samples: int = 1500,
) -> dict:
    """Write per-frame joint values found in ``observed`` ([T, O, M, 3], ``valid`` [T, O, M]) into
    ``model``'s (a Scene4D) deformation for every revolute and prismatic joint of every movable
    object with parts, and hold the object's root part where ``root_moves`` (with
    ``root_tolerance``, metres) finds it at rest.

    Returns {(object index, joint name): values [T] (deg for revolute, mm for prismatic)}.
    """
    d = model.deformation
    rng = torch.Generator().manual_seed(seed)
    omega, trans = (x.detach().clone() for x in d.frame_vectors())
    positions = d.positions.detach().float().cpu()
    control_part = model.control_part.cpu()
    found = {}
    written = False

    def subsample(x: Tensor) -> Tensor:
        return x[torch.randperm(len(x), generator=rng)[:samples]] if len(x) > samples else x

    for o, parts in enumerate(model.parts):
        if parts is None or not model.movable[o] or not parts.joints:
            continue
        T = observed.shape[0]
        frames = [observed[t, o][valid[t, o]].float().cpu() for t in range(T)]
        base = int(model.part_offset[o])
        # Each part's surface samples at rest (world), not its Gaussians: those are spread by
        # area over the whole object, so a small part (a lever) would get a few dozen.
        surface = torch.as_tensor(parts.surface, dtype=torch.float32)
        pts = [subsample(surface[torch.as_tensor(parts.owner == p)]) for p in range(parts.count)]
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
            found[(o, joint.name or f"joint{j}")] = shown
            log.info(
                "joint start: object %d joint %r (%s) at %s %s (every 8th frame)",
                o, joint.name, joint.kind, np.round(shown[::8], 1).tolist(),
                "deg" if joint.kind == "revolute" else "mm",
            )  # fmt: skip
        W = world_motions(values)
        for p in range(1, parts.count):  # the root's motion is the identity: its rows stay zero
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
    if written:
        omega[0], trans[0] = 0.0, 0.0  # frame 0 is the rest pose (exactly: no rounding of R(0) p)
        d.set_frames(omega, trans)
        model.mark_placed(found_objects={o for o, _ in found})
    return found


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
