"""The planner: object flow (+ scene) -> grasp, end-effector path, timed joint trajectory (Plan).

Stages: check the flow against the scene; analyse the flow (rigid parts, tracks, joint); choose
a grasp (or a push) that fits, is collision-free and is reachable at every frame; IK along
approach -> follow the part's track with the grasp held rigid (T_world_ee(t) =
T_world_part(t) @ T_part_ee) -> retreat; optimise the joint waypoints; time them with TOPP-RA
under scaled velocity/acceleration limits, with dwells for closing and opening the gripper.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from core.errors import ChordError, ContractError
from core.flow import ObjectFlow
from core.plan import Plan
from core.transforms import matrix_to_quat, pose_to_matrix
from planner.analysis import FlowAnalysis, analyse_flow
from planner.base import (
    BaseRanking,
    BaseSearch,
    BatchKinematics,
    base_positions,
    footprint_clear,
    rank_bases,
    subsample,
)
from planner.config import PlannerConfig as PlannerConfig  # re-exported: callers import it from here
from planner.config import config_dict as config_dict
from planner.config import json_values
from planner.geometry import SceneGeometry, flow_geometry, mesh_geometry, with_urdf
from planner.grasp import (
    GraspCandidate,
    GraspConfig,
    antipodal_candidates,
    describe,
    gripper_collisions,
    part_frame_points,
    push_candidates,
    with_load,
)
from planner.judge import GraspJudge, TrialCandidate, pick
from planner.load import part_load
from planner.robot import Robot
from planner.timing import TimedPath, parameterize
from planner.trajectory import IKPath, ik_path, optimise, tracking_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanResult:
    """The plan, its report, and the intermediate results behind it."""

    plan: Plan
    report: dict[str, Any]
    analysis: FlowAnalysis
    grasp: GraspCandidate
    T_world_ee: np.ndarray  # [K, 4, 4] target TCP poses of all waypoints (approach, follow, retreat)
    phases: dict[str, tuple[int, int]]  # phase -> [start, end) waypoint indices into T_world_ee


def check_flow_matches_scene(flow: ObjectFlow, scene, tolerance: float) -> list[str]:
    """The flow's movable objects per the scene; raises ContractError if flow and scene disagree."""
    missing = [n for n in flow.object_names if n not in scene.object_names]
    if missing:
        raise ContractError(
            "flow meta.object_names",
            f"objects {missing} are not in scene {scene.name!r} (it has {scene.object_names}): "
            "this flow was not made for this scene",
        )
    for name in flow.object_names:
        p0 = flow.object_points(name)[0].astype(float)
        lo, hi = p0.min(0) - tolerance, p0.max(0) + tolerance
        pos = np.asarray(scene.object(name).pose.position)
        if (pos < lo).any() or (pos > hi).any():
            raise ContractError(
                f"scene object {name!r} pose.position",
                f"{pos.round(3).tolist()} m is outside the flow's first-frame box of {name!r} "
                f"{lo.round(3).tolist()}..{hi.round(3).tolist()} (grown by {tolerance} m): "
                "this flow does not match the scene",
            )
    if flow.num_frames != scene.frames:
        log.warning("flow has %d frames, scene says %d", flow.num_frames, scene.frames)
    return [o.name for o in scene.movable_objects if o.name in flow.object_names]


def _offset_z(T: np.ndarray, d: float) -> np.ndarray:
    off = np.eye(4)
    off[2, 3] = d
    return T @ off


def _waypoints(
    T_world_part: np.ndarray, cand: GraspCandidate, config: PlannerConfig
) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """World TCP targets [K, 4, 4] for approach, follow and retreat, and their index ranges."""
    n = config.approach_steps
    grasp0 = T_world_part[0] @ cand.T_part_ee
    app = T_world_part[0, :3, :3] @ cand.approach_dir()  # world direction into the grasp
    approach = []
    for s in np.linspace(0, 1, n + 1):
        T = grasp0.copy()
        T[:3, 3] -= config.grasp.approach_distance * (1 - s) * app
        approach.append(T)
    follow = list(T_world_part[1:] @ cand.T_part_ee)
    last = follow[-1] if follow else grasp0
    retreat = [_offset_z(last, -config.retreat_distance * s) for s in np.linspace(0, 1, n + 1)[1:]]
    T = np.array(approach + follow + retreat)
    a_end = n + 1
    f_end = a_end + len(follow)
    # The follow phase starts at the grasp pose (the last approach waypoint).
    return T, {"approach": (0, a_end), "follow": (a_end - 1, f_end), "retreat": (f_end - 1, len(T))}


def _choose(
    robot: Robot,
    analysis: FlowAnalysis,
    geometry: SceneGeometry,
    table_height: float,
    T_world_base: np.ndarray,
    config: PlannerConfig,
    judge: GraspJudge | None = None,
    scene=None,  # core.scene.Scene, for the judge
) -> tuple[list[GraspCandidate], dict[str, Any]]:
    """The grasps (or pushes) to plan with, best first, that are collision-free and reachable,
    and the search's stats; raises ChordError if none.

    Without a judge: the best by score of the first 3 reachable candidates of the first kind
    ("grasp", then "push") that has any. With one: up to ``config.grasp.sim_candidates``
    reachable candidates of a kind are tried (:func:`_judged_choice`); the best that holds is
    chosen, and if none holds the next kind is tried; if nothing holds, the least bad trial of
    every kind tried (the judge's scores of grasps and pushes are comparable). With a judge the
    list goes on with the other tried candidates in the judge's order (those that hold first),
    for :func:`_plan_at_base` to fall back on when the first fails in later planning; without one
    it holds the one choice. Every trial's numbers go into the stats (``<kind>.sim_trials``).
    """
    T_base_world = np.linalg.inv(T_world_base)
    part = analysis.target
    track = analysis.follow_track()  # the track as the part's joints allow it
    part_traj = geometry.part
    rng, own, other = _search_inputs(geometry, config)
    stats: dict[str, Any] = {}
    first_unreachable: str | None = None
    keep = config.grasp.sim_candidates if judge is not None else _REACHABLE_WITHOUT_JUDGE
    fallbacks: list[tuple[float, list[GraspCandidate]]] = []  # (least bad score, choices) where none held
    for kind in ("grasp", "push"):
        search = _search(kind, analysis, geometry, config, rng)
        reasons = dict(search.pre_rejected)
        free: list[GraspCandidate] = []
        phases: dict[str, tuple[int, int]] = {}
        reachable: list[tuple[float, int, GraspCandidate, float]] = []
        paths: list[tuple[IKPath, dict[str, tuple[int, int]]]] = []  # IK path of each reachable one
        tight: list[
            tuple[tuple[float, int, GraspCandidate, float], tuple[IKPath, dict[str, tuple[int, int]]]]
        ] = []
        n_checked = 0
        checked = search.checked(track, own, other, table_height, config.grasp)
        for cand, why in _reach_first(checked, track[0], T_world_base, 4 * config.grasp.max_reach_checks):
            n_checked += 1
            if why:
                key = why.split(" at frame")[0].split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
                continue
            free.append(cand)
            T_world, phases = _waypoints(track, cand, config)
            T_base = T_base_world @ T_world
            # Cheap screen first: every 4th waypoint (warm starts bridge the gaps), then all.
            coarse = np.unique(np.r_[np.arange(config.approach_steps, len(T_base), 4), 0, len(T_base) - 1])
            screen = ik_path(robot, T_base[coarse], starts=2, rng=rng, anchor=1)
            if (screen.position_error < 1e-3).all() and (screen.rotation_error < 1e-2).all():
                path = ik_path(robot, T_base, starts=3, rng=rng, anchor=config.approach_steps)
            else:  # report the failure at the screened waypoints' true indices
                ep, er = np.zeros(len(T_base)), np.zeros(len(T_base))
                ep[coarse], er[coarse] = screen.position_error, screen.rotation_error
                path = IKPath(screen.q, ep, er, screen.max_jump)
            ok = (path.position_error < 1e-3).all() and (path.rotation_error < 1e-2).all()
            if not ok or path.max_jump > config.optim.max_jump:
                reasons["unreachable"] = reasons.get("unreachable", 0) + 1
                if first_unreachable is None:
                    first_unreachable = _where_unreachable(path, phases, config)
            else:
                clear, where = arm_clearance(robot, path.q, T_world_base, phases, part_traj, other)
                if clear < 0.0:
                    reasons["arm collides"] = reasons.get("arm collides", 0) + 1
                    log.debug("%s: arm %.0f mm into the scene at %s", kind, -1000 * clear, where)
                    continue
                margin = float(robot.limit_margin(path.q).min())
                entry = (cand.score + 0.3 * min(margin, 0.5), len(free) - 1, cand, margin)
                if margin < config.optim.limit_margin:
                    # A path at a joint's limit is one the optimiser must bend off the track to keep
                    # its margin, and a real arm's limit reflex stops: kept only for want of others.
                    reasons["at a joint limit"] = reasons.get("at a joint limit", 0) + 1
                    tight.append((entry, (path, phases)))
                    continue
                reachable.append(entry)
                paths.append((path, phases))
                if len(reachable) >= keep:
                    break
            if len(free) >= config.grasp.max_reach_checks:
                break
        if not reachable and tight:  # only paths at a joint limit: the best of them, as before
            reachable, paths = [e for e, _ in tight[:keep]], [p for _, p in tight[:keep]]
        stats[kind] = {
            "candidates": search.n_generated,
            "collision_checked": n_checked,
            "collision_free_checked": len(free),
            "rejected": reasons,
        }
        if reachable and judge is not None:
            order, held = _judged_choice(
                judge, scene, robot, analysis, T_world_base, reachable, paths, config
            )
            stats[kind].update(held)
            trial_reason = {t["rank"]: t.get("reason", t.get("why_not", "")) for t in held["sim_trials"]}
            choices = []
            for n, i in enumerate(order):
                _, rank, cand, margin = reachable[i]
                reason = describe(cand, rank, len(free), search.n_generated, margin, len(track))
                why = held["sim_choice"] if n == 0 else f"in simulation: {trial_reason[i]}"
                choices.append(replace(cand, reason=f"{reason}; {why}"))
            if held["sim_held"]:
                log.info("chosen %s: %s", kind, choices[0].reason)
                return choices, stats
            score = max((t["score"] for t in held["sim_trials"] if t.get("chosen")), default=-np.inf)
            fallbacks.append((score, choices))
            continue
        if reachable:
            _, rank, cand, margin = max(reachable, key=lambda r: r[0])
            reason = describe(cand, rank, len(free), search.n_generated, margin, len(track))
            chosen = replace(cand, reason=reason)
            log.info("chosen %s: %s", kind, reason)
            return [chosen], stats
    if fallbacks:
        fallbacks.sort(key=lambda f: -f[0])  # stable: the earlier kind on ties
        log.info("chosen without a trial that held: %s", fallbacks[0][1][0].reason)
        return [c for _, choices in fallbacks for c in choices], stats
    n_free = stats["grasp"]["collision_free_checked"] + stats["push"]["collision_free_checked"]
    if n_free and first_unreachable is not None:
        raise ChordError(
            f"unreachable track: none of the {n_free} collision-free grasps/pushes on object "
            f"{part.object_name!r} is reachable at every frame (best candidate: {first_unreachable}); "
            "move the robot base (base_pose) or the object"
        )
    raise ChordError(
        f"no grasp or push fits object {part.object_name!r} (part of {len(part.indices)} points): "
        f"antipodal {stats['grasp']}, push {stats['push']}; gripper max width "
        f"{1000 * config.grasp.hand.max_width:.0f} mm"
    )


def _search_inputs(
    geometry: SceneGeometry, config: PlannerConfig
) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """(rng, own [T, <=2000, 3], other [T, <=3000, 3]): the grasp search's generator and the
    point subsets its collision checks use, drawn the same way for every caller."""
    rng = np.random.default_rng(config.segment.seed)
    # Denoised flow points (or meshes carried by the parts), outliers left out.
    part_traj, other = geometry.part, geometry.other
    # Collision checks on subsets: a few thousand points resolve a gripper finger well enough.
    if other.shape[1] > 3000:
        other = other[:, rng.choice(other.shape[1], 3000, replace=False)]
    own = (
        part_traj
        if part_traj.shape[1] <= 2000
        else part_traj[:, rng.choice(part_traj.shape[1], 2000, replace=False)]
    )
    return rng, own, other


def _search(
    kind: str,
    analysis: FlowAnalysis,
    geometry: SceneGeometry,
    config: PlannerConfig,
    rng: np.random.Generator,
) -> _Search:
    """The target part's ``kind`` ("grasp" or "push") search, made on first use and kept in
    ``geometry.search_cache`` (it does not depend on the base)."""
    search = geometry.search_cache.get(kind)
    if search is None:  # generate, score against the load
        track = analysis.follow_track()  # as _choose: the track as the joints allow it
        pts_part = part_frame_points(track[0], geometry.part[0])
        # The mesh's own normals where the geometry has them (rotated into the part frame).
        normals = None if geometry.part_normals is None else geometry.part_normals @ track[0, :3, :3]
        search = _Search(kind, pts_part, normals, geometry.part, geometry.load, config.grasp, rng)
        geometry.search_cache[kind] = search
    return search


# Score bonus per unit of the approach's outward component from the robot's base: a mild
# preference (like the top-down bonus) for approaches the arm reaches easily, none excluded.
REACH_WEIGHT = 0.3


def _reach_first(checked, T_world_part0: np.ndarray, T_world_base: np.ndarray, pool: int):
    """The (candidate, verdict) pairs of ``checked``: colliding ones as they come, then the first
    ``pool`` collision-free ones re-ranked for this base, then the rest in order.

    The arm reaches easily along the line from its base outwards (and from above); a hand that
    must come back towards the base from beyond the part needs the arm folded round it. Each
    free candidate's score gains ``REACH_WEIGHT`` x the horizontal outward component of its
    approach direction (-1..1).
    """
    free: list[GraspCandidate] = []
    for cand, why in checked:
        if why:
            yield cand, why
            continue
        free.append(cand)
        if len(free) >= pool:
            break

    def key(c: GraspCandidate) -> float:
        app = T_world_part0[:3, :3] @ c.approach_dir()
        out = (T_world_part0 @ c.T_part_ee)[:2, 3] - T_world_base[:2, 3]
        return c.score + REACH_WEIGHT * float(app[:2] @ out) / max(float(np.linalg.norm(out)), 1e-9)

    for cand in sorted(free, key=lambda c: -key(c)):
        yield cand, None
    yield from checked


class _Search:
    """Grasp (or push) candidates of the target part, best first, and their collision verdicts.

    Neither depends on the robot's base, so one search serves every base placement tried:
    verdicts are computed ``batch`` candidates at a time as far as a search goes, and kept.
    """

    def __init__(self, kind, pts_part, normals, part_traj, load, config: GraspConfig, rng, batch: int = 256):
        self.pre_rejected: dict[str, int] = {}
        if kind == "grasp":
            cands = antipodal_candidates(pts_part, config, rng, normals)
            self.n_generated = len(cands)
            cands, weak = with_load(cands, load, config)
            if weak:
                self.pre_rejected["too weak for the load"] = weak
        else:
            cands = push_candidates(pts_part, part_traj, config, rng, normals)
            self.n_generated = len(cands)
        self.cands = cands
        self.verdicts: list[str | None] = []
        self.batch = batch

    def checked(self, track, own, other, table_height: float, config: GraspConfig):
        """(candidate, collision verdict or None) in order (planner.grasp.gripper_collisions)."""
        for k, cand in enumerate(self.cands):
            if k == len(self.verdicts):
                chunk = self.cands[k : k + self.batch]
                self.verdicts += gripper_collisions(chunk, track, own, other, table_height, config)
            yield cand, self.verdicts[k]


# Reachable candidates kept without a judge: the planner's search before grasp trials existed,
# unchanged so that planning without a judge gives the same plans as before.
_REACHABLE_WITHOUT_JUDGE = 3


def _judged_choice(
    judge: GraspJudge,
    scene,  # core.scene.Scene
    robot: Robot,
    analysis: FlowAnalysis,
    T_world_base: np.ndarray,  # [4, 4]
    reachable: list[tuple[float, int, GraspCandidate, float]],  # (score, rank, candidate, margin)
    paths: list[tuple[IKPath, dict[str, tuple[int, int]]]],  # each one's IK path and phases
    config: PlannerConfig,
) -> tuple[list[int], dict[str, Any]]:
    """In which order to plan with the reachable candidates by the judge's trials, and their record.

    Each candidate's IK path is timed as the plan would be (:func:`_time_waypoints`) and handed
    to the judge. The best that holds wins (:func:`planner.judge.pick`); if none holds, the one
    with the best trial score, and the record's ``sim_held`` is False. A candidate whose path
    cannot be timed is not tried (the final plan would fail on it too); if none can be, the
    planner's own best score decides. Returns (indices into ``reachable``, the chosen first,
    then the other tried ones in the judge's order, record with
    ``sim_trials`` (every trial's numbers), ``sim_choice`` (why, in words), ``sim_held`` and
    ``sim_trials_s`` (wall seconds)). Raises ChordError if the judge answers with the wrong
    number of verdicts, or what the judge raises.
    """
    t0 = time.perf_counter()
    track = analysis.follow_track()
    trials: list[TrialCandidate] = []
    untimed: dict[int, str] = {}
    for i, ((score, _, cand, _), (path, phases)) in enumerate(zip(reachable, paths, strict=True)):
        opening, hold = _gripper_widths(cand, config.grasp)
        try:
            timed = _time_waypoints(robot, path.q, phases, opening, hold, config)
        except ChordError as e:
            untimed[i] = str(e)
            continue
        trials.append(
            TrialCandidate(
                rank=i,
                candidate=cand,
                planner_score=float(score),
                t=timed.t,
                q=timed.q,
                gripper=timed.gripper,
                phase_times=timed.phase_times,
                frame_times=_frame_times(timed, config),
                T_world_ee=_waypoints(track, cand, config)[0],
            )
        )
    verdicts = list(judge(scene, analysis, robot, T_world_base, trials)) if trials else []
    if len(verdicts) != len(trials):
        raise ChordError(f"the grasp judge returned {len(verdicts)} verdicts for {len(trials)} candidates")
    best = pick(verdicts)
    held = best is not None
    # The judge's order: those that hold first, then by score (NaN last), earlier on ties.
    ranked = sorted(
        range(len(verdicts)),
        key=lambda k: (
            not verdicts[k].holds,
            -(verdicts[k].score if np.isfinite(verdicts[k].score) else -np.inf),
            k,
        ),
    )
    if best is None and verdicts:  # none held: the least bad trial
        best = ranked[0]
    record: list[dict[str, Any]] = [
        {"rank": i, "planner_score": float(reachable[i][0]), "tried": False, "why_not": why}
        for i, why in untimed.items()
    ]
    for k, (trial, v) in enumerate(zip(trials, verdicts, strict=True)):
        record.append(
            {
                "rank": trial.rank,
                "planner_score": trial.planner_score,
                "tried": True,
                "holds": bool(v.holds),
                "score": float(v.score),
                "reason": v.reason,
                "metrics": json_values(v.metrics),
                "chosen": k == best,
            }
        )
    record.sort(key=lambda r: r["rank"])
    n_held = sum(bool(v.holds) for v in verdicts)
    if best is None:
        index = max(range(len(reachable)), key=lambda i: reachable[i][0])
        why = f"no candidate could be tried in simulation ({untimed[index]}); chosen by the planner's score"
    else:
        index = trials[best].rank
        v = verdicts[best]
        if held:
            why = (
                f"in simulation it held ({v.reason}); best of the {n_held} of {len(trials)} tried "
                f"candidates that held"
            )
        else:
            why = f"in simulation none of the {len(trials)} tried candidates held; the least bad: {v.reason}"
    order = [index] + [trials[k].rank for k in ranked if trials[k].rank != index]
    return order, {
        "sim_trials": record,
        "sim_choice": why,
        "sim_held": held,
        "sim_trials_s": time.perf_counter() - t0,
    }


def _frame_times(timed: _Timed, config: PlannerConfig) -> np.ndarray:
    """[T] seconds from the trajectory's start at which the tool reaches each frame of the track.

    The follow phase's samples locate themselves between waypoints by their path parameter
    (waypoint k of the follow phase is flow frame k); each frame's time is interpolated there.
    """
    seg = timed.follow_path
    local = _grid(seg.duration, config.dt)
    kf = np.interp(timed.follow_s, seg.knots, seg.index.astype(float))
    frames = np.arange(int(seg.index[-1]) + 1, dtype=float)
    return timed.phase_times["follow"][0] + np.interp(frames, kf, local)


def _frame_of_waypoints(phases: dict[str, tuple[int, int]], K: int) -> np.ndarray:
    """Flow frame [K] whose scene each waypoint meets: 0 on approach, t on the track, last after."""
    f0, f1 = phases["follow"]
    frames = np.zeros(K, int)
    frames[f0:f1] = np.arange(f1 - f0)
    frames[f1:] = f1 - f0 - 1
    return frames


def arm_clearance(
    robot: Robot,
    q: np.ndarray,  # [K, J] joint waypoints
    T_world_base: np.ndarray,  # [4, 4]
    phases: dict[str, tuple[int, int]],
    part_traj: np.ndarray,  # [T, n, 3] world, the manipulated part
    other: np.ndarray,  # [T, m, 3] world, the rest of the scene
    gripper_zone: float = 0.12,  # metres: spheres this close to the TCP are the gripper's (boxes)
) -> tuple[float, str]:
    """Smallest distance (m) from the arm's body spheres to scene points, minus their radius.

    Negative means the arm's body passes through a part of the scene; the second value says
    at which waypoint and flow frame. Spheres near the TCP are skipped: the gripper boxes check
    that region.
    """
    frames = _frame_of_waypoints(phases, len(q))
    pts = np.concatenate([part_traj, other], axis=1)
    if pts.shape[1] > 4000:
        pts = pts[:, np.random.default_rng(0).choice(pts.shape[1], 4000, replace=False)]
    trees: dict[int, cKDTree] = {}
    worst, where = np.inf, ""
    for k in range(len(q)):
        f = int(frames[k])
        if f not in trees:
            trees[f] = cKDTree(pts[f])
        c = robot.body_spheres(q[k]) @ T_world_base[:3, :3].T + T_world_base[:3, 3]
        tcp = T_world_base @ robot.fk(q[k])
        c = c[np.linalg.norm(c - tcp[:3, 3], axis=1) > gripper_zone]
        if not len(c):
            continue
        d = float(trees[f].query(c)[0].min()) - robot.body_radius
        if d < worst:
            worst, where = d, f"waypoint {k} (flow frame {f})"
    return worst, where


def _where_unreachable(path, phases: dict[str, tuple[int, int]], config: PlannerConfig) -> str:
    """Which waypoint of an IK path fails first, named by phase and flow frame."""
    bad = (path.position_error >= 1e-3) | (path.rotation_error >= 1e-2)
    if not bad.any():
        return f"joint jump of {path.max_jump:.2f} rad between waypoints (a branch flip)"
    f0, f1 = phases["follow"]
    k = int(np.flatnonzero(bad)[0])
    if bad[f0:f1].any():
        k_follow = int(np.flatnonzero(bad[f0:f1])[0])
        return f"frame {k_follow} of the part's track, {1000 * path.position_error[f0 + k_follow]:.0f} mm off"
    where = "approach" if k < f0 else "retreat" if k >= f1 else "grasp"
    err = path.position_error[k]
    return f"{where} waypoint {k}, {'not solved' if not np.isfinite(err) else f'{1000 * err:.0f} mm off'}"


def _grid(duration: float, dt: float) -> np.ndarray:
    """Sample times [0, dt, ..., duration]: the end is kept, a sample closer than dt/2 to it is not."""
    t = np.arange(0.0, duration, dt)
    t = t[t < duration - 0.5 * dt]
    return np.r_[t, duration]


def _interp_pose(Ta: np.ndarray, Tb: np.ndarray, u: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (1 - u) * Ta[:3, 3] + u * Tb[:3, 3]
    rel = Rotation.from_matrix(Ta[:3, :3].T @ Tb[:3, :3]).as_rotvec()
    T[:3, :3] = Ta[:3, :3] @ Rotation.from_rotvec(u * rel).as_matrix()
    return T


def for_robot(config: PlannerConfig, robot: Robot) -> PlannerConfig:
    """``config`` with the gripper filled in from ``robot``'s entry where it is None (GraspConfig.gripper).

    Raises ChordError when ``robot`` is not the arm ``config.robot`` names (a Robot built for
    another arm was passed with this config).
    """
    if robot.spec.name != config.robot.spec().name:
        raise ChordError(
            f"plan_flow: the robot given is {robot.spec.name!r}, the config names {config.robot.name!r}"
        )
    if config.grasp.gripper is None:
        config = replace(config, grasp=replace(config.grasp, gripper=robot.gripper))
    return config


def plan_flow(
    flow: ObjectFlow,
    scene=None,  # core.scene.Scene or None
    config: PlannerConfig = PlannerConfig(),
    robot: Robot | None = None,
    judge: GraspJudge | None = None,
) -> PlanResult:
    """Plan a grasp-and-follow (or push-and-follow) trajectory for the flow's moving part.

    ``judge`` (planner.judge.GraspJudge, e.g. sim.grasp_trial.SimGraspJudge; used only with a
    scene) tries the reachable candidates before one is chosen; None keeps the choice by the
    planner's score alone. The report's ``grasp.search`` records every trial.

    Grasps and collisions use the surfaces ``config.geometry`` names ("auto": the scene's meshes
    carried by the flow's parts when a scene is given, the flow's own points when not); the
    report's ``grasp.geometry`` says which were used. Raises ChordError (with the values
    involved) for: a flow that does not match the scene, "mesh" geometry without a scene, a flow
    with no motion, no grasp or push that fits, an unreachable track, or a trajectory that
    cannot be timed.
    """
    t_start = time.perf_counter()
    robot = Robot(config.robot) if robot is None else robot
    config = for_robot(config, robot)
    table_height = 0.0
    movable: list[str] | None = None
    if scene is not None:
        movable = check_flow_matches_scene(flow, scene, config.scene_tolerance)
        table_height = float(scene.table_height)
    if config.target_object:
        if config.target_object not in flow.object_names:
            raise ChordError(
                f"target_object: {config.target_object!r} is not in the flow {list(flow.object_names)}"
            )
        movable = [config.target_object]
    if movable is not None and not movable:
        raise ChordError(f"no movable object of the scene is in the flow {list(flow.object_names)}")
    surfaces = config.geometry_for(scene is not None)  # "auto" resolved; raises for mesh without scene
    if judge is not None and (scene is None or not judge.accepts(scene)):
        log.info("grasps are chosen without trials: the grasp judge cannot try them without this scene")
        judge = None

    analysis = analyse_flow(flow, config.segment, objects=movable)
    if analysis.nonrigid:
        log.warning(
            "target part residual %.1f mm: its motion is not rigid; the grasp follows the best rigid fit",
            1000 * analysis.target.track.residual_max_rms,
        )
    geometry = mesh_geometry(analysis, scene) if surfaces == "mesh" else flow_geometry(analysis)
    geometry = with_part_load(geometry, analysis, scene, flow.fps, config)
    t_analysis = time.perf_counter()
    if config.base_pose is not None:
        base = np.asarray(config.base_pose, dtype=float)  # checked by PlannerConfig
        return _plan_at_base(
            flow, scene, analysis, geometry, robot, base, table_height, config, t_start, t_analysis, judge
        )
    ranking = _ranked_bases(flow, analysis, geometry, robot, table_height, config, judge)
    tries = ranking.bases[: BASE_SEARCH.attempts]
    failed: list[str] = []
    pushed: PlanResult | None = None  # a push planned where the screen had a grasp reach
    for n, base in enumerate(tries):
        if pushed is not None and not ranking.preferred[n]:
            continue  # the push stands unless a later placement may grasp
        summary = {
            **ranking.summary,
            "chosen_rank": n,
            "chosen_why": ranking.why[n],
            "failed_before": failed[:],
        }
        try:
            result = _plan_at_base(
                flow, scene, analysis, geometry, robot, base, table_height, config, t_start, t_analysis, judge,
                base_search=summary,
            )  # fmt: skip
        except ChordError as e:
            log.info("base at %s: %s", np.round(base[:3], 2).tolist(), e)
            failed.append(f"base {np.round(base[:3], 2).tolist()}: {e}")
            continue
        # As at one base (_choose: grasps, then pushes), across the placements: a push planned
        # because no grasp reached in planning, where the screen had one reach, gives the next such
        # placements their chance to grasp. A push stands where the grasp judge chose it over grasps
        # it tried, or saw it hold in simulation.
        searched = result.report["grasp"]["search"]
        judged = "sim_trials" in searched.get("grasp", {}) or searched.get("push", {}).get("sim_held", False)
        if result.grasp.kind == "grasp" or not ranking.preferred[n] or judged:
            return result
        if pushed is None:
            pushed = result
        failed.append(f"base {np.round(base[:3], 2).tolist()}: planned a push, no grasp reached in planning")
    if pushed is not None:
        return pushed
    first = failed[0] if failed else "none was tried"
    raise ChordError(
        f"{first} (tried the best {len(tries)} of {ranking.summary['placements_clear']} clear base placements "
        f"searched round the part; {ranking.summary['placements_reaching']} reached a candidate's track in the "
        "screen)"
    )


# The automatic base placement's search (planner.base; docs/planner.md "The robot base").
BASE_SEARCH = BaseSearch()


def _ranked_bases(
    flow: ObjectFlow,
    analysis: FlowAnalysis,
    geometry: SceneGeometry,
    robot: Robot,
    table_height: float,
    config: PlannerConfig,
    judge: GraspJudge | None = None,
    search: BaseSearch | None = None,  # None: BASE_SEARCH with the robot's placements (BaseSearch.for_robot)
) -> BaseRanking:
    """The clear base placements round the moving part, best first, by how the best collision-free
    grasp (or push) candidates reach their whole track from each (planner.base.rank_bases).

    The candidates are the first ``search.candidates`` collision-free grasps in the grasp search's
    order (pushes fill up when fewer grasps are free); their world waypoints need no base. Raises
    ChordError if every placement stands in an object's footprint.
    """
    t0 = time.perf_counter()
    search = BASE_SEARCH.for_robot(robot.spec) if search is None else search
    track = analysis.follow_track()  # the waypoints _choose will plan
    rng, own, other = _search_inputs(geometry, config)
    cands: list[GraspCandidate] = []
    for kind in ("grasp", "push"):
        if len(cands) >= search.candidates:
            break
        for cand, why in _search(kind, analysis, geometry, config, rng).checked(
            track, own, other, table_height, config.grasp
        ):
            if len(cands) >= search.candidates:
                break
            if why is None:
                cands.append(cand)
    t_cands = time.perf_counter() - t0  # the collision checks: kept for _choose at every base
    centre = geometry.part.reshape(-1, 3).mean(0)  # the work: the part over its whole track
    bases = base_positions(centre, table_height, search)
    objects = [flow.object_points(n).astype(np.float64) for n in flow.object_names]
    clear = footprint_clear(bases, objects, table_height, search)
    if not clear.any():
        raise ChordError(
            f"no automatic robot base placement is free of the scene round the moving part ({len(bases)} searched "
            f"at {list(search.distances)} m); give base_pose"
        )
    waypoints = []
    for cand in cands:
        T, phases = _waypoints(track, cand, config)
        waypoints.append(T[subsample(phases, len(T), search.waypoints)])
    # The arm's body must clear the scene at the start (the static scene: what the track does not
    # carry); 4,000 points resolve the 6 cm body spheres.
    obstacles = geometry.other[0]
    if len(obstacles) > 4000:
        obstacles = obstacles[np.random.default_rng(0).choice(len(obstacles), 4000, replace=False)]
    enough = config.grasp.sim_candidates if judge is not None else _REACHABLE_WITHOUT_JUDGE
    ranking = rank_bases(
        BatchKinematics(robot),
        waypoints,
        [c.score for c in cands],
        bases[clear],
        table_height,
        search,
        obstacles=obstacles,
        enough=enough,
        preferred=np.array([c.kind == "grasp" for c in cands], bool),
    )
    ranking.summary.update(
        placements_searched=len(bases),
        placements_clear=int(clear.sum()),
        candidate_kinds=sorted({c.kind for c in cands}),
        search_s=time.perf_counter() - t0,
        candidates_s=t_cands,
    )
    log.info("base search: %s", {k: v for k, v in ranking.summary.items()})
    return ranking


def with_part_load(
    geometry: SceneGeometry, analysis: FlowAnalysis, scene, fps: float, config: PlannerConfig
) -> SceneGeometry:
    """``geometry`` with the target part's load (planner.load.part_load): its mass from the
    object's URDF when the scene names one (else ``config.grasp.density`` x its volume) and its
    joint's friction and damping. Raises ChordError for an unreadable URDF."""
    geometry = with_urdf(geometry, analysis, scene)
    track = analysis.follow_track()
    T_obj = None
    if scene is not None and analysis.target.object_name in scene.object_names:
        T_obj = scene.object(analysis.target.object_name).pose.matrix()
    load = part_load(
        track,
        part_frame_points(track[0], geometry.part[0]),
        fps,
        config.grasp.density,
        joint=analysis.joint,
        urdf=geometry.urdf,
        T_world_object=T_obj,
        volume=geometry.part_volume,
    )
    log.info("part load: %s", load.summary())
    return replace(geometry, load=load)


def _plan_at_base(
    flow: ObjectFlow,
    scene,
    analysis: FlowAnalysis,
    geometry: SceneGeometry,
    robot: Robot,
    base: np.ndarray,  # [7] T_world_base xyz + wxyz
    table_height: float,
    config: PlannerConfig,
    t_start: float,
    t_analysis: float,
    judge: GraspJudge | None = None,
    base_search: dict[str, Any] | None = None,
) -> PlanResult:
    """The planner after flow analysis, for one robot base placement.

    ``base_search``: what the automatic placement's search found (the report's ``base_search``);
    None for a given base.

    Grasp choice, IK along the waypoints, joint optimisation and its checks, timing, report:
    one function each, below. Raises ChordError from any of them.
    """
    T_world_base = pose_to_matrix(base[:3], base[3:])
    T_base_world = np.linalg.inv(T_world_base)
    choices, grasp_stats = _choose(
        robot, analysis, geometry, table_height, T_world_base, config, judge, scene
    )
    t_grasp = time.perf_counter()
    table_z = float((T_base_world @ np.array([0, 0, table_height, 1.0]))[2])
    # With a judge, a choice whose optimised path fails its checks or its timing (which the
    # trials, run on the IK path, cannot see) gives way to the next in the judge's order.
    failed: list[str] = []
    for n, cand in enumerate(choices):
        try:
            T_world, T_base, phases, path = _waypoint_ik(robot, analysis, cand, T_base_world, config)
            q_wp = _optimise_waypoints(robot, path, T_base, phases, geometry, T_base_world, table_z, config)
            clearance, ep, er = _check_waypoints(robot, q_wp, T_base, T_world_base, phases, geometry, config)
            t_opt = time.perf_counter()
            opening, hold = _gripper_widths(cand, config.grasp)
            timed = _time_waypoints(robot, q_wp, phases, opening, hold, config)
            break
        except ChordError as e:
            if n == len(choices) - 1:
                raise
            log.info("choice %d failed in planning (%s); trying the next", n + 1, e)
            failed.append(str(e))
    if failed:
        grasp_stats["failed_in_planning"] = failed
        cand = replace(
            cand,
            reason=f"{cand.reason}; planned with it after {len(failed)} better-judged candidate(s) failed "
            f"in planning (first: {failed[0]})",
        )
    ee = _ee_poses(robot, timed.q)
    t_time = time.perf_counter()

    report = _report(
        robot=robot,
        analysis=analysis,
        cand=cand,
        grasp_stats=grasp_stats,
        geometry=geometry,
        opening=opening,
        hold=hold,
        T_base=T_base,
        phases=phases,
        ep=ep,
        er=er,
        timed=timed,
        ee=ee,
        table_z=table_z,
        clearance=clearance,
        base=base,
        config=config,
        stamps=(t_start, t_analysis, t_grasp, t_opt, t_time),
        base_search=base_search,
    )
    plan = Plan(
        t=timed.t.astype(np.float64),
        q=np.ascontiguousarray(timed.q, dtype=np.float64),
        gripper=timed.gripper.astype(np.float64),
        ee_pose=ee,
        robot=robot.name,
        joint_names=robot.joint_names,
        base_pose=tuple(base.tolist()),
        task=(scene.prompt if scene is not None else flow.prompt) or "follow the flow",
        flow_sha256=flow.content_hash(),
        report=json_values(report),
    )
    log.info(
        "plan: %s, %d samples over %.2f s, tracking %.2f mm max, planned in %.2f s",
        cand.kind,
        len(timed.t),
        timed.t[-1],
        report["tracking"]["sampled_position_max_mm"],
        report["planning_time_s"],
    )
    return PlanResult(plan, plan.report, analysis, cand, T_world, phases)


def _waypoint_ik(
    robot: Robot,
    analysis: FlowAnalysis,
    cand: GraspCandidate,
    T_base_world: np.ndarray,  # [4, 4] world -> robot base
    config: PlannerConfig,
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int]], IKPath]:
    """The grasp's TCP waypoints and warm-started IK along them (the starting joint path).

    Returns T_world [K, 4, 4] (world TCP targets: approach, the part's track carrying the grasp,
    retreat), the same in the base frame T_base [K, 4, 4], the phases' waypoint ranges, and the
    IK path (best of 3 start postures at the grasp waypoint). Never raises: the optimiser and
    :func:`_check_waypoints` judge the result.
    """
    track = analysis.follow_track()
    T_world, phases = _waypoints(track, cand, config)
    T_base = T_base_world @ T_world
    path = ik_path(robot, T_base, starts=3, anchor=config.approach_steps)
    return T_world, T_base, phases, path


def _optimise_waypoints(
    robot: Robot,
    path: IKPath,
    T_base: np.ndarray,  # [K, 4, 4] TCP targets, base frame
    phases: dict[str, tuple[int, int]],
    geometry: SceneGeometry,
    T_base_world: np.ndarray,  # [4, 4]
    table_z: float,  # metres: the table top's height in the base frame
    config: PlannerConfig,
) -> np.ndarray:
    """Joint waypoints [K, J] (rad) from the IK path, optimised together (planner.trajectory).

    The part's track weighs 3x the approach and retreat; the static scene (surface points that
    stay within 5 mm of their first position, at most 4,000) is the optimiser's obstacle set.
    """
    w = np.ones(len(T_base))
    w[phases["follow"][0] : phases["follow"][1]] = 3.0  # the part's track matters most
    other = geometry.other
    # The static scene (points that stay put) as obstacles for the optimiser, base frame.
    still = np.linalg.norm(other - other[:1], axis=-1).max(0) < 0.005 if other.shape[1] else np.zeros(0, bool)
    static = other[0, still]
    if len(static) > 4000:
        static = static[np.random.default_rng(0).choice(len(static), 4000, replace=False)]
    static_base = static @ T_base_world[:3, :3].T + T_base_world[:3, 3]
    return optimise(robot, path.q, T_base, table_z, config.optim, w, obstacles=static_base)


def _check_waypoints(
    robot: Robot,
    q_wp: np.ndarray,  # [K, J] optimised joint waypoints
    T_base: np.ndarray,  # [K, 4, 4] TCP targets, base frame
    T_world_base: np.ndarray,  # [4, 4]
    phases: dict[str, tuple[int, int]],
    geometry: SceneGeometry,
    config: PlannerConfig,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The optimised waypoints against every scene point and the part's track.

    Returns the arm's smallest clearance to the scene (m), and the TCP position [K] (m) and
    rotation [K] (rad) errors at every waypoint. Raises ChordError if the arm's body passes
    through scene points, or if the track is missed by more than ``max_track_error`` /
    ``max_track_rotation_deg``.
    """
    clearance, where = arm_clearance(robot, q_wp, T_world_base, phases, geometry.part, geometry.other)
    if clearance < 0.0:
        raise ChordError(
            f"arm collides with the scene: its body passes {1000 * -clearance:.0f} mm into scene points "
            f"at {where}; move the robot base (base_pose) or the objects"
        )
    ep, er = tracking_errors(robot, q_wp, T_base)
    f0, f1 = phases["follow"]
    worst = f0 + int(np.argmax(ep[f0:f1]))
    if ep[worst] > config.max_track_error or np.degrees(er[f0:f1].max()) > config.max_track_rotation_deg:
        raise ChordError(
            f"unreachable track: the arm reaches frame {worst - f0} of the part's track only within "
            f"{1000 * ep[worst]:.1f} mm / {np.degrees(er[f0:f1].max()):.1f} deg (limits "
            f"{1000 * config.max_track_error:.1f} mm / {config.max_track_rotation_deg} deg); move the "
            "robot base (base_pose) or the object"
        )
    return clearance, ep, er


def _gripper_widths(cand: GraspCandidate, g: GraspConfig) -> tuple[float, float]:
    """(opening, hold) widths in metres: open on approach and retreat, commanded while holding.

    A grasp opens to its width plus the clearance (at most the gripper's widest) and squeezes
    below its width while holding; a push keeps the fingers closed (0, 0).
    """
    if cand.kind == "grasp":
        return min(g.hand.max_width, cand.width + g.open_clearance), max(0.0, cand.width - g.squeeze)
    return 0.0, 0.0


@dataclass(frozen=True)
class _Timed:
    """The timed trajectory of one plan, sampled every ``config.dt``."""

    t: np.ndarray  # [M] seconds from 0
    q: np.ndarray  # [M, J] rad
    gripper: np.ndarray  # [M] metres, commanded finger opening
    phase_times: dict[str, tuple[float, float]]  # phase -> (start, end) seconds
    follow_s: np.ndarray  # [F] path parameter of the follow phase's samples
    follow_path: TimedPath  # the follow phase's time law and spline
    v_max: np.ndarray  # [J] rad/s: the scaled velocity limits used
    a_max: np.ndarray  # [J] rad/s^2: the scaled acceleration limits used


def _cartesian_peak(robot: Robot, seg: TimedPath, dt: float) -> float:
    """m/s: the fastest origin among the robot's clearance frames and its TCP along ``seg``,
    sampled every ``dt`` seconds (finite differences, as chord real's pre-flight measures it)."""
    t = _grid(seg.duration, dt)
    if len(t) < 2:
        return 0.0
    _, q = seg.sample(t)
    ids = [*robot.clearance_ids, robot.tcp_id]
    p = np.stack([robot.fk_frames(qi, ids) for qi in q])  # [M, F, 3]
    return float((np.linalg.norm(np.diff(p, axis=0), axis=-1) / np.diff(t)[:, None]).max())


def _jerk_peak(robot: Robot, seg: TimedPath, dt: float, scale: float) -> float:
    """The largest |d3q/dt3| along ``seg`` as a fraction of ``scale`` x the robot's jerk limits,
    sampled every ``dt`` seconds by finite differences (as chord real's pre-flight measures it),
    with the arm at rest before and after (each timed phase starts and ends at rest)."""
    t = _grid(seg.duration, dt)
    if len(t) < 2:
        return 0.0
    _, q = seg.sample(t)
    q = np.concatenate([np.repeat(q[:1], 3, 0), q, np.repeat(q[-1:], 3, 0)])
    tt = np.concatenate([t[0] - dt * np.arange(3, 0, -1), t, t[-1] + dt * np.arange(1, 4)])
    for _ in range(3):
        q = np.diff(q, axis=0) / np.diff(tt)[:, None]
        tt = 0.5 * (tt[1:] + tt[:-1])
    return float((np.abs(q) / (scale * robot.jerk_limits)).max())


def _time_waypoints(
    robot: Robot,
    q_wp: np.ndarray,  # [K, J] joint waypoints
    phases: dict[str, tuple[int, int]],
    opening: float,  # metres, gripper width on approach and retreat
    hold: float,  # metres, gripper width while following
    config: PlannerConfig,
) -> _Timed:
    """Time the waypoints: TOPP-RA on approach, follow and retreat, gripper dwells between.

    Velocity and acceleration limits are the robot's scaled by ``velocity_scale`` /
    ``accel_scale``; a phase is then slowed uniformly until its tool and links keep under
    ``cartesian_speed_max`` and its joints under ``accel_scale`` x the robot's jerk limits. The
    gripper closes and opens in ``gripper_time`` with the arm still.
    Raises ChordError if the whole plan takes longer than ``max_duration``.
    """
    v_max = config.velocity_scale * robot.velocity_limits
    a_max = config.accel_scale * robot.accel_limits
    f0, f1 = phases["follow"]
    segments: list[tuple[str, Any]] = [
        ("approach", parameterize(q_wp[phases["approach"][0] : phases["approach"][1]], v_max, a_max)),
        ("close", (opening, hold)),
        ("follow", parameterize(q_wp[f0:f1], v_max, a_max)),
        ("open", (hold, opening)),
        ("retreat", parameterize(q_wp[phases["retreat"][0] : phases["retreat"][1]], v_max, a_max)),
    ]
    # The joint limits bound joint speeds only: far from the base a link or the tool can still
    # move faster than the Cartesian cap. Uniform slowing scales every speed by 1/k, so a segment
    # over the cap is stretched by its peak / cap (1% margin for the sampling).
    for i, (name, seg) in enumerate(segments):
        if isinstance(seg, TimedPath):
            peak = _cartesian_peak(robot, seg, config.dt)
            if peak > config.cartesian_speed_max:
                k = 1.01 * peak / config.cartesian_speed_max
                log.debug("timing: %s slowed %.3fx (a link at %.3f m/s)", name, k, peak)
                seg = replace(seg, stretch=seg.stretch * k)
                segments[i] = (name, seg)
            # TOPP-RA's path acceleration is piecewise constant: its steps are the jerk. Slowing by
            # k scales a smooth motion's jerk by 1/k^3 and a step's (over a sample) by 1/k^2, so a
            # phase over the limit is stretched by the square root of its excess until it is under.
            for _ in range(4):
                excess = _jerk_peak(robot, seg, config.dt, config.accel_scale)
                if excess <= 1.0:
                    break
                k = 1.01 * float(np.sqrt(excess))
                log.debug("timing: %s slowed %.3fx (jerk %.2f x the limit)", name, k, excess)
                seg = replace(seg, stretch=seg.stretch * k)
                segments[i] = (name, seg)
    ts, qs, gs, phase_times = [], [], [], {}
    t0 = 0.0
    q_last = q_wp[0]
    follow_s: tuple[np.ndarray, TimedPath] | None = None
    for name, seg in segments:
        if isinstance(seg, TimedPath):
            local = _grid(seg.duration, config.dt)
            s, q = seg.sample(local)
            width = {"approach": opening, "follow": hold, "retreat": opening}[name]
            grip = np.full(len(local), width)
            if name == "follow":
                follow_s = (s, seg)
        else:
            local = _grid(config.gripper_time, config.dt)
            q = np.broadcast_to(q_last, (len(local), robot.dof))
            grip = np.interp(local, [0.0, config.gripper_time], list(seg))
        start = 1 if ts else 0  # segments share their boundary sample
        ts.append(t0 + local[start:])
        qs.append(q[start:])
        gs.append(grip[start:])
        phase_times[name] = (t0, t0 + float(local[-1]))
        t0 += float(local[-1])
        q_last = q[-1]
    if t0 > config.max_duration:
        raise ChordError(
            f"unusable joint path: timing it under the limits takes {t0:.0f} s (max_duration "
            f"{config.max_duration:.0f} s); it passes near a singularity or a joint limit"
        )
    assert follow_s is not None
    return _Timed(
        t=np.concatenate(ts),
        q=np.concatenate(qs),
        gripper=np.concatenate(gs),
        phase_times=phase_times,
        follow_s=follow_s[0],
        follow_path=follow_s[1],
        v_max=v_max,
        a_max=a_max,
    )


def _ee_poses(robot: Robot, q: np.ndarray) -> np.ndarray:
    """TCP poses [M, 7] in the base frame (xyz m + wxyz) of the joint samples q [M, J]."""
    ee = np.empty((len(q), 7))
    for i, qi in enumerate(q):
        T = robot.fk(qi)
        ee[i, :3] = T[:3, 3]
        ee[i, 3:] = matrix_to_quat(T[:3, :3])
    return ee


def _sampled_tracking(
    robot: Robot,
    timed: _Timed,
    T_base: np.ndarray,  # [K, 4, 4] TCP targets, base frame
    phases: dict[str, tuple[int, int]],
) -> tuple[list[float], list[float]]:
    """TCP position (m) and rotation (rad) errors at every follow sample, between the waypoints.

    Each sample's path parameter locates it between two waypoints of the part's track; its
    target is the pose interpolated there (linear position, geodesic rotation).
    """
    f0, f1 = phases["follow"]
    s_f, seg_f = timed.follow_s, timed.follow_path
    kf = np.interp(s_f, seg_f.knots, seg_f.index.astype(float))
    samp_ep, samp_er = [], []
    for s_val, k in zip(s_f, kf, strict=True):
        a = int(np.floor(min(k, f1 - f0 - 1 - 1e-9)))
        target = _interp_pose(T_base[f0 + a], T_base[f0 + min(a + 1, f1 - f0 - 1)], k - a)
        T = robot.fk(np.asarray(seg_f.spline(np.array([s_val])))[0])
        samp_ep.append(np.linalg.norm(T[:3, 3] - target[:3, 3]))
        samp_er.append(Rotation.from_matrix(target[:3, :3].T @ T[:3, :3]).magnitude())
    return samp_ep, samp_er


def _report(
    *,
    robot: Robot,
    analysis: FlowAnalysis,
    cand: GraspCandidate,
    grasp_stats: dict[str, Any],  # candidate counts and rejection reasons from _choose
    geometry: SceneGeometry,
    opening: float,  # metres
    hold: float,  # metres
    T_base: np.ndarray,  # [K, 4, 4] TCP targets, base frame
    phases: dict[str, tuple[int, int]],
    ep: np.ndarray,  # [K] metres, TCP position error at each waypoint
    er: np.ndarray,  # [K] rad, TCP rotation error at each waypoint
    timed: _Timed,
    ee: np.ndarray,  # [M, 7] TCP poses of the samples
    table_z: float,  # metres, table top in the base frame
    clearance: float,  # metres, the arm's smallest clearance to the scene
    base: np.ndarray,  # [7] T_world_base xyz + wxyz
    config: PlannerConfig,
    stamps: tuple[float, float, float, float, float],  # perf_counter at start, analysis, grasp, opt, timing
    base_search: dict[str, Any] | None = None,  # the automatic placement's search, None for a given base
) -> dict[str, Any]:
    """The plan's report (``plan.report``, docs/planner.md "The report"): what was chosen, how well
    the timed trajectory tracks the part, its margins, limits and timings."""
    t_start, t_analysis, t_grasp, t_opt, t_time = stamps
    f0, f1 = phases["follow"]
    samp_ep, samp_er = _sampled_tracking(robot, timed, T_base, phases)
    t_all, q_all = timed.t, timed.q
    dt_all = np.diff(t_all)
    qd = np.diff(q_all, axis=0) / dt_all[:, None]
    qdd = np.diff(qd, axis=0) / (0.5 * (dt_all[1:] + dt_all[:-1]))[:, None]
    # jerk as chord real's pre-flight takes it: each derivative at the midpoints of the last's times
    m1 = np.cumsum(np.r_[0.0, dt_all])
    m1 = 0.5 * (m1[1:] + m1[:-1])
    m2 = 0.5 * (m1[1:] + m1[:-1])
    qddd = np.diff(qdd, axis=0) / np.diff(m2)[:, None]
    link_z = np.array([robot.fk_frames(q)[:, 2].min() for q in q_all[:: max(1, len(q_all) // 200)]])
    return {
        "planner": "chord.planner v1 (pinocchio DLS IK + Gauss-Newton joint optimisation + TOPP-RA)",
        "planning_time_s": time.perf_counter() - t_start,
        "time_breakdown_s": {
            "analysis": t_analysis - t_start,
            "grasp": t_grasp - t_analysis,
            "ik_and_optimisation": t_opt - t_grasp,
            "timing": t_time - t_opt,
        },
        "analysis": analysis.summary(),
        "grasp": {
            "kind": cand.kind,
            "width_mm": 1000 * cand.width,
            "quality": cand.quality,
            "score": cand.score,
            "reason": cand.reason,
            "T_part_ee": cand.T_part_ee.tolist(),
            "open_width_mm": 1000 * opening,
            "hold_width_mm": 1000 * hold,
            "search": grasp_stats,
            "geometry": geometry.source,
            "load_margin": cand.load_margin,
            "load": geometry.load.summary() if geometry.load is not None else None,
        },
        "tracking": {
            "waypoint_position_max_mm": 1000 * float(ep[f0:f1].max()),
            "waypoint_position_mean_mm": 1000 * float(ep[f0:f1].mean()),
            "waypoint_rotation_max_deg": float(np.degrees(er[f0:f1].max())),
            "sampled_position_max_mm": 1000 * float(max(samp_ep)),
            "sampled_rotation_max_deg": float(np.degrees(max(samp_er))),
            "approach_retreat_position_max_mm": 1000
            * float(np.r_[ep[:f0], ep[f1:]].max() if len(ep) > f1 - f0 else 0.0),
        },
        "joint_limit_margin_rad": float(robot.limit_margin(q_all).min()),
        "peak_joint_speed_rad_s": np.abs(qd).max(0).tolist(),
        "peak_speed_fraction_of_limit": float((np.abs(qd) / robot.velocity_limits).max()),
        "peak_accel_fraction_of_limit": float((np.abs(qdd) / robot.accel_limits).max()) if len(qdd) else 0.0,
        "peak_jerk_fraction_of_limit": float((np.abs(qddd) / robot.jerk_limits).max()) if len(qddd) else 0.0,
        "peak_tcp_speed_m_s": float(np.linalg.norm(np.diff(ee[:, :3], axis=0), axis=1).max() / dt_all.min()),
        "min_link_height_above_table_m": float(link_z.min() - table_z),
        "min_arm_clearance_to_scene_m": clearance,
        "duration_s": float(t_all[-1]),
        "base_pose": base.tolist(),
        "base_pose_automatic": config.base_pose is None,
        "base_search": base_search,
        "phases_s": {k: [float(a), float(b)] for k, (a, b) in timed.phase_times.items()},
        "limits": {
            "velocity_rad_s": timed.v_max.tolist(),
            "accel_rad_s2": timed.a_max.tolist(),
            "velocity_scale": config.velocity_scale,
            "accel_scale": config.accel_scale,
        },
    }
