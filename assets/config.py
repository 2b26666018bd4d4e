"""The assets stage's settings, importable without trimesh (the ``chord`` command reads them at start)."""

from __future__ import annotations

from dataclasses import dataclass

from core.asset import DEFAULT_DENSITY


@dataclass(frozen=True)
class IntakeConfig:
    """How to turn a scan into an asset."""

    units: str = "auto"  # units of the file: m, cm, mm, or auto (guessed from the size)
    scale: float | None = None  # metres per file unit; overrides units (e.g. 0.05)
    up: str = "auto"  # up axis of the file: +x -x +y -y +z -z, or auto (table plane, else +z; +y for glTF)
    table: str = "auto"  # auto: find and remove a table plane in the scan; none: there is none
    max_faces: int = 20_000  # decimate to at most this many triangles
    min_component: float = 0.05  # keep connected pieces with at least this fraction of the largest's area
    density: float = DEFAULT_DENSITY  # kg/m^3, for the mass
    settle: bool = True  # rotate into the nearest stable resting pose if the object would topple
    seed: int = 0  # RANSAC seed
    color: tuple[float, float, float] = (0.7, 0.7, 0.7)  # RGB in [0, 1], the URDF's material colour
