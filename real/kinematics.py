"""Forward kinematics for pre-flight checks: where the tool and the links are for every waypoint.

URDF arms use the planner's kinematics (``planner.robot.Robot``, pinocchio), so pre-flight sees the
same tool frame the plan was made with. The UR5e has no URDF here: its published standard-DH table
is evaluated directly. All points are in the robot base frame, metres.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import ChordError
from real.limits import RobotLimits


class ArmKinematics(Protocol):
    """Positions of a few frames along the arm; the last frame is the tool (TCP)."""

    frame_names: tuple[str, ...]  # F names; frame_names[-1] is the TCP

    def points(self, q: np.ndarray) -> np.ndarray:  # q: [M, J] rad
        """Frame origins [M, F, 3] in the base frame, metres."""
        ...


class UrdfKinematics:
    """FK from a URDF through the planner's pinocchio model; frames = link_frames + the TCP."""

    def __init__(self, urdf: str | Path, tcp_frame: str, link_frames: tuple[str, ...], limits: RobotLimits):
        from planner.robot import Robot, RobotConfig

        cfg = RobotConfig(
            urdf=str(urdf),
            tcp_frame=tcp_frame,
            accel_limits=limits.acceleration,
            seed=tuple(0.5 * (lo + hi) for lo, hi in zip(limits.lower, limits.upper, strict=True)),
            clearance_frames=link_frames,
        )
        self._robot = Robot(cfg)
        if self._robot.dof != limits.dof:
            raise ChordError(
                f"kinematics: {Path(urdf).name} has {self._robot.dof} arm joints "
                f"{list(self._robot.joint_names)}, the {limits.model} table has {limits.dof}"
            )
        missing = [f for f in link_frames if not self._robot.model.existFrame(f)]
        if missing:
            raise ChordError(f"kinematics: frames {missing} are not in {Path(urdf).name}")
        self._ids = [*self._robot.clearance_ids, self._robot.tcp_id]
        self.frame_names = (*link_frames, tcp_frame)

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


def kinematics_for(limits: RobotLimits, urdf: str | Path | None = None) -> ArmKinematics:
    """The FK model named by ``limits.kinematics`` (``urdf`` overrides the URDF file)."""
    kind, _, spec = limits.kinematics.partition(":")
    if kind == "dh":
        return DHKinematics(spec)
    if kind == "urdf":
        rel, _, tcp = spec.partition("#")
        if urdf is None:
            import pybullet_data

            urdf = Path(pybullet_data.getDataPath()) / rel
        return UrdfKinematics(urdf, tcp, limits.link_frames, limits)
    raise ChordError(f"kinematics: unknown kind {limits.kinematics!r} for {limits.model}")
