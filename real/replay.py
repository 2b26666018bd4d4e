"""Replay an execution log in PyBullet (DIRECT, kinematic): where the arm really went, checked again.

Each logged row's measured and commanded joints are set on the robot's URDF in turn; the report
gives the tool deviation between them, the lowest point of the arm and any penetration of a table
plane at ``table_z`` (base frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ChordError
from core.robots import robot_spec
from real.limits import limits_for
from real.log import ExecutionLog


@dataclass(frozen=True)
class ReplayReport:
    rows: int  # logged ticks replayed
    max_joint_error: float  # rad, max |q_meas - q_cmd| over ticks and joints
    max_tcp_deviation: float  # m, max distance between the tool at q_meas and at q_cmd
    min_link_z: float  # m, lowest link origin of the measured motion (base frame)
    table_contacts: int  # ticks at which the measured arm penetrates the table plane
    outcome: str  # the run's recorded reason code

    def format(self) -> str:
        return (
            f"replayed {self.rows} ticks (run ended: {self.outcome}): max joint error "
            f"{self.max_joint_error:.4f} rad, max tool deviation {1000 * self.max_tcp_deviation:.1f} mm, "
            f"lowest link origin z={self.min_link_z:.3f} m, {self.table_contacts} tick(s) touching the table"
        )


def replay_in_sim(log: ExecutionLog, table_z: float = 0.0, urdf: str | Path | None = None) -> ReplayReport:
    """Replay ``log`` kinematically in PyBullet; raises ChordError if the robot has no URDF here."""
    import pybullet as p

    model = str(log.meta.get("robot", "panda"))
    limits = limits_for(model)
    kind, _, name = limits.kinematics.partition(":")
    tcp = ""  # a URDF given for a DH-table arm: the last arm joint's link stands for the tool
    if kind == "robot":
        spec = robot_spec(name, urdf)
        urdf, tcp = spec.urdf_path(), spec.tcp_frame
    elif urdf is None:
        raise ChordError(f"replay: no URDF for {model!r} here; pass one with --urdf")
    if len(log) == 0:
        raise ChordError("replay: the log has no ticks")
    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(urdf), useFixedBase=True, physicsClientId=cid)
        table = p.createMultiBody(
            baseCollisionShapeIndex=p.createCollisionShape(
                p.GEOM_BOX, halfExtents=[2, 2, 0.01], physicsClientId=cid
            ),
            basePosition=[0, 0, table_z - 0.01],
            physicsClientId=cid,
        )
        joints, links = {}, {}
        for i in range(p.getNumJoints(body, physicsClientId=cid)):
            info = p.getJointInfo(body, i, physicsClientId=cid)
            joints[info[1].decode()] = i
            links[info[12].decode()] = i
        missing = [n for n in log.joint_names if n not in joints]
        if missing:
            raise ChordError(f"replay: the log's joints {missing} are not in {Path(urdf).name}")
        idx = [joints[n] for n in log.joint_names]
        tcp_link = links.get(tcp, idx[-1])
        arm_links = [links[f] for f in limits.link_frames if f in links]
        # The base link rests on the table by design; it is excluded from contact checks.
        movable = [i for i in range(p.getNumJoints(body, physicsClientId=cid)) if i >= min(idx)]

        def pose(q: np.ndarray) -> tuple[np.ndarray, float, bool]:
            for j, v in zip(idx, q, strict=True):
                p.resetJointState(body, j, float(v), physicsClientId=cid)
            tool = np.array(p.getLinkState(body, tcp_link, physicsClientId=cid)[4])
            zs = [p.getLinkState(body, li, physicsClientId=cid)[4][2] for li in arm_links] or [tool[2]]
            touch = any(
                p.getClosestPoints(body, table, 0.0, linkIndexA=li, physicsClientId=cid) for li in movable
            )
            return tool, float(min(zs)), touch

        q_cmd, q_meas = log.array("q_cmd"), log.array("q_meas")
        dev, zmin, contacts = 0.0, np.inf, 0
        for qc, qm in zip(q_cmd, q_meas, strict=True):
            tool_c, _, _ = pose(qc)
            tool_m, z, touch = pose(qm)
            dev = max(dev, float(np.linalg.norm(tool_c - tool_m)))
            zmin = min(zmin, z)
            contacts += int(touch)
    finally:
        p.disconnect(physicsClientId=cid)
    return ReplayReport(
        rows=len(log),
        max_joint_error=float(np.abs(q_meas - q_cmd).max()),
        max_tcp_deviation=dev,
        min_link_z=zmin,
        table_contacts=contacts,
        outcome=str(log.meta.get("reason", "unknown")),
    )
