"""Forward kinematics for pre-flight checks: where the tool and the links are for every waypoint.

Registry arms (core.robots) use the planner's kinematics (``planner.robot.Robot``, pinocchio) on
the entry's URDF, so pre-flight sees the same tool frame the plan was made with. The UR5e has no
URDF here: its published standard-DH table is evaluated directly. All points are in the robot base
frame, metres.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from core.errors import ChordError
from core.robots import RobotSpec, robot_spec
from real.limits import RobotLimits


class ArmKinematics(Protocol):
    """Positions of a few frames along the arm; the last frame is the tool (TCP)."""

    frame_names: tuple[str, ...]  # F names; frame_names[-1] is the TCP

    def points(self, q: np.ndarray) -> np.ndarray:  # q: [M, J] rad
        """Frame origins [M, F, 3] in the base frame, metres."""
        ...


class UrdfKinematics:
    """FK of a registry arm through the planner's pinocchio model; frames = its body links + the TCP."""

    def __init__(self, spec: RobotSpec, limits: RobotLimits):
        from planner.robot import Robot

        self._robot = Robot(spec)
        if self._robot.joint_names != limits.joint_names:
            raise ChordError(
                f"kinematics: robot {spec.name!r} has arm joints {list(self._robot.joint_names)}, the "
                f"{limits.model} limit table {list(limits.joint_names)}"
            )
        self._ids = [*self._robot.clearance_ids, self._robot.tcp_id]
        self.frame_names = (*spec.body_links, spec.tcp_frame)

    def points(self, q: np.ndarray) -> np.ndarray:  # q: [M, J]
        q = np.atleast_2d(np.asarray(q, dtype=float))
        return np.stack([self._robot.fk_frames(qi, self._ids) for qi in q])


# Standard DH (a, d, alpha) per joint, from the manufacturer's published tables.
DH_TABLES: dict[str, tuple[tuple[float, float, float], ...]] = {
    # Universal Robots, "DH parameters for calculations of kinematics and dynamics", UR5e.
    "ur5e": (
        (0.0, 0.1625, math.pi / 2),
        (-0.425, 0.0, 0.0),
        (-0.3922, 0.0, 0.0),
        (0.0, 0.1333, math.pi / 2),
        (0.0, 0.0997, -math.pi / 2),
        (0.0, 0.0996, 0.0),
    ),
}


class DHKinematics:
    """FK from a standard Denavit-Hartenberg table: T_i = Rz(q_i) Tz(d_i) Tx(a_i) Rx(alpha_i)."""

    def __init__(self, name: str):
        if name not in DH_TABLES:
            raise ChordError(f"kinematics: no DH table {name!r}; known: {sorted(DH_TABLES)}")
        self._table = np.asarray(DH_TABLES[name], dtype=float)  # [J, 3]
        n = len(self._table)
        self.frame_names = (*(f"frame{i}" for i in range(1, n)), "flange")

    def points(self, q: np.ndarray) -> np.ndarray:  # q: [M, J]
        q = np.atleast_2d(np.asarray(q, dtype=float))
        M, J = q.shape
        if J != len(self._table):
            raise ValueError(f"DHKinematics: q has {J} columns, the table has {len(self._table)} joints")
        T = np.broadcast_to(np.eye(4), (M, 4, 4)).copy()
        out = np.empty((M, J, 3))
        for j, (a, d, alpha) in enumerate(self._table):
            c, s = np.cos(q[:, j]), np.sin(q[:, j])
            ca, sa = math.cos(alpha), math.sin(alpha)
            A = np.zeros((M, 4, 4))
            A[:, 0, 0], A[:, 0, 1], A[:, 0, 2], A[:, 0, 3] = c, -s * ca, s * sa, a * c
            A[:, 1, 0], A[:, 1, 1], A[:, 1, 2], A[:, 1, 3] = s, c * ca, -c * sa, a * s
            A[:, 2, 1], A[:, 2, 2], A[:, 2, 3] = sa, ca, d
            A[:, 3, 3] = 1.0
            T = T @ A
            out[:, j] = T[:, :3, 3]
        return out


def kinematics_for(limits: RobotLimits, robot: RobotSpec | None = None) -> ArmKinematics:
    """The FK model of the arm: ``robot`` (a registry entry, or the user's YAML arm, with any
    --robot-urdf already applied) if given, else the one ``limits.kinematics`` names."""
    if robot is not None:
        return UrdfKinematics(robot, limits)
    kind, _, name = limits.kinematics.partition(":")
    if kind == "dh":
        return DHKinematics(name)
    if kind == "robot":
        return UrdfKinematics(robot_spec(name), limits)
    raise ChordError(f"kinematics: unknown kind {limits.kinematics!r} for {limits.model}")
