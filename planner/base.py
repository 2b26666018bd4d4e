"""Where to stand the robot: a base placement searched from the grasp candidates and the whole track.

A grasp candidate's TCP waypoints in the world (approach, grasp, the part's whole track carrying
it, retreat) do not depend on the robot's base. So for the best few collision-free candidates the
waypoints are computed once, and every base placement on the table plane around the part is
scored against them with one batched inverse-kinematics solve (numpy, all pairs and waypoints at
once, :class:`BatchKinematics`): a (candidate, base) pair reaches when every waypoint of a
subsample is solved within 2 mm / 0.02 rad with the arm's links above the table and its body
clear of the scene. Its score is the candidate's own score plus the arm's worst joint-limit
margin and manipulability along the waypoints. The planner then plans at the placements in the
order :func:`rank_bases` gives (most reaching candidates, then the best pair), and ``_choose`` (with the grasp judge, if any) picks the grasp for the
chosen base as it does for a given one.

The search's ranges come from the arm's registry entry (core.robots; docs/planner.md, "The robot
base"), the Panda's here for example: positions 0.30-0.80 m from the centre of the part over its
whole track, in 16 directions (a Franka Panda reaches 0.855 m from its shoulder; nearer than 0.3 m
it must fold over its own base to reach down beside it), the base facing the part; a placement is
dropped when any object's point (at 8 frames spread over the flow) lies below the shoulder (0.4 m
above the table) within 0.15 m of the base's axis (the base's footprint plus 4 cm), or when the
base's axis lies inside (or within that distance of) the convex footprint of any object there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.transform import Rotation

from core.errors import ChordError
from core.robots import DEFAULT_ROBOT, ROBOTS, RobotSpec


@dataclass(frozen=True)
class BaseSearch:
    """The base placements searched and how (candidate, base) pairs are screened; units in comments."""

    # metres from the part's first-frame centre; the robot's entry gives its own (for_robot), these
    # are the default robot's (core.robots)
    distances: tuple[float, ...] = ROBOTS[DEFAULT_ROBOT].base_distances
    directions: int = 16  # directions round the part (22.5 deg apart), the base facing the part
    # metres: the base's footprint radius plus 4 cm: no object point below shoulder_height may come
    # this close to the base's vertical axis at any frame
    clearance: float = ROBOTS[DEFAULT_ROBOT].base_clearance
    shoulder_height: float = ROBOTS[
        DEFAULT_ROBOT
    ].shoulder_height  # metres above the table: its shoulder housing
    candidates: int = 16  # best collision-free grasp (or push) candidates whose waypoints are scored
    waypoints: int = 10  # waypoints per candidate in the screen: approach start, grasp, track, retreat end
    pairs: int = 600  # (candidate, base) pairs solved by batched IK at most (best by the reach screen)
    iterations: int = 50  # damped least squares steps of the batched IK
    tol_position: float = 0.002  # metres: a screened waypoint is reached within this ...
    tol_rotation: float = 0.02  # rad ... and this (the planner's own IK then solves to 1 mm / 0.01 rad)
    limit_margin: float = 0.05  # rad: joints this far inside their limits (OptimConfig.limit_margin)
    margin_weight: float = 0.3  # score per rad of the worst joint-limit margin (capped at 0.5 rad)
    manipulability_weight: float = 2.0  # score per unit of the worst manipulability sqrt(det J J^T) (m^3)
    attempts: int = 6  # placements planned at (best first) before giving up

    def __post_init__(self) -> None:
        ok = (
            len(self.distances) >= 1
            and all(isinstance(d, (int, float)) and math.isfinite(d) and d > 0 for d in self.distances)
            and all(
                isinstance(n, int) and n >= 1
                for n in (
                    self.directions,
                    self.candidates,
                    self.waypoints,
                    self.pairs,
                    self.iterations,
                    self.attempts,
                )
            )
        )
        if not ok:
            raise ChordError(
                f"BaseSearch: distances {self.distances} (metres > 0) and counts directions {self.directions}, "
                f"candidates {self.candidates}, waypoints {self.waypoints}, pairs {self.pairs}, iterations "
                f"{self.iterations}, attempts {self.attempts} (integers >= 1) expected"
            )

    def for_robot(self, spec: RobotSpec) -> BaseSearch:
        """This search with the placements ``spec`` allows: its distances, footprint and shoulder height."""
        return replace(
            self,
            distances=spec.base_distances,
            clearance=spec.base_clearance,
            shoulder_height=spec.shoulder_height,
        )


_AXES = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}


class BatchKinematics:
    """Forward kinematics, Jacobians and damped-least-squares IK of a serial arm, batched in numpy.

    Built from a :class:`planner.robot.Robot`'s pinocchio model (revolute and prismatic joints
    about any axis, one serial chain); agrees with ``Robot.fk`` to float precision. Raises
    ChordError for a joint type or a tree it cannot batch.
    """

    def __init__(self, robot):
        m = robot.model
        self.robot = robot
        self.placements, self.axes, self.prismatic = [], [], []
        self.skews: list[tuple[np.ndarray, np.ndarray]] = []  # (K, K @ K) of each axis, for Rodrigues
        for j in range(1, m.njoints):
            if m.parents[j] != j - 1:
                raise ChordError(f"robot {robot.name}: joint {m.names[j]!r} is not on one serial chain")
            kind = m.joints[j].shortname()
            if kind in (
                "JointModelRX",
                "JointModelRY",
                "JointModelRZ",
                "JointModelPX",
                "JointModelPY",
                "JointModelPZ",
            ):
                axis = _AXES[kind[-1]]
            elif kind in ("JointModelRevoluteUnaligned", "JointModelPrismaticUnaligned"):
                axis = np.asarray(m.joints[j].extract().axis, dtype=float)
            else:
                raise ChordError(
                    f"robot {robot.name}: joint {m.names[j]!r} is a {kind}, not revolute or prismatic"
                )
            self.placements.append(np.array(m.jointPlacements[j].homogeneous))
            axis = axis / np.linalg.norm(axis)
            self.axes.append(axis)
            K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            self.skews.append((K, K @ K))
            self.prismatic.append(kind.startswith("JointModelP"))
        tcp = m.frames[robot.tcp_id]
        self.tcp_joint = tcp.parentJoint  # 1-based joint index
        self.T_joint_tcp = np.array(tcp.placement.homogeneous)
        # The arm's body spheres (Robot.body_spheres): frame ids and interpolation of each centre.
        _, layout = robot.body_sphere_layout(robot.seed)
        self.sphere_frames = [
            ((m.frames[a].parentJoint, np.array(m.frames[a].placement.translation)),
             (m.frames[b].parentJoint, np.array(m.frames[b].placement.translation)), u)
            for a, b, u in layout
        ]  # fmt: skip
        self.link_frames = [
            (m.frames[i].parentJoint, np.array(m.frames[i].placement.translation))
            for i in robot.clearance_ids
        ]

    def joint_frames(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every joint's frame (after its motion) for q [B, J] rad: rotations [B, J, 3, 3], origins
        [B, J, 3] and axes [B, J, 3], in the base frame.

        Products with a joint's constant matrices are taken as one [B * 3, 3] @ [3, 3] product
        (numpy's batched small-matrix products are several times slower).
        """
        B, J = q.shape
        Rs, ps, zs = np.empty((B, J, 3, 3)), np.empty((B, J, 3)), np.empty((B, J, 3))
        R = np.broadcast_to(np.eye(3), (B, 3, 3))
        p = np.zeros((B, 3))

        def times(R, M):  # [B, 3, 3] @ constant [3, 3]
            return (R.reshape(-1, 3) @ M).reshape(B, 3, 3)

        for j in range(J):
            P = self.placements[j]
            # Parent frame -> joint frame at rest (placement), then the joint's own motion.
            p = p + R @ P[:3, 3]
            R = times(R, P[:3, :3])
            z = R @ self.axes[j]
            if self.prismatic[j]:
                p = p + z * q[:, j, None]
            else:  # Rodrigues: R (I + sin(q) K + (1 - cos(q)) K^2)
                K, K2 = self.skews[j]
                qj = q[:, j, None, None]
                R = R + np.sin(qj) * times(R, K) + (1 - np.cos(qj)) * times(R, K2)
            Rs[:, j], ps[:, j], zs[:, j] = R, p, z
        return Rs, ps, zs

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T_base_tcp [B, 4, 4], J [B, 6, J]): TCP poses and (linear, angular) Jacobians, base axes."""
        Rs, ps, z = self.joint_frames(q)
        B = len(q)
        j = self.tcp_joint - 1
        T = np.zeros((B, 4, 4))
        T[:, :3, :3] = (Rs[:, j].reshape(-1, 3) @ self.T_joint_tcp[:3, :3]).reshape(B, 3, 3)
        T[:, :3, 3] = Rs[:, j] @ self.T_joint_tcp[:3, 3] + ps[:, j]
        T[:, 3, 3] = 1.0
        lin = np.cross(z, T[:, None, :3, 3] - ps)
        pris = np.array(self.prismatic)
        lin[:, pris] = z[:, pris]
        ang = np.where(pris[None, :, None], 0.0, z)
        ang[:, self.tcp_joint :] = 0.0  # joints past the TCP's (none on an arm) move nothing
        lin[:, self.tcp_joint :] = 0.0
        return T, np.concatenate([lin, ang], axis=2).transpose(0, 2, 1)

    def body_spheres(self, q: np.ndarray) -> np.ndarray:
        """Centres [B, S, 3] (base frame) of the arm's body spheres, as ``Robot.body_spheres``."""
        Rs, ps, _ = self.joint_frames(q)

        def origin(j: int, t: np.ndarray) -> np.ndarray:
            return Rs[:, j - 1] @ t + ps[:, j - 1]

        if not self.sphere_frames:
            return np.zeros((len(q), 0, 3))
        return np.stack([(1 - u) * origin(*a) + u * origin(*b) for a, b, u in self.sphere_frames], axis=1)

    def link_heights(self, q: np.ndarray) -> np.ndarray:
        """Heights [B] (m, base z) of the lowest clearance-frame origin (the robot entry's body_links)."""
        if not self.link_frames:
            return np.full(len(q), np.inf)
        Rs, ps, _ = self.joint_frames(q)
        z = [Rs[:, j - 1, 2, :] @ t + ps[:, j - 1, 2] for j, t in self.link_frames]
        return np.min(z, axis=0)

    def ik(
        self, T_target: np.ndarray, q0: np.ndarray, iterations: int, tol: tuple[float, float] = (1e-4, 1e-3)
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batched DLS IK within the joint limits: (q [B, J], position error [B] m, rotation error [B] rad).

        T_target [B, 4, 4] base-frame TCP targets, q0 [B, J] starts. The same damping rule as
        ``Robot.ik`` (grows with the error); steps capped at 0.5 rad; joints clipped to limits.
        A solve leaves the batch once within ``tol`` (m, rad) or after 10 steps without 1%
        progress (an unreachable target stops improving), so the batch shrinks as it goes.
        """
        lo, hi = self.robot.lower, self.robot.upper
        q = np.clip(np.asarray(q0, dtype=float), lo, hi).copy()
        active = np.arange(len(q))
        best = np.full(len(q), np.inf)
        stalled = np.zeros(len(q), int)
        eye = np.eye(6)
        for _ in range(iterations):
            if not len(active):
                break
            qa, Ta = q[active], T_target[active]
            T, Jac = self.fk(qa)
            # Rotation error as vee(E - E^T) / 2 = sin(angle) x axis: the log's direction, and its
            # size where it matters (near convergence); the final errors below use the exact log.
            E = Ta[:, :3, :3] @ T[:, :3, :3].transpose(0, 2, 1)
            rot = 0.5 * np.stack(
                [E[:, 2, 1] - E[:, 1, 2], E[:, 0, 2] - E[:, 2, 0], E[:, 1, 0] - E[:, 0, 1]], 1
            )
            e = np.concatenate([Ta[:, :3, 3] - T[:, :3, 3], rot], axis=1)
            ep, er = np.linalg.norm(e[:, :3], axis=1), np.linalg.norm(rot, axis=1)
            cost = ep + 0.1 * er
            better = cost < 0.99 * best[active]
            best[active] = np.where(better, cost, best[active])
            stalled[active] = np.where(better, 0, stalled[active] + 1)
            keep = ~(((ep < tol[0]) & (er < tol[1])) | (stalled[active] >= 10))
            active, qa, e, Jac = active[keep], qa[keep], e[keep], Jac[keep]
            if not len(active):
                break
            lam2 = 1e-6 + 1e-2 * np.minimum((e * e).sum(1), 1.0)
            A = Jac @ Jac.transpose(0, 2, 1) + lam2[:, None, None] * eye
            dq = (Jac.transpose(0, 2, 1) @ np.linalg.solve(A, e[..., None]))[..., 0]
            n = np.linalg.norm(dq, axis=1, keepdims=True)
            dq *= np.minimum(1.0, 0.5 / np.maximum(n, 1e-12))
            q[active] = np.clip(qa + dq, lo, hi)
        T, _ = self.fk(q)
        ep = np.linalg.norm(T_target[:, :3, 3] - T[:, :3, 3], axis=1)
        er = np.linalg.norm(_log3(T_target[:, :3, :3] @ T[:, :3, :3].transpose(0, 2, 1)), axis=1)
        return q, ep, er


def _log3(R: np.ndarray) -> np.ndarray:
    """Rotation vectors [B, 3] of rotation matrices [B, 3, 3]."""
    return Rotation.from_matrix(R).as_rotvec()


# metres: arm body spheres this close to the TCP are the gripper's (checked with its boxes), as
# planner.pipeline.arm_clearance's gripper_zone
GRIPPER_ZONE = 0.12


@dataclass(frozen=True)
class BaseRanking:
    """The searched placements, best first, and what the search found (for the plan's report)."""

    bases: list[np.ndarray]  # [7] T_world_base xyz + wxyz each, best first (the clear ones only)
    why: list[str]  # one line per base in ``bases``: its best pair's numbers
    preferred: list[bool] = field(default_factory=list)  # per base: a preferred candidate (a grasp) reaches
    summary: dict[str, Any] = field(default_factory=dict)


def base_positions(centre: np.ndarray, table_height: float, search: BaseSearch) -> np.ndarray:
    """Candidate T_world_base [N, 7] (xyz + wxyz) round ``centre`` [3] on the table, facing it."""
    out = []
    for d in search.distances:
        for k in range(search.directions):
            a = 2 * np.pi * k / search.directions  # the base faces direction a, standing at -a
            pos = np.array([centre[0] - d * np.cos(a), centre[1] - d * np.sin(a), table_height])
            out.append(np.r_[pos, np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)])
    return np.array(out)


def footprint_clear(
    bases: np.ndarray,  # [N, 7]
    objects: list[np.ndarray],  # [T, n, 3] world points of each object over the flow's frames
    table_height: float,
    search: BaseSearch,
) -> np.ndarray:
    """[N] bool: the base's axis keeps ``clearance`` from every object's points below the shoulder
    and from every object's convex footprint (its low points' xy hull), at every frame."""
    xy = bases[:, :2]
    ok = np.ones(len(bases), bool)
    for pts in objects:
        low = pts[:, :, 2] < table_height + search.shoulder_height
        frames = np.unique(np.linspace(0, len(pts) - 1, min(len(pts), 8)).astype(int))
        for t in frames:
            p = pts[t, low[t], :2]
            if len(p) == 0:
                continue
            if len(p) > 1000:  # 1,000 points of an object's surface lie ~1-2 cm apart: a 15 cm test
                p = p[np.random.default_rng(t).choice(len(p), 1000, replace=False)]
            d = np.sqrt(((xy[:, None, :] - p[None]) ** 2).sum(-1)).min(1)
            ok &= d >= search.clearance
            try:
                hull = ConvexHull(p)
            except (QhullError, ValueError):  # collinear or too few points: the points' test holds
                continue
            # Signed distance to the hull's edges (max over edges: <= 0 inside; a lower bound outside).
            s = (xy @ hull.equations[:, :2].T + hull.equations[:, 2]).max(1)
            ok &= s >= search.clearance
    return ok


def subsample(phases: dict[str, tuple[int, int]], K: int, n: int) -> np.ndarray:
    """Waypoint indices [<= n]: the approach's start, the grasp, the track evenly, the retreat's end."""
    f0, f1 = phases["follow"]
    track = np.linspace(f0, f1 - 1, max(n - 2, 2)).round().astype(int)
    return np.unique(np.r_[0, track, K - 1])


def rank_bases(
    kin: BatchKinematics,
    waypoints: list[np.ndarray],  # per candidate [k, 4, 4] world TCP targets (subsampled)
    scores: list[float],  # per candidate, its own score
    bases: np.ndarray,  # [N, 7] clear placements
    table_height: float,
    search: BaseSearch,
    obstacles: np.ndarray | None = None,  # [m, 3] world points the arm's body must clear (the scene)
    enough: int = 1,  # reachable candidates a grasp choice wants (the grasp judge's trials)
    preferred: np.ndarray | None = None,  # [C] bool: candidates of the kind chosen first (grasps)
) -> BaseRanking:
    """Score every (candidate, base) pair by batched IK on its waypoints; the bases best first.

    A pre-screen keeps the ``search.pairs`` pairs whose wrist targets lie nearest inside the arm's
    reach (the distance from the shoulder, joint 2's origin, to each waypoint's last-joint origin
    against the farthest the arm reaches it over random postures); those are solved from the seed
    (solved from the grasp outwards, warm-started). A pair reaches when all its waypoints are solved with the
    clearance frames above the table and the arm's body spheres (those farther than 0.12 m from
    the TCP: nearer ones are the gripper's, checked with its boxes) clear of ``obstacles``; its
    score is the candidate's score + ``margin_weight`` x its
    worst joint-limit margin (capped 0.5 rad) + ``manipulability_weight`` x its worst
    manipulability. Bases are ordered as the grasp choice prefers: those where a ``preferred``
    candidate (a grasp; ``_choose`` takes a push only where no grasp reaches) reaches first, then
    by how many candidates of that kind reach, up to ``enough`` (a base where the grasp judge has
    its full choice first), then by their best pair's score;
    bases none of whose pairs reach follow, by the share of waypoints their best pair reached.
    """
    from core.transforms import pose_to_matrix

    robot = kin.robot
    N, C = len(bases), len(waypoints)
    T_base_world = np.array([np.linalg.inv(pose_to_matrix(b[:3], b[3:])) for b in bases])  # [N, 4, 4]
    # The arm's reach from the shoulder to the last joint's origin, over random postures.
    rng = np.random.default_rng(0)
    _, ps, _ = kin.joint_frames(rng.uniform(robot.lower, robot.upper, (2000, robot.dof)))
    shoulder = ps[0, min(1, robot.dof - 1)]
    reach = float(np.linalg.norm(ps[:, -1] - shoulder, axis=1).max())
    T_last_tcp = np.linalg.inv(kin.T_joint_tcp)  # TCP -> last joint frame offset (fixed)
    # Reach screen over every pair: the worst waypoint's distance beyond (or inside) the reach.
    worst = np.full((C, N), np.inf)
    for c, W in enumerate(waypoints):
        T = np.einsum("nij,kjl->nkil", T_base_world, W)  # [N, k, 4, 4]
        wrist = (T @ T_last_tcp)[..., :3, 3]
        worst[c] = (np.linalg.norm(wrist - shoulder, axis=-1) - reach).max(1)
    # Every base gets its share of the solves: its best-scored candidates within reach, those of
    # the preferred kind (grasps) first.
    per_base = max(1, search.pairs // max(N, 1))
    pref = np.ones(C, bool) if preferred is None else np.asarray(preferred, bool)
    rank = np.lexsort((-np.asarray(scores, dtype=float), ~pref))
    pairs = [(c, n) for n in range(N) for c in [c for c in rank if worst[c, n] < 0.0][:per_base]]
    pair_c = np.array([c for c, _ in pairs], int)
    pair_n = np.array([n for _, n in pairs], int)
    n_pairs = len(pairs)
    reached = np.zeros((C, N))  # share of waypoints reached, per pair
    value = np.full((C, N), -np.inf)
    if n_pairs:
        # Solved along each pair's waypoints as the planner's IK path is (planner.trajectory.ik_path):
        # the grasp first, from the seed posture turned about the first joint to face it, then on
        # along the track to the retreat's end and back to the approach's start, each waypoint
        # warm-started from its neighbour, so one pair keeps one arm branch.
        Tp = np.stack([T_base_world[n] @ waypoints[c] for c, n in pairs])  # [P, k, 4, 4]
        k = Tp.shape[1]
        g = min(1, k - 1)  # subsample(): the approach's start, then the grasp
        qp = np.empty((n_pairs, k, robot.dof))
        q0 = np.broadcast_to(robot.seed, (n_pairs, robot.dof)).copy()
        q0[:, 0] = np.clip(np.arctan2(Tp[:, g, 1, 3], Tp[:, g, 0, 3]), robot.lower[0], robot.upper[0])
        qp[:, g] = kin.ik(Tp[:, g], q0, search.iterations)[0]
        for j in [*range(g + 1, k), *range(g - 1, -1, -1)]:
            qp[:, j] = kin.ik(Tp[:, j], qp[:, j - 1 if j > g else j + 1], search.iterations)[0]
        # A joint turning more than a quarter turn between neighbouring screened waypoints (an
        # eighth of the track apart) is the arm flipping branch, which the planner rejects.
        flip = np.abs(np.diff(qp, axis=1)).max(axis=(1, 2)) > np.pi / 2 if k > 1 else np.zeros(n_pairs, bool)
        sizes = np.full(n_pairs, k)
        owner = np.repeat(np.arange(n_pairs), k)  # the pair of each solve
        starts_at = np.arange(n_pairs) * k  # each pair's first solve
        q = qp.reshape(-1, robot.dof)
        T_sol, _ = kin.fk(q)
        targets = Tp.reshape(-1, 4, 4)
        ep = np.linalg.norm(targets[:, :3, 3] - T_sol[:, :3, 3], axis=1)
        er = np.linalg.norm(_log3(targets[:, :3, :3] @ T_sol[:, :3, :3].transpose(0, 2, 1)), axis=1)
        table_z = T_base_world[pair_n[owner], 2, 3] + table_height * T_base_world[pair_n[owner], 2, 2]
        ok = (ep < search.tol_position) & (er < search.tol_rotation) & (kin.link_heights(q) > table_z)
        T_tcp, Jac = kin.fk(q)
        if obstacles is not None and len(obstacles):
            from scipy.spatial import cKDTree

            tree = cKDTree(obstacles)
            c = kin.body_spheres(q)  # [B, S, 3] base frame -> world
            Tw = np.linalg.inv(T_base_world)[pair_n[owner]]
            c_w = np.einsum("bij,bsj->bsi", Tw[:, :3, :3], c) + Tw[:, None, :3, 3]
            body = np.linalg.norm(c - T_tcp[:, None, :3, 3], axis=2) > GRIPPER_ZONE
            d = tree.query(c_w.reshape(-1, 3))[0].reshape(c.shape[:2])
            ok &= ~((d < robot.body_radius) & body).any(1)
        manip = np.sqrt(np.clip(np.linalg.det(Jac @ Jac.transpose(0, 2, 1)), 0.0, None))
        margin = robot.limit_margin(q)
        share = np.add.reduceat(ok.astype(float), starts_at) / sizes
        pair_value = (
            np.asarray(scores, dtype=float)[pair_c]
            + search.margin_weight * np.minimum(np.minimum.reduceat(margin, starts_at), 0.5)
            + search.manipulability_weight * np.minimum.reduceat(manip, starts_at)
        )
        reached[pair_c, pair_n] = share
        # A pair whose joints touch their limits (within the optimiser's keep-out margin) is left
        # no room: the planner's path along the waypoints between the screened ones leaves them.
        inside = np.minimum.reduceat(margin, starts_at) >= search.limit_margin
        value[pair_c, pair_n] = np.where((share == 1.0) & ~flip & inside, pair_value, -np.inf)
    if C == 0:  # nothing to screen: _choose will say why no grasp or push fits
        return BaseRanking(
            bases=list(bases),
            why=["no collision-free candidate was screened"] * N,
            summary={"candidates_screened": 0, "pairs_within_reach": 0, "pairs_solved": 0,
                     "pairs_reaching": 0, "placements_reaching": 0, "arm_reach_m": reach},
        )  # fmt: skip
    reaches = value > -np.inf  # [C, N]
    has_pref = reaches[pref].any(0)  # [N]
    # Each base's best pair: of the preferred kind where one reaches (what _choose will take).
    kind_value = np.where(pref[:, None] | ~has_pref[None, :], value, -np.inf)
    best_c = np.argmax(kind_value, axis=0)  # [N]
    best_v = kind_value[best_c, np.arange(N)]
    share = reached.max(0)
    # Reaching candidates of the kind the choice will take at each base.
    n_reaching = np.where(has_pref, reaches[pref].sum(0), reaches.sum(0))
    base_order = sorted(
        range(N),
        key=lambda n: (not has_pref[n], -min(n_reaching[n], enough), -best_v[n], -share[n], worst.min(0)[n]),
    )
    why = []
    for n in base_order:
        if np.isfinite(best_v[n]):
            why.append(
                f"candidate {int(best_c[n])} of {C} reaches all its screened waypoints (pair score "
                f"{best_v[n]:.2f}); {int(reaches[:, n].sum())} of {C} candidates reach from here, "
                f"{int(reaches[pref, n].sum())} of them of the preferred kind"
            )
        else:
            why.append(f"no screened candidate reaches every waypoint (best {100 * share[n]:.0f}% of them)")
    n_reach = int(np.isfinite(best_v).sum())
    return BaseRanking(
        bases=[bases[n] for n in base_order],
        why=why,
        preferred=[bool(has_pref[n]) for n in base_order],
        summary={
            "candidates_screened": C,
            "pairs_within_reach": int((worst < 0).sum()),
            "pairs_solved": n_pairs,
            "pairs_reaching": int(np.isfinite(value).sum()),
            "placements_reaching": n_reach,
            "arm_reach_m": reach,
        },
    )
