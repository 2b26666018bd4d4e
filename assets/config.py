"""The assets stage's settings, importable without trimesh (the ``chord`` command reads them at start)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.asset import DEFAULT_DENSITY
from core.errors import ChordError
from core.scene import DENSITY_RANGE, FPS_RANGE

UP_AXES = ("auto", "+x", "-x", "+y", "-y", "+z", "-z")

# The task suite's defaults (assets.suite.SuiteConfig and `chord assets suite` both read these).
# 9 seeds per category: 3 test tasks in each, so the rigid and slide test tasks hold a scanned
# model too (a banana, a random_urdfs mesh and a scan; with 6 seeds they had no scan).
SUITE_PER_CATEGORY = 9  # seeds 0..8 of each of the 7 categories: 63 tasks, 42 train, 21 test
SUITE_RESOLUTION = (208, 116)  # reference video pixels (width, height); the scene camera is 832x464
SUITE_POINTS_PER_OBJECT = 4000  # flow points sampled on each object
SUITE_FRAMES = 41  # frames of the reference clip (Wan 2.2 makes 4k + 1)


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

    # depth_tol 1 cm: above a structured-light sensor's noise at a tabletop's 0.5-1 m (a few mm),
    # below the thickness of anything chord grasps. icp_gate 3 cm: the most an object may move
    # between two frames beyond the constant-velocity guess.
    depth_tol: float = 0.01  # m: a pixel is an object's when its depth is this near the object's render
    plane_tol: float = 0.005  # m: inlier distance of the table plane's RANSAC fit in frame 0
    plane_trials: int = 200  # RANSAC trials of the table plane fit
    icp_iterations: int = 30  # ICP iterations per object and frame (stops early once converged)
    model_points: int = 4000  # surface points sampled on each object's mesh for ICP
    icp_gate: float = 0.03  # m: farthest pairing of depth and model points in ICP's first iteration
    refine_first: bool = True  # align the scene's frame-0 poses to the first depth frame
    warn_agreement: float = 0.6  # warn where a mask covers less than this of its depth-valid silhouette
    fps: float | None = None  # frames per second (default: the camera file's fps, else the scene's)
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
            ("icp_iterations", 1, 1000),
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
