"""Success-rate benchmark: randomised trials per task and method, planned and simulated in parallel.

A trial perturbs every object's pose on the table (x, y, yaw about its origin), draws the contact
friction and the movable objects' mass scale, and moves the flows with the objects: the planning
flow (the method's, plus optional Gaussian noise) and the goal flow (the scene's reference flow,
never noised). It then plans with the product's planner and judges the plan in PyBullet
(:func:`sim.evaluate.simulate`): against the scene's recorded ground truth (``reference.truth``,
moved with the objects) when it has one, else against the goal flow's own goal; each record says
which (``judged_by``). Every random draw comes from the trial's recorded seed, and the
same trial index gets the same perturbation for every method (a paired comparison).

Methods: ``ours`` plans from the task's flow (the scene's reference flow unless a generated flow
is given); ``video_flow`` plans from 2D point tracks of the reference video lifted with rendered
depth (:mod:`sim.video_flow`), the seed's baseline row; ``rigid`` (ablation, articulated tasks
only) plans from the task's flow like ``ours`` but with every object fitted as one rigid whole.

Results are appended to ``results.jsonl`` as trials finish; a rerun skips the trials already
there (resume). The bench holds OUT's lock while it runs (core.lock): a second bench on the same
OUT is refused with a line naming the first, and a killed bench's temporary files are removed.
Every file it writes lies under OUT: a scene's name becomes a file name only through
``core.names.safe_child``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.atomic import atomic_write, write_text_atomic
from core.contract import read_json_file
from core.errors import ChordError
from core.lock import run_lock
from core.names import safe_child
from core.robots import DEFAULT_ROBOT, robot_spec
from planner.config import PlannerConfig
from sim.checks import ConfigError, check_integer, check_number, check_numbers, check_range
from sim.rollout import MAX_PLAN_DURATION_S
from sim.world import SimConfig

log = logging.getLogger(__name__)

Method = Literal["ours", "video_flow", "rigid"]
METHODS: tuple[Method, ...] = ("ours", "video_flow", "rigid")
RESULTS = "results.jsonl"
MANIFEST = "planning_flows.json"  # (task, method) -> content hash of the planning flow of OUT's trials
FLOW_DIR_LAYOUT = "DIR/<task>/flow.npz (one folder per task, named as the scene's name; a `chord flow --out DIR/<task>` run folder)"
_ROW_ORDER = {"video_flow": 0, "ours": 1, "rigid": 2}  # table rows as in the seed's Table 1, then ablations


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark randomises and how it runs; units in each comment."""

    trials: int = 8  # per task, method and flow-noise level (the seed's Table 1 has 8)
    seed: int = 0  # master seed: every trial's seed derives from it, the task and the trial index
    # "ours" (the task's flow), "video_flow" (tracked from the reference video), "rigid" (ablation on
    # articulated tasks: the task's flow fitted as whole rigid objects)
    methods: tuple[Method, ...] = METHODS
    flow_noise_mm: tuple[float, ...] = (0.0,)  # mm, per-axis std of noise on the planning flow; a row each
    position_noise: float = 0.02  # m, object x and y perturbed uniformly within +-this
    yaw_noise_deg: float = 10.0  # degrees, object yaw about its origin perturbed uniformly within +-this
    friction_range: tuple[float, float] = (0.6, 1.0)  # object lateral friction, uniform in [low, high]
    mass_scale_range: tuple[float, float] = (0.8, 1.2)  # movable objects' mass factor, uniform in [low, high]
    # T_world_base: the robot base in the world, xyz m + quaternion wxyz, fixed for every trial of a
    # task (the protocol: the perturbations move the objects relative to the arm). None (default):
    # placed once per task and method, as `chord plan` places it (planner.base: searched round the
    # part from its grasps and whole track) for the task's unperturbed scene and planning flow, as
    # one would set the arm up for a task; recorded in OUT/bases.json. A pose: that one base for
    # every task (the three task scenes were built for a base at (-0.5, 0, 0) facing +x; the suite's
    # objects face any way, so a fixed base leaves some tasks out of reach).
    base_pose: tuple[float, float, float, float, float, float, float] | None = None
    # s: longer plans count as planner (IK/timing) failures, not simulated; at most the simulator's
    # own limit, sim.rollout.MAX_PLAN_DURATION_S
    max_plan_s: float = 120.0
    workers: int = 0  # parallel processes; 0 = one per CPU core
    physics_hz: float = SimConfig.physics_hz  # control/physics steps per second (>= 240), as SimConfig
    substeps: int = SimConfig.substeps  # PyBullet sub-steps per step, as SimConfig
    # grasp/collision surfaces for every method, as PlannerConfig.geometry (the same default as
    # `chord plan` and `chord run`): "auto" = "mesh" with a scene (the scene's meshes carried by the
    # flow's parts: a one-view flow such as video flow has no far side to grasp), "flow" (its points)
    geometry: Literal["auto", "flow", "mesh"] = PlannerConfig.geometry
    # the arm: a robot registry name (core.robots: panda, fr3, xarm6, ur5) or a YAML file describing
    # one (docs/robots.md); it plans every trial and the simulator runs it
    robot: str = DEFAULT_ROBOT
    # choose each plan's grasp by trying the best few in PyBullet (sim.grasp_trial: the unknown
    # object friction bracketed at 0.5 and 1.0; the trial's perturbed friction and masses are not
    # told to it), as `chord plan` does by default
    sim_grasp: bool = True

    def __post_init__(self) -> None:
        """Raises ConfigError (a ChordError) for a value out of range; NaN is never in range."""
        owner = "BenchConfig"
        check_integer(owner, "trials", self.trials, at_least=1)
        check_integer(owner, "seed", self.seed)
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ConfigError(f"{owner}.methods is {list(self.methods)}, expected some of {list(METHODS)}")
        if not self.flow_noise_mm:
            raise ConfigError(f"{owner}.flow_noise_mm is empty, expected at least one noise level (mm)")
        check_numbers(owner, "flow_noise_mm", self.flow_noise_mm, at_least=0.0, unit="mm")
        check_number(owner, "position_noise", self.position_noise, at_least=0.0, unit="m")
        check_number(owner, "yaw_noise_deg", self.yaw_noise_deg, at_least=0.0, unit="degrees")
        check_range(owner, "friction_range", self.friction_range, above=0.0)
        check_range(owner, "mass_scale_range", self.mass_scale_range, above=0.0)
        if self.base_pose is not None:
            check_numbers(owner, "base_pose", self.base_pose, length=7)
            if not np.linalg.norm(self.base_pose[3:]) > 0:
                raise ConfigError(f"{owner}.base_pose is {self.base_pose!r}: its quaternion wxyz is zero")
        check_number(owner, "max_plan_s", self.max_plan_s, above=0.0, unit="s")
        if self.max_plan_s > MAX_PLAN_DURATION_S:
            raise ConfigError(
                f"{owner}.max_plan_s is {self.max_plan_s!r}, expected at most {MAX_PLAN_DURATION_S:g} s "
                "(the longest plan the simulator runs, sim.rollout.MAX_PLAN_DURATION_S)"
            )
        check_integer(owner, "workers", self.workers, at_least=0)
        if not isinstance(self.sim_grasp, bool):
            raise ConfigError(f"{owner}.sim_grasp is {self.sim_grasp!r}, expected true or false")
        SimConfig(physics_hz=self.physics_hz, substeps=self.substeps)  # its checks of the two
        try:
            robot_spec(self.robot)
        except ChordError as e:
            raise ConfigError(f"{owner}.robot: {e}") from e
        if self.geometry not in ("auto", "flow", "mesh"):
            raise ConfigError(f"{owner}.geometry is {self.geometry!r}, expected 'auto', 'flow' or 'mesh'")

    @property
    def robot_name(self) -> str:
        """The arm's registry name (a YAML arm's own ``name``): what records and base keys name."""
        return robot_spec(self.robot).name

    @property
    def flow_noise(self) -> tuple[float, ...]:
        """The noise levels in metres (per-axis std)."""
        return tuple(v / 1000 for v in self.flow_noise_mm)


@dataclass(frozen=True)
class Trial:
    """One trial to run: everything a worker process needs (picklable)."""

    task: str  # scene name
    scene_path: str
    method: str  # one of METHODS
    flow_path: str  # the planning flow (before perturbation)
    flow_noise: float  # m
    index: int  # trial index within the task
    seed: int  # the trial's seed (perturbation)
    config: BenchConfig = field(repr=False)
    judged_by: str = "flow"  # "truth" when the scene records its ground truth (reference.truth)
    # the task's base placement (see BenchConfig.base_pose): {"base": [7] or None, and when None the
    # planner's "error" and its "cause" for the unperturbed scene}; None with a fixed base_pose
    placement: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.task}|{self.method}|{self.flow_noise:g}|{self.index}|{self.seed}"

    @property
    def base_pose(self) -> tuple[float, ...] | None:
        """T_world_base [7] the trial plans at: the config's fixed base, else the task's placement
        (None when the task has none)."""
        if self.config.base_pose is not None:
            return tuple(float(v) for v in self.config.base_pose)
        base = (self.placement or {}).get("base")
        return None if base is None else tuple(float(v) for v in base)


def trial_seed(master: int, task: str, index: int) -> int:
    """A 63-bit seed for trial ``index`` of ``task``, stable across runs and Python versions."""
    h = hashlib.sha256(f"{master}|{task}|{index}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def _yaw_about(point: np.ndarray, dx: float, dy: float, yaw: float) -> np.ndarray:
    """[4, 4] world transform: rotate by ``yaw`` about the vertical through ``point``, then shift."""
    c, s = math.cos(yaw), math.sin(yaw)
    D = np.eye(4)
    D[:2, :2] = [[c, -s], [s, c]]
    D[:3, 3] = point - D[:3, :3] @ point + [dx, dy, 0.0]
    return D


def sample_perturbation(scene, config: BenchConfig, seed: int) -> dict[str, Any]:
    """Per-object world transforms D (T_new = D @ T_old), friction and mass scale, from ``seed``."""
    rng = np.random.default_rng(seed)
    objects = {}
    for o in scene.objects:
        dx, dy = rng.uniform(-config.position_noise, config.position_noise, 2)
        yaw = math.radians(rng.uniform(-config.yaw_noise_deg, config.yaw_noise_deg))
        objects[o.name] = {"dx": float(dx), "dy": float(dy), "yaw_deg": math.degrees(yaw)}
    return {
        "objects": objects,
        "friction": float(rng.uniform(*config.friction_range)),
        "mass_scale": float(rng.uniform(*config.mass_scale_range)),
    }


def _moves(scene, pert: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each object's perturbation as a world transform D [4, 4] (T_new = D @ T_old)."""
    D = {}
    for o in scene.objects:
        p = pert["objects"][o.name]
        D[o.name] = _yaw_about(np.asarray(o.pose.position), p["dx"], p["dy"], math.radians(p["yaw_deg"]))
    return D


def perturb_truth(scene, truth, pert: dict[str, Any]):
    """The ground truth (core.truth.Truth) with each scene object's poses moved as the trial moves it;
    joint values are unchanged (a perturbation moves whole objects)."""
    from core.truth import Truth

    D = _moves(scene, pert)
    poses = {
        n: D[n] @ truth.pose_matrices(n) if n in D else truth.pose_matrices(n) for n in truth.object_names
    }
    joints: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    for o, j, kind, col in zip(
        truth.joint_objects, truth.joint_names, truth.joint_types, truth.joints.T, strict=True
    ):
        joints.setdefault(o, {})[j] = (kind, col)
    return Truth.from_matrices(
        truth.times, truth.fps, poses, joints, {**truth.provenance, "perturbation": pert}
    )


def apply_perturbation(scene, flows: list, pert: dict[str, Any]) -> tuple[Any, list]:
    """The scene with moved objects, and each flow with each object's points moved alike."""
    from core.flow import ObjectFlow
    from core.scene import Pose

    D = _moves(scene, pert)
    objects = [replace(o, pose=Pose.from_matrix(D[o.name] @ o.pose.matrix())) for o in scene.objects]
    out = []
    for f in flows:
        pts = f.points.astype(np.float64)
        for i, name in enumerate(f.object_names):
            if name in D:
                m = f.object_index == i
                pts[:, m] = pts[:, m] @ D[name][:3, :3].T + D[name][:3, 3]
        out.append(
            ObjectFlow(
                points=pts.astype(np.float32),
                object_index=f.object_index,
                times=f.times,
                object_names=f.object_names,
                fps=f.fps,
                prior=f.prior,
                prompt=f.prompt,
                camera=f.camera,
                visible=f.visible,
                provenance={**f.provenance, "perturbation": pert},
            )
        )
    return scene.with_objects(objects), out


def add_noise(flow, sigma: float, seed: int):
    """The flow with i.i.d. Gaussian noise of ``sigma`` m per axis on every point and frame."""
    if sigma <= 0:
        return flow
    rng = np.random.default_rng(seed)
    pts = flow.points + rng.normal(0.0, sigma, flow.points.shape).astype(np.float32)
    return replace(flow, points=pts, provenance={**flow.provenance, "flow_noise_m": sigma})


def planner_config(method: str, config: BenchConfig, base: tuple[float, ...] | None = None):
    """The planner's config for ``method`` ("rigid" fits every object as one rigid body), planning
    at ``base`` (T_world_base [7]) or else at ``config.base_pose`` (None: placed automatically)."""
    from planner.pipeline import PlannerConfig
    from planner.robot import RobotConfig
    from planner.segment import SegmentConfig

    if base is None and config.base_pose is not None:
        base = tuple(config.base_pose)
    cfg = PlannerConfig(
        robot=RobotConfig(name=config.robot),
        base_pose=None if base is None else tuple(float(v) for v in base),
        geometry=config.geometry,
    )
    if method == "rigid":
        # One part per object, and every trajectory an inlier of it: a whole-object robust Kabsch fit.
        cfg = replace(cfg, segment=SegmentConfig(max_parts=1, inlier_threshold=1.0))
    return cfg


def planner_failure_stage(message: str) -> str:
    """The pipeline stage a planner ChordError belongs to, from its message."""
    m = message.lower()
    if "no grasp" in m or "grasp or push" in m:
        return "grasp"
    if "no motion" in m or "does not match" in m or "not in scene" in m or "movable" in m or "flow" in m:
        return "flow"
    return "IK"


_CACHE: dict[str, Any] = {}


def _load(kind: str, path: str):
    key = f"{kind}:{path}"
    if key not in _CACHE:
        if kind == "scene":
            from core.scene import Scene

            _CACHE[key] = Scene.load(path)
        elif kind == "truth":
            from core.truth import Truth

            _CACHE[key] = Truth.load(path)
        else:
            from core.flow import ObjectFlow

            _CACHE[key] = ObjectFlow.load(path)
    return _CACHE[key]


def run_trial(trial: Trial) -> dict[str, Any]:
    """Perturb, plan and simulate one trial; returns its JSON-able record (never raises)."""
    from planner.pipeline import plan_flow
    from sim.evaluate import simulate
    from sim.grasp_trial import SimGraspJudge

    cfg = trial.config
    rec: dict[str, Any] = {
        "task": trial.task, "method": trial.method, "flow_noise_m": trial.flow_noise, "trial": trial.index,
        "seed": trial.seed, "key": trial.key, "judged_by": trial.judged_by, "sim_grasp": cfg.sim_grasp,
        "robot": cfg.robot_name,
    }  # fmt: skip
    t0 = time.perf_counter()
    try:
        scene = _load("scene", trial.scene_path)
        goal_flow = _load("flow", str(scene.reference.flow))
        plan_flow_in = _load("flow", trial.flow_path)
        pert = sample_perturbation(scene, cfg, trial.seed)
        rec["perturbation"] = pert
        rec["planning_flow_prior"] = plan_flow_in.prior
        scene_p, (goal_p, planning_p) = apply_perturbation(scene, [goal_flow, plan_flow_in], pert)
        planning_p = add_noise(planning_p, trial.flow_noise, trial.seed + 1)
        truth_p = None
        if trial.judged_by == "truth":  # the scene's recorded ground truth judges, moved with the objects
            truth_p = perturb_truth(scene, _load("truth", str(scene.reference.truth)), pert)
        base = trial.base_pose
        rec["base_pose"] = None if base is None else list(base)
        if base is None:  # no placement reached the task even unperturbed: nothing to plan at
            place = trial.placement or {}
            rec.update(
                success=False, cause=place.get("cause", "IK"), simulated=False,
                reason=f"planner: no robot base placement for the task's unperturbed scene: {place.get('error')}",
            )  # fmt: skip
            return rec
        try:
            trial_physics = SimConfig(physics_hz=cfg.physics_hz, substeps=cfg.substeps)
            judge = SimGraspJudge(trial_physics) if cfg.sim_grasp else None
            planned = plan_flow(planning_p, scene_p, planner_config(trial.method, cfg, base), judge=judge)
        except ChordError as e:
            rec.update(
                success=False, cause=planner_failure_stage(str(e)), reason=f"planner: {e}", simulated=False
            )
            return rec
        plan = planned.plan
        rec["plan_duration_s"] = plan.duration
        rec["plan_sha256"] = plan.content_hash()
        rec["planning_time_s"] = time.perf_counter() - t0
        if plan.duration > cfg.max_plan_s:
            rec.update(
                success=False, cause="IK", simulated=False,
                reason=f"planner: plan lasts {plan.duration:.1f} s, over max_plan_s {cfg.max_plan_s} s",
            )  # fmt: skip
            return rec
        sim_cfg = SimConfig(
            physics_hz=cfg.physics_hz, substeps=cfg.substeps, object_friction=pert["friction"],
            mass_scale=pert["mass_scale"],
        )  # fmt: skip
        result = simulate(
            plan, scene_p, goal_p, sim_cfg, planning_flow=planning_p, truth=truth_p, robot=cfg.robot
        )
        rec.update(result.to_dict())
        rec["simulated"] = True
    except Exception as e:  # a crash is recorded as such, not as a stage failure
        rec.update(success=False, cause="error", reason=f"{type(e).__name__}: {e}", simulated=False)
        rec["traceback"] = traceback.format_exc(limit=6)
    finally:
        rec["wall_s"] = time.perf_counter() - t0
    return rec


def _read_results(path: Path) -> list[dict[str, Any]]:
    """Valid records of an existing results.jsonl (a torn last line from a crash is dropped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            log.warning("%s: dropping an unreadable line (an interrupted run)", path)
            continue
        if isinstance(rec, dict) and "key" in rec:
            out.append(rec)
    return out


def user_flows(scenes: list[Path], flow_dir: Path) -> dict[tuple[str, str], Path]:  # scene.yaml files
    """{(task, "ours"): flow.npz} from a folder of flows the user generated (``FLOW_DIR_LAYOUT``).

    Every flow is loaded and checked against its scene's objects. Raises ChordError naming the
    missing or mismatched file and the expected layout.
    """
    from core.flow import ObjectFlow

    flow_dir = Path(flow_dir)
    if not flow_dir.is_dir():
        raise ChordError(f"bench --flow-dir: {flow_dir} is not a folder; expected {FLOW_DIR_LAYOUT}")
    out: dict[tuple[str, str], Path] = {}
    for sp in scenes:
        scene = _load("scene", str(sp))
        path = safe_child(flow_dir, scene.name) / "flow.npz"
        if not path.is_file():
            present = sorted(p.name for p in flow_dir.iterdir() if p.is_dir())
            raise ChordError(
                f"bench --flow-dir: {path} not found for task {scene.name!r}; expected {FLOW_DIR_LAYOUT} "
                f"(folders in {flow_dir}: {present})"
            )
        flow = ObjectFlow.load(path)
        missing = [n for n in scene.object_names if n not in flow.object_names]
        if missing:
            raise ChordError(
                f"bench --flow-dir: {path} has objects {list(flow.object_names)}, but task {scene.name!r} "
                f"needs {scene.object_names} (missing {missing}): not a flow of this task"
            )
        out[(scene.name, "ours")] = path
    return out


def task_scenes(root: Path) -> list[Path]:
    """The scene.yaml of every task of :mod:`assets.tasks` under ``root`` (``root/<task>/scene.yaml``),
    building the ones that are missing."""
    from assets.tasks import TASKS, build_task

    scenes = []
    for name in TASKS:
        path = Path(root) / name / "scene.yaml"
        if not path.is_file():
            log.info("building task scene %s under %s", name, root)
            build_task(name, Path(root) / name)
        scenes.append(path)
    return scenes


def check_flow_kind(out: Path, generated: bool) -> None:
    """Refuse to mix trials planned from reference and generated flows in one results.jsonl.

    ``generated``: this bench plans "ours" from flows generated under ``out/flows`` (``--full``).
    Trial keys do not name the planning flow, so resuming a bench of the other kind would silently
    reuse its records. Raises ChordError naming OUT.
    """
    if not (out / RESULTS).is_file():
        return
    was_generated = (out / "flows").is_dir()
    if was_generated != generated:
        kind = "generated (--full)" if was_generated else "reference"
        raise ChordError(
            f"bench: {out} holds results planned from {kind} flows; "
            f"choose another --out for a bench {'with' if generated else 'without'} --full"
        )


def _check_manifest(out: Path, flows: dict[tuple[str, str], Path], config: BenchConfig) -> None:
    """Write OUT's planning-flow manifest, or refuse to resume trials planned from other flows.

    Trial keys do not name the planning flow, so a rerun into the same OUT with other flows (a
    newer video flow, another --flow-dir) would silently reuse the old records. Raises ChordError
    naming the task, method and OUT.
    """
    hashes = {
        f"{task}|{method}": _load("flow", str(path)).content_hash()
        for (task, method), path in sorted(flows.items())
        if method in config.methods
    }
    path = out / MANIFEST
    if path.is_file() and (out / RESULTS).is_file():
        try:
            old = read_json_file(path)
        except ChordError as e:
            raise ChordError(f"bench: {path} is unreadable ({e}); choose another --out") from e
        if not isinstance(old, dict):
            raise ChordError(f"bench: {path} holds no JSON object; choose another --out")
        changed = sorted(k for k, v in hashes.items() if k in old and old[k] != v)
        if changed:
            raise ChordError(
                f"bench: {out} holds trials planned from other flows for {changed} (see {path}); "
                "choose another --out, or delete it to start over"
            )
        hashes = {**old, **hashes}
    write_text_atomic(path, json.dumps(hashes, indent=2, sort_keys=True) + "\n")


def _articulated(scene) -> bool:
    """Whether the scene's reference flow moves a part about a joint (the planner's analysis)."""
    from sim.goal import flow_goal

    return flow_goal(_load("flow", str(scene.reference.flow)), scene).articulated


BASES = "bases.json"  # OUT's record of each task's robot base placement (BenchConfig.base_pose None)


def base_key(task: str, method: str, robot: str) -> str:
    """The key of a task's base placement in OUT/bases.json: one per task, method and arm."""
    return f"{task}|{method}|{robot}"


def place_task_base(job: tuple[str, str, str, BenchConfig]) -> tuple[str, dict[str, Any]]:
    """(base_key(task, method, robot), placement) for job (scene.yaml, method, planning flow, config): where
    ``chord plan`` stands the robot for the task's unperturbed scene and planning flow (the
    planner's automatic base search, without grasp trials: they choose a grasp at a base, not the
    base). The placement is {"base": [7] T_world_base} or, when the planner finds none,
    {"base": None, "error": its message, "cause": its stage}. Never raises (a crash is a cause
    "error" placement)."""
    from planner.pipeline import plan_flow

    scene_path, method, flow_path, config = job
    scene = _load("scene", scene_path)
    key = base_key(scene.name, method, config.robot_name)
    try:
        flow = _load("flow", flow_path)
        planned = plan_flow(flow, scene, planner_config(method, replace(config, base_pose=None)))
        return key, {"base": [float(v) for v in planned.plan.base_pose]}
    except ChordError as e:
        return key, {"base": None, "error": str(e), "cause": planner_failure_stage(str(e))}
    except Exception as e:  # recorded, as a trial's crash is
        return key, {"base": None, "error": f"{type(e).__name__}: {e}", "cause": "error"}


def task_placements(
    out: Path, scenes: list[Path], config: BenchConfig, flows: dict[tuple[str, str], Path], workers: int
) -> dict[str, dict[str, Any]]:
    """{base_key(task, method, robot): placement} (:func:`place_task_base`) for every task and method of the bench,
    read from OUT/bases.json where it is there (a resumed bench keeps its bases), else made (in
    ``workers`` processes) and added to it atomically. Empty with a fixed ``config.base_pose``."""
    if config.base_pose is not None:
        return {}
    path = out / BASES
    have: dict[str, dict[str, Any]] = {}
    if path.is_file():
        doc = read_json_file(path)
        if not isinstance(doc, dict):
            raise ChordError(f"bench: {path} holds no JSON object; choose another --out")
        for key, place in doc.items():  # a base from a file is checked before any trial stands there
            base = place.get("base", "missing") if isinstance(place, dict) else "missing"
            ok = base is None or (
                isinstance(base, list)
                and len(base) == 7
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in base)
                and np.linalg.norm(base[3:]) > 0
            )
            if not ok:
                raise ChordError(
                    f"bench: {path}: {key!r} has base {base!r}, expected null or xyz (m) + quaternion wxyz "
                    "(7 finite numbers); choose another --out, or delete the file to place the bases again"
                )
        have = doc
    jobs = [
        (str(sp), method, str(flows[(scene.name, method)]), config)
        for sp, scene, method in _task_methods(scenes, config)
        if (scene.name, method) in flows and base_key(scene.name, method, config.robot_name) not in have
    ]
    if jobs:
        log.info("bench: placing the robot base for %d task(s)", len(jobs))
        if workers == 1 or len(jobs) == 1:
            made = [place_task_base(j) for j in jobs]
        else:
            made = list(
                run_parallel(
                    place_task_base, jobs, workers, f"placing the bases (kept in {path} once all are placed)"
                )
            )
        have = {**have, **dict(made)}
        write_text_atomic(path, json.dumps(have, indent=2, sort_keys=True) + "\n")
    return have


def _task_methods(scenes: list[Path], config: BenchConfig):
    """(scene.yaml, scene, method) for every task and method the bench runs ("rigid" only on
    articulated tasks), in the bench's order."""
    for sp in scenes:
        scene = _load("scene", str(sp))
        for method in config.methods:
            if method == "rigid" and not _articulated(scene):
                continue
            yield sp, scene, method


def make_trials(
    scenes: list[Path],
    config: BenchConfig,
    flows: dict[tuple[str, str], Path],
    placements: dict[str, dict[str, Any]] | None = None,
) -> list[Trial]:
    """Every trial of the benchmark; ``flows`` maps (task, method) to the planning flow file and
    ``placements`` base_key(task, method, robot) to its base placement (:func:`task_placements`; needed when
    ``config.base_pose`` is None)."""
    trials = []
    for sp, scene, method in _task_methods(scenes, config):
        flow = flows.get((scene.name, method))
        if flow is None:
            raise ChordError(f"bench: no {method} flow for task {scene.name!r}")
        judge = "truth" if scene.reference is not None and scene.reference.truth is not None else "flow"
        for noise in config.flow_noise:
            for i in range(config.trials):
                seed = trial_seed(config.seed, scene.name, i)
                place = None
                if config.base_pose is None:
                    place = (placements or {}).get(base_key(scene.name, method, config.robot_name))
                    if place is None:
                        raise ChordError(f"bench: no base placement for task {scene.name!r} ({method})")
                trials.append(
                    Trial(
                        scene.name,
                        str(sp),
                        method,
                        str(flow),
                        float(noise),
                        i,
                        seed,
                        config,
                        judge,
                        place,
                    )
                )
    return trials


def reusable(record: dict[str, Any] | None, trial: Trial, config: BenchConfig) -> bool:
    """Whether a resumed bench keeps ``record`` (results.jsonl's record under ``trial.key``, None
    if there is none) instead of running ``trial`` again. A record judged otherwise than this trial
    would be (made before the scene had its ground truth, or by an older chord that judged every
    trial by the flow), or planned with grasp trials on where they are off now or the other way
    (records older than the trials had none), or at another robot base, is run again."""
    base = trial.base_pose
    return (
        record is not None
        and record.get("judged_by", "flow") == trial.judged_by
        and record.get("sim_grasp", False) == config.sim_grasp
        # the same arm (records older than robot names: the Panda)
        and record.get("robot", DEFAULT_ROBOT) == config.robot_name
        # planned at another base (records older than base placements name none: the old fixed one)
        and record.get("base_pose", "none recorded") == (None if base is None else list(base))
    )


def run_bench(
    scenes: list[Path],  # scene.yaml files with a reference flow
    out: Path,  # folder for results.jsonl, summary.json, table.txt, success.png
    config: BenchConfig = BenchConfig(),
    flows: dict[tuple[str, str], Path] | None = None,  # (task, method) -> planning flow; default below
) -> list[dict[str, Any]]:
    """Run (or resume) the benchmark; returns every trial record of this configuration.

    Default planning flows: ``ours`` = the scene's reference flow; ``video_flow`` = tracked from
    the reference video (computed once, cached under ``out/video_flow/``).
    Raises ChordError for a scene without a reference flow, and FolderBusyError (core.lock) when
    another process runs a bench in ``out``.
    """
    with run_lock(out, "chord bench", sweep=BENCH_FOLDERS):
        return _run_bench(scenes, Path(out), config, flows)


# OUT and the sub-folders a bench writes: a killed bench's temporary files there are removed.
BENCH_FOLDERS = ("", "video_flow", "tasks", "flows")


def _run_bench(
    scenes: list[Path], out: Path, config: BenchConfig, flows: dict[tuple[str, str], Path] | None
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    flows = dict(flows or {})
    for sp in scenes:
        scene = _load("scene", str(sp))
        if scene.reference is None or scene.reference.flow is None:
            raise ChordError(
                f"{sp}: scene has no reference flow (reference.flow): the bench judges against it"
            )
        flows.setdefault((scene.name, "ours"), scene.reference.flow)
        flows.setdefault((scene.name, "rigid"), flows[(scene.name, "ours")])
        if "video_flow" in config.methods and (scene.name, "video_flow") not in flows:
            from sim.video_flow import cached_video_flow

            flows[(scene.name, "video_flow")] = cached_video_flow(scene, out / "video_flow")
    _check_manifest(out, flows, config)  # before the placements: they are planned from these flows
    workers = config.workers or os.cpu_count() or 1
    trials = make_trials(scenes, config, flows, task_placements(out, scenes, config, flows, workers))
    path = out / RESULTS
    done = {r["key"]: r for r in _read_results(path)}
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in done.values()))
    todo = [t for t in trials if not reusable(done.get(t.key), t, config)]
    log.info(
        "bench: %d trials, %d already in %s, %d to run", len(trials), len(trials) - len(todo), path, len(todo)
    )
    with path.open("a", encoding="utf-8") as fh:

        def keep(rec: dict[str, Any]) -> None:
            done[rec["key"]] = rec
            fh.write(json.dumps(rec) + "\n")
            fh.flush()

        if workers == 1 or len(todo) <= 1:
            for t in tqdm(todo, desc="bench", unit="trial"):
                keep(run_trial(t))
        else:
            what = f"its trials (the finished ones are kept in {path})"
            for rec in tqdm(
                run_parallel(run_trial, todo, workers, what), total=len(todo), desc="bench", unit="trial"
            ):
                keep(rec)
    records = [done[t.key] for t in trials]
    summary = summarise(records)
    write_text_atomic(
        out / "summary.json", json.dumps({"config": asdict(config), "summary": summary}, indent=2) + "\n"
    )
    write_text_atomic(out / "table.txt", format_table(records) + "\n")
    plot(records, out / "success.png")
    return records


def run_parallel(fn: Callable[[Any], Any], items: list, workers: int, what: str) -> Iterator[Any]:
    """``fn(item)`` for every item in ``workers`` spawned processes, results as they finish (in
    any order). The processes are renewed every ``RENEW_EVERY`` items each (a trial's PyBullet and
    torch state does not pile up): the items run in batches of ``workers`` x ``RENEW_EVERY``, each
    in a fresh pool. (ProcessPoolExecutor's own max_tasks_per_child started no new process once
    the first ones had run their share, on Python 3.11: a bench stood still at 40 of 168.) A
    process that dies before its item returns (the kernel's out-of-memory killer, a crash in the
    simulator) raises ChordError naming ``what``: a multiprocessing.Pool replaced the process and
    waited for the lost item forever (a bench stood 7 minutes at 165 of 168 trials).
    """
    ctx = multiprocessing.get_context("spawn")
    n = min(workers, len(items))
    batch = n * RENEW_EVERY
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        with ProcessPoolExecutor(min(n, len(chunk)), mp_context=ctx) as pool:
            futures = [pool.submit(fn, item) for item in chunk]
            try:
                for f in as_completed(futures):
                    yield f.result()
            except BrokenProcessPool as e:
                for f in futures:
                    f.cancel()
                raise ChordError(
                    f"bench: a worker process died while running {what}: killed for memory, or the "
                    "simulator crashed (see the system log); run the same command again to resume"
                ) from e


# Items each worker process runs before it is replaced by a fresh one (run_parallel).
RENEW_EVERY = 20


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95% by default) for a binomial proportion; (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _row(method: str, noise: float) -> str:
    label = {"ours": "ours", "video_flow": "video flow", "rigid": "ours, whole-object rigid"}.get(
        method, method
    )
    return label if noise == 0 else f"{label} (+{1000 * noise:g} mm noise)"


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, method, noise): successes, trials, Wilson 95% CI, mean tracking, failure causes."""
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["task"], r["method"], float(r["flow_noise_m"]))].append(r)
    out = []
    for (task, method, noise), rs in sorted(groups.items()):
        k = sum(bool(r["success"]) for r in rs)
        lo, hi = wilson(k, len(rs))
        track = [r["track_position_mean_m"] for r in rs if r.get("track_position_mean_m") is not None]
        out.append(
            {
                "task": task, "method": method, "flow_noise_m": noise, "row": _row(method, noise),
                "successes": k, "trials": len(rs), "rate": k / len(rs), "ci95": [lo, hi],
                "track_mean_mm": 1000 * float(np.mean(track)) if track else None,
                "causes": dict(Counter(r["cause"] for r in rs if not r["success"])),
                "seeds": [r["seed"] for r in rs],
            }
        )  # fmt: skip
    return out


def _row_labels(rows: list[dict[str, Any]]) -> list[str]:
    """Row labels in the seed's order (video flow, ours), then the ablations; noise levels ascending."""
    order = sorted(rows, key=lambda r: (_ROW_ORDER.get(r["method"], 9), r["flow_noise_m"]))
    return list(dict.fromkeys(r["row"] for r in order))


def format_table(records: list[dict[str, Any]]) -> str:
    """Table 1 of the seed (successes/trials per task, one row per method) and the details."""
    rows = summarise(records)
    tasks = sorted({r["task"] for r in rows})
    labels = _row_labels(rows)
    cell = {(r["row"], r["task"]): r for r in rows}
    w = max([len(x) for x in labels] + [6]) + 2
    lines = ["Method".ljust(w) + "".join(t.ljust(16) for t in tasks)]
    for label in labels:
        line = label.ljust(w)
        for t in tasks:
            r = cell.get((label, t))
            line += (f"{r['successes']}/{r['trials']}" if r else "-").ljust(16)
        lines.append(line)
    lines.append("")
    lines.append(
        f"{'task':<16}{'method':<{w}}{'success':>9}  {'95% CI (Wilson)':<16}{'track mm':>9}  failures by stage"
    )
    for r in rows:
        ci = f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"
        tr = f"{r['track_mean_mm']:.1f}" if r["track_mean_mm"] is not None else "-"
        causes = ", ".join(f"{k}: {v}" for k, v in sorted(r["causes"].items())) or "none"
        lines.append(f"{r['task']:<16}{r['row']:<{w}}{100 * r['rate']:>8.0f}%  {ci:<16}{tr:>9}  {causes}")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    """Success rate per task and method with Wilson 95% intervals, beside mean tracking error (PNG)."""
    import matplotlib.pyplot as plt

    fig = figure(records)
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return path


def figure(records: list[dict[str, Any]]):
    """The matplotlib figure of :func:`plot`: left, grouped success-rate bars with 95% Wilson
    intervals; right, the mean tracking error (mm) of the same groups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarise(records)
    tasks = sorted({r["task"] for r in rows})
    labels = _row_labels(rows)
    cell = {(r["row"], r["task"]): r for r in rows}
    fig, (ax, ax_track) = plt.subplots(
        1, 2, figsize=(min(18.0, 4.0 + 0.6 * len(tasks) * len(labels)), 3.6), dpi=120
    )
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        xs, ys, err, tx, ty = [], [], [[], []], [], []
        for j, t in enumerate(tasks):
            r = cell.get((label, t))
            if r is None:
                continue
            x = j + (i - (len(labels) - 1) / 2) * width
            xs.append(x)
            ys.append(r["rate"])
            # Rounding can put a bound a hair inside the rate; matplotlib rejects negative errors.
            err[0].append(max(0.0, r["rate"] - r["ci95"][0]))
            err[1].append(max(0.0, r["ci95"][1] - r["rate"]))
            if r["track_mean_mm"] is not None:
                tx.append(x)
                ty.append(r["track_mean_mm"])
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=label)
        ax_track.bar(tx, ty, width, label=label)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% Wilson CI)")
    ax_track.set_xticks(range(len(tasks)), tasks)
    ax_track.set_ylabel("mean tracking error (mm)")
    ax_track.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
