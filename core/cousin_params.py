"""Digital-cousin parameters: what a user measures with a ruler (metres, degrees).

Plain frozen dataclasses, one per kind, importable without trimesh (the CLI builds its flags from
them). ``core.cousins`` turns them into meshes and URDFs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import ChordError


@dataclass(frozen=True)
class BananaParams:
    """A banana lying on its side, bent in the table plane."""

    length: float = 0.19  # m, straight distance tip to tip
    curvature: float = 6.0  # 1/m, of the centreline (1/radius); 0 = straight
    thickness: float = 0.036  # m, diameter at the middle
    density: float = 950.0  # kg/m^3
    color: tuple[float, float, float] = (0.93, 0.79, 0.18)  # RGB in [0, 1]


@dataclass(frozen=True)
class LampParams:
    """A desk lamp: heavy round base, two arm segments, a conical head; joints about y."""

    base_radius: float = 0.08  # m
    base_height: float = 0.02  # m
    lower_arm_length: float = 0.30  # m, shoulder joint to elbow joint
    upper_arm_length: float = 0.28  # m, elbow joint to head joint
    arm_radius: float = 0.008  # m
    head_length: float = 0.12  # m, head joint to the rim of the shade
    head_radius: float = 0.055  # m, radius of the shade's rim
    shoulder_deg: float = -15.0  # rest angle of the lower arm from vertical, + leans to +x
    elbow_deg: float = 100.0  # rest bend of the upper arm relative to the lower arm
    head_deg: float = 35.0  # rest bend of the head relative to the upper arm, + tilts it down
    shoulder_limits_deg: tuple[float, float] = (-60.0, 60.0)  # absolute, degrees
    elbow_limits_deg: tuple[float, float] = (0.0, 160.0)  # absolute, degrees
    head_limits_deg: tuple[float, float] = (-45.0, 120.0)  # absolute, degrees
    damping: float = 0.05  # N m s/rad, every joint
    friction: float = 1.5  # N m, every joint: holds the arm against gravity like a real lamp
    base_density: float = 7800.0  # kg/m^3 (steel base keeps the lamp standing)
    arm_density: float = 2700.0  # kg/m^3 (aluminium)
    head_density: float = 400.0  # kg/m^3 (effective density of the thin, hollow shade)
    color: tuple[float, float, float] = (0.15, 0.35, 0.75)  # RGB in [0, 1]


@dataclass(frozen=True)
class LaptopParams:
    """A laptop: base and lid of the same footprint on a hinge along y at the back edge."""

    width: float = 0.32  # m, along y (left to right)
    depth: float = 0.22  # m, along x (front to back)
    base_thickness: float = 0.016  # m
    lid_thickness: float = 0.007  # m
    opening_deg: float = 100.0  # rest angle between base and lid; 0 = closed
    lid_limits_deg: tuple[float, float] = (0.0, 135.0)  # absolute opening angles, degrees
    damping: float = 0.05  # N m s/rad
    friction: float = 0.4  # N m: hinge stiffness that holds the lid open
    base_density: float = 1250.0  # kg/m^3
    lid_density: float = 1200.0  # kg/m^3
    base_color: tuple[float, float, float] = (0.72, 0.72, 0.75)  # RGB in [0, 1]
    lid_color: tuple[float, float, float] = (0.2, 0.2, 0.24)  # RGB in [0, 1]


@dataclass(frozen=True)
class BoxParams:
    """A box standing on the table (a book, a block)."""

    size: tuple[float, float, float] = (0.2, 0.14, 0.03)  # m, along x, y, z
    density: float = 600.0  # kg/m^3
    color: tuple[float, float, float] = (0.7, 0.2, 0.2)  # RGB in [0, 1]


@dataclass(frozen=True)
class CylinderParams:
    """An upright solid cylinder (a mug, a can)."""

    radius: float = 0.04  # m
    height: float = 0.1  # m
    density: float = 800.0  # kg/m^3
    color: tuple[float, float, float] = (0.9, 0.9, 0.85)  # RGB in [0, 1]


COUSIN_KINDS: dict[str, type] = {
    "banana": BananaParams,
    "lamp": LampParams,
    "laptop": LaptopParams,
    "box": BoxParams,
    "cylinder": CylinderParams,
}


def params_from_dict(d: dict[str, Any]) -> Any:
    """``{"kind": "banana", "length": 0.19, ...}`` (a scene's ``cousin:`` entry) -> params."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in COUSIN_KINDS:
        raise ChordError(f"cousin kind {kind!r} is unknown; expected one of {sorted(COUSIN_KINDS)}")
    cls = COUSIN_KINDS[kind]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ChordError(f"cousin {kind}: unknown parameter {unknown[0]!r}; expected {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def params_to_dict(params: Any) -> dict[str, Any]:
    """Params -> a JSON/YAML-able dict with ``kind`` (inverse of :func:`params_from_dict`)."""
    kind = next(k for k, c in COUSIN_KINDS.items() if isinstance(params, c))
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params).items()}
    return {"kind": kind, **d}
