"""Rotations in torch for the deformation: axis-angle exp map, quaternions (wxyz), matrices.

Quaternions are (w, x, y, z), as everywhere in chord. Everything is differentiable, including
at the zero rotation (the exp map uses a Taylor branch there, so gradients are finite).
"""

from __future__ import annotations

import torch
from torch import Tensor

_SMALL = 1e-6  # theta^2 below which the exp map uses its Taylor series


def axis_angle_to_quat(omega: Tensor) -> Tensor:
    """[..., 3] rotation vector (axis * angle, rad) -> [..., 4] unit quaternion wxyz."""
    theta2 = (omega * omega).sum(dim=-1, keepdim=True)
    small = theta2 < _SMALL
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    half = 0.5 * theta
    w = torch.where(small, 1.0 - theta2 / 8.0 + theta2 * theta2 / 384.0, torch.cos(half))
    k = torch.where(small, 0.5 - theta2 / 48.0 + theta2 * theta2 / 3840.0, torch.sin(half) / theta)
    return torch.cat([w, k * omega], dim=-1)


def quat_to_matrix(q: Tensor) -> Tensor:
    """[..., 4] unit quaternion wxyz -> [..., 3, 3] rotation matrix."""
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b of [..., 4] wxyz quaternions (rotate by b, then by a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_right_matrix(b: Tensor) -> Tensor:
    """[..., 4] wxyz -> [..., 4, 4] M with M @ a == quat_multiply(a, b) for any a."""
    w, x, y, z = b.unbind(-1)
    rows = [w, -x, -y, -z, x, w, z, -y, y, -z, w, x, z, y, -x, w]
    return torch.stack(rows, dim=-1).reshape(*b.shape[:-1], 4, 4)


def normalize_quat(q: Tensor, eps: float = 1e-12) -> Tensor:
    """[..., 4] -> unit quaternions (a zero quaternion stays finite)."""
    # a multiply by rsqrt: cheaper than a division, forward and backward, on big [F, N, 4]
    return q * torch.rsqrt((q * q).sum(dim=-1, keepdim=True).clamp_min(eps * eps))


def matrix_to_quat(R: Tensor) -> Tensor:
    """[..., 3, 3] rotation matrices -> [..., 4] unit quaternions wxyz with w >= 0.

    Of the four ways to read a quaternion off a matrix, each entry uses the best conditioned (the
    largest of |w|, |x|, |y|, |z|), so it is accurate and differentiable for any rotation.
    """
    m = R
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cand_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    big = cand_sq.argmax(dim=-1, keepdim=True)  # [..., 1]
    s = 2.0 * torch.sqrt(cand_sq.clamp_min(1e-12))  # [..., 4]: 4 * the component each reads
    a = m[..., 2, 1] - m[..., 1, 2]
    b = m[..., 0, 2] - m[..., 2, 0]
    c = m[..., 1, 0] - m[..., 0, 1]
    d = m[..., 0, 1] + m[..., 1, 0]
    e = m[..., 0, 2] + m[..., 2, 0]
    f = m[..., 1, 2] + m[..., 2, 1]
    q0 = torch.stack([s[..., 0] / 4, a / s[..., 0], b / s[..., 0], c / s[..., 0]], dim=-1)
    q1 = torch.stack([a / s[..., 1], s[..., 1] / 4, d / s[..., 1], e / s[..., 1]], dim=-1)
    q2 = torch.stack([b / s[..., 2], d / s[..., 2], s[..., 2] / 4, f / s[..., 2]], dim=-1)
    q3 = torch.stack([c / s[..., 3], e / s[..., 3], f / s[..., 3], s[..., 3] / 4], dim=-1)
    q = torch.stack([q0, q1, q2, q3], dim=-2)  # [..., 4 candidates, 4]
    q = torch.take_along_dim(q, big[..., None].expand(*big.shape[:-1], 1, 4), dim=-2)[..., 0, :]
    q = q / q.norm(dim=-1, keepdim=True)
    return q * torch.where(q[..., :1] < 0, -1.0, 1.0)


def quat_to_axis_angle(q: Tensor) -> Tensor:
    """[..., 4] unit quaternions wxyz -> [..., 3] rotation vectors (axis * angle, rad, angle <= pi)."""
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0)
    v = q[..., 1:]
    n = v.norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(n, q[..., :1])
    # sin(angle/2) = n: angle / n -> 2 as n -> 0
    return v * torch.where(n > 1e-8, angle / n.clamp_min(1e-12), torch.full_like(n, 2.0))
