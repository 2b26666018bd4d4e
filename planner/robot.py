"""Arm kinematics from a URDF through pinocchio: forward kinematics, Jacobians and inverse kinematics.

The arm is the chain of movable joints from the URDF root to the tool-centre-point (TCP) frame;
every other movable joint (the gripper fingers) is locked. All poses here are in the robot base
frame (the URDF root link) unless a name says otherwise. PyBullet's default IK is not used: it is
measured at a 38 mm median error (docs/design.md).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from core.errors import ChordError, MissingDependencyError
from core.robots import GripperGeometry, RobotSpec
from planner.config import RobotConfig as RobotConfig

log = logging.getLogger(__name__)


def _pin():
    try:
        import pinocchio
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("the planner's kinematics need pinocchio: `pip install pin`") from e
    return pinocchio


@dataclass(frozen=True)
class IKResult:
    """One inverse-kinematics solve."""

    q: np.ndarray  # [J] rad, within the joint limits
    position_error: float  # metres, |p_target - p(q)|
    rotation_error: float  # radians, angle of R_target^T R(q)
    iterations: int  # total iterations over all restarts
    success: bool  # both errors under the solver's tolerances


class Robot:
    """A serial arm from its registry entry (core.robots): FK, Jacobians, damped-least-squares IK with joint limits.

    ``config`` is a RobotConfig (a registry name or YAML file, and optionally the arm's URDF) or the
    RobotSpec itself. Raises ChordError if the URDF cannot be read, the TCP frame is missing, the
    chain from the root to the TCP is not the entry's arm joints, or they have no finite limits.
    """

    def __init__(self, config: RobotConfig | RobotSpec = RobotConfig()):
        pin = _pin()
        spec = config if isinstance(config, RobotSpec) else config.spec()
        self.spec = spec
        urdf = spec.urdf_path()
        self.urdf = urdf
        try:
            full = pin.buildModelFromUrdf(str(urdf))
        except (RuntimeError, ValueError) as e:
            raise ChordError(f"robot urdf {str(urdf)!r}: pinocchio cannot read it ({e})") from e
        if not full.existFrame(spec.tcp_frame):
            names = [f.name for f in full.frames if f.type == pin.FrameType.BODY]
            raise ChordError(
                f"robot {spec.name!r} tcp_frame: {spec.tcp_frame!r} is not a link of {urdf.name}; links: {names}"
            )
        # The arm is the support chain of the TCP; lock every other movable joint.
        tcp_joint = full.frames[full.getFrameId(spec.tcp_frame)].parentJoint
        chain = set(full.supports[tcp_joint])
        lock = [j for j in range(1, full.njoints) if j not in chain]
        self.model = pin.buildReducedModel(full, lock, pin.neutral(full)) if lock else full
        self.data = self.model.createData()
        self.tcp_id = self.model.getFrameId(spec.tcp_frame)
        self.joint_names = tuple(self.model.names[j] for j in range(1, self.model.njoints))
        if self.model.nq != self.model.nv or self.model.nq != len(self.joint_names):
            raise ChordError(
                f"robot urdf {urdf.name}: only 1-DoF revolute/prismatic arm joints are supported "
                f"(nq={self.model.nq}, nv={self.model.nv}, joints {list(self.joint_names)})"
            )
        if self.joint_names != spec.arm_joints:
            raise ChordError(
                f"robot {spec.name!r}: the joints from {urdf.name}'s root to {spec.tcp_frame!r} are "
                f"{list(self.joint_names)}, its description says {list(spec.arm_joints)}"
            )
        self.lower = np.array(self.model.lowerPositionLimit, dtype=float)  # [J] rad
        self.upper = np.array(self.model.upperPositionLimit, dtype=float)  # [J] rad
        if (
            not (np.isfinite(self.lower).all() and np.isfinite(self.upper).all())
            or (self.upper <= self.lower).any()
        ):
            raise ChordError(
                f"robot urdf {urdf.name}: joints {list(self.joint_names)} need finite limits, got "
                f"lower {self.lower.tolist()} upper {self.upper.tolist()}"
            )
        self.velocity_limits = np.array(self.model.velocityLimit, dtype=float)  # [J] rad/s
        if not (np.isfinite(self.velocity_limits).all() and (self.velocity_limits > 0).all()):
            raise ChordError(
                f"robot urdf {urdf.name}: joints {list(self.joint_names)} need velocity limits > 0, got "
                f"{self.velocity_limits.tolist()}"
            )
        self.accel_limits = np.asarray(spec.accel_limits, dtype=float)  # [J] rad/s^2, checked by RobotSpec
        self.jerk_limits = np.asarray(spec.jerk_limits, dtype=float)  # [J] rad/s^3, checked by RobotSpec
        ready = np.asarray(spec.ready, dtype=float)
        outside = (ready < self.lower) | (ready > self.upper)
        if outside.any():
            raise ChordError(
                f"robot {spec.name!r}: ready posture {ready.tolist()} is outside the joint limits at "
                f"{[self.joint_names[i] for i in np.flatnonzero(outside)]}"
            )
        self.seed = ready
        self.gripper: GripperGeometry = spec.gripper.geometry
        self.body_radius = spec.body_radius  # metres, the body spheres' radius
        missing = [f for f in (*spec.body_links, *spec.body_chain) if not self.model.existFrame(f)]
        if missing:
            raise ChordError(f"robot {spec.name!r}: body links {missing} are not links of {urdf.name}")
        self.clearance_ids = [self.model.getFrameId(f) for f in spec.body_links]
        self.body_ids = [self.model.getFrameId(f) for f in spec.body_chain]
        self._sphere_cache: dict[int, tuple] = {}

    def body_spheres(self, q: np.ndarray, per_segment: int = 4) -> np.ndarray:  # q: [J]
        """Centres [S, 3] (base frame) of spheres of radius ``body_radius`` along the arm."""
        return self.body_sphere_layout(q, per_segment)[0]

    def body_sphere_layout(
        self, q: np.ndarray, per_segment: int = 4
    ) -> tuple[np.ndarray, list[tuple[int, int, float]]]:  # q: [J]
        """(centres [S, 3], layout): sphere s sits at (1 - u) * origin(a) + u * origin(b).

        ``layout[s] = (a, b, u)`` with a, b frame ids of the entry's ``body_chain``, so the sphere's
        Jacobian is (1 - u) J_a + u J_b (linear rows).
        """
        pin = _pin()
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, dtype=float))
        p = np.array([self.data.oMf[i].translation for i in self.body_ids]).reshape(-1, 3)
        if len(p) == 0:
            return p, []
        if per_segment not in self._sphere_cache:
            n = len(p)
            seg = np.repeat(np.arange(n - 1), per_segment)
            u = np.r_[np.tile(np.linspace(0.0, 1.0, per_segment, endpoint=False), n - 1), 0.0]
            a, b = np.r_[seg, n - 1], np.r_[seg + 1, n - 1]
            ids = self.body_ids
            layout = [(ids[i], ids[j], float(w)) for i, j, w in zip(a, b, u, strict=True)]
            self._sphere_cache[per_segment] = (a, b, u[:, None], layout)
        a, b, u, layout = self._sphere_cache[per_segment]
        return (1 - u) * p[a] + u * p[b], layout

    @property
    def dof(self) -> int:
        return int(self.model.nq)

    @property
    def name(self) -> str:
        """The registry name (what a plan's meta.robot says)."""
        return self.spec.name

    # -- forward kinematics ---------------------------------------------------------------
    def fk(self, q: np.ndarray) -> np.ndarray:  # q: [J]
        """T_base_tcp [4, 4] for joint positions ``q`` (rad)."""
        pin = _pin()
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, dtype=float))
        return np.array(self.data.oMf[self.tcp_id].homogeneous)

    def fk_frames(self, q: np.ndarray, frames: list[int] | None = None) -> np.ndarray:  # q: [J]
        """Origins [F, 3] of ``frames`` (default: the clearance frames) in the base frame."""
        pin = _pin()
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, dtype=float))
        ids = self.clearance_ids if frames is None else frames
        return np.array([self.data.oMf[i].translation for i in ids]).reshape(-1, 3)

    def jacobian(self, q: np.ndarray, frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # q: [J]
        """(T_base_frame [4, 4], J [6, J]) for the TCP (or ``frame``).

        J maps joint velocities to (linear, angular) velocity of the frame, both expressed in
        the base frame's axes (pinocchio's LOCAL_WORLD_ALIGNED).
        """
        pin = _pin()
        fid = self.tcp_id if frame is None else frame
        J = pin.computeFrameJacobian(
            self.model, self.data, np.asarray(q, dtype=float), fid, pin.LOCAL_WORLD_ALIGNED
        )
        return np.array(self.data.oMf[fid].homogeneous), np.array(J)

    # -- inverse kinematics ---------------------------------------------------------------
    def ik(
        self,
        T_base_target: np.ndarray,  # [4, 4]
        q0: np.ndarray | None = None,  # [J] rad, warm start
        *,
        restarts: int = 8,
        max_iters: int = 200,
        tol_pos: float = 1e-5,  # metres
        tol_rot: float = 1e-4,  # radians
        damping: float = 1e-3,
        rng: np.random.Generator | None = None,
    ) -> IKResult:
        """Damped-least-squares IK for a TCP pose, with joint limits and random restarts.

        Starts from ``q0`` (else the seed posture); if that does not converge, restarts from
        random postures within the limits and returns the best solve. Never raises on an
        unreachable target: check ``success`` and the errors.
        """
        T_target = np.asarray(T_base_target, dtype=float)
        if T_target.shape != (4, 4) or not np.isfinite(T_target).all():
            raise ValueError(f"ik: T_base_target must be a finite [4, 4] matrix, got shape {T_target.shape}")
        rng = np.random.default_rng(0) if rng is None else rng
        start = self.seed if q0 is None else np.clip(np.asarray(q0, dtype=float), self.lower, self.upper)
        best: IKResult | None = None
        total = 0
        for attempt in range(restarts + 1):
            if attempt == 0:
                q = start.copy()
            elif attempt == 1 and q0 is not None:
                q = self.seed.copy()
            else:
                q = rng.uniform(self.lower, self.upper)
            q, ep, er, it = self._dls(T_target, q, max_iters, tol_pos, tol_rot, damping)
            total += it
            res = IKResult(q, ep, er, total, ep < tol_pos and er < tol_rot)
            if best is None or ep + 0.1 * er < best.position_error + 0.1 * best.rotation_error:
                best = res
            if res.success:
                break
        assert best is not None
        return IKResult(best.q, best.position_error, best.rotation_error, total, best.success)

    def _dls(
        self,
        T_target: np.ndarray,
        q: np.ndarray,
        max_iters: int,
        tol_pos: float,
        tol_rot: float,
        damping: float,
    ) -> tuple[np.ndarray, float, float, int]:
        from scipy.linalg.lapack import dposv  # a bare 6x6 SPD solve: numpy's wrapper costs more

        p_t, R_t = T_target[:3, 3], T_target[:3, :3]
        eye6 = np.eye(6)
        ep = er = np.inf
        it = 0
        best_cost, stalled = np.inf, 0
        while it < max_iters:
            it += 1
            T, J = self.jacobian(q)
            e = pose_error(T, p_t, R_t)
            ep, er = (
                math.sqrt(e[0] ** 2 + e[1] ** 2 + e[2] ** 2),
                math.sqrt(e[3] ** 2 + e[4] ** 2 + e[5] ** 2),
            )
            if ep < tol_pos and er < tol_rot:
                break
            # An unreachable target stops improving: give up after 20 steps without 1% progress.
            cost = ep + 0.1 * er
            if cost < 0.99 * best_cost:
                best_cost, stalled = cost, 0
            else:
                stalled += 1
                if stalled >= 20:
                    break
            # Damping grows with the error: Levenberg-style robustness far away, Gauss-Newton near.
            lam2 = damping**2 + 1e-2 * min(float(e @ e), 1.0)
            dq = J.T @ dposv(J @ J.T + lam2 * eye6, e)[1]
            # Active set: joints pinned at a limit and pushed outward are frozen and the step is
            # re-solved with the others, instead of being clipped (clipping stalls the solve).
            pinned = ((q <= self.lower + 1e-9) & (dq < 0)) | ((q >= self.upper - 1e-9) & (dq > 0))
            if pinned.any():
                Jf = J * ~pinned
                dq = Jf.T @ dposv(Jf @ Jf.T + lam2 * eye6, e)[1]
            n = math.sqrt(float(dq @ dq))
            if n > 0.5:
                dq *= 0.5 / n
            q = np.minimum(np.maximum(q + dq, self.lower), self.upper)
        else:
            T = self.fk(q)
            e = pose_error(T, p_t, R_t)
            ep, er = float(np.linalg.norm(e[:3])), float(np.linalg.norm(e[3:]))
        return q, ep, er, it

    def limit_margin(self, q: np.ndarray) -> np.ndarray:  # q: [..., J]
        """Distance [...] (rad) from ``q`` to the nearest joint limit (negative if outside)."""
        q = np.asarray(q, dtype=float)
        return np.minimum(q - self.lower, self.upper - q).min(axis=-1)


def pose_error(T: np.ndarray, p_target: np.ndarray, R_target: np.ndarray) -> np.ndarray:
    """[6] (target - current): position (m) and rotation vector of R_target R^T (rad), base axes."""
    pin = _pin()
    e = np.empty(6)
    e[:3] = p_target - T[:3, 3]
    e[3:] = pin.log3(R_target @ T[:3, :3].T)
    return e
