"""Everything the planner can be told: PlannerConfig and the configs nested in it, with their checks.

Kept apart from the modules that use them (robot, segment, grasp, trajectory, pipeline, which
import scipy and pinocchio) so that ``chord plan`` can build its flags from these dataclasses
without loading the planner: the command line is ``tyro``'s reading of :class:`PlannerConfig`,
and every default is written here once. Those modules re-export their config classes, so
``from planner.grasp import GraspConfig`` keeps working.

Values are checked when a config is built (``__post_init__``), so a Python caller gets the same
errors as the command line: :class:`PlannerConfigError`, a ChordError (printed as one line by
``chord``) and a ValueError.
"""

from __future__ import annotations

import math
import types
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
import tyro

from core.errors import ChordError
from core.robots import DEFAULT_ROBOT, ROBOTS, GripperGeometry, RobotSpec, robot_spec

# Grasp and collision surfaces: "auto" = "mesh" when a scene is given, "flow" when not.
Geometry = Literal["auto", "flow", "mesh"]
GEOMETRY_CHOICES: tuple[str, ...] = get_args(Geometry)


class PlannerConfigError(ChordError, ValueError):
    """A planner config value out of its range; the message names the field, the value and the range."""


class NestedConfigError(ChordError):
    """A nested config's value (``--grasp.*``, ``--segment.*``) out of its range.

    Not a ValueError: tyro builds nested configs while parsing and turns a ValueError into a
    usage box; this passes through and ``chord`` prints it as one line.
    """


def _need(
    ok: bool, name: str, value: Any, expected: str, error: type[ChordError] = PlannerConfigError
) -> None:
    # `ok` is computed with comparisons that are False for NaN, so NaN never passes.
    if not ok:
        raise error(f"{name} is {value!r}, expected {expected}")


def _need_nested(ok: bool, name: str, value: Any, expected: str) -> None:
    _need(ok, name, value, expected, NestedConfigError)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class RobotConfig:
    """Which arm: a name from the robot registry (core.robots), or a YAML file describing your own.

    Everything else about the arm (URDF, TCP frame, gripper, acceleration limits, body links,
    ready posture, where its base may stand) is the registry entry's (docs/robots.md).
    """

    # panda, fr3, xarm6, ur5 (core.robots.ROBOTS) or a .yaml describing your arm (docs/robots.md)
    name: Annotated[str, tyro.conf.arg(aliases=("--robot",))] = DEFAULT_ROBOT
    # the arm's URDF in place of the entry's (the same arm from your own file); "" = the entry's
    urdf: Annotated[str, tyro.conf.arg(aliases=("--robot-urdf",))] = ""

    def __post_init__(self) -> None:
        _need(isinstance(self.name, str) and bool(self.name), "robot", self.name,
              f"a robot name ({', '.join(sorted(ROBOTS))}) or a .yaml file")  # fmt: skip
        if self.name.endswith(".urdf"):
            raise PlannerConfigError(
                f"robot is {self.name!r}: --robot takes a robot name ({', '.join(sorted(ROBOTS))}) or a .yaml "
                "file describing your arm; give its URDF with --robot-urdf (docs/robots.md)"
            )
        _need(isinstance(self.urdf, str), "robot urdf", self.urdf, 'a URDF path or ""')

    def spec(self) -> RobotSpec:
        """The registry entry (or YAML file) this names, with ``urdf`` in place of its URDF if given."""
        return robot_spec(self.name, self.urdf or None)


@dataclass(frozen=True)
class SegmentConfig:
    """RANSAC settings for rigid-part segmentation, and the merge of parts that move together."""

    inlier_threshold: float = 0.008  # metres: RMS-over-frames residual of an inlier, before noise
    noise_factor: float = 3.0  # threshold >= noise_factor * expected noise residual
    hypotheses: int = 150  # random minimal-sample hypotheses per part search
    sample_size: int = 4  # points per hypothesis (neighbours of a random point)
    neighbours: int = 40  # a hypothesis samples among this many nearest neighbours
    score_points: int = 800  # trajectories scored per hypothesis (subsample)
    # A part holds at least this share of its object's points: a lever handle on a door is 2-3% of
    # the object's surface (so of its uniformly sampled points) and must be a part of its own to be
    # held; random-walk outlier trajectories still form no part (no rigid motion explains them).
    min_part_fraction: float = 0.01
    max_parts: int = 4  # parts per object at most
    motion_threshold: float = 0.01  # metres: a part whose points move less than this is static
    # Two parts of one object merge when one rigid track fitted to both keeps each part's points
    # within noise_factor x the flow's drift (planner.segment.merge_bound: the part of the two
    # parts' residual about their own tracks that jitter does not explain). No fixed tolerance:
    # on an exact or merely noisy flow every relative motion is a joint. False: RANSAC's parts.
    merge: bool = True
    seed: int = 0  # RNG seed: segmentation is deterministic

    def __post_init__(self) -> None:
        if not isinstance(self.merge, bool):
            raise NestedConfigError(f"SegmentConfig.merge is {self.merge!r}, expected True or False")
        if not (self.noise_factor > 0 and np.isfinite(self.noise_factor)):
            raise NestedConfigError(
                f"SegmentConfig.noise_factor is {self.noise_factor}, expected a multiple > 0 of the noise residual"
            )


@dataclass(frozen=True)
class GraspConfig:
    """How grasp candidates are generated, filtered and ranked."""

    # The gripper's collision boxes and force: None = the robot's (its registry entry, core.robots),
    # which the planner fills in; a Python caller may give another. Not a command-line option.
    gripper: Annotated[GripperGeometry | None, tyro.conf.Suppress] = None
    anchors: int = 1000  # surface points tried as the first contact (spread over the whole part)
    # Surface points the antipodal search pairs: a uniform subsample of the part's samples, about
    # 5 mm apart on a 0.1 m^2 part (a door leaf), well below a finger pad's 21 mm width
    search_points: int = 4000
    # Coulomb friction coefficient between finger pad and object: the simulator multiplies the
    # pads' 1.0 by the object's lateral friction, which `chord bench` draws from 0.6..1.0; the
    # lowest is used. Friction cone half-angle atan(0.6) = 31 deg.
    friction: float = 0.6
    # metres: second contact within this of the closing line (or 1.5 x point spacing)
    line_tolerance: float = 0.004
    approach_angles: int = 12  # approach directions tried about each closing line (full circle)
    # metres: finger opening beyond the part's width on approach, where the hand opens that far
    # (the opening is capped at the gripper's max_width; see max_grasp_width)
    open_clearance: float = 0.02
    squeeze: float = 0.01  # metres: commanded width below the part's width when holding
    collision_margin: float = 0.003  # metres: boxes grown by this against scene points
    table_clearance: float = 0.005  # metres: boxes stay this far above the table top
    approach_distance: float = 0.10  # metres: pre-grasp stand-off along -z
    max_reach_checks: int = 25  # candidates tried for reachability (best first)
    # Mild score bonus for approaching from above (the arm reaches down easily); side approaches
    # stay candidates and win whenever top-down ones collide or are unreachable.
    top_down_weight: float = 0.25
    push_standoff: float = 0.002  # metres: fingertips this far off the surface when pushing
    # kg/m^3: density for a part whose URDF gives no mass (solid wood or plastic, 450-1200)
    density: float = 700.0
    # reachable candidates collected and tried by a grasp judge (planner.judge), when one is given;
    # without a judge the planner keeps its first 3 reachable candidates and ranks them by score
    sim_candidates: int = 4

    def __post_init__(self) -> None:
        n = self.sim_candidates
        _need_nested(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 32,
            "GraspConfig.sim_candidates",
            n,
            "an integer in 1..32 (candidates tried in simulation, about a second each)",
        )
        _need_nested(
            _finite(self.friction) and self.friction > 0.0,
            "GraspConfig.friction",
            self.friction,
            "a coefficient > 0",
        )
        for name in ("anchors", "search_points", "approach_angles", "max_reach_checks"):
            v = getattr(self, name)
            _need_nested(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                f"GraspConfig.{name}",
                v,
                "an integer >= 1",
            )
        _need_nested(
            _finite(self.density) and self.density > 0.0, "GraspConfig.density", self.density, "kg/m^3 > 0"
        )
        for name in ("line_tolerance", "open_clearance", "squeeze", "collision_margin", "table_clearance",
                     "approach_distance", "top_down_weight", "push_standoff"):  # fmt: skip
            v = getattr(self, name)
            _need_nested(_finite(v) and v >= 0.0, f"GraspConfig.{name}", v, "a finite value >= 0")
        _need_nested(
            self.max_grasp_width > 0.0,
            "GraspConfig.collision_margin",
            self.collision_margin,
            f"less than half the gripper's max_width {self.hand.max_width:g} m",
        )

    @property
    def max_grasp_width(self) -> float:
        """Metres: the widest part a grasp may close across. The fully open fingers must clear
        it by the collision margin on each side (the margin that stands for the planner's
        position error everywhere else); the opening on approach is the part's width plus
        ``open_clearance`` where the hand opens that far, and its max_width where it does not.
        (Demanding the whole open_clearance left no grasp on parts 60-80 mm wide, which the
        Franka hand's 80 mm spans: a 68 mm box on the table had neither grasp nor push.)"""
        return self.hand.max_width - 2.0 * self.collision_margin

    @property
    def hand(self) -> GripperGeometry:
        """The gripper grasps are made for: ``gripper``, or the default robot's when None (the planner
        fills ``gripper`` in from the robot it plans for)."""
        return self.gripper if self.gripper is not None else ROBOTS[DEFAULT_ROBOT].gripper.geometry


@dataclass(frozen=True)
class OptimConfig:
    """Weights and margins of the joint-space optimisation."""

    w_position: float = 1.0  # per metre of TCP position error
    w_rotation: float = 0.1  # per radian of TCP rotation error (0.1: 1 rad ~ 10 cm)
    w_smooth: float = 0.02  # per rad of joint second difference between waypoints
    w_limit: float = 0.1  # per rad inside the joint-limit margin (0.01 rad ~ 0.3 mm of tracking)
    w_clearance: float = 1.0  # per metre of link below the clearance height
    limit_margin: float = 0.05  # rad: keep joints this far inside their limits
    link_clearance: float = 0.02  # metres: link origins stay this far above the table
    w_collision: float = 1.0  # per metre of arm body (spheres) inside the static scene + margin
    scene_clearance: float = 0.01  # metres: arm body spheres keep this far from static points
    gripper_zone: float = 0.12  # metres: body spheres this close to the TCP are the gripper's
    iterations: int = 15  # Gauss-Newton iterations at most
    max_jump: float = 0.6  # rad: larger joint change between waypoints means a branch flip


@dataclass(frozen=True)
class PlannerConfig:
    """Everything the planner can be told; every field has a unit and frame."""

    robot: RobotConfig = field(default_factory=RobotConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    grasp: GraspConfig = field(default_factory=GraspConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # T_world_base as xyz (m) + quaternion wxyz; None = automatic: searched round the moving part
    # from its grasp candidates and whole track (planner.base), the first of the best that plans
    base_pose: tuple[float, float, float, float, float, float, float] | None = None
    target_object: str = ""  # object to manipulate; "" = the (movable) one whose part moves most
    approach_steps: int = 8  # waypoints from the pre-grasp pose to the grasp (and for retreat)
    retreat_distance: float = 0.10  # metres backed off along the tool's -z after release
    velocity_scale: float = 0.5  # fraction in (0, 1] of the URDF joint velocity limits used
    accel_scale: float = 0.5  # fraction in (0, 1] of the joint acceleration and jerk limits used
    gripper_time: float = 0.6  # seconds to close or open the gripper (arm holds still)
    # m/s: the tool's and every clearance link's speed cap; a segment timed faster is slowed
    # uniformly. 0.25 m/s is what a real arm's first runs are held to (chord real's first-run cap,
    # real.preflight.FIRST_RUN_SPEED), so a plan passes it as planned.
    cartesian_speed_max: float = 0.25
    dt: float = 0.01  # seconds between output samples
    max_track_error: float = 0.005  # metres: worse tracking of the part's track is an error
    max_track_rotation_deg: float = 3.0  # degrees: likewise for orientation
    scene_tolerance: float = 0.10  # metres: scene object origins within the flow's boxes + this
    max_duration: float = 120.0  # seconds: a longer plan means a near-singular path: an error
    # surfaces for grasps and collisions: "mesh" (the scene's meshes carried by the flow's fitted
    # parts, planner.geometry: they have the far side a one-view flow lacks; needs the scene),
    # "flow" (the flow's own denoised points), "auto" (mesh when a scene is given, else flow)
    geometry: Geometry = "auto"

    def __post_init__(self) -> None:
        if self.base_pose is not None:
            base = np.asarray(self.base_pose, dtype=float)
            if base.shape != (7,) or not np.isfinite(base).all() or abs(np.linalg.norm(base[3:]) - 1) > 1e-3:
                raise PlannerConfigError(
                    f"base_pose: {base.tolist()}, expected xyz (m) + unit quaternion wxyz"
                )
            object.__setattr__(self, "base_pose", tuple(float(v) for v in base))
        for name in ("velocity_scale", "accel_scale"):
            v = getattr(self, name)
            _need(_finite(v) and 0.0 < v <= 1.0, name, v, "a fraction of the joint limits in (0, 1]")
        if self.geometry not in GEOMETRY_CHOICES:
            raise PlannerConfigError(
                f'geometry: {self.geometry!r}, expected one of {list(GEOMETRY_CHOICES)} ("mesh" needs the scene)'
            )
        n = self.approach_steps
        _need(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1, "approach_steps", n, "an integer >= 1"
        )
        for name in ("retreat_distance", "gripper_time", "scene_tolerance"):
            v = getattr(self, name)
            _need(_finite(v) and v >= 0.0, name, v, "a finite value >= 0")
        for name in (
            "dt",
            "max_track_error",
            "max_track_rotation_deg",
            "max_duration",
            "cartesian_speed_max",
        ):
            v = getattr(self, name)
            _need(_finite(v) and v > 0.0, name, v, "a finite value > 0")

    def geometry_for(self, scene_given: bool) -> str:
        """The surfaces the planner uses, "flow" or "mesh": ``geometry`` with "auto" resolved.

        "auto" is "mesh" when a scene is given (its meshes have the far side a one-view flow
        lacks) and "flow" when not. Raises PlannerConfigError for "mesh" without a scene.
        """
        if self.geometry == "auto":
            return "mesh" if scene_given else "flow"
        if self.geometry == "mesh" and not scene_given:
            raise PlannerConfigError(
                'geometry "mesh" carries the scene\'s meshes along the flow: it needs the scene '
                '(give one, or choose geometry "flow" or "auto")'
            )
        return self.geometry


def config_dict(config: PlannerConfig) -> dict[str, Any]:
    """The config as JSON values (nested dicts, tuples as lists): what plan.config.json records."""
    return json_values(asdict(config))


def config_from_dict(data: Any) -> PlannerConfig:
    """The PlannerConfig that :func:`config_dict` wrote (e.g. ``PlanRecord.load(path).config``).

    Raises PlannerConfigError naming the field for an unknown or missing field or a value of the
    wrong type, and the config's own range errors.
    """
    return _build(PlannerConfig, data, "config")


def json_values(x: Any) -> Any:
    """``x`` with tuples and arrays as lists and numpy scalars as Python numbers (for json.dumps)."""
    if isinstance(x, dict):
        return {str(k): json_values(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_values(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_values(x.tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    return x


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise PlannerConfigError(f"{where} is {data!r}, expected an object of {cls.__name__}'s fields")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(names))
    missing = [n for n in names if n not in data]
    if unknown or missing:
        raise PlannerConfigError(
            f"{where}: unknown field(s) {unknown}, missing field(s) {missing} of {cls.__name__}"
        )
    hints = get_type_hints(cls)  # Annotated[...] stripped to the plain type
    kwargs = {}
    for name in names:
        kind = hints[name]
        if is_dataclass(kind):
            kwargs[name] = _build(kind, data[name], f"{where}.{name}")
        else:
            kwargs[name] = _value(data[name], kind, f"{where}.{name}")
    return cls(**kwargs)


def _value(v: Any, kind: Any, where: str) -> Any:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):  # only `X | None` occurs in these configs
        if v is None and type(None) in get_args(kind):
            return None
        (kind,) = [a for a in get_args(kind) if a is not type(None)]
        if is_dataclass(kind):
            return _build(kind, v, where)
        origin = get_origin(kind)
    if origin is tuple:
        args = get_args(kind)
        if not isinstance(v, list):
            raise PlannerConfigError(f"{where} is {v!r}, expected a list")
        each = [args[0]] * len(v) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(each) != len(v):
            raise PlannerConfigError(f"{where} is {v!r}, expected {len(each)} values")
        return tuple(_value(x, k, f"{where}[{i}]") for i, (x, k) in enumerate(zip(v, each, strict=True)))
    if origin is Literal:
        if v not in get_args(kind):
            raise PlannerConfigError(f"{where} is {v!r}, expected one of {list(get_args(kind))}")
        return v
    numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind is float and numeric:
        return float(v)
    if (kind is int and numeric and isinstance(v, int)) or (kind is str and isinstance(v, str)):
        return v
    if kind is bool and isinstance(v, bool):
        return v
    raise PlannerConfigError(
        f"{where} is {v!r} ({type(v).__name__}), expected {getattr(kind, '__name__', kind)}"
    )
