"""The arms chord knows by name: URDF, tool frame, gripper, limits, body links, ready posture, real backend.

A :class:`RobotSpec` is everything the stages need to know about one arm with its gripper:

- the planner: the URDF and tool-centre-point (TCP) frame for its kinematics, the joint
  acceleration limits (URDFs carry none), the links kept above the table and the arm's body
  spheres, the ready posture its IK starts from, the gripper's collision boxes and force, and
  where round a part its base may stand;
- the simulator: the same URDF, the finger joints, and the joint controller's stiffness and
  torque limits;
- ``real/``: the limit table (``limits_model``) and the backend the arm pairs with.

``ROBOTS`` holds the entries that work offline: the Franka Panda and FR3, the UFACTORY xArm6 with
its gripper, and the UR5 with a parallel gripper (its URDF from the ``example-robot-data``
package, an optional extra). A user's own arm is a small YAML file naming its URDF
(:func:`load_robot_yaml`, docs/robots.md); :func:`robot_spec` takes a registry name or such a file.

Some entries are URDFs composed from a shipped one (the FR3's from the Panda's; the xArm6's and
UR5's with their gripper's fingers as two prismatic joints): they are written once, atomically,
into ``$CHORD_CACHE/robots`` (default ``~/.cache/chord/robots``) under a name holding a hash of their text, with every mesh
path made absolute, so that pinocchio and PyBullet read the same file.

Plans name their robot by the registry name (``plan.robot``); the simulator and ``chord real`` look
it up here and never load a file a plan names.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ChordError, MissingDependencyError


class RobotSpecError(ChordError, ValueError):
    """A robot description (registry entry or YAML file) with a missing or out-of-range value."""


def _need(ok: bool, where: str, value: Any, expected: str) -> None:
    # `ok` is computed with comparisons that are False for NaN, so NaN never passes.
    if not ok:
        raise RobotSpecError(f"{where} is {value!r}, expected {expected}")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class GripperGeometry:
    """Collision boxes and grasp force of a parallel gripper, in the TCP frame (z: approach, y: closing).

    The defaults are the Franka Hand's, the bounds of the collision meshes of pybullet_data's
    ``franka_panda/panda.urdf`` moved into the TCP frame (``panda_grasptarget``, 0.105 m along
    ``panda_hand`` z): ``hand.obj`` spans x +-0.0316, y -0.104..0.1004, z -0.0259..0.066 (hand
    frame), so z -0.131..-0.039 in the TCP frame; ``finger.obj`` spans x +-0.0105, 0..0.0264 from
    its inner face along the closing axis and z 0..0.0538 from the finger joint at hand z 0.0584
    (TCP z -0.0466..0.0072); ``link7.obj``'s round flange body (radius 0.044 about the tool axis)
    spans link7 z 0.052..0.1068, i.e. TCP z -0.160..-0.105 (its joint housing, which sticks out
    to one side, is left to the arm's body spheres). 70 N is the Franka hand's continuous grasp
    force (Franka datasheet; 140 N peak). Every other gripper's entry gives its own values.
    """

    max_width: float = 0.08  # metres, widest finger opening
    finger_width: float = 0.021  # metres along x
    finger_thickness: float = 0.0264  # metres along y (each finger, from its inner face outwards)
    finger_length: float = 0.054  # metres along z, fingertip at z = finger_tip
    finger_tip: float = 0.0072  # metres: fingertips reach this far past the TCP along z
    palm_half: tuple[float, float] = (0.0316, 0.104)  # metres, hand half-extents along x and y
    palm_z: tuple[float, float] = (-0.131, -0.039)  # metres, hand extent along z (behind fingers)
    wrist_half: float = 0.044  # metres: flange half-extent along x and y (a box round the cylinder)
    wrist_z: tuple[float, float] = (-0.160, -0.105)  # metres, flange extent along z
    grasp_force: float = 70.0  # newtons: continuous force the fingers squeeze with
    pad_radius: float = 0.005  # metres: radius of a finger pad's contact patch (pads 21 mm wide)

    def __post_init__(self) -> None:
        for name in ("max_width", "finger_width", "finger_thickness", "finger_length", "grasp_force"):
            v = getattr(self, name)
            _need(_finite(v) and v > 0.0, f"GripperGeometry.{name}", v, "a finite value > 0")
        for name in ("finger_tip", "pad_radius", "wrist_half"):
            v = getattr(self, name)
            _need(_finite(v) and v >= 0.0, f"GripperGeometry.{name}", v, "a finite value >= 0")
        for name in ("palm_half", "palm_z", "wrist_z"):
            v = getattr(self, name)
            _need(
                isinstance(v, (tuple, list)) and len(v) == 2 and all(_finite(x) for x in v),
                f"GripperGeometry.{name}",
                v,
                "two finite numbers (metres)",
            )
            object.__setattr__(self, name, (float(v[0]), float(v[1])))
        for name in ("palm_z", "wrist_z"):
            lo, hi = getattr(self, name)
            _need(lo < hi, f"GripperGeometry.{name}", (lo, hi), "(low, high) with low < high")

    def boxes(self, opening: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Axis-aligned (lo [3], hi [3]) boxes in the TCP frame for a finger opening (m).

        Order: the two fingers, the hand, the wrist flange.
        """
        h = opening / 2
        fz = (self.finger_tip - self.finger_length, self.finger_tip)
        fx = self.finger_width / 2
        w = self.wrist_half
        return [
            (np.array([-fx, h, fz[0]]), np.array([fx, h + self.finger_thickness, fz[1]])),
            (np.array([-fx, -h - self.finger_thickness, fz[0]]), np.array([fx, -h, fz[1]])),
            (
                np.array([-self.palm_half[0], -self.palm_half[1], self.palm_z[0]]),
                np.array([self.palm_half[0], self.palm_half[1], self.palm_z[1]]),
            ),
            (np.array([-w, -w, self.wrist_z[0]]), np.array([w, w, self.wrist_z[1]])),
        ]


@dataclass(frozen=True)
class GripperSpec:
    """A parallel gripper as the planner and the simulator see it."""

    model: str  # its limit table in real.limits.GRIPPERS, e.g. "franka_hand"
    # The two prismatic finger joints of the URDF, each opening width / 2 (one motor, coupled).
    finger_joints: tuple[str, str]
    geometry: GripperGeometry  # collision boxes in the TCP frame, max width, grasp force

    def __post_init__(self) -> None:
        _need(isinstance(self.model, str) and bool(self.model), "gripper.model", self.model, "a name")
        j = self.finger_joints
        _need(
            isinstance(j, (tuple, list)) and len(j) == 2 and all(isinstance(n, str) and n for n in j),
            "gripper.finger_joints",
            j,
            "the names of the URDF's two prismatic finger joints",
        )
        object.__setattr__(self, "finger_joints", (str(j[0]), str(j[1])))


@dataclass(frozen=True)
class RobotSpec:
    """One arm and its gripper; every per-joint tuple is in the arm's joint order (``arm_joints``)."""

    name: str  # registry key; what a plan's meta.robot says
    urdf: str  # "pybullet_data:<relative path>", "compose:<entry>" or a file path (YAML arms)
    tcp_frame: str  # URDF link between the fingertips: the pose a plan's ee_pose gives
    arm_joints: tuple[str, ...]  # J movable joints from the root to the TCP, in order
    ready: tuple[float, ...]  # [J] rad: a well-conditioned posture mid-workspace (IK seed, rest)
    accel_limits: tuple[float, ...]  # [J] rad/s^2 (URDFs have none)
    jerk_limits: tuple[float, ...]  # [J] rad/s^3: the planner times plans under these (URDFs have none)
    torque_limits: tuple[float, ...]  # [J] N m: the simulated joints' torque limits (datasheet)
    # How the simulator drives the arm (sim.world.SimConfig.arm_control): "impedance", a joint
    # impedance controller as the Franka's, with ``joint_stiffness``; or "position", a position
    # servo rigid up to the torque limits, as the UR's and the xArm's controllers are.
    arm_control: str
    # [J] N m/rad: the impedance controller's stiffness (the one libfranka is given, for a Franka);
    # () for an arm under position control
    joint_stiffness: tuple[float, ...]
    body_links: tuple[str, ...]  # links whose origins the planner keeps above the table (elbow out)
    # the arm's body as spheres along the segments between consecutive frame origins, and their
    # radius (m); the gripper is checked with its boxes
    body_chain: tuple[str, ...]
    body_radius: float
    gripper: GripperSpec
    # Where round a part the planner may stand the base (planner.base.BaseSearch): metres from the
    # part's centre, the base's footprint radius + 4 cm, and the height of its shoulder housing.
    base_distances: tuple[float, ...]
    base_clearance: float
    shoulder_height: float
    backend: str  # the `chord real --backend` it pairs with: "franka", "ur", "xarm" or "" (none)
    limits_model: str  # its limit table in real.limits.MODELS ("" for none)
    source: str = ""  # where the numbers come from
    base_dir: str = ""  # YAML arms: the file's directory, against which ``urdf`` is resolved

    def __post_init__(self) -> None:
        _need(
            isinstance(self.name, str)
            and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name) is not None,
            "robot name",
            self.name,
            "letters, digits, '_', '.', '-' (at most 64, no path)",
        )
        w = f"robot {self.name!r}"
        for key in ("urdf", "tcp_frame"):
            v = getattr(self, key)
            _need(isinstance(v, str) and bool(v), f"{w} {key}", v, "a non-empty string")
        joints = self.arm_joints
        _need(
            isinstance(joints, (tuple, list))
            and 1 <= len(joints) <= 12
            and all(isinstance(n, str) and n for n in joints),
            f"{w} arm_joints",
            joints,
            "1 to 12 URDF joint names",
        )
        object.__setattr__(self, "arm_joints", tuple(joints))
        n = len(joints)
        _need(
            self.arm_control in ARM_CONTROLS, f"{w} arm_control", self.arm_control, f"one of {ARM_CONTROLS}"
        )
        for key, lo in (
            ("ready", None),
            ("accel_limits", 0.0),
            ("jerk_limits", 0.0),
            ("torque_limits", 0.0),
            ("joint_stiffness", 0.0),
        ):
            v = getattr(self, key)
            if key == "joint_stiffness" and self.arm_control == "position" and not v:
                object.__setattr__(self, key, ())  # no impedance controller to give a stiffness
                continue
            ok = isinstance(v, (tuple, list)) and len(v) == n and all(_finite(x) for x in v)
            if ok and lo is not None:
                ok = all(x > lo for x in v)
            _need(
                ok,
                f"{w} {key}",
                v,
                f"{n} finite numbers" + ("" if lo is None else " > 0") + " (one per arm joint)",
            )
            object.__setattr__(self, key, tuple(float(x) for x in v))
        for key in ("body_links", "body_chain"):
            v = getattr(self, key)
            _need(
                isinstance(v, (tuple, list)) and all(isinstance(x, str) and x for x in v),
                f"{w} {key}",
                v,
                "a list of URDF link names",
            )
            object.__setattr__(self, key, tuple(v))
        _need(
            _finite(self.body_radius) and 0.0 < self.body_radius < 0.5,
            f"{w} body_radius",
            self.body_radius,
            "metres in (0, 0.5)",
        )
        d = self.base_distances
        _need(
            isinstance(d, (tuple, list)) and len(d) >= 1 and all(_finite(x) and 0.0 < x < 3.0 for x in d),
            f"{w} base_distances",
            d,
            "metres in (0, 3), at least one",
        )
        object.__setattr__(self, "base_distances", tuple(float(x) for x in d))
        for key in ("base_clearance", "shoulder_height"):
            v = getattr(self, key)
            _need(_finite(v) and 0.0 <= v < 3.0, f"{w} {key}", v, "metres in [0, 3)")
        _need(self.backend in BACKENDS, f"{w} backend", self.backend, f"one of {list(BACKENDS)}")
        _need(
            isinstance(self.limits_model, str), f"{w} limits_model", self.limits_model, "a limit table name"
        )
        _need(isinstance(self.gripper, GripperSpec), f"{w} gripper", self.gripper, "a GripperSpec")

    @property
    def dof(self) -> int:
        return len(self.arm_joints)

    def urdf_path(self) -> Path:
        """The URDF file to load (built on first use for a composed entry). Raises ChordError when
        it is missing, or MissingDependencyError when the package that ships it is not installed."""
        kind, _, rest = self.urdf.partition(":")
        if kind == "pybullet_data" and rest:
            path = _pybullet_data() / rest
        elif kind == "compose" and rest:
            if rest not in COMPOSERS:
                raise RobotSpecError(
                    f"robot {self.name!r}: no URDF composer {rest!r}; known: {sorted(COMPOSERS)}"
                )
            path = _cached_urdf(rest, COMPOSERS[rest]())
        else:
            path = Path(self.urdf)
            if not path.is_absolute() and self.base_dir:
                path = Path(self.base_dir) / path
        if not path.is_file():
            raise ChordError(f"robot {self.name!r}: URDF {str(path)!r} does not exist")
        return path


BACKENDS = ("", "franka", "ur", "xarm")
ARM_CONTROLS = ("impedance", "position")


# -- where the shipped URDFs are ------------------------------------------------------------------
def _pybullet_data() -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath())


def example_robot_data_dir() -> Path:
    """``share/example-robot-data/robots`` of the installed ``example-robot-data`` wheel (cmeel layout).

    Raises MissingDependencyError naming the extra that installs it.
    """
    import sysconfig

    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    for root in sorted(roots):
        d = Path(root) / "cmeel.prefix" / "share" / "example-robot-data" / "robots"
        if d.is_dir():
            return d
    raise MissingDependencyError(
        "the UR5 model comes from the example-robot-data package: `pip install 'chord[ur-model]'` "
        "(or `pip install example-robot-data`)"
    )


def robots_cache_dir() -> Path:
    """Folder of composed URDFs: ``$CHORD_CACHE/robots`` (default ``~/.cache/chord/robots``)."""
    root = os.environ.get("CHORD_CACHE") or str(Path.home() / ".cache" / "chord")
    return Path(root) / "robots"


def _cached_urdf(name: str, text: str) -> Path:
    """``<cache>/<name>-<sha256[:12]>.urdf`` holding ``text``, written atomically if absent or changed."""
    from core.atomic import write_text_atomic

    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = robots_cache_dir() / f"{name}-{digest}.urdf"
    if not (path.is_file() and path.read_text() == text):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return path


# -- composing URDFs ------------------------------------------------------------------------------
def _absolute_meshes(root: ET.Element, package_dirs: dict[str, Path], here: Path) -> None:
    """Every mesh filename made an absolute path: ``package://<pkg>/rest`` through ``package_dirs``
    (the key "" stands for a bare ``package://rest``), a relative one against ``here``."""
    for mesh in root.iter("mesh"):
        name = mesh.get("filename", "")
        if name.startswith("package://"):
            rest = name[len("package://") :]
            pkg, _, tail = rest.partition("/")
            if pkg in package_dirs:
                path = package_dirs[pkg] / tail
            elif "" in package_dirs:
                path = package_dirs[""] / rest
            else:
                raise RobotSpecError(f"URDF mesh {name!r}: no directory for package {pkg!r}")
        else:
            path = Path(name) if os.path.isabs(name) else here / name
        if not path.is_file():
            raise ChordError(f"URDF mesh {name!r} resolves to {str(path)!r}, which does not exist")
        mesh.set("filename", str(path))


def _physical_inertias(root: ET.Element) -> None:
    """Every link's inertia tensor made physically possible: where its principal moments break the
    triangle inequality (a + b >= c), the two smaller are raised by half the shortfall each (plus
    0.1%), keeping the principal axes. PyBullet sets such a tensor to zero, and a link without
    inertia under torque control is not simulated as the arm."""
    keys = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")
    for el in root.iter("inertia"):
        ixx, ixy, ixz, iyy, iyz, izz = (float(el.get(k, "0")) for k in keys)
        inertia = np.array([[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]])
        lam, R = np.linalg.eigh(inertia)  # ascending
        short = lam[2] - lam[0] - lam[1]
        if short <= 0.0 or lam[2] <= 0.0:
            continue
        lam[:2] += 0.5 * short + 1e-3 * lam[2]
        fixed = R @ np.diag(lam) @ R.T
        for k, (i, j) in zip(keys, ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)), strict=True):
            el.set(k, f"{fixed[i, j]:.9g}")


def _text(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _xyz(v) -> str:
    return " ".join(_fmt(float(x)) for x in v)


def _link(
    name: str, mass: float, boxes: list[tuple[tuple, tuple]] = (), meshes: list[tuple[str, tuple]] = ()
) -> ET.Element:
    """A link with a box inertia of ``mass`` and visual + collision boxes (centre, size) and meshes
    (filename, origin xyz)."""
    link = ET.Element("link", name=name)
    inertial = ET.SubElement(link, "inertial")
    ET.SubElement(inertial, "origin", xyz="0 0 0", rpy="0 0 0")
    ET.SubElement(inertial, "mass", value=_fmt(mass))
    i = mass * 0.03**2 / 6  # a 3 cm cube's: these links' inertia only has to be plausible and positive
    ET.SubElement(inertial, "inertia", ixx=_fmt(i), ixy="0", ixz="0", iyy=_fmt(i), iyz="0", izz=_fmt(i))
    for centre, size in boxes:
        for tag in ("visual", "collision"):
            el = ET.SubElement(link, tag)
            ET.SubElement(el, "origin", xyz=_xyz(centre), rpy="0 0 0")
            ET.SubElement(ET.SubElement(el, "geometry"), "box", size=_xyz(size))
    for filename, origin in meshes:
        for tag in ("visual", "collision"):
            el = ET.SubElement(link, tag)
            ET.SubElement(el, "origin", xyz=_xyz(origin), rpy="0 0 0")
            ET.SubElement(ET.SubElement(el, "geometry"), "mesh", filename=filename)
    return link


def _joint(name: str, kind: str, parent: str, child: str, xyz, axis=None, limit=None) -> ET.Element:
    j = ET.Element("joint", name=name, type=kind)
    ET.SubElement(j, "parent", link=parent)
    ET.SubElement(j, "child", link=child)
    ET.SubElement(j, "origin", xyz=_xyz(xyz), rpy="0 0 0")
    if axis is not None:
        ET.SubElement(j, "axis", xyz=_xyz(axis))
    if limit is not None:
        lo, hi, effort, velocity = limit
        ET.SubElement(
            j, "limit", lower=_fmt(lo), upper=_fmt(hi), effort=_fmt(effort), velocity=_fmt(velocity)
        )
    return j


def _finger_contact() -> ET.Element:
    """The finger pads' contact model of pybullet_data's ``franka_panda/panda.urdf`` (a soft contact
    of 30 kN/m and 1 kN s/m with a friction anchor, lateral friction 1, spinning friction 0.1 m):
    every registry gripper's fingers get it, so the arms are simulated with one contact model.
    Without it PyBullet's rigid point contacts let a part pinched between the UR5's box fingers
    pivot (the lamp's head turned 0.36-0.47 of its 0.52 rad, 6 of 8 trials failed)."""
    contact = ET.Element("contact")
    ET.SubElement(contact, "friction_anchor")
    ET.SubElement(contact, "stiffness", value="30000.0")
    ET.SubElement(contact, "damping", value="1000.0")
    ET.SubElement(contact, "spinning_friction", value="0.1")
    ET.SubElement(contact, "lateral_friction", value="1.0")
    return contact


def _add_fingers(
    root: ET.Element,
    parent: str,
    prefix: str,
    finger_z: float,  # metres along the gripper's z: where the finger links' frames sit
    stroke: float,  # metres: widest opening; each finger travels stroke / 2
    effort: float,  # N per finger joint
    finger_link: Callable[[str, int], ET.Element],  # (name, side +1 left / -1 right) -> link
) -> None:
    """Two prismatic fingers (``<prefix>finger_joint1/2``, +y and -y) closing on the gripper's z axis."""
    for k, side in ((1, 1.0), (2, -1.0)):
        name = f"{prefix}finger{k}"
        link = finger_link(name, int(side))
        link.insert(0, _finger_contact())
        root.append(link)
        root.append(
            _joint(
                f"{prefix}finger_joint{k}",
                "prismatic",
                parent,
                name,
                (0, 0, finger_z),
                (0, side, 0),
                (0.0, stroke / 2, effort, 0.2),
            )
        )


def compose_fr3() -> str:
    """The FR3: the Panda's URDF (the FR3 has the Panda's kinematic parameters, the same modified-DH
    table) with its joints and links named ``fr3_*`` and the FR3's joint position and velocity
    limits (FCI docs, FR3 robot and interface specifications)."""
    src = _pybullet_data() / "franka_panda" / "panda.urdf"
    root = ET.fromstring(src.read_text())
    root.set("name", "fr3")
    _absolute_meshes(root, {"": src.parent}, src.parent)
    for el in root.iter():
        for key in ("name", "link", "joint"):
            v = el.get(key)
            if v is not None and el.tag in ("link", "joint", "parent", "child", "mimic"):
                el.set(key, v.replace("panda_", "fr3_"))
    for joint in root.iter("joint"):
        m = re.fullmatch(r"fr3_joint([1-7])", joint.get("name", ""))
        if m:
            i = int(m.group(1)) - 1
            lim = joint.find("limit")
            assert lim is not None
            lim.set("lower", _fmt(FR3_LOWER[i]))
            lim.set("upper", _fmt(FR3_UPPER[i]))
            lim.set("velocity", _fmt(FR3_VELOCITY[i]))
    return _text(root)


# FR3 joint limits (rad, rad/s): FCI docs, "Robot and interface specifications" (also real.limits.FR3).
FR3_LOWER = (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159)
FR3_UPPER = (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159)
FR3_VELOCITY = (2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26)

# The xArm Gripper's finger pose as the composed URDF fixes it: the linkage at this drive angle
# (rad, of 0..0.85), mid-stroke; its fingers stay parallel, and over the whole stroke their tips
# move 12.5 mm along the tool axis (0.162 m from the flange open, 0.1745 m closed), which the
# prismatic fingers leave out.
XARM_FINGER_THETA = 0.4
# metres from the flange (link6) along its z: the TCP, 7 mm short of the fingertips at mid-stroke
# (the Panda's grasp target is 7.2 mm short of its fingertips)
XARM_TCP_Z = 0.1656


def compose_xarm6() -> str:
    """The xArm6 with the xArm Gripper (pybullet_data's ``xarm/xarm6_with_gripper.urdf``), its six-joint
    finger linkage (mimic joints, which PyBullet ignores) replaced by two prismatic fingers carrying
    the same finger meshes at the linkage's mid-stroke pose, and a TCP link ``xarm_grasptarget``.

    The linkage keeps the fingers parallel: at drive angle theta each finger sits at R_x(+-theta)
    applied to the finger joint's origin, from the outer knuckle's origin (both from the URDF).
    """
    src = _pybullet_data() / "xarm" / "xarm6_with_gripper.urdf"
    root = ET.fromstring(src.read_text())
    root.set("name", "xarm6_with_gripper")
    _absolute_meshes(
        root,
        {"xarm_description": src.parent / "xarm_description", "xarm_gripper": src.parent / "xarm_gripper"},
        src.parent,
    )
    joints = {j.get("name"): j for j in root.findall("joint")}
    links = {lk.get("name"): lk for lk in root.findall("link")}

    def origin(j: str) -> np.ndarray:
        o = joints[j].find("origin")
        assert o is not None
        return np.array([float(x) for x in o.get("xyz", "0 0 0").split()])

    finger_pos = {}
    for side, knuckle, finger in (
        (1, "drive_joint", "left_finger_joint"),
        (-1, "right_outer_knuckle_joint", "right_finger_joint"),
    ):
        a = XARM_FINGER_THETA * side  # the left knuckle turns about +x, the right about -x
        R = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        finger_pos[side] = origin(knuckle) + R @ origin(finger)  # finger frame in the gripper base
    meshes = {}
    for side, link in ((1, "left_finger"), (-1, "right_finger")):
        geo = links[link].find("collision/geometry/mesh")
        assert geo is not None
        meshes[side] = geo.get("filename", "")
    drop_links = {
        "left_outer_knuckle",
        "left_finger",
        "left_inner_knuckle",
        "right_outer_knuckle",
        "right_finger",
        "right_inner_knuckle",
    }
    for j in list(joints.values()):
        child = j.find("child")
        if child is not None and child.get("link") in drop_links:
            root.remove(j)
    for lk in list(links.values()):
        if lk.get("name") in drop_links:
            root.remove(lk)
    for tr in list(root.findall("transmission")):
        root.remove(tr)
    # link2's and link3's principal moments break the triangle inequality (by 0.2 and 1.0 g m^2)
    _physical_inertias(root)
    # Inner faces measured from the finger meshes at XARM_FINGER_THETA: 25.3 mm either side of the
    # gripper's axis (tests/core/test_robots.py measures it again). The finger joint's frame sits on
    # the axis at the finger frame's height; each finger link carries its mesh offset so that its
    # inner face lies on the joint's zero: the opening is the sum of the two joint values.
    inner = XARM_INNER_FACE_AT_THETA
    z = float(finger_pos[1][2])

    def finger(name: str, side: int) -> ET.Element:
        off = finger_pos[side] - np.array([0.0, side * inner, z])
        return _link(name, 0.05, meshes=[(meshes[side], tuple(off))])

    _add_fingers(root, "xarm_gripper_base_link", "xarm_", z, XARM_STROKE, 50.0, finger)
    root.append(_link("xarm_grasptarget", 0.0))
    root.append(
        _joint(
            "xarm_grasptarget_joint",
            "fixed",
            "xarm_gripper_base_link",
            "xarm_grasptarget",
            (0, 0, XARM_TCP_Z),
        )
    )
    return _text(root)


XARM_INNER_FACE_AT_THETA = 0.0253  # metres from the axis, a finger's inner face at XARM_FINGER_THETA
XARM_STROKE = 0.085  # metres: the xArm Gripper's widest opening (real.limits.XARM_GRIPPER)

# A parallel gripper on the UR5's tool flange with the Robotiq 2F-85's envelope (instruction manual:
# 85 mm stroke, 162.8 mm from the flange to the closed fingertips, body about 85 x 75 mm): boxes,
# since no 2F-85 mesh ships offline.
UR_GRIPPER_BODY = ((0.0, 0.0, 0.0625), (0.075, 0.085, 0.125))  # (centre, size) from the flange, m
UR_FINGER = ((0.0, 0.011, 0.0), (0.022, 0.022, 0.04))  # per finger link, inner face on its origin's y
UR_FINGER_Z = 0.1428  # metres from the flange: the finger links' origins (tips 0.02 further, 0.1628)
UR_TCP_Z = 0.1558  # metres from the flange: the TCP, 7 mm short of the fingertips (as the Panda's)
UR_STROKE = 0.085


def compose_ur5() -> str:
    """The UR5 (example-robot-data's ``ur5_joint_limited_robot.urdf``, joints within +-pi) with a
    parallel gripper of the Robotiq 2F-85's envelope on ``tool0`` and a TCP link ``ur_grasptarget``."""
    robots = example_robot_data_dir()
    src = robots / "ur_description" / "urdf" / "ur5_joint_limited_robot.urdf"
    root = ET.fromstring(src.read_text())
    root.set("name", "ur5_2f85")
    _absolute_meshes(
        root, {"example-robot-data": robots.parent, "ur_description": robots / "ur_description"}, src.parent
    )
    for tr in list(root.findall("transmission")):
        root.remove(tr)
    root.append(_link("ur_gripper_body", 0.9, boxes=[UR_GRIPPER_BODY]))
    root.append(_joint("ur_gripper_mount", "fixed", "tool0", "ur_gripper_body", (0, 0, 0)))

    def finger(name: str, side: int) -> ET.Element:
        (cx, cy, cz), size = UR_FINGER
        return _link(name, 0.05, boxes=[((cx, side * cy, cz), size)])

    _add_fingers(root, "ur_gripper_body", "ur_", UR_FINGER_Z, UR_STROKE, 100.0, finger)
    root.append(_link("ur_grasptarget", 0.0))
    root.append(
        _joint("ur_grasptarget_joint", "fixed", "ur_gripper_body", "ur_grasptarget", (0, 0, UR_TCP_Z))
    )
    return _text(root)


COMPOSERS: dict[str, Callable[[], str]] = {"fr3": compose_fr3, "xarm6": compose_xarm6, "ur5": compose_ur5}


# -- the registry ---------------------------------------------------------------------------------
_PANDA_BODY = (
    "panda_link3",
    "panda_link4",
    "panda_link5",
    "panda_link6",
    "panda_link7",
    "panda_hand",
    "panda_leftfinger",
    "panda_rightfinger",
)
_PANDA_CHAIN = (
    "panda_link1",
    "panda_link3",
    "panda_link4",
    "panda_link5",
    "panda_link6",
    "panda_link7",
    "panda_hand",
)
# The Franka Panda's "ready" posture: a well-conditioned seed in the middle of the workspace.
PANDA_READY = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)
# Franka's datasheet joint acceleration (rad/s^2) and jerk (rad/s^3) limits (FCI docs, Panda robot
# and interface specifications); URDFs carry neither.
PANDA_ACCEL = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0)
PANDA_JERK = (7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0)
PANDA_TORQUES = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # N m, Franka datasheet torque limits
# N m/rad, the joint impedance a Franka's internal controller tracks joint targets with: the values
# libfranka's examples set (setDefaultBehavior: setJointImpedance) and the usual franky setup.
PANDA_STIFFNESS = (3000.0, 3000.0, 3000.0, 2500.0, 2500.0, 2000.0, 2000.0)
# metres from the part's centre: the Panda reaches 0.855 m from its shoulder (0.333 m above its
# base); nearer than 0.3 m the arm folds over its own base to reach down beside it
PANDA_BASE_DISTANCES = (0.30, 0.40, 0.50, 0.60, 0.70, 0.80)

PANDA = RobotSpec(
    name="panda",
    urdf="pybullet_data:franka_panda/panda.urdf",
    tcp_frame="panda_grasptarget",
    arm_joints=tuple(f"panda_joint{i}" for i in range(1, 8)),
    ready=PANDA_READY,
    accel_limits=PANDA_ACCEL,
    jerk_limits=PANDA_JERK,
    torque_limits=PANDA_TORQUES,
    arm_control="impedance",
    joint_stiffness=PANDA_STIFFNESS,
    body_links=_PANDA_BODY,
    body_chain=_PANDA_CHAIN,
    body_radius=0.06,
    gripper=GripperSpec("franka_hand", ("panda_finger_joint1", "panda_finger_joint2"), GripperGeometry()),
    base_distances=PANDA_BASE_DISTANCES,
    base_clearance=0.15,  # link0/link1 radius ~0.11 m, plus 4 cm
    shoulder_height=0.4,  # the shoulder housing tops out here
    backend="franka",
    limits_model="panda",
    source="pybullet_data franka_panda/panda.urdf; Franka datasheet (torques, accelerations); libfranka (impedance)",
)

FR3 = replace(
    PANDA,
    name="fr3",
    urdf="compose:fr3",
    tcp_frame="fr3_grasptarget",
    arm_joints=tuple(f"fr3_joint{i}" for i in range(1, 8)),
    # the Panda's ready posture lies within the FR3's joint ranges
    ready=PANDA_READY,
    accel_limits=(10.0,) * 7,  # FCI docs, FR3 joint space limits
    jerk_limits=(5000.0,) * 7,
    body_links=tuple(n.replace("panda_", "fr3_") for n in _PANDA_BODY),
    body_chain=tuple(n.replace("panda_", "fr3_") for n in _PANDA_CHAIN),
    gripper=GripperSpec("franka_hand", ("fr3_finger_joint1", "fr3_finger_joint2"), GripperGeometry()),
    limits_model="fr3",
    source="the Panda's URDF with the FR3's joint limits (FCI docs, FR3 robot and interface specifications)",
)

# UFACTORY xArm6 (user manual): joint torque limits as its URDF's efforts; no published acceleration
# or jerk limit, so our conservative 10 rad/s^2 and 100 rad/s^3 (real.limits.XARM6 reads them here).
XARM6_TORQUES = (50.0, 50.0, 32.0, 32.0, 32.0, 20.0)
XARM6 = RobotSpec(
    name="xarm6",
    urdf="compose:xarm6",
    tcp_frame="xarm_grasptarget",
    arm_joints=tuple(f"joint{i}" for i in range(1, 7)),
    # elbow up, the tool pointing down 0.37 m in front of the base, 0.35 m above it
    ready=(0.0, -0.35, -1.17, 0.0, 1.52, 0.0),
    accel_limits=(10.0,) * 6,
    jerk_limits=(100.0,) * 6,
    torque_limits=XARM6_TORQUES,
    arm_control="position",
    joint_stiffness=(),
    body_links=("link3", "link4", "link5", "link6", "xarm_gripper_base_link", "xarm_finger1", "xarm_finger2"),
    body_chain=("link2", "link3", "link4", "link5", "link6"),
    body_radius=0.05,
    gripper=GripperSpec(
        "xarm_gripper",
        ("xarm_finger_joint1", "xarm_finger_joint2"),
        # Bounds of pybullet_data's xarm_gripper meshes in the TCP frame (0.1656 m along link6 z),
        # measured by tests/core/test_robots.py: fingers 32 mm wide and thick, 66.9 mm long with
        # their tips 7 mm past the TCP at mid-stroke; the body with its knuckles over the whole
        # stroke x +-0.0375, y +-0.0865, z -0.1746..-0.0305; link6's flange x +-0.0374,
        # y -0.0516..0.0374, z -0.1936..-0.1656.
        GripperGeometry(
            max_width=XARM_STROKE,
            finger_width=0.032,
            finger_thickness=0.032,
            finger_length=0.067,
            finger_tip=0.007,
            palm_half=(0.0375, 0.0865),
            palm_z=(-0.1746, -0.0305),
            wrist_half=0.0516,
            wrist_z=(-0.1936, -0.1656),
            grasp_force=30.0,  # the xArm Gripper's fixed grasp force (real.limits.XARM_GRIPPER)
            pad_radius=0.005,
        ),
    ),
    # the xArm6 reaches 0.7 m: the Panda's distances scaled by 0.7 / 0.855
    base_distances=(0.25, 0.33, 0.41, 0.49, 0.57, 0.65),
    base_clearance=0.105,  # base radius ~0.065 m, plus 4 cm
    shoulder_height=0.33,  # link1's housing
    backend="xarm",
    limits_model="xarm6",
    source="pybullet_data xarm/xarm6_with_gripper.urdf; UFACTORY xArm6 and xArm Gripper user manuals",
)

UR5_TORQUES = (150.0, 150.0, 150.0, 28.0, 28.0, 28.0)  # N m, the URDF's efforts (UR5 datasheet sizes)
UR5 = RobotSpec(
    name="ur5",
    urdf="compose:ur5",
    tcp_frame="ur_grasptarget",
    arm_joints=(
        "shoulder_pan_joint",
        "shoulder_lift_joint",
        "elbow_joint",
        "wrist_1_joint",
        "wrist_2_joint",
        "wrist_3_joint",
    ),
    # elbow up, the tool pointing down 0.35 m in front of the base, 0.26 m above it
    ready=(0.0, -1.9, 1.9, -1.5708, -1.5708, 0.0),
    # UR publishes no acceleration or jerk limit: our conservative choices (real.limits.UR5 reads them here)
    accel_limits=(8.0,) * 6,
    jerk_limits=(80.0,) * 6,
    torque_limits=UR5_TORQUES,
    arm_control="position",
    joint_stiffness=(),
    body_links=(
        "forearm_link",
        "wrist_1_link",
        "wrist_2_link",
        "wrist_3_link",
        "ur_gripper_body",
        "ur_finger1",
        "ur_finger2",
    ),
    body_chain=("upper_arm_link", "forearm_link", "wrist_1_link", "wrist_2_link", "wrist_3_link"),
    body_radius=0.06,
    gripper=GripperSpec(
        "robotiq_2f85",
        ("ur_finger_joint1", "ur_finger_joint2"),
        # The composed gripper's boxes in the TCP frame (0.1558 m along tool0 z); wrist_3's
        # flange behind it (a disc of 85 mm, 38 mm thick).
        GripperGeometry(
            max_width=UR_STROKE,
            finger_width=0.022,
            finger_thickness=0.022,
            finger_length=0.04,
            finger_tip=0.007,
            palm_half=(0.0375, 0.0425),
            palm_z=(-0.1558, -0.0308),
            wrist_half=0.0425,
            wrist_z=(-0.1938, -0.1558),
            grasp_force=100.0,  # chord's choice within the 2F-85's 20-235 N
            pad_radius=0.005,
        ),
    ),
    base_distances=PANDA_BASE_DISTANCES,  # the UR5 reaches 0.85 m, as the Panda does
    base_clearance=0.115,  # base radius 0.075 m, plus 4 cm
    shoulder_height=0.2,
    backend="ur",
    limits_model="ur5",
    source="example-robot-data ur5_joint_limited_robot.urdf; UR5 technical specifications; Robotiq 2F-85 manual",
)

ROBOTS: dict[str, RobotSpec] = {r.name: r for r in (PANDA, FR3, XARM6, UR5)}
DEFAULT_ROBOT = "panda"


# -- lookup and YAML ----------------------------------------------------------------------------
MAX_ROBOT_YAML_BYTES = 64 * 1024


def robot_spec(name: str, urdf: str | Path | None = None) -> RobotSpec:
    """The robot ``name`` names: a registry key, or a ``.yaml``/``.yml`` file describing the user's arm.

    ``urdf`` (the command line's ``--robot-urdf``, never a data file's) replaces the entry's URDF:
    the same arm from the user's own file. Raises RobotSpecError naming the known robots.
    """
    if not isinstance(name, str) or not name:
        raise RobotSpecError(f"robot is {name!r}, expected one of {sorted(ROBOTS)} or a .yaml file")
    if name in ROBOTS:
        spec = ROBOTS[name]
    elif name.endswith((".yaml", ".yml")):
        spec = load_robot_yaml(name)
    else:
        shown = name if len(name) <= 120 else name[:120] + "..."
        raise RobotSpecError(
            f"robot {shown!r} is not a known robot: expected one of {sorted(ROBOTS)} or a .yaml file "
            "describing your arm (docs/robots.md)"
        )
    if urdf is not None:
        path = Path(urdf)
        if not path.is_file():
            raise ChordError(f"robot urdf {str(path)!r} (--robot-urdf) does not exist")
        spec = replace(spec, urdf=str(path.resolve()), base_dir="")
    return spec


_GRIPPER_KEYS = {f.name for f in fields(GripperSpec)}
_GEOMETRY_KEYS = {f.name for f in fields(GripperGeometry)}
_SPEC_KEYS = {f.name for f in fields(RobotSpec)} - {"base_dir"}


def robot_from_dict(doc: Any, where: str = "robot") -> RobotSpec:
    """A RobotSpec from the fields of a YAML document (``urdf`` resolved later against ``base_dir``).

    Fields the document leaves out: ``arm_control`` "position" (a position servo, as most arms'
    controllers are) with no ``joint_stiffness``, ``body_chain`` (no body spheres), ``body_radius`` 0.06, ``base_distances``/``base_clearance``
    /``shoulder_height`` (the Panda's), ``backend`` "" and ``limits_model`` "". Raises RobotSpecError
    naming an unknown or missing field.
    """
    if not isinstance(doc, dict):
        raise RobotSpecError(f"{where} is {type(doc).__name__}, expected a mapping of robot fields")
    unknown = sorted(set(doc) - _SPEC_KEYS)
    if unknown:
        raise RobotSpecError(f"{where}: unknown field(s) {unknown}; fields: {sorted(_SPEC_KEYS)}")
    required = (
        "name",
        "urdf",
        "tcp_frame",
        "arm_joints",
        "ready",
        "accel_limits",
        "jerk_limits",
        "torque_limits",
        "body_links",
        "gripper",
    )
    missing = [k for k in required if k not in doc]
    if missing:
        raise RobotSpecError(f"{where}: missing field(s) {missing}")
    g = doc["gripper"]
    if not isinstance(g, dict):
        raise RobotSpecError(f"{where}.gripper is {g!r}, expected a mapping (model, finger_joints, geometry)")
    bad = sorted(set(g) - _GRIPPER_KEYS) or [k for k in ("model", "finger_joints") if k not in g]
    if bad:
        raise RobotSpecError(
            f"{where}.gripper: unknown or missing field(s) {bad}; fields: {sorted(_GRIPPER_KEYS)}"
        )
    geo = g.get("geometry", {})
    if not isinstance(geo, dict) or set(geo) - _GEOMETRY_KEYS:
        raise RobotSpecError(
            f"{where}.gripper.geometry is {geo!r}, expected a mapping of {sorted(_GEOMETRY_KEYS)} (metres, newtons)"
        )
    try:
        gripper = GripperSpec(str(g["model"]), tuple(g["finger_joints"]), GripperGeometry(**geo))
    except TypeError as e:
        raise RobotSpecError(f"{where}.gripper: {e}") from e
    kw: dict[str, Any] = {
        "arm_control": "position",
        "joint_stiffness": (),
        "body_chain": (),
        "body_radius": 0.06,
        "base_distances": PANDA_BASE_DISTANCES,
        "base_clearance": PANDA.base_clearance,
        "shoulder_height": PANDA.shoulder_height,
        "backend": "",
        "limits_model": "",
    }
    kw.update({k: v for k, v in doc.items() if k != "gripper"})
    kw["gripper"] = gripper
    for key, v in list(kw.items()):
        if isinstance(v, list):
            kw[key] = tuple(v)
    if not isinstance(kw["urdf"], str) or ":" in kw["urdf"].split("/")[0]:
        raise RobotSpecError(
            f"{where}.urdf is {kw['urdf']!r}, expected a file path (relative to the YAML file)"
        )
    return RobotSpec(**kw)


def load_robot_yaml(path: str | Path) -> RobotSpec:
    """Read a robot description (docs/robots.md): its ``urdf`` is relative to the file's directory."""
    from core.contract import read_yaml_file

    path = Path(path)
    doc = read_yaml_file(path, max_bytes=MAX_ROBOT_YAML_BYTES, what="a robot file")
    spec = robot_from_dict(doc, where=str(path))
    return replace(spec, base_dir=str(path.resolve().parent))
