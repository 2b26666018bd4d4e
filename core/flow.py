"""Dense 3D object flow: where every sampled surface point of every object is at each frame.

This is flowgen's output and the planner's input (docs/design.md, ``flow.npz``). It imports numpy
only, so the planner can read flows without torch.

File layout (schema ``chord.flow``, version 1), an uncompressed ``.npz``:

========================  ===============  ===================================================
field                     dtype, shape     meaning
========================  ===============  ===================================================
``points``                float32 [T,N,3]  world-frame positions, metres
``object_index``          int32 [N]        index of each point's object in ``meta.object_names``
``times``                 float32 [T]      seconds, strictly increasing
``visible`` (optional)    bool [T,N]       whether the point is seen by the camera at frame t
``meta``                  JSON string      schema, version, object_names, fps, camera, prior,
                                           prompt, provenance
========================  ===============  ===================================================
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.contract import ArrayChecker, read_npz, require_meta, write_npz
from core.errors import ContractError
from core.names import name_problem
from core.scene import CAMERA_RADIUS, FPS_RANGE, MAX_DURATION

FLOW_SCHEMA = "chord.flow"
FLOW_VERSION = 1


@dataclass(frozen=True, eq=False)
class ObjectFlow:
    """Dense object flow over T frames for N points; validated on construction and on load."""

    points: np.ndarray  # [T, N, 3] float32, world metres
    object_index: np.ndarray  # [N] int32, index into object_names
    times: np.ndarray  # [T] float32, seconds, strictly increasing
    object_names: tuple[str, ...]  # one per object; index i is object_index value i
    fps: float  # frames per second of the motion (times are usually arange(T) / fps)
    prior: str  # what produced the motion: "video", "wan", "ground_truth", ...
    prompt: str = ""  # the text prompt the motion answers
    camera: dict[str, Any] | None = None  # the scene camera used by the prior (JSON-able)
    visible: np.ndarray | None = None  # [T, N] bool, optional
    provenance: dict[str, Any] = field(default_factory=dict)  # versions, config, source files

    def __post_init__(self) -> None:
        object.__setattr__(self, "object_names", tuple(self.object_names))
        _validate(self, path=None)

    # -- derived --------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1])

    def object_mask(self, name: str) -> np.ndarray:
        """[N] bool: the points belonging to object ``name``."""
        if name not in self.object_names:
            raise KeyError(f"object {name!r} not in this flow; it has {list(self.object_names)}")
        return self.object_index == self.object_names.index(name)

    def object_points(self, name: str) -> np.ndarray:
        """[T, n, 3] the trajectories of object ``name``'s points."""
        return self.points[:, self.object_mask(name)]

    def content_hash(self) -> str:
        """SHA-256 over the arrays and metadata: identifies this flow independent of file bytes."""
        h = hashlib.sha256()
        for arr in (self.points, self.object_index, self.times, self.visible):
            if arr is not None:
                h.update(str(arr.dtype).encode() + str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps(self._meta(), sort_keys=True).encode())
        return h.hexdigest()

    # -- file contract --------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "schema": FLOW_SCHEMA,
            "version": FLOW_VERSION,
            "object_names": list(self.object_names),
            "fps": float(self.fps),
            "prior": self.prior,
            "prompt": self.prompt,
            "camera": self.camera,
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``flow.npz`` atomically; returns the path."""
        arrays = {"points": self.points, "object_index": self.object_index, "times": self.times}
        if self.visible is not None:
            arrays["visible"] = self.visible
        write_npz(path, arrays, self._meta())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ObjectFlow:
        """Read and validate a ``flow.npz``; raises ContractError naming the bad field."""
        arrays, meta = read_npz(
            path,
            schema=FLOW_SCHEMA,
            versions=[FLOW_VERSION],
            required=["points", "object_index", "times"],
            optional=["visible"],
        )
        names = require_meta(meta, "object_names", list, path)
        fps = require_meta(meta, "fps", (int, float), path)
        prior = require_meta(meta, "prior", str, path)
        prompt = require_meta(meta, "prompt", str, path)
        camera = require_meta(meta, "camera", (dict, type(None)), path)
        provenance = require_meta(meta, "provenance", dict, path)
        flow = object.__new__(cls)
        for k, v in dict(
            points=arrays["points"],
            object_index=arrays["object_index"],
            times=arrays["times"],
            object_names=tuple(names),
            fps=float(fps),
            prior=prior,
            prompt=prompt,
            camera=camera,
            visible=arrays.get("visible"),
            provenance=provenance,
        ).items():
            object.__setattr__(flow, k, v)
        _validate(flow, path=path)
        return flow


def _validate(flow: ObjectFlow, path: str | Path | None) -> None:
    c = ArrayChecker(path)
    c.array("points", flow.points, np.float32, ("T", "N", 3))
    c.min_size("T", 2, "the number of frames T")
    c.min_size("N", 1, "the number of points N")
    c.array("object_index", flow.object_index, np.int32, ("N",))
    c.array("times", flow.times, np.float32, ("T",))
    c.strictly_increasing("times", flow.times)
    if flow.visible is not None:
        c.array("visible", flow.visible, np.bool_, ("T", "N"))

    names = flow.object_names
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ContractError("meta.object_names", f"must be non-empty strings, got {list(names)}", path)
    if len(set(names)) != len(names):
        raise ContractError("meta.object_names", f"has duplicates: {list(names)}", path)
    for i, n in enumerate(names):  # object names become paths downstream (assets/<name>/, ...)
        problem = name_problem(n)
        if problem is not None:
            raise ContractError(f"meta.object_names[{i}]", f"is {n!r}: {problem}", path)
    # World metres on a tabletop: a point further from the world origin than the farthest camera
    # a scene may have (core.scene.CAMERA_RADIUS) is a unit slip (mm written as m), not motion.
    far = float(np.abs(flow.points).max())
    if far > CAMERA_RADIUS:
        t, n, k = np.unravel_index(int(np.abs(flow.points).argmax()), flow.points.shape)
        raise ContractError(
            "points",
            f"points[{t}, {n}, {k}] is {float(flow.points[t, n, k]):.6g} m, expected within "
            f"{CAMERA_RADIUS:g} m of the world origin (world metres)",
            path,
        )
    lo, hi = int(flow.object_index.min()), int(flow.object_index.max())
    if lo < 0 or hi >= len(names):
        bad = lo if lo < 0 else hi
        raise ContractError(
            "object_index",
            f"holds {bad}, expected 0..{len(names) - 1} (one per name in meta.object_names)",
            path,
        )
    empty = [n for i, n in enumerate(names) if not (flow.object_index == i).any()]
    if empty:
        raise ContractError("object_index", f"object(s) {empty} have no points", path)
    if not (isinstance(flow.fps, (int, float)) and np.isfinite(flow.fps) and flow.fps > 0):
        raise ContractError("meta.fps", f"is {flow.fps!r}, expected a positive number", path)
    _check_timing(flow, path)
    if not isinstance(flow.prior, str) or not flow.prior:
        raise ContractError("meta.prior", f"is {flow.prior!r}, expected a non-empty string", path)


def _check_timing(flow: ObjectFlow, path: str | Path | None) -> None:
    """fps within the scene's range, and times that span what T frames at fps span (half a frame
    either way) and no more than a clip lasts (core.scene.FPS_RANGE, MAX_DURATION)."""
    lo, hi = FPS_RANGE
    if not lo <= flow.fps <= hi:
        raise ContractError("meta.fps", f"is {flow.fps!r}, expected {lo:g} to {hi:g} frames per second", path)
    span = float(flow.times[-1]) - float(flow.times[0])
    if span > MAX_DURATION:
        raise ContractError(
            "times", f"span {span:.6g} s, expected at most {MAX_DURATION:g} s of motion", path
        )
    expected = (len(flow.times) - 1) / flow.fps
    if abs(span - expected) > 0.5 / flow.fps:
        raise ContractError(
            "times",
            f"span {span:.6g} s, but T={len(flow.times)} frames at meta.fps={flow.fps:g} span {expected:.6g} s; "
            "expected times[t] = times[0] + t / fps",
            path,
        )
