"""A PyBullet world for validating plans: table, the scene's objects, and the arm as a Franka drives it.

World frame: metres, z up, gravity along -z, the table top at ``scene.table_height``. Objects are
loaded from their URDFs at ``T_world_obj`` (our wxyz quaternions are converted to PyBullet's xyzw
here); the arm is loaded with a fixed base at the plan's ``T_world_base``.

The arm is driven as the real one is (``SimConfig.arm_control`` "impedance", the default): a
Franka takes joint position targets (franky's ``JointMotion``, real/backends/franky.py) and its
internal joint impedance controller turns them into torques, tau = K (q* - q) + D (qd* - qd) +
gravity + Coriolis, with K the stiffness libfranka is given (3000 Nm/rad at joints 1-3, 2500 at
4-5, 2000 at 6-7). PyBullet's own position servo ("position") is a velocity constraint: it holds
the target against any load up to the torque limit, so an arm track a few millimetres off a
joint's arc is forced onto it with up to 87 Nm per joint instead of yielding, and the grasp, not
the arm, gives way. The impedance law is computed each step from the measured state and applied
as joint torques at every solver step (gravity and Coriolis from PyBullet's inverse dynamics of
the arm alone, as the Franka compensates its own model; the held part's weight is the
controller's to resist). D is recomputed from the arm's inertia once a joint moved 5 mrad.

PyBullet places a body by its base's *inertial* frame, so poses go through the base link's
inertial offset. PyBullet ignores URDF joint friction, so every joint of an object is held by a
velocity motor whose force is that friction (an articulated lamp head then stays where it is put).
A URDF joint's viscous damping goes into the same motor (its force limit is friction + damping x
the joint's speed, set before every solver step) instead of PyBullet's own joint damping: that one
is integrated explicitly, unstable once the damping exceeds the part's inertia about the joint per
time step (a 0.08 kg knob, 3.5e-5 kg m^2 under the usual 0.05 N m s/rad, stable only below 0.7 ms
steps, spun up to 100 rad/s from 1 rad/s in a second), so a light knob or lever held in the hand
threw torque spikes into its base and turned it. The motor can only slow the joint (its target
speed is zero), never reverse it: the damping a real damper gives, without the instability.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ChordError
from core.robots import DEFAULT_ROBOT, ROBOTS, RobotSpec, robot_spec
from core.scene import Scene
from core.transforms import matrix_to_quat, pose_to_matrix, wxyz_to_xyzw, xyzw_to_wxyz
from sim.checks import ConfigError, check_integer, check_number, check_numbers

log = logging.getLogger(__name__)

ARM_CONTROLS = ("impedance", "position")


def robot_for(
    plan_robot: str, robot: str | RobotSpec | None = None, urdf: str | Path | None = None
) -> RobotSpec:
    """The arm the simulator loads for a plan whose ``meta.robot`` is ``plan_robot``.

    ``plan_robot`` is looked up in the robot registry (core.robots.ROBOTS); a plan written before
    robots had names carries the path of a registered URDF instead, which resolves to that robot
    (paths are compared; no file is opened). ``robot`` (the command line's ``--robot``: a registry
    name or a YAML file describing the user's arm, or such a RobotSpec) must describe the plan's robot: its name must
    be the plan's. ``urdf`` (``--robot-urdf``) replaces the entry's URDF. A plan file never
    chooses the file the simulator loads. Raises ChordError (one line) for any other name, e.g.
    ``/etc/passwd``, or a ``robot`` that is not the plan's.
    """
    if robot is not None:
        spec = robot if isinstance(robot, RobotSpec) else robot_spec(robot, urdf)
        if spec.name != plan_robot:
            raise ChordError(
                f"--robot {robot!r} describes the arm {spec.name!r}; the plan was made for {_shown(plan_robot)!r}"
            )
        return spec
    if not isinstance(plan_robot, str) or not plan_robot:
        raise ChordError(f"plan robot {plan_robot!r} is not a robot name (known: {sorted(ROBOTS)})")
    if plan_robot in ROBOTS:
        return robot_spec(plan_robot, urdf)
    for spec in ROBOTS.values():
        if spec.urdf.startswith("pybullet_data:") and _same_file(plan_robot, spec.urdf_path()):
            return robot_spec(spec.name, urdf)
    raise ChordError(
        f"plan robot {_shown(plan_robot)!r} is not a known robot (known: {sorted(ROBOTS)}); the simulator loads "
        "robots by name, or the one --robot describes (a YAML file, docs/robots.md)"
    )


def _shown(name: str) -> str:
    return name if len(name) <= 200 else name[:200] + "..."


def _same_file(name: str, urdf: Path) -> bool:
    """True when ``name`` is the path of ``urdf`` itself (no file is opened: paths are compared)."""
    try:
        return os.path.realpath(name) == os.path.realpath(urdf)
    except (OSError, ValueError):
        return False


# rad: the impedance controller's damping is recomputed once an arm joint moved this far (SimWorld.step)
DAMPING_REFRESH_RAD = 0.005


@dataclass(frozen=True)
class SimConfig:
    """How the plan is simulated; every field has a unit."""

    physics_hz: float = 240.0  # control and physics steps per second, >= 240 (one motor update a step)
    substeps: int = 2  # PyBullet sub-steps per step: the solver runs at physics_hz * substeps
    gravity: float = 9.81  # m/s^2 along -z
    settle_s: float = 0.5  # seconds the objects settle (arm holding q[0]) before the plan starts
    hold_s: float = 0.5  # seconds simulated after the plan's last sample (arm holding q[-1])
    # Arm control: "impedance" (a joint impedance controller, as a Franka's: see the module
    # docstring) or "position" (PyBullet's position servo, rigid up to arm_forces, as a UR's or
    # an xArm's position servo); None = the robot's (its registry entry, core.robots)
    arm_control: str | None = None
    # Nm/rad per plan joint (impedance); () = the robot's (its registry entry, core.robots)
    joint_stiffness: tuple[float, ...] = ()
    # Of each joint's damping, D = 2 zeta sqrt(K M_jj) with M_jj the arm's joint-space inertia now:
    # 1 = critically damped, as the Franka's controller tracks targets without overshoot.
    damping_ratio: float = 1.0
    # PyBullet's position servo (the fingers always; the arm with arm_control "position"):
    position_gain: float = 0.3  # PyBullet positionGain (fraction of the position error per step)
    velocity_gain: float = 1.0  # PyBullet velocityGain (feeds the plan's joint velocity forward)
    arm_forces: tuple[float, ...] = ()  # Nm per plan joint; () = the robot's torque limits (its entry)
    finger_force: float | None = None  # N per finger; None = the robot's gripper's grasp force (its entry)
    # N: the most the mechanism coupling the two fingers carries (module docstring). The Franka
    # hand drives both fingers from one motor through a rigid linkage, so they always stand
    # symmetric about the hand's centre; its limit is the structure's, far above the grasp force.
    # 0 = the fingers move independently (each only its own motor, as panda.urdf models them).
    finger_coupling_force: float = 1000.0
    # m: the finger links' spinning friction, the torque about a contact's normal the contact resists
    # per newton pressing it, before PyBullet multiplies it by the object's friction (it combines
    # s_a mu_b + s_b mu_a). None: the robot URDF's (panda.urdf gives its fingers 0.1, a pad 10 cm
    # wide; a real pad's patch of radius r resists about mu N r, r ~ 5 mm). 0: point contacts that
    # spin freely, so a part pinched at one point pivots between the fingers.
    finger_spinning_friction: float | None = None
    # Contact properties (PyBullet multiplies the two bodies' friction coefficients).
    object_friction: float | None = None  # lateral friction of every object link; None = URDF's
    finger_friction: float = 1.0  # lateral friction of the finger pads
    table_friction: float = 1.0  # lateral friction of the table top
    mass_scale: float = 1.0  # multiplies the mass (and inertia) of every movable object
    table_size: tuple[float, float, float] = (2.0, 2.0, 0.05)  # m, box centred under the world origin
    gui: bool = False  # open PyBullet's GUI instead of DIRECT (needs a display)

    def __post_init__(self) -> None:
        """Raises ConfigError (a ChordError) for a value out of range; NaN is never in range."""
        owner = "SimConfig"
        check_number(owner, "physics_hz", self.physics_hz, at_least=240.0, unit="Hz")
        check_integer(owner, "substeps", self.substeps, at_least=1)
        check_number(owner, "gravity", self.gravity, at_least=0.0, unit="m/s^2")
        for key in ("settle_s", "hold_s"):
            check_number(owner, key, getattr(self, key), at_least=0.0, unit="s")
        if self.arm_control is not None and self.arm_control not in ARM_CONTROLS:
            raise ConfigError(f"{owner}.arm_control is {self.arm_control!r}, expected one of {ARM_CONTROLS}")
        if self.joint_stiffness:
            check_numbers(owner, "joint_stiffness", self.joint_stiffness, above=0.0, unit="Nm/rad")
        check_number(owner, "damping_ratio", self.damping_ratio, above=0.0)
        check_number(owner, "position_gain", self.position_gain, above=0.0)
        check_number(owner, "velocity_gain", self.velocity_gain, at_least=0.0)
        check_numbers(owner, "arm_forces", self.arm_forces, above=0.0, unit="Nm")
        if self.finger_force is not None:
            check_number(owner, "finger_force", self.finger_force, above=0.0, unit="N")
        for key in ("finger_friction", "table_friction", "mass_scale"):
            check_number(owner, key, getattr(self, key), above=0.0)
        check_number(owner, "finger_coupling_force", self.finger_coupling_force, at_least=0.0, unit="N")
        if self.finger_spinning_friction is not None:
            check_number(
                owner, "finger_spinning_friction", self.finger_spinning_friction, at_least=0.0, unit="m"
            )
        if self.object_friction is not None:
            check_number(owner, "object_friction", self.object_friction, above=0.0)
        check_numbers(owner, "table_size", self.table_size, length=3, above=0.0, unit="m")

    @property
    def dt(self) -> float:
        """Seconds per control step."""
        return 1.0 / self.physics_hz


@dataclass
class ObjectBody:
    """One scene object loaded in the world."""

    name: str
    body: int  # PyBullet body id
    movable: bool
    joints: dict[str, int] = field(default_factory=dict)  # movable joint name -> PyBullet index
    links: dict[str, int] = field(default_factory=dict)  # child link name -> PyBullet link index
    T_link_inertial: np.ndarray = field(default_factory=lambda: np.eye(4))  # [4, 4] base inertial offset
    # PyBullet joint index -> (friction N m or N, viscous damping N m s/rad or N s/m) from the URDF,
    # for the joints with damping: their motor's force is recomputed each solver step (module doc)
    damped: dict[int, tuple[float, float]] = field(default_factory=dict)


class SimWorld:
    """A PyBullet client holding the table, the scene's objects and the arm. Use as a context manager.

    Raises ChordError for a scene object without a URDF, a missing URDF file, or plan joints the
    robot URDF does not have.
    """

    def __init__(
        self,
        scene: Scene,
        config: SimConfig = SimConfig(),
        robot: RobotSpec | None = None,  # the arm (core.robots); None = the default robot; see robot_for
        base_pose: tuple[float, ...] = (0, 0, 0, 1, 0, 0, 0),  # T_world_base: xyz m + wxyz
        arm_joints: tuple[str, ...] = (),  # plan.joint_names, in plan column order
        object_poses: dict[str, np.ndarray] | None = None,  # name -> T_world_obj [4, 4]; default scene's
    ):
        import pybullet as p

        self.p = p
        self.config = config
        self.scene = scene
        self.client = p.connect(p.GUI if config.gui else p.DIRECT)
        self.table_height = float(scene.table_height)
        try:
            self._build(robot or ROBOTS[DEFAULT_ROBOT], base_pose, arm_joints, object_poses or {})
        except BaseException:
            self.close()
            raise

    # -- construction ------------------------------------------------------------------------
    def _build(self, robot: RobotSpec, base_pose, arm_joints, object_poses) -> None:
        p, c, cfg = self.p, self.client, self.config
        self.arm_control = cfg.arm_control or robot.arm_control  # "impedance" or "position"
        p.resetSimulation(physicsClientId=c)
        p.setGravity(0, 0, -cfg.gravity, physicsClientId=c)
        # Under impedance control the torques are recomputed at every solver step (the Franka's
        # controller runs at 1 kHz; torques held over sub-steps would be explicit integration at
        # the control rate, unstable for the arm's light coupled modes): the same solver rate,
        # one sub-step per PyBullet step.
        per_call = cfg.substeps if self.arm_control == "position" else 1
        p.setPhysicsEngineParameter(
            fixedTimeStep=cfg.dt * per_call / cfg.substeps,
            numSubSteps=per_call,
            deterministicOverlappingPairs=1,
            physicsClientId=c,
        )
        half = [s / 2 for s in cfg.table_size]
        shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c)
        visual = p.createVisualShape(
            p.GEOM_BOX, halfExtents=half, rgbaColor=(0.62, 0.47, 0.33, 1), physicsClientId=c
        )
        self.table = p.createMultiBody(
            0, shape, visual, [0, 0, self.table_height - half[2]], physicsClientId=c
        )
        p.changeDynamics(self.table, -1, lateralFriction=cfg.table_friction, physicsClientId=c)

        self.objects: dict[str, ObjectBody] = {}
        for i, obj in enumerate(self.scene.objects):
            if obj.urdf is None:
                raise ChordError(
                    f"scene object {obj.name!r} (objects[{i}]) has no urdf: the simulator needs one "
                    "(build it with `chord assets`)"
                )
            T = object_poses.get(obj.name, obj.pose.matrix())
            self.objects[obj.name] = self._load_object(obj.name, Path(obj.urdf), T, obj.movable)
        self._load_arm(robot, base_pose, arm_joints)

    def _load_object(self, name: str, urdf: Path, T_world_obj: np.ndarray, movable: bool) -> ObjectBody:
        p, c, cfg = self.p, self.client, self.config
        if not urdf.is_file():
            raise ChordError(f"scene object {name!r}: urdf {str(urdf)!r} does not exist")
        try:
            body = p.loadURDF(str(urdf), useFixedBase=False, physicsClientId=c)
        except p.error as e:
            raise ChordError(f"scene object {name!r}: PyBullet cannot load {str(urdf)!r} ({e})") from e
        info = p.getDynamicsInfo(body, -1, physicsClientId=c)
        ob = ObjectBody(name, body, movable)
        ob.T_link_inertial = pose_to_matrix(np.array(info[3]), xyzw_to_wxyz(np.array(info[4])))
        for j in range(p.getNumJoints(body, physicsClientId=c)):
            ji = p.getJointInfo(body, j, physicsClientId=c)
            ob.links[ji[12].decode()] = j
            if ji[2] == p.JOINT_FIXED:
                continue
            ob.joints[ji[1].decode()] = j
            p.setJointMotorControl2(
                body, j, p.VELOCITY_CONTROL, targetVelocity=0.0, force=float(ji[7]), physicsClientId=c
            )
            if float(ji[6]) > 0.0:  # damping moves into the motor (module docstring)
                ob.damped[j] = (float(ji[7]), float(ji[6]))
                p.changeDynamics(body, j, jointDamping=0.0, physicsClientId=c)
        for link in range(-1, p.getNumJoints(body, physicsClientId=c)):
            kw: dict[str, float] = {}
            if cfg.object_friction is not None:
                kw["lateralFriction"] = cfg.object_friction
            if movable and cfg.mass_scale != 1.0:
                d = p.getDynamicsInfo(body, link, physicsClientId=c)
                kw["mass"] = d[0] * cfg.mass_scale
                kw["localInertiaDiagonal"] = [v * cfg.mass_scale for v in d[2]]
            if kw:
                p.changeDynamics(body, link, physicsClientId=c, **kw)
        self._set_base(ob, T_world_obj)
        return ob

    def _set_base(self, ob: ObjectBody, T_world_obj: np.ndarray) -> None:
        T = np.asarray(T_world_obj, dtype=float) @ ob.T_link_inertial
        q = wxyz_to_xyzw(matrix_to_quat(T[:3, :3]))
        self.p.resetBasePositionAndOrientation(
            ob.body, T[:3, 3].tolist(), q.tolist(), physicsClientId=self.client
        )
        self.p.resetBaseVelocity(ob.body, [0, 0, 0], [0, 0, 0], physicsClientId=self.client)

    def _load_arm(self, robot: RobotSpec, base_pose, arm_joints) -> None:
        p, c, cfg = self.p, self.client, self.config
        self.robot = robot
        urdf = robot.urdf_path()
        finger_names = robot.gripper.finger_joints
        base = np.asarray(base_pose, dtype=float)
        if base.shape != (7,) or not np.isfinite(base).all():
            raise ChordError(f"base_pose is {list(base_pose)}, expected xyz (m) + wxyz (7 numbers)")
        self.T_world_base = pose_to_matrix(base[:3], base[3:] / np.linalg.norm(base[3:]))
        self.arm = p.loadURDF(
            str(urdf),
            base[:3].tolist(),
            wxyz_to_xyzw(base[3:]).tolist(),
            useFixedBase=True,
            flags=p.URDF_USE_INERTIA_FROM_FILE,
            physicsClientId=c,
        )
        by_name: dict[str, int] = {}
        self.arm_links: dict[str, int] = {}
        self.arm_link_names: dict[int, str] = {-1: "base"}
        for j in range(p.getNumJoints(self.arm, physicsClientId=c)):
            ji = p.getJointInfo(self.arm, j, physicsClientId=c)
            by_name[ji[1].decode()] = j
            self.arm_links[ji[12].decode()] = j
            self.arm_link_names[j] = ji[12].decode()
        names = tuple(arm_joints) or robot.arm_joints
        missing = [n for n in (*names, *finger_names) if n not in by_name]
        if missing:
            raise ChordError(f"robot urdf {urdf.name} has no joints {missing}; it has {sorted(by_name)}")
        if robot.tcp_frame not in self.arm_links:
            raise ChordError(f"robot urdf {urdf.name} has no tcp link {robot.tcp_frame!r}")
        if set(names) != set(robot.arm_joints):
            raise ChordError(
                f"the plan's joints {list(names)} are not robot {robot.name!r}'s arm joints {list(robot.arm_joints)}"
            )
        self.urdf = urdf
        self.arm_joint_names = names
        self.arm_joints = [by_name[n] for n in names]
        self.finger_joints = [by_name[n] for n in finger_names]
        self.finger_links = list(self.finger_joints)  # a prismatic finger joint's child is the finger
        self.tcp = self.arm_links[robot.tcp_frame]
        # per plan joint, in the plan's column order: the entry's values are in its arm_joints order
        order = [robot.arm_joints.index(n) for n in names]
        forces = cfg.arm_forces or tuple(robot.torque_limits[i] for i in order)
        if len(forces) != len(names):
            raise ChordError(
                f"SimConfig.arm_forces has {len(forces)} values for {len(names)} arm joints {list(names)}"
            )
        self.arm_forces = [float(f) for f in forces]
        self.joint_stiffness = np.asarray(
            cfg.joint_stiffness or tuple(robot.joint_stiffness[i] for i in order if robot.joint_stiffness),
            dtype=float,
        )  # [J] Nm/rad
        self.finger_force = float(
            cfg.finger_force if cfg.finger_force is not None else robot.gripper.geometry.grasp_force
        )  # N per finger
        self._limit = np.asarray(self.arm_forces, dtype=float)
        self.arm_lower = np.array(
            [p.getJointInfo(self.arm, j, physicsClientId=c)[8] for j in self.arm_joints]
        )
        self.arm_upper = np.array(
            [p.getJointInfo(self.arm, j, physicsClientId=c)[9] for j in self.arm_joints]
        )
        if self.arm_control == "impedance" and len(self.joint_stiffness) != len(names):
            raise ChordError(
                f"SimConfig.joint_stiffness has {len(self.joint_stiffness)} values for {len(names)} arm joints "
                f"{list(names)}: give one per joint (--joint-stiffness, Nm/rad), or none for the robot's, "
                "or --arm-control position"
            )
        # Every movable joint of the arm (PyBullet's inverse dynamics and mass matrix take all of
        # them, fingers included) and where the plan's joints sit among them.
        self._dofs = [
            j for j in range(p.getNumJoints(self.arm, physicsClientId=c))
            if p.getJointInfo(self.arm, j, physicsClientId=c)[2] != p.JOINT_FIXED
        ]  # fmt: skip
        self._arm_slots = np.array([self._dofs.index(j) for j in self.arm_joints])
        self._target = (np.zeros(len(names)), np.zeros(len(names)))  # (q*, qd*) the arm tracks
        self._damping_cache: tuple[np.ndarray, np.ndarray] | None = (
            None  # (q [J], D [J, J]) see _current_damping
        )
        if self.arm_control == "impedance":
            # Torque control needs PyBullet's default velocity motors off (they would hold the joints).
            p.setJointMotorControlArray(
                self.arm, self.arm_joints, p.VELOCITY_CONTROL, forces=[0.0] * len(names), physicsClientId=c
            )
        for j in self.finger_joints:
            spin = (
                {}
                if cfg.finger_spinning_friction is None
                else {"spinningFriction": cfg.finger_spinning_friction}
            )
            p.changeDynamics(self.arm, j, lateralFriction=cfg.finger_friction, physicsClientId=c, **spin)
        self.finger_coupling: int | None = None
        if cfg.finger_coupling_force > 0.0 and len(self.finger_joints) == 2:
            # One motor drives both of the Franka hand's fingers through a rigid linkage: they open
            # and close together, symmetric about the hand's centre. panda.urdf has two
            # independent prismatic joints, each held by its own position motor; squeezing a part,
            # both motors saturate at finger_force and the part between them floats along the
            # closing axis with no stiffness at all (a knob held across 59 mm drifted 6 mm off
            # the hand's centre while turned, and the hand's turn about the knob's axis then
            # dragged the knob's block). A gear constraint of ratio -1 (PyBullet's own Panda
            # example couples the fingers the same way) keeps q1 = q2.
            self.finger_coupling = p.createConstraint(
                self.arm, self.finger_joints[0], self.arm, self.finger_joints[1], p.JOINT_GEAR,
                [1, 0, 0], [0, 0, 0], [0, 0, 0], physicsClientId=c,
            )  # fmt: skip
            p.changeConstraint(
                self.finger_coupling, gearRatio=-1, erp=0.2, maxForce=cfg.finger_coupling_force,
                physicsClientId=c,
            )  # fmt: skip
        # The base sits on the table by design; only contacts of the moving links count.
        for link in (-1, 0):
            p.setCollisionFilterPair(self.arm, self.table, link, -1, 0, physicsClientId=c)

    def close(self) -> None:
        if getattr(self, "client", None) is not None and self.p.isConnected(self.client):
            self.p.disconnect(self.client)
        self.client = None

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------------
    def reset_arm(self, q: np.ndarray, width: float) -> None:  # q: [J] rad
        """Place the arm at joint positions q and the gripper at opening ``width`` (m), at rest."""
        p, c = self.p, self.client
        for j, v in zip(self.arm_joints, q, strict=True):
            p.resetJointState(self.arm, j, float(v), 0.0, physicsClientId=c)
        for j in self.finger_joints:
            p.resetJointState(self.arm, j, float(width) / 2, 0.0, physicsClientId=c)
        self.command(q, np.zeros(len(q)), width)

    def command(self, q: np.ndarray, qd: np.ndarray, width: float) -> None:  # q, qd: [J]
        """Position targets for the arm (rad, with velocity feed-forward rad/s) and the gripper (m).

        Under impedance control the targets are held and the torques computed at every
        :meth:`step` from the state then; under position control PyBullet's servo gets them now.
        """
        p, c, cfg = self.p, self.client, self.config
        n = len(self.arm_joints)
        self._target = (np.array(q, dtype=float), np.array(qd, dtype=float))
        if self.arm_control == "position":
            p.setJointMotorControlArray(
                self.arm,
                self.arm_joints,
                p.POSITION_CONTROL,
                targetPositions=[float(v) for v in q],
                targetVelocities=[float(v) for v in qd],
                forces=self.arm_forces,
                positionGains=[cfg.position_gain] * n,
                velocityGains=[cfg.velocity_gain] * n,
                physicsClientId=c,
            )
        half = max(float(width), 0.0) / 2
        p.setJointMotorControlArray(
            self.arm,
            self.finger_joints,
            p.POSITION_CONTROL,
            targetPositions=[half] * len(self.finger_joints),
            forces=[self.finger_force] * len(self.finger_joints),
            positionGains=[cfg.position_gain] * len(self.finger_joints),
            physicsClientId=c,
        )

    def step(self, n: int = 1) -> None:
        """Advance ``n`` control steps (each ``config.substeps`` solver steps)."""
        damped = [ob for ob in self.objects.values() if ob.damped]
        if self.arm_control == "position":
            # One PyBullet step runs ``substeps`` solver steps: the joint motors are set per call.
            for _ in range(n):
                self._apply_joint_damping(damped)
                self.p.stepSimulation(physicsClientId=self.client)
            return
        for _ in range(n):
            # The arm's inertia changes little over one control step: its damping matrix is
            # computed at most once a step, the torques at every solver step.
            damping = self._current_damping()
            for _ in range(self.config.substeps):
                self._apply_joint_damping(damped)
                self._apply_impedance(damping)
                self.p.stepSimulation(physicsClientId=self.client)

    def _apply_joint_damping(self, damped: list[ObjectBody]) -> None:
        """Set each damped object joint's motor force to friction + damping x |speed now| (N m or
        N): the viscous damping, applied implicitly by the zero-speed motor (module docstring)."""
        p, c = self.p, self.client
        for ob in damped:
            idx = list(ob.damped)
            states = p.getJointStates(ob.body, idx, physicsClientId=c)
            forces = [f + d * abs(s[1]) for (f, d), s in zip(ob.damped.values(), states, strict=True)]
            p.setJointMotorControlArray(
                ob.body, idx, p.VELOCITY_CONTROL, targetVelocities=[0.0] * len(idx), forces=forces,
                physicsClientId=c,
            )  # fmt: skip

    def _current_damping(self) -> np.ndarray:
        """:meth:`impedance_damping`, recomputed once an arm joint has moved more than
        ``DAMPING_REFRESH_RAD`` from where it was last computed (the arm's inertia, and so its
        damping, depends only on the joints: 5 mrad changes it by well under 1%, while the mass
        matrix and its eigendecomposition were a sixth of the simulator's time at every step)."""
        q = np.array(
            [s[0] for s in self.p.getJointStates(self.arm, self.arm_joints, physicsClientId=self.client)]
        )
        cached = self._damping_cache
        if cached is None or np.abs(q - cached[0]).max() > DAMPING_REFRESH_RAD:
            cached = self._damping_cache = (q, self.impedance_damping())
        return cached[1]

    def impedance_damping(self) -> np.ndarray:
        """[J, J] N m s/rad: the controller's damping now, every mode of the arm at ``damping_ratio``
        of critical.

        With K v = w^2 M v (M the arm's joint-space inertia now, V^T M V = I), D = 2 zeta M V
        diag(w) V^T M. A per-joint D from M's diagonal would over-damp the light coupled modes
        (joints 1 and 3 turning against each other about nearly aligned axes), and an over-damped
        mode integrated at the solver step rings and saturates.
        """
        p, c, cfg = self.p, self.client, self.config
        pos = [float(s[0]) for s in p.getJointStates(self.arm, self._dofs, physicsClientId=c)]
        k = self._arm_slots
        M = np.array(p.calculateMassMatrix(self.arm, pos, physicsClientId=c))[np.ix_(k, k)]
        s = 1.0 / np.sqrt(self.joint_stiffness)  # K^-1/2
        lam, U = np.linalg.eigh(s[:, None] * M * s[None, :])  # K^-1/2 M K^-1/2 = U diag(1/w^2) U^T
        MV = M @ (s[:, None] * U / np.sqrt(lam))  # M V, V = K^-1/2 U diag(lam)^-1/2
        return 2.0 * cfg.damping_ratio * (MV / np.sqrt(lam)) @ MV.T  # diag(w) = diag(lam)^-1/2

    def impedance_torques(self, damping: np.ndarray | None = None) -> np.ndarray:
        """[J] Nm the joint impedance controller applies now (see the module docstring).

        tau = K (q* - q) + D (qd* - qd) + gravity + Coriolis, each clipped to the joint's torque
        limit ``arm_forces``; D is ``damping`` ([J, J], :meth:`impedance_damping` now if None).
        """
        p, c = self.p, self.client
        states = p.getJointStates(self.arm, self._dofs, physicsClientId=c)
        pos = [float(s[0]) for s in states]
        vel = [float(s[1]) for s in states]
        bias = p.calculateInverseDynamics(self.arm, pos, vel, [0.0] * len(pos), physicsClientId=c)
        k = self._arm_slots
        D = self.impedance_damping() if damping is None else damping
        q_t, qd_t = self._target
        tau = (
            self.joint_stiffness * (q_t - np.array(pos)[k])
            + D @ (qd_t - np.array(vel)[k])
            + np.array(bias)[k]
        )
        return np.clip(tau, -self._limit, self._limit)

    def _apply_impedance(self, damping: np.ndarray) -> None:
        self.p.setJointMotorControlArray(
            self.arm,
            self.arm_joints,
            self.p.TORQUE_CONTROL,
            forces=self.impedance_torques(damping).tolist(),
            physicsClientId=self.client,
        )

    def arm_state(self) -> tuple[np.ndarray, float]:
        """([J] arm joint positions rad, gripper opening m)."""
        p, c = self.p, self.client
        q = np.array([s[0] for s in p.getJointStates(self.arm, self.arm_joints, physicsClientId=c)])
        w = sum(s[0] for s in p.getJointStates(self.arm, self.finger_joints, physicsClientId=c))
        return q, float(w)

    def tcp_pose(self) -> np.ndarray:
        """T_world_tcp [4, 4]."""
        s = self.p.getLinkState(
            self.arm, self.tcp, computeForwardKinematics=True, physicsClientId=self.client
        )
        return pose_to_matrix(np.array(s[4]), xyzw_to_wxyz(np.array(s[5])))

    def fk(self, q: np.ndarray) -> np.ndarray:  # q: [J] rad
        """T_base_tcp [4, 4] at joint positions q (sets the arm's state: call before simulating)."""
        for j, v in zip(self.arm_joints, q, strict=True):
            self.p.resetJointState(self.arm, j, float(v), 0.0, physicsClientId=self.client)
        return np.linalg.inv(self.T_world_base) @ self.tcp_pose()

    def object_pose(self, name: str) -> np.ndarray:
        """T_world_obj [4, 4] of object ``name``'s URDF base frame."""
        ob = self.objects[name]
        pos, orn = self.p.getBasePositionAndOrientation(ob.body, physicsClientId=self.client)
        return pose_to_matrix(np.array(pos), xyzw_to_wxyz(np.array(orn))) @ np.linalg.inv(ob.T_link_inertial)

    def link_pose(self, name: str, link: int) -> np.ndarray:
        """T_world_link [4, 4] of link index ``link`` of object ``name`` (-1 = the base)."""
        if link < 0:
            return self.object_pose(name)
        s = self.p.getLinkState(
            self.objects[name].body, link, computeForwardKinematics=True, physicsClientId=self.client
        )
        return pose_to_matrix(np.array(s[4]), xyzw_to_wxyz(np.array(s[5])))

    def joint_values(self, name: str) -> np.ndarray:
        """[K] the object's movable joint values (rad or m), in ``objects[name].joints`` order."""
        ob = self.objects[name]
        if not ob.joints:
            return np.zeros(0)
        states = self.p.getJointStates(ob.body, list(ob.joints.values()), physicsClientId=self.client)
        return np.array([s[0] for s in states])

    def joint_axis_world(self, name: str, joint: str) -> tuple[np.ndarray, np.ndarray, int]:
        """(axis [3] unit world, a point on it [3] world m, PyBullet type) of an object's joint now."""
        p, c = self.p, self.client
        ob = self.objects[name]
        j = ob.joints[joint]
        ji = p.getJointInfo(ob.body, j, physicsClientId=c)
        s = p.getLinkState(ob.body, j, computeForwardKinematics=True, physicsClientId=c)
        # The joint frame coincides with the child's URDF link frame at the current joint value.
        T_link = pose_to_matrix(np.array(s[4]), xyzw_to_wxyz(np.array(s[5])))
        axis = T_link[:3, :3] @ np.asarray(ji[13], dtype=float)
        return axis / max(np.linalg.norm(axis), 1e-12), T_link[:3, 3], int(ji[2])

    def contacts(self, a: int, b: int, link_a: int | None = None, link_b: int | None = None) -> list:
        kw = {}
        if link_a is not None:
            kw["linkIndexA"] = link_a
        if link_b is not None:
            kw["linkIndexB"] = link_b
        return self.p.getContactPoints(bodyA=a, bodyB=b, physicsClientId=self.client, **kw)
