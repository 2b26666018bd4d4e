"""Ground truth of a task: every object's pose and every joint's value at every frame.

Written by ``chord assets suite`` beside a task's reference flow; what ``chord bench`` judges
against (the truth, not a re-analysis of the flow). numpy only.

File layout (schema ``chord.truth``, version 1), an uncompressed ``.npz``:

==============  ================  ==========================================================
field           dtype, shape      meaning
==============  ================  ==========================================================
``times``       float64 [T]       seconds, strictly increasing
``poses``       float64 [T,K,7]   T_world_obj of each object (its URDF base frame): position
                                  (m) then unit quaternion (w, x, y, z)
``joints``      float64 [T,J]     joint values, rad (revolute) or m (prismatic), 0 = rest
``meta``        JSON string       schema, version, fps, object_names [K], joint_objects [J],
                                  joint_names [J], joint_types [J], provenance
==============  ================  ==========================================================

Joint ``j`` belongs to object ``joint_objects[j]`` and is named ``joint_names[j]`` in its
asset (URDF joint name). J may be 0 (only rigid objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.contract import ArrayChecker, read_npz, require_meta, write_npz
from core.errors import ContractError
from core.names import name_problem
from core.scene import CAMERA_RADIUS, FPS_RANGE
from core.transforms import matrix_to_quat, pose_to_matrix

TRUTH_SCHEMA = "chord.truth"
TRUTH_VERSION = 1
TRUTH_JOINT_TYPES = ("revolute", "prismatic")
# A stored quaternion further than this from unit length is not a rotation (float64 written
# from a rotation matrix is unit to ~1e-15; 1e-6 admits float32 round trips).
QUAT_NORM_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class Truth:
    """Per-frame object poses and joint values of a task; validated on construction and on load."""

    times: np.ndarray  # [T] float64 seconds, strictly increasing
    poses: np.ndarray  # [T, K, 7] float64: position (m), quaternion (w, x, y, z)
    joints: np.ndarray  # [T, J] float64: rad or m, 0 = rest
    fps: float  # frames per second
    object_names: tuple[str, ...]  # [K]
    joint_objects: tuple[str, ...] = ()  # [J] the object each joint belongs to
    joint_names: tuple[str, ...] = ()  # [J] the joint's name in its asset
    joint_types: tuple[str, ...] = ()  # [J] "revolute" or "prismatic"
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("object_names", "joint_objects", "joint_names", "joint_types"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        _validate(self, path=None)

    @classmethod
    def from_matrices(
        cls,
        times: np.ndarray,  # [T] seconds
        fps: float,
        poses: dict[str, np.ndarray],  # object -> [T, 4, 4] T_world_obj
        joints: dict[str, dict[str, tuple[str, np.ndarray]]],  # object -> joint -> (type, [T])
        provenance: dict[str, Any] | None = None,
    ) -> Truth:
        """Build from pose matrices (objects in ``poses`` order) and joint tracks."""
        names = tuple(poses)
        P = np.empty((len(times), len(names), 7))
        for k, n in enumerate(names):
            for t, T in enumerate(poses[n]):
                P[t, k, :3] = T[:3, 3]
                P[t, k, 3:] = matrix_to_quat(T[:3, :3])
        objs, jnames, jtypes, cols = [], [], [], []
        for n in names:
            for j, (kind, values) in joints.get(n, {}).items():
                objs.append(n)
                jnames.append(j)
                jtypes.append(kind)
                cols.append(np.asarray(values, dtype=np.float64))
        J = np.stack(cols, axis=1) if cols else np.zeros((len(times), 0))
        return cls(
            np.asarray(times, dtype=np.float64), P, J, float(fps), names, tuple(objs), tuple(jnames),
            tuple(jtypes), dict(provenance or {}),
        )  # fmt: skip

    # -- derived --------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.times.shape[0])

    def pose_matrices(self, name: str) -> np.ndarray:
        """[T, 4, 4] T_world_obj of object ``name``."""
        if name not in self.object_names:
            raise KeyError(f"object {name!r} not in this truth; it has {list(self.object_names)}")
        P = self.poses[:, self.object_names.index(name)]
        return np.stack([pose_to_matrix(p[:3], p[3:]) for p in P])

    def joint_values(self, name: str) -> dict[str, np.ndarray]:
        """Joint name -> [T] values (rad or m) of object ``name`` ({} for a rigid object)."""
        return {
            j: self.joints[:, i]
            for i, (o, j) in enumerate(zip(self.joint_objects, self.joint_names, strict=True))
            if o == name
        }

    # -- file contract --------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "schema": TRUTH_SCHEMA,
            "version": TRUTH_VERSION,
            "fps": float(self.fps),
            "object_names": list(self.object_names),
            "joint_objects": list(self.joint_objects),
            "joint_names": list(self.joint_names),
            "joint_types": list(self.joint_types),
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``truth.npz`` atomically; returns the path."""
        write_npz(path, {"times": self.times, "poses": self.poses, "joints": self.joints}, self._meta())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Truth:
        """Read and validate a ``truth.npz``; raises ContractError naming the bad field."""
        arrays, meta = read_npz(
            path, schema=TRUTH_SCHEMA, versions=[TRUTH_VERSION], required=["times", "poses", "joints"]
        )
        truth = object.__new__(cls)
        values = dict(
            times=arrays["times"],
            poses=arrays["poses"],
            joints=arrays["joints"],
            fps=require_meta(meta, "fps", (int, float), path),
            object_names=tuple(require_meta(meta, "object_names", list, path)),
            joint_objects=tuple(require_meta(meta, "joint_objects", list, path)),
            joint_names=tuple(require_meta(meta, "joint_names", list, path)),
            joint_types=tuple(require_meta(meta, "joint_types", list, path)),
            provenance=require_meta(meta, "provenance", dict, path),
        )
        for k, v in values.items():
            object.__setattr__(truth, k, v)
        _validate(truth, path=path)
        return truth


def _validate(truth: Truth, path: str | Path | None) -> None:
    c = ArrayChecker(path)
    c.array("times", truth.times, np.float64, ("T",))
    c.min_size("T", 2, "the number of frames T")
    c.strictly_increasing("times", truth.times)
    c.array("poses", truth.poses, np.float64, ("T", "K", 7))
    c.min_size("K", 1, "the number of objects K")
    c.array("joints", truth.joints, np.float64, ("T", "J"))
    fps = truth.fps
    lo, hi = FPS_RANGE
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (lo <= fps <= hi):
        raise ContractError("meta.fps", f"is {fps!r}, expected {lo:g} to {hi:g} frames per second", path)

    names = truth.object_names
    if len(names) != c.dims["K"]:
        raise ContractError(
            "meta.object_names", f"has {len(names)} names, expected K={c.dims['K']} (poses axis 1)", path
        )
    if len(set(names)) != len(names):
        raise ContractError("meta.object_names", f"has duplicates: {list(names)}", path)
    for i, n in enumerate(names):  # object names become paths downstream
        problem = name_problem(n)
        if problem is not None:
            raise ContractError(f"meta.object_names[{i}]", f"is {n!r}: {problem}", path)
    J = c.dims["J"]
    for key in ("joint_objects", "joint_names", "joint_types"):
        v = getattr(truth, key)
        if len(v) != J:
            raise ContractError(f"meta.{key}", f"has {len(v)} entries, expected J={J} (joints axis 1)", path)
    for i, (o, j, kind) in enumerate(
        zip(truth.joint_objects, truth.joint_names, truth.joint_types, strict=True)
    ):
        if o not in names:
            raise ContractError(f"meta.joint_objects[{i}]", f"is {o!r}, expected one of {list(names)}", path)
        if not isinstance(j, str) or name_problem(j) is not None:
            raise ContractError(f"meta.joint_names[{i}]", f"is {j!r}, expected a joint name", path)
        if kind not in TRUTH_JOINT_TYPES:
            raise ContractError(
                f"meta.joint_types[{i}]", f"is {kind!r}, expected one of {TRUTH_JOINT_TYPES}", path
            )
    pairs = list(zip(truth.joint_objects, truth.joint_names, strict=True))
    if len(set(pairs)) != len(pairs):
        raise ContractError("meta.joint_names", f"names a joint twice: {pairs}", path)

    far = float(np.abs(truth.poses[..., :3]).max())
    if far > CAMERA_RADIUS:
        raise ContractError(
            "poses",
            f"a position is {far:.6g} m from the origin, expected within {CAMERA_RADIUS:g} m (metres)",
            path,
        )
    norms = np.linalg.norm(truth.poses[..., 3:], axis=-1)
    worst = float(np.abs(norms - 1.0).max())
    if worst > QUAT_NORM_TOL:
        t, k = np.unravel_index(int(np.abs(norms - 1.0).argmax()), norms.shape)
        raise ContractError(
            "poses", f"quaternion [{t}, {k}] has norm {float(norms[t, k]):.9g}, expected 1 (w, x, y, z)", path
        )
