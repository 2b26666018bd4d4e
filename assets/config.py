"""The assets stage's settings, importable without trimesh (the ``chord`` command reads them at start)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.asset import DEFAULT_DENSITY
from core.errors import ChordError
from core.scene import DENSITY_RANGE, FPS_RANGE

UP_AXES = ("auto", "+x", "-x", "+y", "-y", "+z", "-z")


@dataclass(frozen=True)
class IntakeConfig:
    """How to turn a scan into an asset."""

    units: str = "auto"  # units of the file: m, cm, mm, or auto (guessed from the size)
    scale: float | None = None  # metres per file unit; overrides units (e.g. 0.05)
    up: str = "auto"  # up axis of the file: +x -x +y -y +z -z, or auto (table plane, else +z; +y for glTF)
    table: str = "auto"  # auto: find and remove a table plane in the scan; none: there is none
    max_faces: int = 20_000  # decimate to at most this many triangles (at most core.mesh.DECIMATE_FACES)
    min_component: float = 0.05  # keep connected pieces with at least this fraction of the largest's area
    density: float = DEFAULT_DENSITY  # kg/m^3, for the mass
    settle: bool = True  # rotate into the nearest stable resting pose if the object would topple
    seed: int = 0  # RANSAC seed
    color: tuple[float, float, float] = (0.7, 0.7, 0.7)  # RGB in [0, 1], the URDF's material colour

    def __post_init__(self) -> None:
        """Refuse each bad option with its value and range before any file is read (ChordError)."""

        def number(v: object) -> bool:
            return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)

        if self.units not in ("auto", "m", "cm", "mm"):
            raise ChordError(f"units is {self.units!r}, expected auto, m, cm or mm")
        if self.scale is not None and not (number(self.scale) and self.scale > 0):
            raise ChordError(f"scale is {self.scale!r}, expected a positive number of metres per file unit")
        if self.up not in UP_AXES:
            raise ChordError(f"up is {self.up!r}, expected one of {list(UP_AXES)}")
        if self.table not in ("auto", "none"):
            raise ChordError(f"table is {self.table!r}, expected auto or none")
        mf = self.max_faces
        if isinstance(mf, bool) or not isinstance(mf, int) or mf < 4:
            # No upper bound here: a scan above core.mesh.DECIMATE_FACES is decimated to that first.
            raise ChordError(f"max_faces is {mf!r}, expected an integer >= 4")
        if not (number(self.min_component) and 0.0 <= self.min_component <= 1.0):
            raise ChordError(f"min_component is {self.min_component!r}, expected a fraction in [0, 1]")
        lo, hi = DENSITY_RANGE
        if not (number(self.density) and lo <= self.density <= hi):
            raise ChordError(f"density is {self.density!r}, expected {lo:g} to {hi:g} kg/m^3")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ChordError(f"seed is {self.seed!r}, expected an integer")
        c = self.color
        if len(c) != 3 or not all(number(v) and 0.0 <= v <= 1.0 for v in c):
            raise ChordError(f"color is {list(c)!r}, expected 3 numbers in [0, 1]")


@dataclass(frozen=True)
class RecordingConfig:
    """How to import an RGB-D recording into a scene's reference (assets.recording)."""

    # A pixel belongs to an object's mask when its recorded depth lies within this of the depth the
    # object's mesh has there at its tracked pose. 1 cm: above a structured-light sensor's noise
    # at a tabletop's 0.5-1 m (a few mm), below the thickness of anything chord grasps.
    depth_tol: float = 0.01  # m
    # RANSAC plane fit of the table in frame 0: inlier distance and number of trials.
    plane_tol: float = 0.005  # m
    plane_trials: int = 200
    # Rigid ICP of each object against the next frame's depth: iterations, surface points of the
    # model, and the largest point-to-point distance that still pairs (the most an object moves
    # between two frames beyond the constant-velocity guess).
    icp_iterations: int = 30
    model_points: int = 4000
    icp_gate: float = 0.03  # m
    # Refine the scene's frame-0 poses against the first depth frame (the corrections are reported).
    refine_first: bool = True
    # Warn for a frame where an object's mask covers less than this fraction of its rendered,
    # depth-valid silhouette (the track was lost, or something the scene lacks covers it).
    warn_agreement: float = 0.6
    # Frames per second of the recording (default: the camera file's fps, else the scene's).
    fps: float | None = None
    seed: int = 0  # RANSAC and surface-sampling seed

    def __post_init__(self) -> None:
        """Refuse each bad option with its value and range before any file is read (ChordError)."""

        def number(v: object) -> bool:
            return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)

        for key, lo, hi in (
            ("depth_tol", 1e-4, 0.2),
            ("plane_tol", 1e-4, 0.1),
            ("icp_gate", 1e-3, 0.5),
            ("warn_agreement", 0.0, 1.0),
        ):
            v = getattr(self, key)
            if not (number(v) and lo <= v <= hi):
                raise ChordError(f"{key} is {v!r}, expected {lo:g} to {hi:g}")
        for key, lo, hi in (
            ("plane_trials", 1, 100_000),
            ("icp_iterations", 0, 1000),
            ("model_points", 50, 1_000_000),
        ):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ChordError(f"{key} is {v!r}, expected an integer from {lo} to {hi}")
        lo, hi = FPS_RANGE
        if self.fps is not None and not (number(self.fps) and lo <= self.fps <= hi):
            raise ChordError(f"fps is {self.fps!r}, expected {lo:g} to {hi:g} frames per second")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ChordError(f"seed is {self.seed!r}, expected an integer")
