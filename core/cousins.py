"""Digital cousins: objects modelled from a few measured dimensions.

Each ``*Params`` dataclass (``core.cousin_params``) holds the measurements (metres, degrees) a user takes with a ruler;
:func:`build_cousin` turns them into an :class:`~core.asset.Asset` whose meshes match the
measurements exactly (to floating point; the tests measure the meshes). Object frames: z up, the
object's lowest point on the table at z = 0, +x towards the front.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import trimesh

from core.asset import Asset, Joint, Link, rotation, translation
from core.cousin_params import (
    COUSIN_KINDS,
    BananaParams,
    BoxParams,
    CylinderParams,
    LampParams,
    LaptopParams,
    params_to_dict,
)
from core.errors import ChordError
from core.scene import (
    DENSITY_RANGE,
    MAX_JOINT_DAMPING,
    MAX_JOINT_FRICTION,
    MAX_OBJECT_SIZE,
    MAX_REVOLUTE_DEG,
)

_SECTIONS = 48  # around a cylinder; a multiple of 4 so the extents equal the diameter exactly
_MIN_SIZE = 1e-3  # m: below this a "measurement" is a typo
_MAX_SIZE = MAX_OBJECT_SIZE  # m: larger than any tabletop object
_HINGE_OVERLAP = 5e-4  # m, see _laptop


def build_cousin(params: Any, name: str | None = None) -> Asset:
    """Build the asset for ``params`` (any ``*Params``); raises ChordError naming a bad value."""
    for kind, cls in COUSIN_KINDS.items():
        if isinstance(params, cls):
            builder = _BUILDERS[kind]
            return builder(params, name or kind)
    raise ChordError(f"not cousin parameters: {type(params).__name__}; expected one of {list(COUSIN_KINDS)}")


# -- checks ---------------------------------------------------------------------------------
def _size(kind: str, key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ChordError(f"{kind}: {key} is {value!r}, expected a number of metres")
    if value <= 0:
        raise ChordError(f"{kind}: {key} is {value!r} m, expected a positive length")
    if not _MIN_SIZE <= value <= _MAX_SIZE:
        raise ChordError(
            f"{kind}: {key} is {value!r} m, expected {_MIN_SIZE * 1000:g} mm to {_MAX_SIZE:g} m "
            "(dimensions are in metres)"
        )
    return float(value)


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _density(kind: str, key: str, value: float) -> float:
    lo, hi = DENSITY_RANGE
    if not (_number(value) and lo <= value <= hi):
        raise ChordError(f"{kind}: {key} is {value!r}, expected {lo:g} to {hi:g} kg/m^3")
    return float(value)


def _nonneg(kind: str, key: str, value: float, unit: str, maximum: float = math.inf) -> float:
    if not (_number(value) and 0 <= value <= maximum):
        bound = f" and at most {maximum:g}" if math.isfinite(maximum) else ""
        raise ChordError(f"{kind}: {key} is {value!r}, expected a number >= 0{bound} ({unit})")
    return float(value)


def _angle(kind: str, key: str, value: float) -> float:
    if not (_number(value) and abs(value) <= MAX_REVOLUTE_DEG):
        raise ChordError(
            f"{kind}: {key} is {value!r}, expected degrees from -{MAX_REVOLUTE_DEG:g} to {MAX_REVOLUTE_DEG:g}"
        )
    return float(value)


def _limits(
    kind: str, key: str, limits: tuple[float, float], rest_key: str, rest: float
) -> tuple[float, float]:
    """Absolute limits (deg) -> (lower, upper) rad relative to the rest angle."""
    rest = _angle(kind, rest_key, rest)
    if not (isinstance(limits, (tuple, list)) and len(limits) == 2 and all(_number(v) for v in limits)):
        raise ChordError(f"{kind}: {key} is {limits!r}, expected [lower, upper] in degrees")
    lo, hi = float(limits[0]), float(limits[1])
    if max(abs(lo), abs(hi)) > MAX_REVOLUTE_DEG:
        raise ChordError(
            f"{kind}: {key} is [{lo:g}, {hi:g}], expected limits within -{MAX_REVOLUTE_DEG:g} to "
            f"{MAX_REVOLUTE_DEG:g} deg"
        )
    if lo >= hi:
        raise ChordError(
            f"{kind}: {key} is [{lo:g}, {hi:g}]: limits reversed or empty; expected lower < upper"
        )
    if not lo <= rest <= hi:
        raise ChordError(f"{kind}: {rest_key} is {rest:g} deg, outside {key} [{lo:g}, {hi:g}]")
    return math.radians(lo - rest), math.radians(hi - rest)


def _color(kind: str, key: str, rgb: tuple[float, ...]) -> tuple[float, float, float]:
    ok = isinstance(rgb, (tuple, list)) and len(rgb) == 3
    if not (ok and all(_number(c) and 0.0 <= c <= 1.0 for c in rgb)):
        raise ChordError(f"{kind}: {key} is {rgb!r}, expected 3 numbers in [0, 1]")
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


# -- mesh pieces ----------------------------------------------------------------------------
def _paint(mesh: trimesh.Trimesh, rgb: tuple[float, float, float] | np.ndarray) -> trimesh.Trimesh:
    """Give every vertex the colour ``rgb`` ([3] or [V, 3] in [0, 1])."""
    rgb = np.broadcast_to(np.asarray(rgb, dtype=float), (len(mesh.vertices), 3))
    rgba = np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.round(255 * rgba).astype(np.uint8))
    return mesh


def _cylinder_z(radius: float, z0: float, z1: float) -> trimesh.Trimesh:
    """A closed cylinder about the z axis from z0 to z1."""
    m = trimesh.creation.cylinder(radius=radius, height=z1 - z0, sections=_SECTIONS)
    m.apply_translation((0.0, 0.0, 0.5 * (z0 + z1)))
    return m


def _frustum_z(r0: float, r1: float, z0: float, z1: float) -> trimesh.Trimesh:
    """A closed truncated cone about z: radius r0 at z0, r1 at z1."""
    m = _cylinder_z(1.0, z0, z1)
    v = m.vertices.copy()
    t = (v[:, 2] - z0) / (z1 - z0)
    v[:, :2] *= (r0 + (r1 - r0) * t)[:, None]
    return trimesh.Trimesh(v, m.faces, process=False)


def _link(name: str, mesh: trimesh.Trimesh, T: np.ndarray, density: float, rgb, collision=None) -> Link:
    rgba = (*rgb, 1.0)
    return Link(name, _paint(mesh, rgb), T, density, tuple(collision or (mesh.convex_hull,)), rgba)


# -- builders -------------------------------------------------------------------------------
def _banana(p: BananaParams, name: str) -> Asset:
    """A tapered tube along a circular arc in the table plane, flat-bottomed so it lies still.

    Object frame: origin at the midpoint between the tips, on the table; the arc bulges to +y.
    x extent = ``length``, z extent = ``thickness``.
    """
    kind = "banana"
    length = _size(kind, "length", p.length)
    thick = _size(kind, "thickness", p.thickness)
    curv = _nonneg(kind, "curvature", p.curvature, "1/m")
    _density(kind, "density", p.density)
    rgb = np.array(_color(kind, "color", p.color))
    if thick > 0.5 * length:
        raise ChordError(f"{kind}: thickness {thick} m is more than half the length {length} m")
    r0 = thick / 2
    r_tip = 0.18 * r0
    n_rings, n_around = 61, 32  # odd: a ring at the middle; multiple of 4: a vertex on top
    u = np.linspace(-1.0, 1.0, n_rings)
    radius = np.maximum(r0 * np.sqrt(np.clip(1.0 - np.abs(u) ** 3, 0.0, 1.0)), r_tip)
    if curv > 0:
        R = 1.0 / curv
        # Farthest point along x is the outer edge of the tip ring: (R + r_tip) sin(theta).
        s = length / (2 * (R + r_tip))
        if s > 1.0:
            raise ChordError(
                f"{kind}: curvature {curv:g} 1/m is too strong for length {length} m "
                f"(at most {2 / length:.3g} 1/m)"
            )
        theta = math.asin(s)
        phi = u * theta
        centre = np.stack([R * np.sin(phi), R * (np.cos(phi) - math.cos(theta)), radius], axis=1)
        n1 = np.stack([np.sin(phi), np.cos(phi), np.zeros_like(phi)], axis=1)
    else:
        centre = np.stack([u * length / 2, np.zeros_like(u), radius], axis=1)
        n1 = np.tile([0.0, 1.0, 0.0], (n_rings, 1))
    n2 = np.array([0.0, 0.0, 1.0])
    alpha = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    ring = centre[:, None, :] + radius[:, None, None] * (
        np.cos(alpha)[None, :, None] * n1[:, None, :] + np.sin(alpha)[None, :, None] * n2
    )  # [rings, around, 3]
    verts = np.concatenate([ring.reshape(-1, 3), centre[[0, -1]]])
    faces = []
    for i in range(n_rings - 1):
        for k in range(n_around):
            a, b = i * n_around + k, i * n_around + (k + 1) % n_around
            c, d = a + n_around, b + n_around
            faces += [[a, c, b], [b, c, d]]
    first, last = len(verts) - 2, len(verts) - 1
    for k in range(n_around):
        k1 = (k + 1) % n_around
        faces.append([first, k1, k])
        j = (n_rings - 1) * n_around
        faces.append([last, j + k, j + k1])
    mesh = trimesh.Trimesh(verts, np.array(faces), process=False)
    if mesh.volume < 0:
        mesh.invert()
    # Brown tips, yellow body.
    tip = np.clip((np.abs(u) - 0.85) / 0.15, 0.0, 1.0)
    ring_rgb = (1 - tip)[:, None] * rgb + tip[:, None] * np.array([0.35, 0.25, 0.1])
    vert_rgb = np.concatenate([np.repeat(ring_rgb, n_around, axis=0), ring_rgb[[0, -1]]])
    # Convex decomposition by construction: overlapping arc segments, each nearly convex.
    pieces = []
    for chunk in np.array_split(np.arange(n_rings), 8):
        idx = np.arange(max(chunk[0] - 1, 0), chunk[-1] + 1)
        pieces.append(trimesh.convex.convex_hull(ring[idx].reshape(-1, 3)))
    link = Link("body", _paint(mesh, vert_rgb), np.eye(4), p.density, tuple(pieces), (*rgb, 1.0))
    return Asset(name, (link,), (), params_to_dict(p))


def _lamp(p: LampParams, name: str) -> Asset:
    kind = "lamp"
    rb, hb = _size(kind, "base_radius", p.base_radius), _size(kind, "base_height", p.base_height)
    l1, l2 = (
        _size(kind, "lower_arm_length", p.lower_arm_length),
        _size(kind, "upper_arm_length", p.upper_arm_length),
    )
    ra = _size(kind, "arm_radius", p.arm_radius)
    hl, hr = _size(kind, "head_length", p.head_length), _size(kind, "head_radius", p.head_radius)
    for key in ("base_density", "arm_density", "head_density"):
        _density(kind, key, getattr(p, key))
    damping = _nonneg(kind, "damping", p.damping, "N m s/rad", MAX_JOINT_DAMPING)
    friction = _nonneg(kind, "friction", p.friction, "N m", MAX_JOINT_FRICTION)
    rgb = _color(kind, "color", p.color)
    lim = {
        j: _limits(kind, f"{j}_limits_deg", getattr(p, f"{j}_limits_deg"), f"{j}_deg", getattr(p, f"{j}_deg"))
        for j in ("shoulder", "elbow", "head")
    }
    y = (0.0, 1.0, 0.0)  # every joint turns about y; + leans the child towards +x
    T_base = np.eye(4)
    T_lower = translation((0, 0, hb)) @ rotation(y, math.radians(p.shoulder_deg))
    T_upper = T_lower @ translation((0, 0, l1)) @ rotation(y, math.radians(p.elbow_deg))
    T_head = T_upper @ translation((0, 0, l2)) @ rotation(y, math.radians(p.head_deg))
    neck = min(0.25 * hr, 0.02)
    pieces = {
        "base": _cylinder_z(rb, 0.0, hb),
        "lower_arm": _cylinder_z(ra, 0.0, l1),
        "upper_arm": _cylinder_z(ra, 0.0, l2),
        "head": _frustum_z(neck, hr, 0.0, hl),
    }
    frames = {"base": T_base, "lower_arm": T_lower, "upper_arm": T_upper, "head": T_head}
    density = {
        "base": p.base_density,
        "lower_arm": p.arm_density,
        "upper_arm": p.arm_density,
        "head": p.head_density,
    }
    colors = {"base": (0.12, 0.12, 0.12), "lower_arm": rgb, "upper_arm": rgb, "head": rgb}
    links = []
    for key, m in pieces.items():
        m.apply_transform(frames[key])  # link frame -> object frame at rest
        links.append(_link(key, m, frames[key], density[key], colors[key]))
    effort = 10.0 * max(friction, 0.1)
    joints = (
        Joint("shoulder", "revolute", "base", "lower_arm", y, *lim["shoulder"], damping, friction, effort, rest=math.radians(p.shoulder_deg)),
        Joint("elbow", "revolute", "lower_arm", "upper_arm", y, *lim["elbow"], damping, friction, effort, rest=math.radians(p.elbow_deg)),
        Joint("head", "revolute", "upper_arm", "head", y, *lim["head"], damping, friction, effort, rest=math.radians(p.head_deg)),
    )  # fmt: skip
    return Asset(name, tuple(links), joints, params_to_dict(p))


def _laptop(p: LaptopParams, name: str) -> Asset:
    """Base centred on the origin; the lid's hinge runs along y at the base's back top edge.

    The hinge axis is -y in the lid frame, so a positive joint value opens the lid further.
    """
    kind = "laptop"
    w, d = _size(kind, "width", p.width), _size(kind, "depth", p.depth)
    tb, tl = _size(kind, "base_thickness", p.base_thickness), _size(kind, "lid_thickness", p.lid_thickness)
    for key in ("base_density", "lid_density"):
        _density(kind, key, getattr(p, key))
    damping = _nonneg(kind, "damping", p.damping, "N m s/rad", MAX_JOINT_DAMPING)
    friction = _nonneg(kind, "friction", p.friction, "N m", MAX_JOINT_FRICTION)
    lo, hi = _limits(kind, "lid_limits_deg", p.lid_limits_deg, "opening_deg", p.opening_deg)
    if p.lid_limits_deg[0] < 0:
        raise ChordError(
            f"{kind}: lid_limits_deg lower is {p.lid_limits_deg[0]:g} deg; below 0 the lid enters the base"
        )
    base = trimesh.creation.box((d, w, tb))
    base.apply_translation((0, 0, tb / 2))
    # Lid frame: hinge at the origin, closed along +x. The lid reaches HINGE_OVERLAP behind the
    # hinge line, into the base, so base and lid share a volume (not just an edge) and their union
    # is a proper closed surface.
    lid = trimesh.creation.box((d + _HINGE_OVERLAP, w, tl))
    lid.apply_translation(((d - _HINGE_OVERLAP) / 2, 0, tl / 2))
    T_lid = translation((-d / 2, 0, tb)) @ rotation((0, 1, 0), -math.radians(p.opening_deg))
    lid.apply_transform(T_lid)
    links = (
        _link("base", base, np.eye(4), p.base_density, _color(kind, "base_color", p.base_color)),
        _link("lid", lid, T_lid, p.lid_density, _color(kind, "lid_color", p.lid_color)),
    )
    hinge = Joint(
        "hinge", "revolute", "base", "lid", (0, -1, 0), lo, hi, damping, friction,
        effort=10.0 * max(friction, 0.1), rest=math.radians(p.opening_deg),
    )  # fmt: skip
    return Asset(name, links, (hinge,), params_to_dict(p))


def _box(p: BoxParams, name: str) -> Asset:
    kind = "box"
    if not isinstance(p.size, (tuple, list)) or len(p.size) != 3:
        raise ChordError(f"{kind}: size is {p.size!r}, expected 3 lengths in metres")
    size = tuple(_size(kind, f"size[{i}]", v) for i, v in enumerate(p.size))
    _density(kind, "density", p.density)
    m = trimesh.creation.box(size)
    m.apply_translation((0, 0, size[2] / 2))
    return Asset(
        name, (_link("body", m, np.eye(4), p.density, _color(kind, "color", p.color)),), (), params_to_dict(p)
    )


def _cylinder(p: CylinderParams, name: str) -> Asset:
    kind = "cylinder"
    r, h = _size(kind, "radius", p.radius), _size(kind, "height", p.height)
    _density(kind, "density", p.density)
    m = _cylinder_z(r, 0.0, h)
    return Asset(
        name, (_link("body", m, np.eye(4), p.density, _color(kind, "color", p.color)),), (), params_to_dict(p)
    )


_BUILDERS = {"banana": _banana, "lamp": _lamp, "laptop": _laptop, "box": _box, "cylinder": _cylinder}
