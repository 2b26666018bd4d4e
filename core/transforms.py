"""Rigid transforms in numpy, with chord's conventions in one place.

Quaternions are (w, x, y, z) everywhere in chord. Libraries that use (x, y, z, w) — PyBullet,
scipy, rerun — are converted at their boundary with :func:`wxyz_to_xyzw` / :func:`xyzw_to_wxyz`.
A transform ``T_a_b`` is a 4x4 matrix mapping coordinates in frame b to frame a.
"""

from __future__ import annotations

import numpy as np


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """[..., 4] wxyz -> [..., 4] xyzw."""
    q = np.asarray(q)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


_XYZW_TO_WXYZ = np.array([3, 0, 1, 2])


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """[..., 4] xyzw -> [..., 4] wxyz."""
    q = np.asarray(q)
    if q.shape == (4,):  # one quaternion (the simulator's per-step poses): no concatenate
        return q[_XYZW_TO_WXYZ]
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """[..., 4] unit quaternion wxyz -> [..., 3, 3] rotation matrix."""
    q = np.asarray(q, dtype=float)
    if q.shape == (4,):  # one quaternion, in Python floats: ten times faster than the stacks below
        w, x, y, z = q.tolist()
        return np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
            ]
        )
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation matrix -> [..., 4] unit quaternion wxyz with w >= 0."""
    R = np.asarray(R, dtype=float)
    batch = R.shape[:-2]
    R = R.reshape(-1, 3, 3)
    # Shepperd's method: pick the largest of the four squared components for stability.
    tr = np.trace(R, axis1=1, axis2=2)
    cand = np.stack([tr, R[:, 0, 0], R[:, 1, 1], R[:, 2, 2]], axis=1)
    k = np.argmax(cand, axis=1)
    q = np.empty((R.shape[0], 4))
    for i in range(R.shape[0]):
        m = R[i]
        if k[i] == 0:
            s = 2.0 * np.sqrt(max(1.0 + tr[i], 1e-300))
            q[i] = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
        elif k[i] == 1:
            s = 2.0 * np.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 1e-300))
            q[i] = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
        elif k[i] == 2:
            s = 2.0 * np.sqrt(max(1.0 + m[1, 1] - m[0, 0] - m[2, 2], 1e-300))
            q[i] = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
        else:
            s = 2.0 * np.sqrt(max(1.0 + m[2, 2] - m[0, 0] - m[1, 1], 1e-300))
            q[i] = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    return q.reshape(*batch, 4)


def pose_to_matrix(position: np.ndarray, quat_wxyz: np.ndarray) -> np.ndarray:
    """xyz [..., 3] + wxyz [..., 4] -> [..., 4, 4] homogeneous transform."""
    position = np.asarray(position, dtype=float)
    R = quat_to_matrix(quat_wxyz)
    T = np.zeros((*R.shape[:-2], 4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = position
    T[..., 3, 3] = 1.0
    return T


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """T_world_cam [4, 4] for a camera at ``eye`` looking at ``target`` (OpenCV axes).

    OpenCV camera axes: x right, y down, z forward (into the scene). Raises ValueError if the
    view direction is zero or parallel to ``up``.
    """
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
    forward = target - eye
    n = np.linalg.norm(forward)
    if n < 1e-9:
        raise ValueError(f"look_at: eye {eye.tolist()} and target {target.tolist()} coincide")
    z = forward / n
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:
        raise ValueError(f"look_at: view direction {z.tolist()} is parallel to up {up.tolist()}")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T
