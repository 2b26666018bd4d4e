"""The joint between two rigid parts: revolute or prismatic, its axis and range (screw fitting).

From the child's motion relative to its parent, T_rel(t) = M_parent(t)^-1 M_child(t) (both
world motions from frame 0, so T_rel is expressed in the world axes of frame 0), a revolute
joint rotates about a fixed line (direction u through point c): R_t = Rot(u, theta_t) and
t_t = (I - R_t) c; a prismatic joint translates along u: R_t = I, t_t = d_t u. Both models are
fitted and the one with the smaller point residual on the child's points wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from planner.rigid import apply


@dataclass(frozen=True)
class Joint:
    """A 1-DoF joint between a parent and a child part, in the world frame at frame 0."""

    kind: str  # "revolute" or "prismatic"
    axis: np.ndarray  # [3] unit direction, world frame at frame 0
    origin: np.ndarray  # [3] metres, a point on the axis (revolute; child centroid for prismatic)
    values: np.ndarray  # [T] joint value per frame (rad or m), 0 at frame 0
    residual_rms: float  # metres: RMS distance between the child points and the joint model
    parent: int  # part index of the parent within its object
    child: int  # part index of the child

    @property
    def range(self) -> tuple[float, float]:
        """(min, max) joint value over the flow (rad or m)."""
        return float(self.values.min()), float(self.values.max())

    def transform(self, value: float) -> np.ndarray:
        """T_rel [4, 4]: the child's motion relative to the parent at joint value ``value``."""
        T = np.eye(4)
        if self.kind == "revolute":
            R = Rotation.from_rotvec(self.axis * value).as_matrix()
            T[:3, :3] = R
            T[:3, 3] = (np.eye(3) - R) @ self.origin
        else:
            T[:3, 3] = self.axis * value
        return T


def _model_residual(joint_T: np.ndarray, T_rel: np.ndarray, pts0: np.ndarray) -> float:
    diff = apply(joint_T, pts0) - apply(T_rel, pts0)
    return float(np.sqrt((diff**2).sum(-1).mean()))


def fit_joint(
    M_parent: np.ndarray,  # [T, 4, 4] world motion of the parent from frame 0
    M_child: np.ndarray,  # [T, 4, 4] world motion of the child from frame 0
    child_points0: np.ndarray,  # [n, 3] the child's points at frame 0 (scale and residual)
    parent: int = 0,
    child: int = 1,
) -> Joint:
    """Fit a revolute and a prismatic joint to the relative motion; return the better one.

    Raises ValueError if the child does not move relative to the parent.
    """
    T_rel = np.linalg.inv(M_parent) @ M_child  # [T, 4, 4]
    pts0 = np.asarray(child_points0, dtype=float)
    centroid = pts0.mean(0)
    rotvec = Rotation.from_matrix(T_rel[:, :3, :3]).as_rotvec()  # [T, 3]
    trans = T_rel[:, :3, 3]
    moved = np.linalg.norm(apply(T_rel, pts0) - pts0[None], axis=-1).max()
    if moved < 1e-6:
        raise ValueError("fit_joint: the child part does not move relative to its parent")

    candidates: list[Joint] = []
    # Revolute: the axis is the dominant direction of the rotation vectors.
    if np.linalg.norm(rotvec, axis=1).max() > np.radians(1.0):
        u = np.linalg.svd(rotvec, full_matrices=False)[2][0]
        theta = rotvec @ u
        if theta[np.argmax(np.abs(theta))] < 0:
            u, theta = -u, -theta
        # (I - R_t) c = t_t stacked over frames; c is free along u, so pin it nearest the child.
        A = np.concatenate([np.eye(3) - T_rel[t, :3, :3] for t in range(len(T_rel))])
        b = trans.reshape(-1)
        A = np.concatenate([A, 1e-3 * u[None]])
        b = np.concatenate([b, [1e-3 * (u @ centroid)]])
        c = np.linalg.lstsq(A, b, rcond=None)[0]
        c = c + u * (u @ (centroid - c))
        j = Joint("revolute", u, c, theta, 0.0, parent, child)
        model = np.stack([j.transform(v) for v in theta])
        candidates.append(Joint("revolute", u, c, theta, _model_residual(model, T_rel, pts0), parent, child))
    # Prismatic: the axis is the dominant direction of the translations.
    u = np.linalg.svd(trans, full_matrices=False)[2][0]
    d = trans @ u
    if d[np.argmax(np.abs(d))] < 0:
        u, d = -u, -d
    j = Joint("prismatic", u, centroid, d, 0.0, parent, child)
    model = np.stack([j.transform(v) for v in d])
    candidates.append(Joint("prismatic", u, centroid, d, _model_residual(model, T_rel, pts0), parent, child))
    return min(candidates, key=lambda j: j.residual_rms)
