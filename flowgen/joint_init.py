"""Start a jointed object's parts where an RGB-D video shows them: one hinge angle per frame.

The video fit's per-pixel losses have a barrier along a large hinge turn (a laptop lid closing
95 deg: the depth L1 rises before it falls, docs/flowgen.md). A hinge has one degree of freedom,
so each frame's angle can be found by brute force instead: the child part's Gaussians are turned
about the asset's joint axis through a grid of angles, and the angle whose parts (child turned,
the rest at rest) lie closest to the frame's back-projected depth points wins, searched near the
previous frame's angle so the motion stays continuous. The angles are written into the Fenwick
nodes of the child part's control points before the optimisation starts.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from flowgen.rotations import axis_angle_to_quat, quat_to_matrix

log = logging.getLogger(__name__)


def _rotations(axis: Tensor, angles: Tensor) -> Tensor:  # [3], [G] -> [G, 3, 3]
    return quat_to_matrix(axis_angle_to_quat(angles[:, None] * axis[None, :]))


def hinge_angles(
    static: Tensor,  # [S, 3] the object's other parts at rest, world metres
    moving: Tensor,  # [N, 3] the child part at rest
    pivot: Tensor,  # [3] a point on the joint axis
    axis: Tensor,  # [3] unit joint axis
    observed: list[Tensor],  # per frame [M_t, 3]: the object's back-projected depth points
    step_deg: float = 2.0,
    window_deg: float = 30.0,
    cap: float = 0.05,  # metres: a point's distance counts at most this much (occlusion, noise)
) -> np.ndarray:  # [T] radians, frame 0 = 0 (the rest pose)
    """Per frame, the hinge angle whose posed parts best explain the observed points."""
    grid = torch.deg2rad(torch.arange(-180.0, 180.0, step_deg, dtype=torch.float32))
    rel = moving - pivot
    posed = torch.einsum("gij,nj->gni", _rotations(axis, grid), rel) + pivot  # [G, N, 3]
    angles = np.zeros(len(observed))
    for t in range(1, len(observed)):
        obs = observed[t]
        if len(obs) < 8:
            angles[t] = angles[t - 1]
            continue
        d_static = torch.cdist(obs, static).amin(dim=1)  # [M]
        # Only the angles within the window of the previous frame's are scored (a sixth of the grid).
        near = np.abs(np.rad2deg(np.angle(np.exp(1j * (grid.numpy() - angles[t - 1]))))) <= window_deg
        idx = torch.from_numpy(np.flatnonzero(near))  # [G'] in grid order: ties go to the first, as before
        d_moving = torch.cdist(obs[None].expand(len(idx), -1, -1), posed[idx]).amin(dim=2)  # [G', M]
        cost = torch.minimum(d_moving, d_static[None]).clamp(max=cap).mean(dim=1)  # [G']
        angles[t] = float(grid[idx[int(cost.argmin())]])
    return angles


def initialise_hinges(
    model, observed: Tensor, valid: Tensor, min_turn_deg: float = 45.0, seed: int = 0, samples: int = 1500
) -> dict:
    """Write per-frame hinge angles found in ``observed`` ([T, O, M, 3], ``valid`` [T, O, M]) into
    ``model``'s (a Scene4D) deformation for every revolute joint of every movable object whose
    part turns by at least ``min_turn_deg`` (smaller turns are left to the fit, which finds them).

    Returns {(object index, child part): angles in degrees [T]} of the joints it wrote.
    """
    d = model.deformation
    g = model.gaussians
    means = g.means.detach().float().cpu()
    gobj = g.object_index.cpu()
    gpart = model._point_parts(g.means, g.object_index).cpu()
    rng = torch.Generator().manual_seed(seed)
    omega, trans = (x.detach().clone() for x in d.frame_vectors())
    found = {}

    def subsample(x: Tensor) -> Tensor:
        return x[torch.randperm(len(x), generator=rng)[:samples]] if len(x) > samples else x

    for o, parts in enumerate(model.parts):
        if parts is None or not model.movable[o]:
            continue
        frames = [observed[t, o][valid[t, o]].float().cpu() for t in range(observed.shape[0])]
        for joint in parts.joints:
            child = int(model.part_offset[o]) + joint.child
            own = gobj == o
            moving = subsample(means[own & (gpart == child)])
            static = subsample(means[own & (gpart != child)])
            anchors = torch.as_tensor(joint.anchors, dtype=torch.float32)
            pivot, axis = anchors[0], anchors[-1] - anchors[0]
            axis = axis / axis.norm()
            angles = hinge_angles(static, moving, pivot, axis, frames)
            if np.rad2deg(np.abs(angles).max()) < min_turn_deg:
                log.info(
                    "hinge start: object %d part %d turns at most %.0f deg: left to the fit",
                    o, joint.child, np.rad2deg(np.abs(angles).max()),
                )  # fmt: skip
                continue
            rots = _rotations(axis, torch.as_tensor(angles, dtype=torch.float32))  # [T, 3, 3]
            cps = (model.control_part == child).to(omega.device)
            p = d.positions.detach().float().cpu()[cps.cpu()]  # [k, 3]
            omega[:, cps] = (torch.as_tensor(angles, dtype=torch.float32)[:, None, None] * axis).to(omega)
            moved = torch.einsum("tij,kj->tki", rots, p - pivot) + pivot  # [T, k, 3]
            trans[:, cps] = (moved - p).to(trans)
            found[(o, joint.child)] = np.rad2deg(angles)
            log.info(
                "hinge start: object %d part %d turns to %s deg (every 8th frame)",
                o, joint.child, np.round(np.rad2deg(angles[::8]), 1).tolist(),
            )  # fmt: skip
    if found:
        omega[0], trans[0] = 0.0, 0.0  # frame 0 is the rest pose (exactly: no rounding of R(0) p)
        d.set_frames(omega, trans)
    return found
