"""Robot and gripper limit tables: joint limits and the kinematic model; finger opening and grasp force.

Values come from the manufacturers' datasheets where they publish them (cited per table). Where a
manufacturer publishes no acceleration or jerk limit (UR, UFACTORY), the value is a conservative
choice of ours and says so: the pre-flight checks must have a number to refuse against. Each arm
model names the gripper it carries by default (``RobotLimits.gripper``, a key of ``GRIPPERS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from core import robots
from core.errors import ChordError


@dataclass(frozen=True)
class RobotLimits:
    """What pre-flight checks a plan against for one arm model. Arrays are per joint, in joint order."""

    model: str  # model key, e.g. "panda"
    joint_names: tuple[str, ...]  # J names, in the order the robot reports and accepts them
    lower: tuple[float, ...]  # [J] rad, lowest joint position
    upper: tuple[float, ...]  # [J] rad, highest joint position
    velocity: tuple[float, ...]  # [J] rad/s, maximum joint speed
    acceleration: tuple[float, ...]  # [J] rad/s^2, maximum joint acceleration
    jerk: tuple[float, ...]  # [J] rad/s^3, maximum joint jerk
    # "robot:<registry name>" (core.robots: its URDF and TCP frame, as the plan was made with) or
    # "dh:<table name>" (real.kinematics.DH_TABLES, to the flange)
    kinematics: str
    # Frames whose origins must stay inside the workspace and above the table (registry robots:
    # the entry's body_links).
    link_frames: tuple[str, ...] = ()
    gripper: str = ""  # the default gripper's key in GRIPPERS
    source: str = ""  # where the numbers come from

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ("lower", "upper", "velocity", "acceleration", "jerk"):
            v = getattr(self, name)
            if len(v) != n:
                raise ValueError(f"RobotLimits {self.model}.{name} has {len(v)} values, expected {n}")
        if any(lo >= hi for lo, hi in zip(self.lower, self.upper, strict=True)):
            raise ValueError(f"RobotLimits {self.model}: lower {self.lower} not below upper {self.upper}")

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(lower, upper, velocity, acceleration, jerk), each [J] float64."""
        return tuple(
            np.asarray(getattr(self, k), dtype=float)
            for k in ("lower", "upper", "velocity", "acceleration", "jerk")
        )


# Franka Emika Panda, "Robot and interface specifications" (FCI docs), joint space limits.
PANDA = RobotLimits(
    model="panda",
    joint_names=tuple(f"panda_joint{i}" for i in range(1, 8)),
    lower=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    upper=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
    velocity=(2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100),
    acceleration=robots.PANDA.accel_limits,
    jerk=robots.PANDA.jerk_limits,
    kinematics="robot:panda",
    link_frames=robots.PANDA.body_links,
    gripper="franka_hand",
    source="Franka Control Interface docs, Panda robot and interface specifications",
)

# Franka Research 3, FCI docs "Robot and interface specifications". The FR3 has the Panda's
# kinematic parameters (same modified-DH table): its registry entry is the Panda's URDF renamed.
FR3 = RobotLimits(
    model="fr3",
    joint_names=tuple(f"fr3_joint{i}" for i in range(1, 8)),
    lower=(-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159),
    upper=(2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159),
    velocity=(2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26),
    acceleration=robots.FR3.accel_limits,
    jerk=robots.FR3.jerk_limits,
    kinematics="robot:fr3",
    link_frames=robots.FR3.body_links,
    gripper="franka_hand",
    source="Franka Control Interface docs, FR3 robot and interface specifications",
)

# Universal Robots UR5e datasheet: +-360 deg on every joint, 180 deg/s. UR publishes no joint
# acceleration or jerk limit; 8 rad/s^2 and 80 rad/s^3 are our conservative choices.
UR5E = RobotLimits(
    model="ur5e",
    joint_names=robots.UR5.arm_joints,  # UR's joint names, every model's (the registry's UR5 has them)
    lower=(-2 * math.pi,) * 6,
    upper=(2 * math.pi,) * 6,
    velocity=(math.pi,) * 6,
    acceleration=(8.0,) * 6,
    jerk=(80.0,) * 6,
    kinematics="dh:ur5e",
    gripper="robotiq_2f85",
    source="UR5e technical specifications; acceleration/jerk: chord's conservative choice",
)

# UFACTORY xArm 6 user manual (joint ranges, 180 deg/s). No published acceleration/jerk limit
# per joint; 10 rad/s^2 and 100 rad/s^3 are our conservative choices.
XARM6 = RobotLimits(
    model="xarm6",
    joint_names=tuple(f"joint{i}" for i in range(1, 7)),
    lower=(-2 * math.pi, -2.059, -3.927, -2 * math.pi, -1.69297, -2 * math.pi),
    upper=(2 * math.pi, 2.0944, 0.19198, 2 * math.pi, math.pi, 2 * math.pi),
    velocity=(math.pi,) * 6,
    acceleration=robots.XARM6.accel_limits,
    jerk=robots.XARM6.jerk_limits,
    kinematics="robot:xarm6",
    link_frames=robots.XARM6.body_links,
    gripper="xarm_gripper",
    source="UFACTORY xArm 6 user manual; acceleration/jerk: chord's conservative choice",
)

# Universal Robots UR5 (CB3) technical specifications: +-360 deg on every joint, 180 deg/s. As for the
# UR5e, 8 rad/s^2 and 80 rad/s^3 are our conservative choices. The registry's UR5 keeps its joints
# within +-180 deg (example-robot-data's joint-limited model), inside these.
UR5 = replace(
    UR5E,
    model="ur5",
    velocity=(math.pi,) * 6,
    acceleration=robots.UR5.accel_limits,
    jerk=robots.UR5.jerk_limits,
    kinematics="robot:ur5",
    link_frames=robots.UR5.body_links,
    source="UR5 technical specifications; acceleration/jerk: chord's conservative choice",
)

MODELS: dict[str, RobotLimits] = {m.model: m for m in (PANDA, FR3, UR5, UR5E, XARM6)}


@dataclass(frozen=True)
class GripperLimits:
    """What pre-flight checks a plan's gripper track and the grasp force against, for one gripper model."""

    model: str  # model key, e.g. "franka_hand"
    min_width: float  # m, narrowest opening (fingers touching)
    max_width: float  # m, widest opening
    min_force: float  # N, weakest grasp force the gripper can be commanded to
    max_force: float  # N, strongest grasp force allowed (the continuous rating, not a peak)
    rated_force: float  # N, the grasp force used when none is given (within [min_force, max_force])
    speed: float  # m/s, opening/closing speed commanded (within the datasheet's range)
    source: str = ""  # where the numbers come from

    def __post_init__(self) -> None:
        numbers = ("min_width", "max_width", "min_force", "max_force", "rated_force", "speed")
        if not all(math.isfinite(getattr(self, k)) for k in numbers):
            raise ValueError(f"GripperLimits {self.model}: {numbers} must be finite")
        if not 0 <= self.min_width < self.max_width:
            raise ValueError(f"GripperLimits {self.model}: widths {self.min_width}..{self.max_width} m")
        if not 0 < self.min_force <= self.rated_force <= self.max_force:
            raise ValueError(
                f"GripperLimits {self.model}: forces {self.min_force}/{self.rated_force}/{self.max_force} N"
            )
        if not self.speed > 0:
            raise ValueError(f"GripperLimits {self.model}: speed {self.speed} m/s")


# Franka Hand (Panda and FR3), "Franka Hand" datasheet: 80 mm stroke, 70 N continuous grasp force
# (140 N peak, not allowed here), 50 mm/s per finger. libfranka takes the force in N.
FRANKA_HAND = GripperLimits(
    model="franka_hand",
    min_width=0.0,
    max_width=0.08,
    min_force=5.0,
    max_force=70.0,
    rated_force=20.0,
    speed=0.05,
    source="Franka Hand datasheet; min_force: chord's choice (the fingers' own friction)",
)

# Robotiq 2F-85 (UR arms, through the URCap's socket on port 63352), "2F-85 & 2F-140 instruction
# manual": 85 mm stroke, grip force 20-235 N, closing speed 20-150 mm/s. The socket takes
# position, speed and force as 0-255 and maps them linearly onto these ranges.
ROBOTIQ_2F85 = GripperLimits(
    model="robotiq_2f85",
    min_width=0.0,
    max_width=0.085,
    min_force=20.0,
    max_force=235.0,
    rated_force=50.0,
    speed=0.05,
    source="Robotiq 2F-85 & 2F-140 instruction manual, specifications",
)

# UFACTORY xArm Gripper, user manual: 0-86 mm stroke (the SDK's position 0-850 pulses), a fixed
# grasp force the SDK cannot set (so the only force this gripper can be asked for is its own).
XARM_GRIPPER = GripperLimits(
    model="xarm_gripper",
    min_width=0.0,
    max_width=0.085,
    min_force=30.0,
    max_force=30.0,
    rated_force=30.0,
    speed=0.05,
    source="UFACTORY xArm Gripper user manual; the SDK sets position and speed, not force",
)

GRIPPERS: dict[str, GripperLimits] = {g.model: g for g in (FRANKA_HAND, ROBOTIQ_2F85, XARM_GRIPPER)}


def gripper_for(model: str) -> GripperLimits:
    """The limit table of gripper ``model``; raises ChordError naming the known grippers."""
    try:
        return GRIPPERS[model]
    except KeyError:
        raise ChordError(
            f"gripper model {model!r} has no limit table; known grippers: {sorted(GRIPPERS)}"
        ) from None


def limits_for(model: str) -> RobotLimits:
    """The limit table of ``model``; raises ChordError naming the known models."""
    try:
        return MODELS[model]
    except KeyError:
        raise ChordError(
            f"robot model {model!r} has no limit table; known models: {sorted(MODELS)}"
        ) from None
