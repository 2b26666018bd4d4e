"""The execution log (``real_log.npz``): every control tick's commanded, sent and measured joints and gripper.

File layout (schema ``chord.real_log``, version 2; version 1 files, without the gripper columns,
still load with those columns NaN), an uncompressed ``.npz`` written atomically:

===========  ===============  ===========================================================
field        dtype, shape     meaning
===========  ===============  ===========================================================
``t``        float64 [K]      s since the stream started (our clock), one row per tick
``t_plan``   float64 [K]      s, the plan time commanded at that tick
``q_cmd``    float64 [K, J]   rad, the plan's target for the tick
``q_sent``   float64 [K, J]   rad, what the backend really sent (NaN where nothing was sent)
``q_meas``   float64 [K, J]   rad, measured joints read before sending
``dq_meas``  float64 [K, J]   rad/s, measured joint velocities (NaN if the SDK has none)
``stamp``    float64 [K]      s, the robot's own state clock
``grip_cmd`` float64 [K]      m, the plan's gripper width at that tick (NaN: no gripper track)
``grip_meas`` float64 [K]     m, measured gripper width (NaN where it was not read)
``meta``     JSON string      schema, version, plan_sha256, robot, backend, joint_names,
                              control_period, success, reason, message, configs, gripper events
===========  ===============  ===========================================================

Non-finite numbers in the meta (a NaN measurement quoted in a message's record) are written as the
strings "nan", "inf", "-inf": JSON has no NaN, and the log is written even when a run fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.contract import ArrayChecker, read_npz, require_meta, write_npz
from core.errors import ContractError

LOG_SCHEMA = "chord.real_log"
LOG_VERSION = 2
_FIELDS = ("t", "t_plan", "q_cmd", "q_sent", "q_meas", "dq_meas", "stamp", "grip_cmd", "grip_meas")
_GRIP = ("grip_cmd", "grip_meas")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (and numpy scalar) replaced by a JSON-writable equivalent."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class ExecutionLog:
    """Rows appended by the streaming loop; ``save`` writes them atomically."""

    joint_names: tuple[str, ...]  # J names, column order of the joint arrays
    meta: dict[str, Any] = field(default_factory=dict)  # plan_sha256, robot, backend, outcome, configs
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in _FIELDS})

    def append(
        self,
        t: float,  # s
        t_plan: float,  # s
        q_cmd: np.ndarray,  # [J] rad
        q_sent: np.ndarray | None,  # [J] rad, None if nothing was sent this tick
        q_meas: np.ndarray,  # [J] rad
        dq_meas: np.ndarray | None,  # [J] rad/s
        stamp: float,  # s
        grip_cmd: float = math.nan,  # m, the plan's gripper width now (NaN: no gripper track)
        grip_meas: float = math.nan,  # m, the measured width (NaN: not read this tick)
    ) -> None:
        nan = np.full(len(self.joint_names), np.nan)
        self.rows["t"].append(t)
        self.rows["t_plan"].append(t_plan)
        self.rows["q_cmd"].append(np.asarray(q_cmd, dtype=float))
        self.rows["q_sent"].append(nan if q_sent is None else np.asarray(q_sent, dtype=float))
        self.rows["q_meas"].append(np.asarray(q_meas, dtype=float))
        self.rows["dq_meas"].append(nan if dq_meas is None else np.asarray(dq_meas, dtype=float))
        self.rows["stamp"].append(stamp)
        self.rows["grip_cmd"].append(float(grip_cmd))
        self.rows["grip_meas"].append(float(grip_meas))

    def __len__(self) -> int:
        return len(self.rows["t"])

    def array(self, name: str) -> np.ndarray:
        J = len(self.joint_names)
        vals = self.rows[name]
        if name in ("t", "t_plan", "stamp", *_GRIP):
            return np.asarray(vals, dtype=np.float64).reshape(-1)
        return np.asarray(vals, dtype=np.float64).reshape(-1, J)

    def save(self, path: str | Path) -> Path:
        """Write the log atomically; returns the path."""
        arrays = {k: self.array(k) for k in _FIELDS}
        meta = {
            "schema": LOG_SCHEMA,
            "version": LOG_VERSION,
            "joint_names": list(self.joint_names),
            **self.meta,
        }
        write_npz(path, arrays, json_safe(meta))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ExecutionLog:
        """Read and check a log; raises ContractError naming the bad field."""
        arrays, meta = read_npz(
            path,
            schema=LOG_SCHEMA,
            versions=[1, LOG_VERSION],
            required=[f for f in _FIELDS if f not in _GRIP],
            optional=_GRIP,
        )
        if meta["version"] >= 2 and any(f not in arrays for f in _GRIP):
            raise ContractError("file", f"version 2 log lacks {[f for f in _GRIP if f not in arrays]}", path)
        for f in _GRIP:  # a version 1 log has no gripper columns
            arrays.setdefault(f, np.full(len(arrays["t"]), np.nan))
        names = tuple(require_meta(meta, "joint_names", list, path))
        c = ArrayChecker(path)
        c.array("t", arrays["t"], np.float64, ("K",))
        c.array("t_plan", arrays["t_plan"], np.float64, ("K",))
        c.array("stamp", arrays["stamp"], np.float64, ("K",))
        c.array("q_cmd", arrays["q_cmd"], np.float64, ("K", "J"))
        c.array("q_meas", arrays["q_meas"], np.float64, ("K", "J"))
        # NaN marks "nothing sent" / "no reading" / "no gripper track", so these may be non-finite.
        c.array("q_sent", arrays["q_sent"], np.float64, ("K", "J"), finite=False)
        c.array("dq_meas", arrays["dq_meas"], np.float64, ("K", "J"), finite=False)
        c.array("grip_cmd", arrays["grip_cmd"], np.float64, ("K",), finite=False)
        c.array("grip_meas", arrays["grip_meas"], np.float64, ("K",), finite=False)
        if c.dims["J"] != len(names):
            raise ContractError(
                "meta.joint_names", f"has {len(names)} names, the arrays have {c.dims['J']} joints", path
            )
        log = cls(
            joint_names=names,
            meta={k: v for k, v in meta.items() if k not in ("schema", "version", "joint_names")},
        )
        for k in _FIELDS:
            log.rows[k] = list(arrays[k])
        return log
