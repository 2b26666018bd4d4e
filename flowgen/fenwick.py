"""The deformation sequence: per control point, per frame, a rotation and a translation, stored
in a Fenwick tree over the frames (seed A.1; docs/design.md "The method").

Indexing. Frames are 0-based, t = 0..T-1. Frame 0 is the rest pose (the static snapshot the video
prior is conditioned on) and has no parameters. Tree nodes are 1-based, j = 1..T-1, and node j
is stored at row j - 1 of the parameter tensors. Frame t's deformation is the sum of the nodes
on its Fenwick query path t, t - lowbit(t), ... > 0; so node j shapes exactly the frames
[j, j + lowbit(j)) (clipped to T - 1): node 8 moves frames 8..15, node 5 only frame 5. Nodes
with large lowbit act over long spans, small ones locally: parameters work at several time
scales at once. Zero parameters are the rest pose.

Parameterisation. The summed quantity is a rotation vector (axis * angle, the Lie algebra so(3))
and a translation; the frame's rotation is the exp map of the summed vector. Sums of rotation
vectors are exact composition for rotations about a common axis (a hinge, a lamp's joint) and
first-order composition otherwise, need no renormalisation, and zero means identity, so the
whole query is one matrix product of a constant 0/1 path matrix [T, T-1] with the nodes.

Translation t_k is the displacement of control point p_k; the rotation R_k turns space about
p_k: a point x near p_k goes to ``R_k (x - p_k) + p_k + t_k``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from flowgen.rotations import axis_angle_to_quat, quat_to_axis_angle, quat_to_matrix


def lowbit(j: int) -> int:
    """The lowest set bit of j >= 1 (Fenwick node j covers frames [j, j + lowbit(j)))."""
    return j & -j


def path_matrix(num_frames: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """[T, T-1] 0/1 matrix: entry (t, j-1) is 1 when node j is on frame t's query path."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    m = torch.zeros(num_frames, num_frames - 1, dtype=dtype)
    for t in range(1, num_frames):  # setup only: the query itself is a matmul
        j = t
        while j > 0:
            m[t, j - 1] = 1.0
            j -= lowbit(j)
    return m


def nodes_from_frames(values: Tensor) -> Tensor:
    """Fenwick nodes [T-1, ...] whose prefix query gives ``values`` [T, ...] (values[0] must be 0).

    node_j = D_j - D_{j - lowbit(j)}: the inverse of the query, used by ``split`` and
    ``set_frames``.
    """
    num_frames = values.shape[0]
    idx = torch.arange(1, num_frames)
    parent = idx - (idx & -idx)
    return values[idx] - values[parent]


class ControlMotion(NamedTuple):
    """Per-frame rigid transforms of the control points."""

    R: Tensor  # [F, K, 3, 3] rotation about p_k
    t: Tensor  # [F, K, 3] displacement of p_k, metres
    q: Tensor  # [F, K, 4] the same rotation as a unit quaternion wxyz, w >= 0


def query(
    rows: Tensor,  # [F, T-1] rows of path_matrix for the wanted frames
    rot_nodes: Tensor,  # [T-1, K, 3] rotation-vector nodes, rad
    trans_nodes: Tensor,  # [T-1, K, 3] translation nodes, metres
) -> ControlMotion:
    """Functional Fenwick query: prefix sums by one matmul, then the exp map."""
    f, k = rows.shape[0], rot_nodes.shape[1]
    omega = (rows @ rot_nodes.flatten(1)).reshape(f, k, 3)
    trans = (rows @ trans_nodes.flatten(1)).reshape(f, k, 3)
    q = axis_angle_to_quat(omega)
    # w = cos(theta/2) < 0 past pi: flip so blended quaternions share a hemisphere
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0)
    return ControlMotion(quat_to_matrix(q), trans, q)


class Deformation(nn.Module):
    """Control points of all objects and their Fenwick-tree deformation sequence.

    Control points are grouped by object (``object_index`` non-decreasing); objects never share
    control points. Parameters (separate, for separate learning rates):
    ``rot_nodes`` [T-1, K, 3] and ``trans_nodes`` [T-1, K, 3] (the tree, seed lr 0.006),
    ``cov_log_scales`` [K, 3] (Sigma_k scales, log metres, lr 0.006) and ``cov_quats`` [K, 4]
    (Sigma_k rotations wxyz, lr 0.003). p_k (``positions``) is a fixed buffer.
    """

    def __init__(
        self,
        positions: Tensor,  # [K, 3] control points p_k, world metres
        object_index: Tensor,  # [K] long, non-decreasing
        scales: Tensor,  # [K] initial covariance std dev, metres
        num_frames: int,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        positions = torch.as_tensor(positions, dtype=dtype)
        object_index = torch.as_tensor(object_index, dtype=torch.long)
        scales = torch.as_tensor(scales, dtype=dtype)
        k = positions.shape[0]
        if positions.ndim != 2 or positions.shape[1] != 3 or k < 1:
            raise ValueError(f"positions must be [K, 3] with K >= 1, got {tuple(positions.shape)}")
        if object_index.shape != (k,) or scales.shape != (k,):
            raise ValueError(
                f"object_index {tuple(object_index.shape)} and scales {tuple(scales.shape)} "
                f"must both be [{k}]"
            )
        if k > 1 and bool((object_index[1:] < object_index[:-1]).any()):
            raise ValueError("object_index must be non-decreasing (control points grouped by object)")
        if not bool((scales > 0).all()):
            raise ValueError(f"scales must be > 0, got min {float(scales.min())}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = int(num_frames)
        self.register_buffer("positions", positions)
        self.register_buffer("object_index", object_index)
        self.register_buffer("path", path_matrix(num_frames, dtype))
        self.rot_nodes = nn.Parameter(torch.zeros(num_frames - 1, k, 3, dtype=dtype))
        self.trans_nodes = nn.Parameter(torch.zeros(num_frames - 1, k, 3, dtype=dtype))
        self.cov_log_scales = nn.Parameter(scales.log()[:, None].repeat(1, 3))
        quats = torch.zeros(k, 4, dtype=dtype)
        quats[:, 0] = 1.0
        self.cov_quats = nn.Parameter(quats)
        # Jointed objects' control points take their transforms from their root pose and joint
        # values (flowgen.kinematics.JointKinematics, set by Scene4D), not from their own nodes.
        self.kinematics: nn.Module | None = None

    @classmethod
    def from_control_points(cls, objects: list, num_frames: int, dtype=torch.float32):
        """From a list of ``flowgen.control_points.ObjectControlPoints``, one per object."""
        pos = np.concatenate([o.positions for o in objects])
        idx = np.concatenate([np.full(len(o.positions), i) for i, o in enumerate(objects)])
        scales = np.concatenate([o.scales for o in objects])
        return cls(torch.as_tensor(pos), torch.as_tensor(idx), torch.as_tensor(scales), num_frames, dtype)

    @property
    def num_control_points(self) -> int:
        return int(self.positions.shape[0])

    def _rows(self, frames: Tensor | None) -> Tensor:
        if frames is None:
            return self.path
        frames = torch.as_tensor(frames, dtype=torch.long, device=self.path.device)
        if frames.numel() and (int(frames.min()) < 0 or int(frames.max()) >= self.num_frames):
            raise ValueError(f"frames must be in 0..{self.num_frames - 1}, got {frames.tolist()}")
        return self.path[frames]

    def frame_vectors(self, frames: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Summed rotation vectors [F, K, 3] (rad) and translations [F, K, 3] (m) of ``frames``.

        ``frames``: [F] long frame indices, default all T frames.
        """
        rows = self._rows(frames)
        k = self.num_control_points
        omega = (rows @ self.rot_nodes.flatten(1)).reshape(len(rows), k, 3)
        trans = (rows @ self.trans_nodes.flatten(1)).reshape(len(rows), k, 3)
        if self.kinematics is not None and len(self.kinematics.index):
            _, t, q = self.kinematics.control_motion(rows, self.positions)
            idx = self.kinematics.index
            omega = omega.index_copy(1, idx, quat_to_axis_angle(q).to(omega))
            trans = trans.index_copy(1, idx, t.to(trans))
        return omega, trans

    def forward(self, frames: Tensor | None = None) -> ControlMotion:
        """Per-frame transforms of every control point; ``frames`` [F] long, default all."""
        rows = self._rows(frames)
        motion = query(rows, self.rot_nodes, self.trans_nodes)
        if self.kinematics is None or not len(self.kinematics.index):
            return motion
        R, t, q = self.kinematics.control_motion(rows, self.positions)
        idx = self.kinematics.index
        return ControlMotion(
            motion.R.index_copy(1, idx, R), motion.t.index_copy(1, idx, t), motion.q.index_copy(1, idx, q)
        )

    @torch.no_grad()
    def set_frames(self, omega: Tensor, trans: Tensor) -> None:
        """Rewrite the nodes so that frame t's vectors are ``omega[t]``, ``trans[t]`` [T, K, 3].

        Frame 0 is the rest pose: omega[0] and trans[0] must be zero.
        """
        shape = (self.num_frames, self.num_control_points, 3)
        for name, v in (("omega", omega), ("trans", trans)):
            if tuple(v.shape) != shape:
                raise ValueError(f"{name} must be {list(shape)}, got {list(v.shape)}")
            if bool(v[0].abs().max() > 0):
                raise ValueError(f"{name}[0] must be zero: frame 0 is the rest pose")
        self.rot_nodes.copy_(nodes_from_frames(omega.to(self.rot_nodes)))
        self.trans_nodes.copy_(nodes_from_frames(trans.to(self.trans_nodes)))

    @torch.no_grad()
    def split(self, frame: int = 30) -> None:
        """Every frame after ``frame`` takes ``frame``'s deformation (seed: at iteration 100).

        Only nodes j > frame change; frames 0..frame are untouched. An optimiser's state for the
        node tensors should be reset by the caller.
        """
        if not 0 <= frame < self.num_frames:
            raise ValueError(f"split frame must be in 0..{self.num_frames - 1}, got {frame}")
        omega, trans = self.frame_vectors()
        omega[frame + 1 :] = omega[frame]
        trans[frame + 1 :] = trans[frame]
        self.set_frames(omega, trans)
