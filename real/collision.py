"""Self-collision and scene collision of an arm along a trajectory, in PyBullet (DIRECT), for pre-flight.

Why PyBullet rather than pinocchio + hpp-fcl/coal: the sim stage validates plans in PyBullet, on
the same URDF and the same collision shapes (the convex hulls PyBullet builds from the URDF's
collision meshes), and loads the scene's objects there (``sim.world.SimWorld``); checking
collisions with that very world means pre-flight and the simulator agree on what touches what.
``getClosestPoints`` gives signed distances per link pair, and one pair costs ~15 us, so a few
thousand samples of a plan take a second or two.

Which link pairs are checked for self-collision: every pair of links with collision shapes except
(a) pairs joined by fewer than three movable joints (``NEAR_JOINTS``; fixed joints such as the
Panda's ``link8`` and hand mounts do not count): a link and its neighbour touch by design, and
links two joints apart are kept apart by the joint limits between them, which pre-flight checks
on their own (``joint_limit``), while the convex hulls PyBullet makes of their meshes overlap
where the real links do not (the Panda's link5 and link7 with joint 6 near its lower limit); and
(b) pairs already in contact with every arm joint at the middle of its range and the fingers
closed (the fingers touching each other, for the Panda), MoveIt's "default" disabled pairs. A
finger reaching ``link1``, eight joints away, is a checked pair.

Scene collision (when a scene is given): every moving link against the table and the scene's
fixed objects, at every sample; and against the movable objects at their scene poses while the
arm approaches them. The approach ends when the gripper starts its first motion (a grasp), or,
for a plan without gripper motion (a push), at the first sample where the end effector touches a
movable object: from there on the part moves with the hand and its scene pose no longer holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ChordError
from core.robots import RobotSpec, robot_spec
from core.transforms import wxyz_to_xyzw

# Link pairs joined by fewer movable joints than this are not checked against each other.
NEAR_JOINTS = 3


@dataclass(frozen=True)
class CollisionHit:
    """The first sample at which two bodies come closer than the clearance."""

    index: int  # sample index
    a: str  # arm link name
    b: str  # the other arm link, "table", or a scene object's name
    distance: float  # m, signed (negative: penetration)


class CollisionModel:
    """The arm's URDF in a PyBullet DIRECT client (and the scene's table and objects, when given).

    ``robot`` is the arm (core.robots: its URDF and finger joints); ``joint_names`` are the plan's,
    in its column order, and must be the arm's. Use as a context manager or call ``close``. Raises
    ChordError for a URDF that cannot be loaded or that lacks the joints.
    """

    def __init__(
        self,
        robot: RobotSpec,
        joint_names: Sequence[str],
        *,
        base_pose: Sequence[float] = (0, 0, 0, 1, 0, 0, 0),  # T_world_base: xyz m + wxyz
        scene: Any = None,  # core.scene.Scene; None = self-collision only
    ):
        import pybullet as p

        self.p = p
        self.robot = robot
        self.urdf = robot.urdf_path()
        self._world = None
        self.client: int | None = None
        try:
            self._build(tuple(joint_names), robot.gripper.finger_joints, base_pose, scene)
        except BaseException:
            self.close()
            raise

    def _build(self, names, finger_joints, base_pose, scene) -> None:
        p = self.p
        if set(names) != set(self.robot.arm_joints):
            raise ChordError(
                f"collision model: the plan's joints {list(names)} are not robot {self.robot.name!r}'s "
                f"{list(self.robot.arm_joints)}"
            )
        base = np.asarray(base_pose, dtype=float)
        if scene is not None:
            from sim.world import SimConfig, SimWorld

            # The world is only posed (resetJointState), never stepped: no arm control law runs, so
            # the position servo's, which fits an arm of any joint count.
            self._world = SimWorld(scene, SimConfig(arm_control="position"), self.robot, tuple(base), names)
            self.client, self.arm = self._world.client, self._world.arm
            self.table = self._world.table
            self.objects = {n: (ob.body, ob.movable) for n, ob in self._world.objects.items()}
        else:
            self.client = p.connect(p.DIRECT)
            try:
                self.arm = p.loadURDF(
                    str(self.urdf),
                    base[:3].tolist(),
                    wxyz_to_xyzw(base[3:] / np.linalg.norm(base[3:])).tolist(),
                    useFixedBase=True,
                    physicsClientId=self.client,
                )
            except p.error as e:
                raise ChordError(f"collision model: PyBullet cannot load {str(self.urdf)!r} ({e})") from e
            self.table = None
            self.objects = {}
        c = self.client
        n = p.getNumJoints(self.arm, physicsClientId=c)
        info = [p.getJointInfo(self.arm, j, physicsClientId=c) for j in range(n)]
        by_name = {ji[1].decode(): j for j, ji in enumerate(info)}
        self.joints = [by_name[nm] for nm in names]
        self.fingers = [by_name[f] for f in finger_joints if f in by_name]
        self.link_names = {-1: p.getBodyInfo(self.arm, physicsClientId=c)[0].decode()}
        self.link_names.update({j: ji[12].decode() for j, ji in enumerate(info)})
        parent = {j: ji[16] for j, ji in enumerate(info)}
        shaped = [link for link in range(-1, n) if p.getCollisionShapeData(self.arm, link, physicsClientId=c)]

        movable_joint = {j: ji[2] != p.JOINT_FIXED for j, ji in enumerate(info)}  # the joint above link j

        def chain(link: int) -> list[int]:  # the link and its ancestors, up to the base (-1)
            out = [link]
            while out[-1] != -1:
                out.append(parent[out[-1]])
            return out

        def joints_between(a: int, b: int) -> int:  # movable joints on the tree path from a to b
            up_a, up_b = chain(a), chain(b)
            common = next(x for x in up_a if x in up_b)
            path = up_a[: up_a.index(common)] + up_b[: up_b.index(common)]
            return sum(movable_joint[x] for x in path)

        near = {
            frozenset((a, b))
            for a, b in itertools.combinations(shaped, 2)
            if joints_between(a, b) < NEAR_JOINTS
        }
        lo = np.array([info[j][8] for j in self.joints])
        hi = np.array([info[j][9] for j in self.joints])
        mid = np.where(hi > lo, 0.5 * (lo + hi), 0.0)  # joints without limits (hi < lo in PyBullet) at 0
        self._set(mid, 0.0)
        default = {
            frozenset((a, b))
            for a, b in itertools.combinations(shaped, 2)
            if p.getClosestPoints(self.arm, self.arm, 0.0, linkIndexA=a, linkIndexB=b, physicsClientId=c)
        }
        self.self_pairs = [
            (a, b) for a, b in itertools.combinations(shaped, 2) if frozenset((a, b)) not in near | default
        ]
        # The end effector: every link below the last arm joint's child (the hand and the fingers).
        last = self.joints[-1]
        self.ee_links = {j for j in range(n) if j != last and self._below(j, last, parent)}

    @property
    def has_scene(self) -> bool:
        """True when the scene's table and objects are loaded (``scene_collision`` can run)."""
        return self._world is not None

    @staticmethod
    def _below(link: int, ancestor: int, parent: dict[int, int]) -> bool:
        up = parent.get(link)
        while up is not None and up != -1:
            if up == ancestor:
                return True
            up = parent.get(up)
        return False

    def _set(self, q: np.ndarray, width: float) -> None:
        p, c = self.p, self.client
        for j, v in zip(self.joints, q, strict=True):
            p.resetJointState(self.arm, j, float(v), physicsClientId=c)
        for j in self.fingers:
            p.resetJointState(self.arm, j, float(width) / 2, physicsClientId=c)

    def self_collision(
        self,
        q: np.ndarray,  # [N, J] rad, samples in the plan's joint order
        widths: np.ndarray,  # [N] m, gripper opening at each sample
        clearance: float,  # m, pairs closer than this count as a collision
    ) -> CollisionHit | None:
        """The first sample at which two checked links of the arm come within ``clearance``, or None."""
        p, c = self.p, self.client
        for i, (qi, wi) in enumerate(zip(q, widths, strict=True)):
            self._set(qi, wi)
            hits = [
                (pt[8], a, b)
                for a, b in self.self_pairs
                for pt in p.getClosestPoints(
                    self.arm, self.arm, clearance, linkIndexA=a, linkIndexB=b, physicsClientId=c
                )
                if pt[8] < clearance
            ]
            if hits:
                d, a, b = min(hits)
                return CollisionHit(i, self.link_names[a], self.link_names[b], float(d))
        return None

    def scene_collision(
        self,
        q: np.ndarray,  # [N, J] rad
        widths: np.ndarray,  # [N] m
        grasp_start: int | None,  # sample index where the gripper first moves; None: it never does
        clearance: float,  # m
    ) -> CollisionHit | None:
        """The first sample at which the arm comes within ``clearance`` of the scene (module docstring)."""
        if self._world is None:
            raise ChordError("collision model: no scene loaded; build it with scene=...")
        p, c = self.p, self.client
        fixed = [(name, body) for name, (body, movable) in self.objects.items() if not movable]
        movable = [(name, body) for name, (body, m) in self.objects.items() if m]
        approaching = True
        for i, (qi, wi) in enumerate(zip(q, widths, strict=True)):
            self._set(qi, wi)
            if grasp_start is not None and i >= grasp_start:
                approaching = False
            hits = []
            # The base and the first link rest on the table by design (as in the simulator).
            for pt in p.getClosestPoints(self.arm, self.table, clearance, physicsClientId=c):
                if pt[3] >= 1 and pt[8] < clearance:
                    hits.append((pt[8], pt[3], "table"))
            for name, body in fixed:
                hits += [
                    (pt[8], pt[3], name)
                    for pt in p.getClosestPoints(self.arm, body, clearance, physicsClientId=c)
                    if pt[8] < clearance
                ]
            if approaching:
                for name, body in movable:
                    for pt in p.getClosestPoints(self.arm, body, clearance, physicsClientId=c):
                        if pt[8] >= clearance:
                            continue
                        if grasp_start is None and pt[3] in self.ee_links:
                            approaching = False  # a push: the hand reached the part, which moves from here on
                            continue
                        hits.append((pt[8], pt[3], name))
            if hits:
                d, link, other = min(hits)
                return CollisionHit(i, self.link_names[link], other, float(d))
        return None

    def close(self) -> None:
        if self._world is not None:
            self._world.close()
            self._world = None
            self.client = None
        elif self.client is not None:
            if self.p.isConnected(self.client):
                self.p.disconnect(self.client)
            self.client = None

    def __enter__(self) -> CollisionModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def collision_for(
    limits: Any, joint_names: Sequence[str] | None = None, robot: RobotSpec | None = None, **kw: Any
) -> CollisionModel:
    """The collision model of the arm: ``robot`` if given, else the registry arm ``limits`` (a
    RobotLimits) names in its kinematics ("robot:<name>").

    Raises ChordError for an arm with no model here (the UR5e's kinematics is a DH table): describe
    it in a YAML file with its URDF (docs/robots.md) and pass it as ``chord real --robot``.
    """
    if robot is None:
        kind, _, name = limits.kinematics.partition(":")
        if kind != "robot":
            raise ChordError(
                f"no collision model for {limits.model}: its kinematics is {limits.kinematics!r}, not a robot "
                "model; describe the arm with its URDF in a YAML file (docs/robots.md) and pass --robot"
            )
        robot = robot_spec(name)
    return CollisionModel(robot, tuple(joint_names or limits.joint_names), **kw)
