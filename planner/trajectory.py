"""Joint waypoints for a sequence of TCP poses: IK along the path, then joint-space optimisation.

The IK pass warm-starts each waypoint from the previous one (so the arm stays on one branch),
trying a few starting postures for the first waypoint. The optimisation then solves, for all
waypoints at once, a damped Gauss-Newton problem with analytic Jacobians:

    tracking   w_p |p*_k - p(q_k)|^2 + w_r |log(R*_k R(q_k)^T)|^2
    smoothness w_s |q_{k+1} - 2 q_k + q_{k-1}|^2            (continuity, low acceleration)
    limits     w_l max(0, lower + margin - q)^2 + ...        (joint-limit margin)
    clearance  w_c max(0, table + clearance - z_link)^2      (links above the table plane)
    collision  w_o max(0, r + margin - d(sphere, scene))^2   (arm body out of the static scene)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as splinalg
from scipy.spatial import cKDTree

from planner.config import OptimConfig as OptimConfig  # re-exported: callers import it from here
from planner.robot import Robot, pose_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IKPath:
    """Joint waypoints for a pose sequence and how well they reach it."""

    q: np.ndarray  # [K, J] rad
    position_error: np.ndarray  # [K] metres
    rotation_error: np.ndarray  # [K] radians
    max_jump: float  # rad, largest joint change between consecutive waypoints


def _ok(position_error, rotation_error):
    """Whether an IK solve reached its waypoint (1 mm, 0.01 rad)."""
    return (np.asarray(position_error) < 1e-3) & (np.asarray(rotation_error) < 1e-2)


def ik_path(
    robot: Robot,
    T_base_ee: np.ndarray,  # [K, 4, 4]
    starts: int = 4,
    rng: np.random.Generator | None = None,
    anchor: int = 0,
) -> IKPath:
    """Sequential IK along the poses, warm-started; the best of ``starts`` postures at ``anchor``.

    The waypoint ``anchor`` (e.g. the grasp) is solved first, then the path is followed forward
    and backward from it. "Best" is: fewest failed waypoints, then the smallest joint jump,
    then the largest limit margin. Never raises: read the errors.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    best: tuple[tuple, IKPath] | None = None
    K = len(T_base_ee)
    for s in range(starts):
        q0 = robot.seed if s == 0 else rng.uniform(robot.lower, robot.upper)
        first = robot.ik(T_base_ee[anchor], q0, restarts=0 if s else 3, rng=rng)
        q = np.empty((K, robot.dof))
        ep, er = np.empty(K), np.empty(K)
        q[anchor], ep[anchor], er[anchor] = first.q, first.position_error, first.rotation_error
        for order in (range(anchor + 1, K), range(anchor - 1, -1, -1)):
            prev, broken = first.q, not _ok(first.position_error, first.rotation_error)
            for k in order:
                if broken:  # the rest of this direction would only burn time
                    q[k], ep[k], er[k] = prev, np.inf, np.inf
                    continue
                r = robot.ik(T_base_ee[k], prev, restarts=0, max_iters=60)
                q[k], ep[k], er[k] = r.q, r.position_error, r.rotation_error
                prev, broken = r.q, not _ok(r.position_error, r.rotation_error)
        jump = float(np.abs(np.diff(q, axis=0)).max()) if len(q) > 1 else 0.0
        path = IKPath(q, ep, er, jump)
        fails = int((~_ok(path.position_error, path.rotation_error)).sum())
        key = (fails, round(jump, 1), -float(robot.limit_margin(q).min()))
        if best is None or key < best[0]:
            best = (key, path)
        if fails == 0 and jump < 0.3:
            break
    assert best is not None
    return best[1]


def optimise(
    robot: Robot,
    q_init: np.ndarray,  # [K, J] rad
    T_base_ee: np.ndarray,  # [K, 4, 4] targets
    table_z: float,  # metres: table top height in the base frame
    config: OptimConfig = OptimConfig(),
    weights: np.ndarray | None = None,  # [K] tracking weight per waypoint (default 1)
    obstacles: np.ndarray | None = None,  # [m, 3] static scene points, base frame
) -> np.ndarray:
    """Joint waypoints [K, J] minimising the objective in the module docstring (within limits)."""
    tree = cKDTree(obstacles) if obstacles is not None and len(obstacles) else None
    need = robot.body_radius + config.scene_clearance
    q = np.clip(np.asarray(q_init, dtype=float).copy(), robot.lower, robot.upper)
    K, J = q.shape
    w_k = np.ones(K) if weights is None else np.asarray(weights, dtype=float)
    lo, hi = robot.lower + config.limit_margin, robot.upper - config.limit_margin
    wp = np.array([config.w_position] * 3 + [config.w_rotation] * 3)
    # Smoothness operator (constant): second differences over k, for every joint.
    D = np.zeros((max(K - 2, 0), K))
    for k in range(K - 2):
        D[k, k : k + 3] = (1.0, -2.0, 1.0)
    S = sparse.csr_matrix(np.kron(D, np.eye(J)) * config.w_smooth)  # [(K-2) J, K J]
    lam = 1e-6

    def residuals(q: np.ndarray, with_jac: bool):
        r_track = np.empty((K, 6))
        J_track = np.zeros((K, 6, J)) if with_jac else None
        r_clear, J_clear = [], []
        for k in range(K):
            T, Jk = robot.jacobian(q[k])
            e = pose_error(T, T_base_ee[k][:3, 3], T_base_ee[k][:3, :3])
            r_track[k] = w_k[k] * wp * e
            if with_jac:
                J_track[k] = -w_k[k] * wp[:, None] * Jk  # d(target - x)/dq ~ -J
            z = robot.fk_frames(q[k])[:, 2]
            low = z < table_z + config.link_clearance
            for f in np.flatnonzero(low):
                r_clear.append((k, config.w_clearance * (table_z + config.link_clearance - z[f])))
                if with_jac:
                    _, Jf = robot.jacobian(q[k], robot.clearance_ids[f])
                    J_clear.append(-config.w_clearance * Jf[2])
            if tree is None:
                continue
            # Arm body spheres out of the static scene: push each along its nearest point's normal.
            centres, layout = robot.body_sphere_layout(q[k])
            far = np.linalg.norm(centres - T[:3, 3], axis=1) > config.gripper_zone
            d, nearest = tree.query(centres)
            for s_i in np.flatnonzero(far & (d < need)):
                r_clear.append((k, config.w_collision * (need - d[s_i])))
                if with_jac:
                    n = (centres[s_i] - obstacles[nearest[s_i]]) / max(d[s_i], 1e-9)
                    a, b, u = layout[s_i]
                    Jc = (1 - u) * robot.jacobian(q[k], a)[1][:3] + u * robot.jacobian(q[k], b)[1][:3]
                    J_clear.append(-config.w_collision * (n @ Jc))
        below, above = np.minimum(q - lo, 0.0), np.maximum(q - hi, 0.0)
        r_lim = config.w_limit * (below + above)
        parts = [r_track.ravel(), S @ q.ravel(), r_lim.ravel(), np.array([r for _, r in r_clear])]
        r = np.concatenate(parts)
        if not with_jac:
            return r, None
        n = K * J
        Jt = sparse.block_diag(list(J_track), format="csr")
        Jl = sparse.diags(config.w_limit * ((below < 0) | (above > 0)).ravel().astype(float))
        rows = np.repeat(np.arange(len(r_clear)), J)
        cols = (
            np.concatenate([np.arange(J * k, J * k + J) for k, _ in r_clear]) if r_clear else np.zeros(0, int)
        )
        vals = np.concatenate(J_clear) if r_clear else np.zeros(0)
        Jc = sparse.csr_matrix((vals, (rows, cols)), shape=(len(r_clear), n))
        return r, sparse.vstack([Jt, S, Jl, Jc], format="csr")

    r, Jac = residuals(q, True)
    cost = float(r @ r)
    eye = sparse.identity(K * J, format="csc")
    iterations = 0
    while iterations < config.iterations:
        iterations += 1
        # The problem is banded (each waypoint couples to its two neighbours): sparse solves.
        H = (Jac.T @ Jac).tocsc()
        g = Jac.T @ r
        while True:
            dq = -splinalg.spsolve(H + lam * eye, g)
            q_new = np.clip(q + dq.reshape(K, J), robot.lower, robot.upper)
            r_new, _ = residuals(q_new, False)
            c_new = float(r_new @ r_new)
            if c_new < cost or lam > 1e6:
                break
            lam *= 10.0
        if c_new >= cost:
            break
        improvement = (cost - c_new) / max(cost, 1e-30)
        q, cost = q_new, c_new
        lam = max(lam / 10.0, 1e-9)
        if improvement < 1e-6:
            break
        r, Jac = residuals(q, True)
    log.debug("optimise: %d waypoints, cost %.3g after %d iterations", K, cost, iterations)
    return q


def tracking_errors(robot: Robot, q: np.ndarray, T_base_ee: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position error [K] m, rotation error [K] rad) of FK(q_k) against the targets."""
    ep, er = np.empty(len(q)), np.empty(len(q))
    for k in range(len(q)):
        e = pose_error(robot.fk(q[k]), T_base_ee[k][:3, 3], T_base_ee[k][:3, :3])
        ep[k], er[k] = np.linalg.norm(e[:3]), np.linalg.norm(e[3:])
    return ep, er
