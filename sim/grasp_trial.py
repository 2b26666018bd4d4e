"""Choose the grasp by trying it: the simulator as the planner's grasp judge (planner.judge.GraspJudge).

For each reachable candidate the planner hands over (with the timed joint trajectory the plan
would execute), :class:`SimGraspJudge` loads the scene and the arm in a DIRECT PyBullet client
(:class:`sim.world.SimWorld`), settles the objects once, and for each candidate restores that
state and runs the candidate's trajectory from the approach's start: approach, close with the
real grasp force (``SimConfig.finger_force``), then the first ``track_fraction`` of the part's
track (all of it by default: slip that builds up over the track shows only at its end). It measures:

- contact: whether both fingers are on the part when the closing ends, the fraction of the
  following steps they stay on it, and whether they are on it at the trial's end (a push: the
  arm touching the part); and whether the arm hit the table;
- slip: the part's largest drift in the tool frame after the closing (mm and degrees);
- following: the part's motion against its track at the trial's last frame (mm, degrees, and
  the fraction of the track's displacement it made).

A grasp *holds* when both fingers are on the part at the end of the closing and at the trial's
end, the arm never touched the table, the part slipped at most ``EvalConfig.slip_tolerance`` and
``angle_tolerance_deg`` scaled by ``track_fraction`` (slip accumulates along the track: a part
that slips 10 mm in the first half slips about 20 mm over the whole), and it follows its track
within the sim's own pose tolerances. A push holds when the arm touched the part, it followed,
and the arm never touched the table. The score ranks those that hold: minus the fractions of
their tolerances that slip and tracking error use up.

The part is the link of the target object nearest to the track's frame-0 origin (the flow's
part; for a rigid object its base). The trial uses ``SimConfig``'s physics, except that an
object friction it does not state (``object_friction`` None) is bracketed: every candidate is
tried at each of ``GraspTrialConfig.frictions`` (0.5 and 1.0) and holds only if it holds at
all of them (its verdict is its worst trial's). Deterministic: one PyBullet client per call, no
randomness.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ChordError
from core.scene import Scene
from core.transforms import matrix_to_quat, pose_to_matrix, xyzw_to_wxyz
from planner.analysis import FlowAnalysis
from planner.judge import GraspVerdict, TrialCandidate
from planner.robot import Robot
from sim.checks import ConfigError, check_number, check_numbers
from sim.rollout import commands
from sim.rules import EvalConfig
from sim.world import SimConfig, SimWorld

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraspTrialConfig:
    """How a grasp trial runs; units in each comment."""

    # fraction of the track's frames (0, 1] followed in a trial (the trial's last frame is
    # ceil(fraction * (T - 1)), at least frame 1); the slip limits scale with it. The whole track
    # by default: a part turning out of the grasp as a slide drags it along the table showed
    # 4.4 mm / 3.0 deg in the first quarter (within a quarter's 5 mm / 3.75 deg, and within the
    # 2-4 mm a firm grasp settles by on closing) and 41 mm in the end; on a knob, grasps that
    # differed by noise over the first half ended 0.03 and 0.27 rad from the goal. A trial of the
    # whole track costs about a second per candidate and friction.
    track_fraction: float = 1.0
    settle_s: float = 0.25  # s the objects settle once (arm at the first candidate's start) before trials
    # Lateral friction coefficients of the objects a candidate is tried at when the simulator's
    # config does not state one (SimConfig.object_friction None): it must hold at every one.
    # An object's friction is rarely known (URDFs seldom give it; PyBullet's default is 0.5) and
    # it acts twice: the fingers' grip grows with it, and so does the table's drag on a part
    # carried along the table, which can turn the part out of the grasp. 0.5 (smooth plastic,
    # PyBullet's default) and 1.0 (rubbery) bracket common household materials on rubber pads.
    frictions: tuple[float, ...] = (0.5, 1.0)

    def __post_init__(self) -> None:
        """Raises ConfigError (a ChordError) for a value out of range; NaN is never in range."""
        if not self.frictions:
            raise ConfigError(
                "GraspTrialConfig.frictions is empty, expected at least one friction coefficient"
            )
        check_numbers("GraspTrialConfig", "frictions", self.frictions, above=0.0)
        check_number("GraspTrialConfig", "track_fraction", self.track_fraction, above=0.0)
        if not self.track_fraction <= 1.0:
            raise ConfigError(
                f"GraspTrialConfig.track_fraction is {self.track_fraction!r}, expected a fraction in (0, 1] of the track"
            )
        check_number("GraspTrialConfig", "settle_s", self.settle_s, at_least=0.0, unit="s")


@dataclass(frozen=True)
class TrialMeasures:
    """What one trial measured (see the module docstring)."""

    kind: str  # "grasp" or "push"
    part: str  # "object/link" the trial watched
    closed: bool  # grasp: both fingers on the part at the end of the closing; push: the arm touched it
    contact_fraction: float  # of the steps after the closing with both fingers (push: the arm) on the part
    contact_at_end: bool  # both fingers (push: the arm) on the part at the trial's last step
    lost_at_s: float | None  # s from the trajectory's start: contact lost for good (None: kept or never made)
    arm_table: bool  # an arm link (its base excluded) touched the table during the trial
    slip_mm: float  # the part's largest drift in the tool frame after the closing
    slip_deg: float  # likewise, its rotation
    track_mm: float  # the part's motion against its track at the trial's last frame, at the track's origin
    track_deg: float
    followed: (
        float | None
    )  # fraction of the track's displacement (at its origin) the part made; None if < 1 mm
    frames: int  # track frames followed (0..frames)
    sim_s: float  # simulated seconds of the trial
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))))


def trial_frames(num_frames: int, fraction: float) -> int:
    """The last track frame a trial follows: ceil(fraction * (T - 1)), at least 1, at most T - 1."""
    return int(min(max(math.ceil(fraction * (num_frames - 1) - 1e-9), 1), num_frames - 1))


def verdict_of(m: TrialMeasures, config: GraspTrialConfig, eval_config: EvalConfig) -> GraspVerdict:
    """Whether the trial's part held (see the module docstring), its score and a one-line reason."""
    slip_limit = eval_config.slip_tolerance * config.track_fraction
    follows = (
        math.isfinite(m.track_mm)
        and m.track_mm <= 1000 * eval_config.position_tolerance
        and m.track_deg <= eval_config.angle_tolerance_deg
    )
    track_use = (
        m.track_mm / (1000 * eval_config.position_tolerance) + m.track_deg / eval_config.angle_tolerance_deg
    )
    followed = "" if m.followed is None else f", {100 * m.followed:.0f}% of its displacement"
    where = f"over frames 0..{m.frames} of the track: part {m.track_mm:.1f} mm / {m.track_deg:.1f} deg off it{followed}"
    table = "; the arm hit the table" if m.arm_table else ""
    if m.kind == "push":
        holds = bool(m.closed and follows and not m.arm_table)
        score = -track_use
        what = "the arm touched the part" if m.closed else "the arm never touched the part"
        reason = f"push: {what}; {where}{table}"
    else:
        slip_ok = (
            math.isfinite(m.slip_mm)
            and m.slip_mm <= 1000 * slip_limit
            and m.slip_deg <= eval_config.angle_tolerance_deg * config.track_fraction
        )
        holds = bool(m.closed and m.contact_at_end and slip_ok and follows and not m.arm_table)
        score = -(m.slip_mm / (1000 * slip_limit) + m.slip_deg / eval_config.angle_tolerance_deg + track_use)
        if not m.closed:
            grip = "the fingers did not close on the part"
        elif m.lost_at_s is not None:
            grip = f"the fingers lost the part at t = {m.lost_at_s:.2f} s"
        else:
            grip = f"both fingers on it for {100 * m.contact_fraction:.0f}% of the steps after closing"
        reason = (
            f"{grip}; slip {m.slip_mm:.1f} mm / {m.slip_deg:.1f} deg in the tool frame "
            f"(limit {1000 * slip_limit:.0f} mm / {eval_config.angle_tolerance_deg * config.track_fraction:.1f} deg); {where}{table}"
        )
    if not math.isfinite(score):
        score, holds = -math.inf, False
    return GraspVerdict(holds=holds, score=float(score), reason=reason, metrics=m.to_dict())


class SimGraspJudge:
    """The planner's grasp judge (planner.judge.GraspJudge) in PyBullet; see the module docstring."""

    def __init__(
        self,
        sim_config: SimConfig = SimConfig(),
        config: GraspTrialConfig = GraspTrialConfig(),
        eval_config: EvalConfig = EvalConfig(),
    ):
        self.sim_config = sim_config
        self.config = config
        self.eval_config = eval_config

    def accepts(self, scene: Scene) -> bool:
        """True when every scene object has a URDF (the simulator loads those); logs why not."""
        missing = [o.name for o in scene.objects if o.urdf is None]
        if missing:
            log.info("grasp trials off: scene objects %s have no URDF for the simulator", missing)
        return not missing

    def __call__(
        self,
        scene: Scene,
        analysis: FlowAnalysis,
        robot: Robot,
        T_world_base: np.ndarray,  # [4, 4]
        candidates: list[TrialCandidate],
    ) -> list[GraspVerdict]:
        """One verdict per candidate, in order. Raises ChordError for a scene or arm PyBullet cannot load."""
        if not candidates:
            return []
        wall0 = time.perf_counter()
        base = (*T_world_base[:3, 3].tolist(), *matrix_to_quat(T_world_base[:3, :3]).tolist())
        target = analysis.target.object_name
        track = analysis.follow_track()  # the track the plan follows
        # A friction the simulator's config states is known: the trials use it alone.
        known = self.sim_config.object_friction
        frictions = (known,) if known is not None else self.config.frictions
        per: list[list[GraspVerdict]] = [[] for _ in candidates]  # candidate -> verdict per friction
        with SimWorld(scene, self.sim_config, robot.spec, base, robot.joint_names) as world:
            if target not in world.objects:
                raise ChordError(f"grasp trial: the part's object {target!r} is not in the simulated scene")
            link, link_name = part_link(world, target, track[0, :3, 3])
            p, c = world.p, world.client
            initial = p.saveState(physicsClientId=c)
            for mu in frictions:
                p.restoreState(stateId=initial, physicsClientId=c)
                for ob in world.objects.values():
                    for li in range(-1, p.getNumJoints(ob.body, physicsClientId=c)):
                        p.changeDynamics(ob.body, li, lateralFriction=float(mu), physicsClientId=c)
                first = candidates[0]
                world.reset_arm(first.q[0], first.gripper[0])
                world.step(round(self.config.settle_s * self.sim_config.physics_hz))
                settled = p.saveState(physicsClientId=c)
                for i, cand in enumerate(candidates):
                    p.restoreState(stateId=settled, physicsClientId=c)
                    m = run_trial(world, cand, target, link, f"{target}/{link_name}", track, self.config)
                    per[i].append(verdict_of(m, self.config, self.eval_config))
                    log.info("grasp trial %d at friction %.2f: %s", cand.rank, mu, per[i][-1].reason)
        log.info(
            "grasp trials: %d candidates x %d frictions in %.2f s",
            len(candidates), len(frictions), time.perf_counter() - wall0,
        )  # fmt: skip
        return [worst_case(v, frictions) for v in per]


def worst_case(verdicts: list[GraspVerdict], frictions: tuple[float, ...]) -> GraspVerdict:
    """One candidate's verdict over the frictions it was tried at: it holds only if it held at
    every one; its score, reason and metrics are those of its worst trial (the reason names that
    friction), and ``metrics["per_friction"]`` lists each trial's friction, holds and score."""
    k = min(range(len(verdicts)), key=lambda i: (verdicts[i].holds, verdicts[i].score))
    worst = verdicts[k]
    metrics = dict(worst.metrics)
    metrics["friction"] = float(frictions[k])
    metrics["per_friction"] = [
        {"friction": float(mu), "holds": v.holds, "score": v.score}
        for mu, v in zip(frictions, verdicts, strict=True)
    ]
    reason = worst.reason if len(frictions) == 1 else f"at friction {frictions[k]:g}: {worst.reason}"
    return GraspVerdict(all(v.holds for v in verdicts), worst.score, reason, metrics)


def part_link(world: SimWorld, name: str, point: np.ndarray) -> tuple[int, str]:
    """(PyBullet link index, name) of object ``name``'s link nearest to ``point`` [3] (world m);
    -1 and "base" for its base. A link's distance is that of its collision geometry."""
    ob = world.objects[name]
    if not ob.links:
        return -1, "base"
    p, c = world.p, world.client
    shape = p.createCollisionShape(p.GEOM_SPHERE, radius=1e-3, physicsClientId=c)
    probe = p.createMultiBody(0.0, shape, -1, [float(v) for v in point], physicsClientId=c)
    try:
        best = (math.inf, -1, "base")
        for link_name, li in [("base", -1), *ob.links.items()]:
            pts = p.getClosestPoints(ob.body, probe, 1.0, linkIndexA=li, physicsClientId=c)
            d = min((cp[8] for cp in pts), default=math.inf)
            if d < best[0]:
                best = (d, li, link_name)
    finally:
        p.removeBody(probe, physicsClientId=c)
    return best[1], best[2]


def _link_pose(world: SimWorld, name: str, link: int) -> np.ndarray:
    if link < 0:
        return world.object_pose(name)
    s = world.p.getLinkState(
        world.objects[name].body, link, computeForwardKinematics=True, physicsClientId=world.client
    )
    return pose_to_matrix(np.array(s[4]), xyzw_to_wxyz(np.array(s[5])))


def contact_lost_at(contact: np.ndarray, t: np.ndarray) -> float | None:
    """Seconds (``t`` [S]) of the first step after the last in contact (``contact`` [S] bool);
    None if the last step is in contact or none ever was. A push may touch its part only on the
    way in (before the trial's closing time), so the last contact is looked for over every
    step, not only those after the closing."""
    hits = np.flatnonzero(contact)
    if not len(hits) or contact[-1]:
        return None
    return float(t[min(int(hits[-1]) + 1, len(t) - 1)])


def run_trial(
    world: SimWorld,
    cand: TrialCandidate,
    name: str,  # the part's object
    link: int,  # the part's PyBullet link index (-1: base)
    part: str,  # "object/link" for the record
    track: np.ndarray,  # [T, 4, 4] the part's track T_world_part
    config: GraspTrialConfig,
) -> TrialMeasures:
    """Run one candidate's trajectory from its start to the trial's last frame; measure (module docstring).

    The world must hold the settled scene; the arm is reset to the trajectory's first sample.
    """
    p, c, cfg = world.p, world.client, world.config
    kind = cand.candidate.kind
    last = trial_frames(len(track), config.track_fraction)
    t_close = float(cand.phase_times["close"][1])
    t_end = float(cand.frame_times[last])
    steps = int(np.ceil(t_end * cfg.physics_hz)) + 1
    t = np.arange(steps) * cfg.dt
    q_cmd, qd_cmd, w_cmd = commands(cand.t, cand.q, cand.gripper, t)
    world.reset_arm(cand.q[0], cand.gripper[0])
    body = world.objects[name].body
    fingers = world.finger_links[:2]
    contact = np.zeros(steps, bool)
    arm_table = False
    T_tcp = np.empty((steps, 4, 4))
    T_part = np.empty((steps, 4, 4))
    for k in range(steps):
        world.command(q_cmd[k], qd_cmd[k], w_cmd[k])
        world.step()
        if kind == "grasp":
            contact[k] = all(
                p.getContactPoints(
                    bodyA=world.arm, bodyB=body, linkIndexA=f, linkIndexB=link, physicsClientId=c
                )
                for f in fingers
            )
        else:
            contact[k] = bool(
                p.getContactPoints(bodyA=world.arm, bodyB=body, linkIndexB=link, physicsClientId=c)
            )
        arm_table = arm_table or bool(world.contacts(world.arm, world.table))
        T_tcp[k] = world.tcp_pose()
        T_part[k] = _link_pose(world, name, link)
    k_close = min(round(t_close * cfg.physics_hz), steps - 1)
    after = contact[k_close:]
    if kind == "grasp":
        closed = bool(contact[k_close])
    else:  # a push touches the part somewhere from its approach to the trial's end
        closed = bool(contact.any())
    lost_at = contact_lost_at(contact, t) if closed else None
    rel = np.linalg.inv(T_tcp[k_close:]) @ T_part[k_close:]  # [S', 4, 4] part in the tool frame
    slip_mm = 1000 * float(np.linalg.norm(rel[:, :3, 3] - rel[0, :3, 3], axis=1).max())
    slip_deg = max(_angle_deg(rel[0, :3, :3].T @ R) for R in rel[:, :3, :3])
    # The part's motion from the track's first frame against the track's, at the track's origin.
    i0 = min(round(float(cand.frame_times[0]) * cfg.physics_hz), steps - 1)
    M_sim = T_part[-1] @ np.linalg.inv(T_part[i0])
    M_trk = track[last] @ np.linalg.inv(track[0])
    o = np.append(track[0, :3, 3], 1.0)
    d_sim, d_trk = (M_sim @ o)[:3] - o[:3], (M_trk @ o)[:3] - o[:3]
    track_mm = 1000 * float(np.linalg.norm(d_sim - d_trk))
    track_deg = _angle_deg(M_sim[:3, :3] @ M_trk[:3, :3].T)
    followed = float(d_sim @ d_trk / (d_trk @ d_trk)) if np.linalg.norm(d_trk) >= 1e-3 else None
    return TrialMeasures(
        kind=kind,
        part=part,
        closed=closed,
        contact_fraction=float(after.mean()),
        contact_at_end=bool(contact[-1]),
        lost_at_s=lost_at,
        arm_table=arm_table,
        slip_mm=slip_mm,
        slip_deg=slip_deg,
        track_mm=track_mm,
        track_deg=track_deg,
        followed=followed,
        frames=last,
        sim_s=float(t[-1]),
        steps=steps,
    )
