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

# The Franka Panda's "ready" posture: a well-conditioned seed in the middle of the workspace.
PANDA_READY = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)
# Franka's datasheet joint acceleration limits (rad/s^2); URDFs carry no acceleration limits.
PANDA_ACCEL_LIMITS = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0)
# The Panda's links from the elbow out: kept above the table by the planner, speed-capped by real/.
PANDA_BODY_LINKS = (
    "panda_link3",
    "panda_link4",
    "panda_link5",
    "panda_link6",
    "panda_link7",
    "panda_hand",
    "panda_leftfinger",
    "panda_rightfinger",
)

# Grasp and collision surfaces: "auto" = "mesh" when a scene is given, "flow" when not.
Geometry = Literal["auto", "flow", "mesh"]
GEOMETRY_CHOICES: tuple[str, ...] = get_args(Geometry)


class PlannerConfigError(ChordError, ValueError):
    """A planner config value out of its range; the message names the field, the value and the range."""


def _need(ok: bool, name: str, value: Any, expected: str) -> None:
    # `ok` is computed with comparisons that are False for NaN, so NaN never passes.
    if not ok:
        raise PlannerConfigError(f"{name} is {value!r}, expected {expected}")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class RobotConfig:
    """Which URDF, which frame is the tool, and the limits the planner must respect."""

    # URDF path; "" = Franka Panda from pybullet_data. `--robot` is the flag's older name, kept.
    urdf: Annotated[str, tyro.conf.arg(aliases=("--robot",))] = ""
    # link/frame between the fingertips (the grasp point). `--tcp-frame` is the older name, kept.
    tcp_frame: Annotated[str, tyro.conf.arg(aliases=("--tcp-frame",))] = "panda_grasptarget"
    accel_limits: tuple[float, ...] = PANDA_ACCEL_LIMITS  # rad/s^2 per arm joint (URDF has none)
    seed: tuple[float, ...] = PANDA_READY  # rad, IK seed / rest posture, one per arm joint
    # Links whose origins must stay above the table (cheap collision proxy for the static scene).
    clearance_frames: tuple[str, ...] = PANDA_BODY_LINKS
    # The arm's body as spheres along the segments between consecutive frame origins (the
    # gripper is checked separately with boxes): (frame names in chain order, radius in metres).
    body_chain: tuple[str, ...] = (
        "panda_link1",
        "panda_link3",
        "panda_link4",
        "panda_link5",
        "panda_link6",
        "panda_link7",
        "panda_hand",
    )
    body_radius: float = 0.06  # metres: radius of the spheres


@dataclass(frozen=True)
class SegmentConfig:
    """RANSAC settings for rigid-part segmentation, and the merge of parts that move together."""

    inlier_threshold: float = 0.008  # metres: RMS-over-frames residual of an inlier, before noise
    noise_factor: float = 3.0  # threshold >= noise_factor * expected noise residual
    hypotheses: int = 150  # random minimal-sample hypotheses per part search
    sample_size: int = 4  # points per hypothesis (neighbours of a random point)
    neighbours: int = 40  # a hypothesis samples among this many nearest neighbours
    score_points: int = 800  # trajectories scored per hypothesis (subsample)
    min_part_fraction: float = 0.05  # a part holds at least this share of its object's points
    max_parts: int = 4  # parts per object at most
    motion_threshold: float = 0.01  # metres: a part whose points move less than this is static
    # Two parts of one object merge when one rigid track fitted to both keeps each part's points
    # within merge_tolerance (RMS over its points, at every frame) and merge_angle_deg of its own
    # track: smaller relative motions are tracking drift, not joints. 0 disables merging.
    merge_tolerance: float = 0.02  # metres (world): merged track to each part's own, RMS; 0 = no merging
    merge_angle_deg: float = 15.0  # degrees: likewise for rotation; 0 = no merging
    seed: int = 0  # RNG seed: segmentation is deterministic

    def __post_init__(self) -> None:
        if not (self.merge_tolerance >= 0 and np.isfinite(self.merge_tolerance)):
            raise PlannerConfigError(
                f"SegmentConfig.merge_tolerance is {self.merge_tolerance}, expected metres >= 0"
            )
        if not (self.merge_angle_deg >= 0 and np.isfinite(self.merge_angle_deg)):
            raise PlannerConfigError(
                f"SegmentConfig.merge_angle_deg is {self.merge_angle_deg}, expected degrees >= 0"
            )


@dataclass(frozen=True)
class GripperGeometry:
    """Collision boxes of a parallel gripper in the TCP frame (metres); defaults: Franka hand."""

    max_width: float = 0.08  # metres, widest finger opening
    finger_width: float = 0.02  # metres along x
    finger_thickness: float = 0.012  # metres along y (each finger)
    finger_length: float = 0.05  # metres along z, fingertip at z = finger_tip
    finger_tip: float = 0.006  # metres: fingertips reach this far past the TCP along z
    palm_half: tuple[float, float] = (0.035, 0.105)  # metres, palm half-extents along x and y
    palm_z: tuple[float, float] = (-0.12, -0.045)  # metres, palm extent along z (behind fingers)

    def boxes(self, opening: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Axis-aligned (lo [3], hi [3]) boxes in the TCP frame for a finger opening (m)."""
        h = opening / 2
        fz = (self.finger_tip - self.finger_length, self.finger_tip)
        fx = self.finger_width / 2
        return [
            (np.array([-fx, h, fz[0]]), np.array([fx, h + self.finger_thickness, fz[1]])),
            (np.array([-fx, -h - self.finger_thickness, fz[0]]), np.array([fx, -h, fz[1]])),
            (
                np.array([-self.palm_half[0], -self.palm_half[1], self.palm_z[0]]),
                np.array([self.palm_half[0], self.palm_half[1], self.palm_z[1]]),
            ),
        ]


@dataclass(frozen=True)
class GraspConfig:
    """How grasp candidates are generated, filtered and ranked."""

    gripper: GripperGeometry = field(default_factory=GripperGeometry)
    anchors: int = 300  # surface points tried as the first contact
    friction_cone_deg: float = 20.0  # degrees: half-angle of the friction cone at each contact
    # metres: second contact within this of the closing line (or 1.5 x point spacing)
    line_tolerance: float = 0.004
    approach_angles: int = 8  # approach directions tried about each closing line
    open_clearance: float = 0.02  # metres: finger opening beyond the part's width on approach
    squeeze: float = 0.01  # metres: commanded width below the part's width when holding
    collision_margin: float = 0.003  # metres: boxes grown by this against scene points
    table_clearance: float = 0.005  # metres: boxes stay this far above the table top
    approach_distance: float = 0.10  # metres: pre-grasp stand-off along -z
    max_reach_checks: int = 25  # candidates tried for reachability (best first)
    top_down_weight: float = 0.5  # score bonus for approaching from above
    push_standoff: float = 0.002  # metres: fingertips this far off the surface when pushing
    # reachable candidates collected and tried by a grasp judge (planner.judge), when one is given;
    # without a judge the planner keeps its first 3 reachable candidates and ranks them by score
    sim_candidates: int = 4

    def __post_init__(self) -> None:
        n = self.sim_candidates
        _need(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 32,
            "grasp.sim_candidates",
            n,
            "an integer in 1..32 (candidates tried in simulation, about a second each)",
        )


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
    # T_world_base as xyz (m) + quaternion wxyz; None = automatic: facing the moving part from
    # 0.5 m (-x first, then -y, +y, +x, then 0.35 / 0.65 m), the first placement that plans
    base_pose: tuple[float, float, float, float, float, float, float] | None = None
    target_object: str = ""  # object to manipulate; "" = the (movable) one whose part moves most
    approach_steps: int = 8  # waypoints from the pre-grasp pose to the grasp (and for retreat)
    retreat_distance: float = 0.10  # metres backed off along the tool's -z after release
    velocity_scale: float = 0.5  # fraction in (0, 1] of the URDF joint velocity limits used
    accel_scale: float = 0.5  # fraction in (0, 1] of the joint acceleration limits used
    gripper_time: float = 0.6  # seconds to close or open the gripper (arm holds still)
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
        for name in ("dt", "max_track_error", "max_track_rotation_deg", "max_duration"):
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
    raise PlannerConfigError(
        f"{where} is {v!r} ({type(v).__name__}), expected {getattr(kind, '__name__', kind)}"
    )
