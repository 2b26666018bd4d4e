"""A time-parameterised arm trajectory: the planner's output, read by ``sim`` and ``real``.

File layout (schema ``chord.plan``, version 1), an uncompressed ``.npz``:

==============  ===============  ==========================================================
field           dtype, shape     meaning
==============  ===============  ==========================================================
``t``           float64 [M]      seconds from 0, strictly increasing, ``t[0] == 0``
``q``           float64 [M, J]   joint positions, radians (metres for prismatic joints)
``gripper``     float64 [M]      gripper opening width, metres, >= 0
``ee_pose``     float64 [M, 7]   end effector in the robot base frame: xyz metres + wxyz
                                 unit quaternion
``meta``        JSON string      schema, version, robot, joint_names, base_pose (xyz + wxyz,
                                 T_world_base), task, flow_sha256, validation, report
==============  ===============  ==========================================================
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.contract import ArrayChecker, read_npz, require_meta, write_npz
from core.errors import ContractError
from core.names import name_problem

PLAN_SCHEMA = "chord.plan"
PLAN_VERSION = 1
_QUAT_NORM_TOL = 1e-4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, eq=False)
class Plan:
    """A joint trajectory with gripper widths and end-effector poses; validated when built and loaded."""

    t: np.ndarray  # [M] float64 seconds from 0, strictly increasing
    q: np.ndarray  # [M, J] float64 rad
    gripper: np.ndarray  # [M] float64 metres (opening width)
    ee_pose: np.ndarray  # [M, 7] float64 xyz (m) + wxyz in the robot base frame
    robot: str  # robot name or URDF path the plan was made for
    joint_names: tuple[str, ...]  # J names, in the column order of q
    base_pose: tuple[float, ...]  # T_world_base as xyz (m) + wxyz
    task: str  # the task / prompt this plan carries out
    flow_sha256: str  # ObjectFlow.content_hash() of the flow it was planned from
    validation: dict[str, Any] | None = None  # sim verdict, once validated
    report: dict[str, Any] = field(default_factory=dict)  # planner report (errors, margins, grasp)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(self, "base_pose", tuple(float(x) for x in self.base_pose))
        _validate(self, path=None)

    @property
    def duration(self) -> float:
        return float(self.t[-1])

    @property
    def num_joints(self) -> int:
        return int(self.q.shape[1])

    def content_hash(self) -> str:
        """SHA-256 over the trajectory arrays and what they were planned for (not the verdict).

        ``validation`` and ``report`` are left out, so a plan keeps its hash when the simulator
        adds its verdict: the real-arm check compares this hash to the validated one.
        """
        h = hashlib.sha256()
        for arr in (self.t, self.q, self.gripper, self.ee_pose):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        ident = [self.robot, list(self.joint_names), list(self.base_pose), self.task, self.flow_sha256]
        h.update(json.dumps(ident).encode())
        return h.hexdigest()

    def _meta(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "version": PLAN_VERSION,
            "robot": self.robot,
            "joint_names": list(self.joint_names),
            "base_pose": list(self.base_pose),
            "task": self.task,
            "flow_sha256": self.flow_sha256,
            "validation": self.validation,
            "report": self.report,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``plan.npz`` atomically; returns the path."""
        arrays = {"t": self.t, "q": self.q, "gripper": self.gripper, "ee_pose": self.ee_pose}
        write_npz(path, arrays, self._meta())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read and validate a ``plan.npz``; raises ContractError naming the bad field."""
        arrays, meta = read_npz(
            path,
            schema=PLAN_SCHEMA,
            versions=[PLAN_VERSION],
            required=["t", "q", "gripper", "ee_pose"],
        )
        values = dict(
            t=arrays["t"],
            q=arrays["q"],
            gripper=arrays["gripper"],
            ee_pose=arrays["ee_pose"],
            robot=require_meta(meta, "robot", str, path),
            joint_names=tuple(require_meta(meta, "joint_names", list, path)),
            base_pose=require_meta(meta, "base_pose", list, path),
            task=require_meta(meta, "task", str, path),
            flow_sha256=require_meta(meta, "flow_sha256", str, path),
            validation=require_meta(meta, "validation", (dict, type(None)), path),
            report=require_meta(meta, "report", dict, path),
        )
        plan = object.__new__(cls)
        for k, v in values.items():
            object.__setattr__(plan, k, v)
        base = plan.base_pose
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in base):
            raise ContractError("meta.base_pose", f"is {base!r}, expected 7 numbers", path)
        object.__setattr__(plan, "base_pose", tuple(float(x) for x in base))
        _validate(plan, path=path)
        return plan


def _validate(plan: Plan, path: str | Path | None) -> None:
    c = ArrayChecker(path)
    c.array("t", plan.t, np.float64, ("M",))
    c.min_size("M", 2, "the number of waypoints M")
    c.array("q", plan.q, np.float64, ("M", "J"))
    c.min_size("J", 1, "the number of joints J")
    c.array("gripper", plan.gripper, np.float64, ("M",))
    c.array("ee_pose", plan.ee_pose, np.float64, ("M", 7))

    if plan.t[0] != 0.0:
        raise ContractError("t", f"must start at 0 s, starts at {float(plan.t[0])!r}", path)
    c.strictly_increasing("t", plan.t)
    if (plan.gripper < 0).any():
        i = int(np.argmax(plan.gripper < 0))
        raise ContractError("gripper", f"width gripper[{i}]={float(plan.gripper[i])!r} m is negative", path)
    norms = np.linalg.norm(plan.ee_pose[:, 3:], axis=1)
    if (np.abs(norms - 1.0) > _QUAT_NORM_TOL).any():
        i = int(np.argmax(np.abs(norms - 1.0)))
        raise ContractError(
            "ee_pose",
            f"quaternion (wxyz) at row {i} has norm {norms[i]:.6g}, expected 1 within {_QUAT_NORM_TOL}",
            path,
        )

    names = plan.joint_names
    if len(names) != plan.q.shape[1]:
        raise ContractError(
            "meta.joint_names", f"has {len(names)} names but q has {plan.q.shape[1]} columns", path
        )
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ContractError(
            "meta.joint_names", f"must be distinct non-empty strings, got {list(names)}", path
        )
    base = np.asarray(plan.base_pose, dtype=float)
    if base.shape != (7,) or not np.isfinite(base).all():
        raise ContractError(
            "meta.base_pose", f"is {list(plan.base_pose)}, expected 7 finite numbers (xyz + wxyz)", path
        )
    if abs(np.linalg.norm(base[3:]) - 1.0) > _QUAT_NORM_TOL:
        raise ContractError(
            "meta.base_pose",
            f"quaternion {[float(v) for v in base[3:]]} is not unit length (wxyz expected)",
            path,
        )
    # A robot name (core.names), or the .urdf path older plans carried; never a file a reader
    # loads (sim.world maps names and known paths to its own URDFs).
    if (
        not isinstance(plan.robot, str)
        or not plan.robot
        or (name_problem(plan.robot) is not None and not plan.robot.endswith(".urdf"))
    ):
        shown = plan.robot if not isinstance(plan.robot, str) or len(plan.robot) <= 200 else plan.robot[:200]
        raise ContractError(
            "meta.robot", f"is {shown!r}, expected a robot name (panda, ur5e, ...) or a .urdf path", path
        )
    if not isinstance(plan.flow_sha256, str) or not _SHA256.match(plan.flow_sha256):
        raise ContractError(
            "meta.flow_sha256", f"is {plan.flow_sha256!r}, expected 64 lowercase hex digits", path
        )
