"""The load a grasp must carry: the part's mass, and the force or torque its track asks of it.

A free part hangs in the grasp: the fingers carry its weight and its acceleration along the
track, and the moment of that force about the grasp. A part on a joint (a door, a drawer, a lid)
is carried by its joint; the grasp only drives the joint against what resists it: the joint's
friction and damping from the object's URDF, gravity's torque about (or force along) the
joint's axis, and the part's inertia along the joint's motion (mass, or mass times the centre of
mass's squared distance from the axis, at the flow's largest joint acceleration). Masses come from the object's URDF (the ``<inertial>`` of the part's link: any
URDF) or, without one, a density times the part's volume.

Whether two finger contacts hold a load (:func:`grasp_utilisation`): each finger squeezes with the
gripper's force f. The fingers are coupled (one drive moves both, symmetric about the hand), so
a force F along the closing axis shifts normal force from one contact to the other (N = f +- F/2)
while their sum stays 2 f: the contact behind the load bears it by normal force, and the grasp
holds until the other contact unloads, at F = 2 f. Across the closing axis only friction holds,
up to mu (N1 + N2) = 2 mu f. So a grasp whose contact normals face along the force the track asks
(a drawer handle pinched front and back, pulled out) holds 1/mu times what one holding it by
friction alone does (the same handle pinched top and bottom). With friction coefficient mu the
contacts resist a force along the closing axis up to 2 f, a force across it up to 2 mu f, a moment about it up to 2 mu f a (pads of contact
radius a) and a moment across it up to mu f w (a friction couple over the grasp width w). The
load's utilisation is the sum of the four ratios: a linear bound inside the true limit surface,
so a utilisation below 1 holds; the load margin is its inverse (how many times the load the
grasp could carry).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.transform import Rotation

from core.errors import ChordError

log = logging.getLogger(__name__)

GRAVITY = np.array([0.0, 0.0, -9.81])  # m/s^2, world


@dataclass(frozen=True)
class UrdfLink:
    """A URDF link's inertial data (link frame)."""

    name: str
    mass: float  # kg (0 when the URDF gives no <inertial>)
    com: np.ndarray  # [3] metres, centre of mass in the link frame


@dataclass(frozen=True)
class UrdfJoint:
    """A URDF joint: its kind, links, placement and what resists it."""

    name: str
    kind: str  # "revolute", "continuous", "prismatic", "fixed", ...
    parent: str
    child: str
    origin: np.ndarray  # [4, 4] T_parent_joint
    axis: np.ndarray  # [3] unit, joint frame
    friction: float  # N m (revolute) or N (prismatic), <dynamics friction>
    damping: float  # N m s/rad or N s/m, <dynamics damping>


def _floats(text: str | None, n: int, where: str) -> np.ndarray:
    vals = np.array([float(v) for v in (text or "").split()]) if text else np.zeros(n)
    if vals.shape != (n,) or not np.isfinite(vals).all():
        raise ChordError(f"URDF {where}: {text!r}, expected {n} finite numbers")
    return vals


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.array([1.0, 0.0, 0.0])


def _origin(elem: ET.Element | None, where: str) -> np.ndarray:
    T = np.eye(4)
    if elem is not None:
        T[:3, :3] = Rotation.from_euler("xyz", _floats(elem.get("rpy"), 3, f"{where} rpy")).as_matrix()
        T[:3, 3] = _floats(elem.get("xyz"), 3, f"{where} xyz")
    return T


def read_urdf(path: str | Path) -> tuple[dict[str, UrdfLink], list[UrdfJoint]]:
    """Links (by name) and joints of a URDF file, with masses, centres of mass and joint dynamics.

    Raises ChordError for a file that cannot be read or parsed, or a negative or non-finite mass.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise ChordError(f"cannot read URDF {str(path)!r}: {e}") from e
    links: dict[str, UrdfLink] = {}
    for el in root.findall("link"):
        name = el.get("name", "")
        inertial = el.find("inertial")
        mass, com = 0.0, np.zeros(3)
        if inertial is not None:
            m = inertial.find("mass")
            mass = float(m.get("value", "0")) if m is not None else 0.0
            if not (np.isfinite(mass) and mass >= 0.0):
                raise ChordError(f"URDF {str(path)!r} link {name!r}: mass {mass}, expected kg >= 0")
            com = _origin(inertial.find("origin"), f"link {name!r} inertial origin")[:3, 3]
        links[name] = UrdfLink(name, mass, com)
    joints = []
    for el in root.findall("joint"):
        dyn, ax = el.find("dynamics"), el.find("axis")
        parent, child = el.find("parent"), el.find("child")
        joints.append(
            UrdfJoint(
                name=el.get("name", ""),
                kind=el.get("type", "fixed"),
                parent=parent.get("link", "") if parent is not None else "",
                child=child.get("link", "") if child is not None else "",
                origin=_origin(el.find("origin"), f"joint {el.get('name')!r} origin"),
                axis=_unit(
                    _floats(ax.get("xyz") if ax is not None else "1 0 0", 3, f"joint {el.get('name')!r} axis")
                ),
                friction=abs(float(dyn.get("friction", "0"))) if dyn is not None else 0.0,
                damping=abs(float(dyn.get("damping", "0"))) if dyn is not None else 0.0,
            )
        )
    return links, joints


def link_poses(links: dict[str, UrdfLink], joints: list[UrdfJoint]) -> dict[str, np.ndarray]:
    """T_object_link [4, 4] of every link with every joint at 0 (the URDF's zero configuration)."""
    children = {j.child for j in joints}
    poses = {name: np.eye(4) for name in links if name not in children}
    pending = list(joints)
    while pending:
        ready = [j for j in pending if j.parent in poses]
        if not ready:
            break  # a joint whose parent is not a link: left out
        for j in ready:
            poses[j.child] = poses[j.parent] @ j.origin
            pending.remove(j)
    return poses


def _part_link(
    links: dict[str, UrdfLink],
    joints: list[UrdfJoint],
    poses: dict[str, np.ndarray],  # T_object_link at the zero configuration
    massive: list[str],  # links with a mass
    T_part_object: np.ndarray,  # [4, 4]
    part_pts: np.ndarray,  # [n, 3] part frame
    joint,  # planner.articulation.Joint (world frame 0) or None
    T_part_world: np.ndarray,  # [4, 4]
) -> str | None:
    """The URDF link the flow's part is: for a part on a joint, the child of the URDF joint of the
    same kind whose axis line is nearest the fitted one (angle, plus distance for a revolute
    joint); for a free part, the massive link whose centre of mass is nearest the part's centroid."""
    if not massive:
        return None
    if joint is not None:
        kind = {"revolute": ("revolute", "continuous"), "prismatic": ("prismatic",)}[joint.kind]
        axis = T_part_world[:3, :3] @ joint.axis
        origin = (T_part_world @ np.r_[joint.origin, 1.0])[:3]
        best, best_cost = None, np.inf
        for j in joints:
            if j.kind not in kind or j.child not in massive or j.parent not in poses:
                continue
            T_j = T_part_object @ poses[j.parent] @ j.origin  # joint frame in the part frame
            a = T_j[:3, :3] @ j.axis
            cost = float(np.degrees(np.arccos(min(1.0, abs(float(a @ axis))))))
            if joint.kind == "revolute":  # distance between the two axis lines, per cm
                r = T_j[:3, 3] - origin
                cost += 100.0 * float(np.linalg.norm(r - (r @ axis) * axis))
            if cost < best_cost:
                best, best_cost = j.child, cost
        if best is not None:
            return best
    centre = part_pts.mean(0)
    dist = {
        n: float(np.linalg.norm((T_part_object @ poses[n] @ np.r_[links[n].com, 1.0])[:3] - centre))
        for n in massive
    }
    return min(dist, key=dist.get)


@dataclass(frozen=True)
class PartLoad:
    """What a grasp on the target part must carry, in the part frame (world axes at frame 0).

    Free part (``joint_kind`` ""): ``forces`` [T, 3] is the force the grasp applies to the part at
    each frame (weight and acceleration), acting through ``com``. Jointed part: ``joint_effort``
    (N m or N) is the largest generalised force the joint asks for (friction + damping at the
    flow's speed + gravity about/along the axis + the part's inertia at the flow's largest
    acceleration), ``axis`` and ``origin`` the joint's line.
    """

    mass: float  # kg
    mass_source: str  # where the mass came from, in words
    com: np.ndarray  # [3] metres, part frame
    forces: np.ndarray  # [T, 3] newtons, part frame (free part; zeros for a jointed one)
    joint_kind: str = ""  # "", "revolute" or "prismatic"
    joint_effort: float = 0.0  # N m (revolute) or N (prismatic)
    axis: np.ndarray | None = None  # [3] unit, part frame
    origin: np.ndarray | None = None  # [3] metres, a point on the axis, part frame
    joint_source: str = ""  # which URDF joint's friction and damping were used

    def summary(self) -> dict:
        """JSON-able description for the plan's report."""
        out = {"mass_kg": self.mass, "mass_source": self.mass_source}
        if self.joint_kind:
            out.update(
                joint=self.joint_kind,
                joint_effort=self.joint_effort,
                joint_effort_unit="N m" if self.joint_kind == "revolute" else "N",
                joint_source=self.joint_source,
            )
        else:
            out["peak_force_n"] = (
                float(np.linalg.norm(self.forces, axis=1).max()) if len(self.forces) else 0.0
            )
        return out


def _volume(points: np.ndarray) -> float:
    """m^3 of the convex hull of ``points`` [n, 3] (0 for a flat or too small set)."""
    if len(points) < 4:
        return 0.0
    try:
        return float(ConvexHull(points).volume)
    except QhullError:
        return 0.0


def part_load(
    T_world_part: np.ndarray,  # [T, 4, 4] the part's track
    part_pts: np.ndarray,  # [n, 3] the part's surface points, part frame
    fps: float,  # frames per second of the flow (its speed)
    density: float,  # kg/m^3 when the URDF gives no mass
    joint=None,  # planner.articulation.Joint of the part (world frame 0), or None: a free part
    urdf: str | Path | None = None,  # the object's URDF
    T_world_object: np.ndarray | None = None,  # [4, 4] the object's pose at frame 0
    volume: float | None = None,  # m^3 of the part's solid, if known (else its points' hull)
) -> PartLoad:
    """The part's load (see the module docstring).

    The part's link in the URDF is the massive link whose centre of mass (URDF zero
    configuration, placed at the object's pose) lies nearest the part's points; its joint to its
    parent gives the friction and damping. Raises ChordError for an unreadable URDF.
    """
    com = part_pts.mean(0) if len(part_pts) else np.zeros(3)
    mass, source = 0.0, ""
    friction = damping = 0.0
    joint_source = "no URDF joint: friction 0"
    if urdf is not None:
        links, joints = read_urdf(urdf)
        poses = link_poses(links, joints)
        T_obj = np.eye(4) if T_world_object is None else T_world_object
        T_part_world = np.linalg.inv(T_world_part[0])
        massive = [n for n, lk in links.items() if lk.mass > 0 and n in poses]
        name = _part_link(links, joints, poses, massive, T_part_world @ T_obj, part_pts, joint, T_part_world)
        if name is not None:
            mass = links[name].mass
            com = (T_part_world @ T_obj @ poses[name] @ np.r_[links[name].com, 1.0])[:3]
            source = f"URDF {Path(urdf).name} link {name!r}"
            parent_joint = next((j for j in joints if j.child == name and j.kind != "fixed"), None)
            if parent_joint is not None:
                friction, damping = parent_joint.friction, parent_joint.damping
                joint_source = f"URDF joint {parent_joint.name!r}"
    if mass <= 0.0:
        vol = volume if volume is not None and volume > 0 else _volume(part_pts)
        mass = density * vol
        source = f"density {density:g} kg/m^3 x volume {1e6 * vol:.0f} cm^3"
    T = len(T_world_part)
    R0 = T_world_part[0, :3, :3]
    g_part = R0.T @ GRAVITY
    if joint is None:
        # Acceleration of the centre of mass along the track (finite differences at the flow's rate).
        c_world = T_world_part[:, :3, :3] @ com + T_world_part[:, :3, 3]  # [T, 3]
        acc = np.zeros_like(c_world)
        if T >= 3:
            acc[1:-1] = (c_world[2:] - 2 * c_world[1:-1] + c_world[:-2]) * fps**2
        # Force on the part in its own frame at each frame: m (a - g), rotated into the part.
        f_world = mass * (acc - GRAVITY)
        forces = np.einsum("tji,tj->ti", T_world_part[:, :3, :3], f_world)
        return PartLoad(mass, source, com, forces)
    T0inv = np.linalg.inv(T_world_part[0])
    axis = R0.T @ joint.axis
    origin = (T0inv @ np.r_[joint.origin, 1.0])[:3]
    speed = float(np.abs(np.diff(joint.values)).max() * fps) if len(joint.values) > 1 else 0.0
    # The joint's largest acceleration along the flow (second differences at its rate).
    accel = float(np.abs(np.diff(joint.values, 2)).max() * fps**2) if len(joint.values) > 2 else 0.0
    if joint.kind == "revolute":
        # Gravity's torque about the axis over the track (the axis stays put with its parent).
        coms = np.stack([(T0inv @ T_world_part[t] @ np.r_[com, 1.0])[:3] for t in range(T)])
        tau_g = np.abs(np.cross(coms - origin, mass * g_part) @ axis).max()
        # Inertia about the axis: the mass at its centre of mass (a lower bound: the part's own
        # rotational inertia about its centre adds to it).
        r = com - origin
        inertia = mass * float(r @ r - (r @ axis) ** 2)
    else:
        tau_g = abs(float(mass * g_part @ axis))
        inertia = mass
    effort = float(tau_g + friction + damping * speed + inertia * accel)
    return PartLoad(mass, source, com, np.zeros((T, 3)), joint.kind, effort, axis, origin, joint_source)


def grasp_utilisation(
    load: PartLoad,
    T_part_ee: np.ndarray,  # [B, 4, 4] grasp poses, part frame
    width: np.ndarray,  # [B] metres between the contacts
    friction: float,  # mu between finger pad and part
    force: float,  # newtons each finger squeezes with
    pad_radius: float,  # metres, contact patch radius (torsional friction)
) -> np.ndarray:
    """[B] the fraction of the grasp's holding capacity the load uses (>= 1: it slips).

    See the module docstring. For a jointed part the grasp may drive the joint by a force at the
    grasp point (tangential, effort / lever arm, for a revolute joint; along the axis for a
    prismatic one) or, for a revolute joint, by a moment about the axis; the lower is used.
    """
    R = T_part_ee[:, :3, :3]  # columns: tool x, y (closing), z (approach), part frame
    c = T_part_ee[:, :3, 3]

    def util(F: np.ndarray, M: np.ndarray) -> np.ndarray:  # [B, 3] part frame each
        Ft = np.einsum("bji,bj->bi", R, F)  # into the tool frame
        Mt = np.einsum("bji,bj->bi", R, M)
        return (
            np.abs(Ft[:, 1]) / (2 * force)  # borne by the normal force (module docstring)
            + np.hypot(Ft[:, 0], Ft[:, 2]) / (2 * friction * force)
            + np.abs(Mt[:, 1]) / (2 * friction * force * max(pad_radius, 1e-9))
            + np.hypot(Mt[:, 0], Mt[:, 2]) / (friction * force * np.maximum(width, 1e-3))
        )

    if not load.joint_kind:
        worst = np.zeros(len(c))
        for f in load.forces[:: max(1, len(load.forces) // 20)] if len(load.forces) else []:
            F = np.broadcast_to(f, c.shape)
            M = np.cross(load.com - c, F)  # the weight's moment about the grasp point
            worst = np.maximum(worst, util(F, M))
        return worst
    assert load.axis is not None and load.origin is not None
    if load.joint_kind == "prismatic":
        return util(np.broadcast_to(load.joint_effort * load.axis, c.shape), np.zeros_like(c))
    r = c - load.origin
    r -= (r @ load.axis)[:, None] * load.axis  # lever arm, perpendicular to the axis
    lever = np.linalg.norm(r, axis=1)
    tangent = np.cross(load.axis, r) / np.maximum(lever, 1e-9)[:, None]
    by_force = util(load.joint_effort / np.maximum(lever, 1e-3)[:, None] * tangent, np.zeros_like(c))
    by_moment = util(np.zeros_like(c), np.broadcast_to(load.joint_effort * load.axis, c.shape))
    return np.minimum(by_force, by_moment)
