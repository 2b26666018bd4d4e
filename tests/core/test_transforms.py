"""core.transforms: one quaternion (the simulator's per-step fast path) converts as a batch does."""

from __future__ import annotations

import numpy as np

from core.transforms import matrix_to_quat, pose_to_matrix, quat_to_matrix, xyzw_to_wxyz


def test_one_quaternion_converts_as_a_batch_of_them_does():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(64, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    batch = quat_to_matrix(q)
    one = np.stack([quat_to_matrix(x) for x in q])
    np.testing.assert_allclose(one, batch, atol=1e-15)
    # A rotation: orthonormal with determinant 1, and back to the same quaternion (w >= 0).
    np.testing.assert_allclose(
        one @ np.swapaxes(one, 1, 2), np.broadcast_to(np.eye(3), one.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(one), 1.0, atol=1e-12)
    np.testing.assert_allclose(matrix_to_quat(one), q * np.sign(q[:, :1]), atol=1e-12)
    # 90 degrees about z maps x to y.
    Rz = quat_to_matrix(np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)]))
    np.testing.assert_allclose(Rz @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    xyzw = np.roll(q, -1, axis=1)  # (x, y, z, w)
    np.testing.assert_array_equal(np.stack([xyzw_to_wxyz(x) for x in xyzw]), xyzw_to_wxyz(xyzw))
    np.testing.assert_array_equal(xyzw_to_wxyz(xyzw), q)
    T = pose_to_matrix(np.array([1.0, 2.0, 3.0]), q[0])
    np.testing.assert_array_equal(T[:3, :3], batch[0])
    np.testing.assert_array_equal(T[3], [0.0, 0.0, 0.0, 1.0])
    assert T[:3, 3].tolist() == [1.0, 2.0, 3.0]
