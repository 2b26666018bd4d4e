"""Jointed objects moved only through their joints: a root pose and joint values per frame.

The seed's deformation gives every control point its own rotation and translation per frame. For
an object with parts and joints (flowgen.parts) that freedom lets the video fit pull a part off
its joint (a drawer that ended 15.9 mm off after starting 1.2 mm off, its cabinet drifting) and
nothing but a soft regulariser pulls it back. Here such an object's motion has exactly its own
degrees of freedom: the root part's rigid pose per frame (held at rest for the whole fit unless
the depth video shows it move, flowgen.joint_init.root_moves) and each joint's value per frame
(a revolute angle about, or a prismatic slide along, the axis the asset or URDF gives). Every part
follows by forward kinematics down the chain, so a moving part stays on its joint's arc or line
and a held root does not move at all.

The values are Fenwick-tree nodes like the control points' (a frame's value is a prefix sum of
nodes), so the seed's temporal structure and its split carry over; the control points of these
objects keep their place in the skinning, regularisers and export, and only their per-frame
transforms come from here (``Deformation.forward`` asks ``kinematics``). Objects without joints,
and the seed's Wan distillation (no parts), keep the free per-control-point deformation.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor, nn

from flowgen.fenwick import nodes_from_frames, path_matrix
from flowgen.rotations import axis_angle_to_quat, matrix_to_quat, quat_to_matrix

log = logging.getLogger(__name__)


def joint_motion(kind: str, axis: Tensor, q: Tensor) -> Tensor:
    """[F, 4, 4] a joint's motion in its own frame: a turn by q [F] rad about, or a slide of q m along, ``axis`` [3]."""
    if kind == "prismatic":
        eye = torch.eye(3, dtype=q.dtype, device=q.device).expand(len(q), 3, 3)
        return _homogeneous(eye, q[:, None] * axis)
    R = quat_to_matrix(axis_angle_to_quat(q[:, None] * axis))
    return _homogeneous(R, torch.zeros(len(q), 3, dtype=q.dtype, device=q.device))


def _homogeneous(R: Tensor, t: Tensor) -> Tensor:  # [F, 3, 3], [F, 3] -> [F, 4, 4]
    top = torch.cat([R, t[..., None]], dim=-1)
    bottom = torch.zeros(*R.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


class _Object(nn.Module):
    """One jointed object's kinematic constants (buffers), object frame unless said."""

    def __init__(self, parts, T_world_obj: np.ndarray, dtype: torch.dtype):
        super().__init__()
        f = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)  # noqa: E731
        self.register_buffer("rest", f(parts.rest_frames))  # [P, 4, 4] T_obj_part at rest
        self.register_buffer("rest_inv", f(np.linalg.inv(parts.rest_frames)))
        self.register_buffer("local_axes", f(parts.local_axes))  # [J, 3] in each child's frame
        self.register_buffer("T_wo", f(T_world_obj))
        self.register_buffer("T_ow", f(np.linalg.inv(T_world_obj)))
        # The root turns about the centre of the object's surface at rest, world metres.
        self.register_buffer("centre", f(np.asarray(parts.surface).mean(axis=0)))
        self.kinds = [j.kind for j in parts.joints]
        self.parents = [j.parent for j in parts.joints]
        self.child_parts = [j.child for j in parts.joints]
        self.count = parts.count

    def part_motions(self, values: Tensor) -> Tensor:
        """[F, P, 4, 4] each part's motion in the object frame for joint values [F, J] (rad or m)."""
        F = values.shape[0]
        # Motions, not frames, each the identity plus a change: the identity exactly where nothing
        # moves (a frame times its inverse is not, by rounding), so a held root, or a joint at 0,
        # does not move by a single bit.
        eye = torch.eye(4, dtype=values.dtype, device=values.device).expand(F, 4, 4)
        motions = [eye] * self.count
        for j, kind in enumerate(self.kinds):  # parents' joints first: the parent's motion is final
            local = joint_motion(kind, self.local_axes[j], values[:, j])
            parent, child = self.parents[j], self.child_parts[j]
            turn = eye + self.rest[child] @ (local - eye) @ self.rest_inv[child]  # exact at q = 0
            motions[child] = motions[parent] @ turn
        return torch.stack(motions, dim=1)


class JointKinematics(nn.Module):
    """Root pose and joint values per frame of every movable jointed object of a scene, and the
    per-frame transforms they give these objects' control points.

    Parameters (Fenwick nodes, [T-1, ...]; frame 0 is the rest pose): ``joint_nodes`` [T-1, J]
    (every jointed object's joints side by side, in units of ``joint_scale``), ``root_rot_nodes``
    and ``root_trans_nodes`` [T-1, n, 3] (rad about the object's centre, metres). A joint's value
    is its node sum times its scale: 1 rad for a revolute joint, the child part's extent in metres
    for a prismatic one, so one optimiser step moves either kind's part by a like distance.
    """

    def __init__(
        self,
        parts: list,  # [O] flowgen.parts.ObjectParts or None
        poses: np.ndarray,  # [O, 4, 4] T_world_obj
        movable: list[bool],  # [O]
        control_part: Tensor,  # [K] long: global part id of each control point
        part_offset: np.ndarray,  # [O] global id of each object's first part
        num_frames: int,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.objects = [
            o
            for o, pt in enumerate(parts)
            if movable[o] and pt is not None and pt.joints and pt.rest_frames is not None
        ]
        # Forward kinematics in float64: a held root's motion, T_wo I T_ow, is then the identity
        # to the last float32 bit (held means not moved at all, not moved by rounding).
        self.models = nn.ModuleList(_Object(parts[o], poses[o], torch.float64) for o in self.objects)
        columns, scales, index, cp_obj, cp_part = [], [], [], [], []
        control_part = control_part.cpu()
        for i, o in enumerate(self.objects):
            pt = parts[o]
            start = sum(len(c) for c in columns)
            columns.append(list(range(start, start + len(pt.joints))))
            for joint in pt.joints:
                child = np.asarray(pt.surface)[np.asarray(pt.owner) == joint.child]
                extent = float(np.ptp(child, axis=0).max()) if len(child) else 1.0
                scales.append(1.0 if joint.kind == "revolute" else max(extent, 1e-3))
            base = int(part_offset[o])
            mine = ((control_part >= base) & (control_part < base + pt.count)).nonzero().flatten()
            index.append(mine)
            cp_obj.append(torch.full((len(mine),), i, dtype=torch.long))
            cp_part.append(control_part[mine] - base)
        self.columns = columns  # [n] each object's joint columns
        n, J = len(self.objects), len(scales)
        self.register_buffer("joint_scale", torch.tensor(scales, dtype=dtype))
        self.register_buffer("index", torch.cat(index) if index else torch.zeros(0, dtype=torch.long))
        self.register_buffer("cp_obj", torch.cat(cp_obj) if cp_obj else torch.zeros(0, dtype=torch.long))
        self.register_buffer("cp_part", torch.cat(cp_part) if cp_part else torch.zeros(0, dtype=torch.long))
        self.joint_nodes = nn.Parameter(torch.zeros(num_frames - 1, J, dtype=dtype))
        self.root_rot_nodes = nn.Parameter(torch.zeros(num_frames - 1, n, 3, dtype=dtype))
        self.root_trans_nodes = nn.Parameter(torch.zeros(num_frames - 1, n, 3, dtype=dtype))
        # A held root's nodes get no gradient, so Adam leaves them exactly where they are; so do
        # a held joint's (``hold_joints``).
        self.register_buffer("root_free", torch.ones(n, dtype=dtype))
        for p in (self.root_rot_nodes, self.root_trans_nodes):
            p.register_hook(lambda g: g * self.root_free[None, :, None])
        self.register_buffer("joint_free", torch.ones(J, dtype=dtype))
        self.joint_nodes.register_hook(lambda g: g * self.joint_free[None, :])
        # Scene objects whose values a joint start wrote: the split leaves them alone.
        self.placed: set[int] = set()

    def covers(self, obj: int) -> bool:
        """Whether scene object ``obj`` moves through its joints here."""
        return obj in self.objects

    def values(self, rows: Tensor) -> Tensor:
        """[F, J] joint values (rad or m) of the frames whose path rows are ``rows`` [F, T-1]."""
        return (rows @ self.joint_nodes) * self.joint_scale

    def part_motions(self, rows: Tensor) -> list[Tensor]:
        """Per object, [F, P, 4, 4] each part's world motion (x_t = M x_rest) at the frames of ``rows``."""
        rows = rows.double()
        values = (rows @ self.joint_nodes.double()) * self.joint_scale.double()
        omega = (rows @ self.root_rot_nodes.double().flatten(1)).reshape(len(rows), -1, 3)
        trans = (rows @ self.root_trans_nodes.double().flatten(1)).reshape(len(rows), -1, 3)
        out = []
        for i, m in enumerate(self.models):
            local = m.part_motions(values[:, self.columns[i]])  # [F, P, 4, 4] object frame
            eye = torch.eye(4, dtype=local.dtype, device=local.device)
            world = eye + m.T_wo @ (local - eye) @ m.T_ow  # exactly the identity where local is
            R = quat_to_matrix(axis_angle_to_quat(omega[:, i]))  # [F, 3, 3]
            root = _homogeneous(R, m.centre + trans[:, i] - R @ m.centre)  # turn about the centre
            out.append(root[:, None] @ world)
        return out

    def control_motion(
        self, rows: Tensor, positions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:  # [F, k, 3, 3], [F, k, 3], [F, k, 4]
        """The covered control points' (``index``) rotation about p_k, displacement of p_k and
        quaternion (w >= 0) at the frames of ``rows``; ``positions`` [K, 3] all p_k."""
        motions = self.part_motions(rows)
        M = torch.cat([m[:, self.cp_part[self.cp_obj == i]] for i, m in enumerate(motions)], dim=1)
        p = positions[self.index].double()  # [k, 3]
        R = M[..., :3, :3]
        t = torch.einsum("fkij,kj->fki", R, p) + M[..., :3, 3] - p
        # Frame 0 (no node on its path) is the rest pose exactly, not T_wo T_ow's rounding of it.
        rest = (rows == 0).all(dim=1)[:, None, None]
        R = torch.where(rest[..., None], torch.eye(3, dtype=R.dtype, device=R.device), R)
        t = torch.where(rest, torch.zeros_like(t), t)
        dtype = positions.dtype
        return R.to(dtype), t.to(dtype), matrix_to_quat(R).to(dtype)

    @torch.no_grad()
    def log_values(self, object_names: list[str]) -> None:
        """Log each joint's fitted value (deg or mm), every 8th frame and at the last frame."""
        path = path_matrix(self.joint_nodes.shape[0] + 1, self.joint_nodes.dtype).to(self.joint_nodes.device)
        values = self.values(path).cpu().numpy()
        for i, o in enumerate(self.objects):
            m = self.models[i]
            for c, kind in zip(self.columns[i], m.kinds, strict=True):
                v = np.rad2deg(values[:, c]) if kind == "revolute" else 1000 * values[:, c]
                log.info(
                    "fitted joint: %s joint %d (%s) at %s, last frame %.1f %s",
                    object_names[o], c - self.columns[i][0], kind, np.round(v[::8], 1).tolist(), v[-1],
                    "deg" if kind == "revolute" else "mm",
                )  # fmt: skip

    def hold_root(self, obj: int) -> None:
        """Hold scene object ``obj``'s root part at rest for the rest of the fit."""
        i = self.objects.index(obj)
        self.root_free[i] = 0.0
        with torch.no_grad():
            self.root_rot_nodes[:, i] = 0.0
            self.root_trans_nodes[:, i] = 0.0

    def held_objects(self) -> list[int]:
        return [o for i, o in enumerate(self.objects) if float(self.root_free[i]) == 0.0]

    def hold_joints(self, obj: int) -> None:
        """Hold scene object ``obj``'s joint values where they are (every frame) for the rest of the fit."""
        self.joint_free[self.columns[self.objects.index(obj)]] = 0.0

    def joints_held(self, obj: int) -> bool:
        """Whether ``hold_joints`` held scene object ``obj``'s joint values."""
        return bool((self.joint_free[self.columns[self.objects.index(obj)]] == 0).all())

    @torch.no_grad()
    def set_values(self, obj: int, values: np.ndarray | Tensor) -> None:
        """Write scene object ``obj``'s joint values per frame [T, J] (rad or m; frame 0 must be 0)."""
        i = self.objects.index(obj)
        values = torch.as_tensor(np.asarray(values), dtype=self.joint_nodes.dtype)
        T = self.joint_nodes.shape[0] + 1
        if tuple(values.shape) != (T, len(self.columns[i])):
            raise ValueError(f"values must be [{T}, {len(self.columns[i])}], got {list(values.shape)}")
        if bool(values[0].abs().max() > 0):
            raise ValueError("values[0] must be zero: frame 0 is the rest pose")
        frames = self._frames(self.joint_nodes)
        cols = torch.as_tensor(self.columns[i])
        frames[:, cols] = values.to(frames) / self.joint_scale[cols]
        self.joint_nodes.copy_(nodes_from_frames(frames))

    @torch.no_grad()
    def split(self, frame: int) -> None:
        """Every frame after ``frame`` takes ``frame``'s joint values and root pose, for the objects
        no joint start placed (``placed``)."""
        for i, o in enumerate(self.objects):
            if o in self.placed:
                continue
            for p, cols in (
                (self.joint_nodes, self.columns[i]),
                (self.root_rot_nodes, [i]),
                (self.root_trans_nodes, [i]),
            ):
                frames = self._frames(p)
                frames[frame + 1 :, cols] = frames[frame, cols]
                p.copy_(nodes_from_frames(frames))

    def _frames(self, nodes: Tensor) -> Tensor:  # [T-1, ...] nodes -> [T, ...] per-frame sums
        path = path_matrix(nodes.shape[0] + 1, nodes.dtype).to(nodes.device)
        return (path @ nodes.flatten(1)).reshape(path.shape[0], *nodes.shape[1:])
