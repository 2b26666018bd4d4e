"""Flow analysis: which points move, each object's rigid parts and tracks, and their joints.

Each object's rigid parts are joined into a kinematic tree (:func:`kinematic_tree`): the part
that moves least is the root, and each other part hangs from the part whose motion relative to
it a single revolute or prismatic joint explains best (the lowest joint-model residual), grown
greedily from the root. So a chain (a lamp's elbow then its head, a door then its lever handle)
is found as two joints, not as one joint of the distal part to the base that no 1-DoF model
fits.

The object to manipulate holds the moving part whose points travel farthest. Within it, the
target part is the one whose path from the root passes through every joint the flow moves
(for a chain: the distal part): holding it and following its track drives them all. When no
part's path holds every moving joint (two independent joints), the part whose path holds the
most is the target and the others are reported as joints the grasp cannot drive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from core.errors import ChordError
from core.flow import ObjectFlow
from planner.articulation import Joint, fit_joint
from planner.rigid import apply
from planner.segment import ObjectSegmentation, Part, SegmentConfig, segment_object

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowAnalysis:
    """Everything the planner learns from a flow before choosing a grasp."""

    objects: tuple[ObjectSegmentation, ...]  # one per object in the flow
    target_object: int  # index into objects of the object to manipulate
    target_part: int  # index into objects[target_object].parts
    joint: Joint | None  # the target part's joint to its parent, for articulated objects
    moving_mask: np.ndarray  # [N] bool, points of moving parts
    nonrigid_threshold: float  # metres: a track residual above this flags non-rigid motion
    _points: np.ndarray = field(repr=False, default=None)  # [T, N, 3] the flow's points (float64)
    # Per object (same order as ``objects``): its kinematic tree, every non-root part's joint to
    # its parent (Joint.parent / Joint.child are part indices), ordered root outwards.
    trees: tuple[tuple[Joint, ...], ...] = ()
    # Joints of the target object the flow moves but the target part's path does not hold (the
    # grasp cannot drive them), as child part indices.
    undriven: tuple[int, ...] = ()

    @property
    def target(self) -> Part:
        return self.objects[self.target_object].parts[self.target_part]

    @property
    def nonrigid(self) -> bool:
        """True if the target part's robust fit leaves a residual beyond threshold and noise.

        Independent noise of sigma per axis alone leaves an RMS residual of about
        sqrt(6) sigma (frame 0 and frame t both noisy), so the bar rises with the noise.
        """
        sigma = self.objects[self.target_object].noise_sigma
        bar = max(self.nonrigid_threshold, 1.5 * np.sqrt(6.0) * sigma)
        return self.target.track.residual_max_rms > bar

    def follow_track(self) -> np.ndarray:
        """[T, 4, 4] the target part's track as its joints allow it: T_world_part(t).

        The part's own fitted track (``target.track.T_world_part``) moves it as the flow shows,
        noise and all; a part on a joint can only move along that joint. So for an articulated
        target the track is rebuilt from the root part's motion and each joint's fitted model
        along the path to the target, M_child(t) = M_parent(t) @ joint.transform(value_t) (a root
        the flow does not move stays put): a
        revolute part then turns on its fitted arc and a prismatic one slides along its line, and
        a grasp held rigid on it asks no motion the joint cannot make (an arm that tracked a
        track off the arc would push against the joint with the arm's stiffness). Where a joint
        on the path does not explain its child's motion (a residual above the bar of
        :attr:`nonrigid`, noise included), or the part is free, the fitted track is used.
        """
        part = self.target
        if self.joint is None or not self.trees:
            return part.track.T_world_part
        by_child = {j.child: j for j in self.trees[self.target_object]}
        seg = self.objects[self.target_object]
        bar = max(self.nonrigid_threshold, 1.5 * np.sqrt(6.0) * seg.noise_sigma)
        path, pi = [], self.target_part
        while pi in by_child:
            path.append(by_child[pi])
            pi = by_child[pi].parent
        if not path or any(not j.residual_rms <= bar for j in path):  # NaN fails too
            return part.track.T_world_part
        root = seg.parts[pi]
        # A root the flow does not move (its points travel less than the segmentation's motion
        # bar) stands still: its fitted motion is noise, and carrying the joints on it would put
        # that noise back into the track.
        M = root.track.motion if root.moving else np.broadcast_to(np.eye(4), root.track.motion.shape)
        for j in reversed(path):
            M = M @ np.stack([j.transform(float(v)) for v in j.values])
        return M @ part.track.T_world_part[0]

    def denoised(self) -> tuple[np.ndarray, np.ndarray]:
        """(trajectories [T, M, 3], flow indices [M]) of every non-outlier point, re-made rigid.

        Each point is averaged over all frames in its part's frame (where a rigid part's
        points stand still), then carried by the part's fitted motion: per-frame noise drops
        by sqrt(T), outlier trajectories are left out. Geometry for grasps and collisions.
        """
        trajs, idx = [], []
        for seg in self.objects:
            for part in seg.parts:
                M = part.track.motion  # [T, 4, 4]
                traj = self._points[:, part.indices]
                local = apply(np.linalg.inv(M), traj).mean(0)  # frame-0 coordinates
                trajs.append(apply(M, local))
                idx.append(part.indices)
        return np.concatenate(trajs, axis=1), np.concatenate(idx)

    def summary(self) -> dict:
        """JSON-able report of the analysis."""
        tgt = self.target
        out = {
            "target_object": tgt.object_name,
            "target_part_points": len(tgt.indices),
            "target_motion_mm": 1000 * tgt.motion,
            "track_residual_max_mm": 1000 * tgt.track.residual_max_rms,
            "track_inlier_fraction": tgt.track.inlier_fraction,
            "nonrigid": bool(self.nonrigid),
            "objects": {
                o.name: {
                    "parts": [len(p.indices) for p in o.parts],
                    "parts_merged": o.merged,
                    "moving": [bool(p.moving) for p in o.parts],
                    "outlier_fraction": o.outlier_fraction,
                    "noise_sigma_mm": 1000 * o.noise_sigma,
                    "threshold_mm": 1000 * o.threshold,
                }
                for o in self.objects
            },
        }
        if self.joint is not None:
            out["joint"] = _joint_summary(self.joint)
        if self.trees:
            out["target_part"] = self.target_part
            for seg, tree in zip(self.objects, self.trees, strict=True):
                if tree:
                    out["objects"][seg.name]["joints"] = [_joint_summary(j) for j in tree]
            if self.undriven:
                out["undriven_joints"] = list(self.undriven)
        return out


def _joint_summary(j: Joint) -> dict:
    """JSON-able joint: kind, axis, origin, range (rad or m), residual, its parent and child parts."""
    return {
        "kind": j.kind,
        "parent": j.parent,
        "child": j.child,
        "axis": j.axis.tolist(),
        "origin": j.origin.tolist(),
        "range": list(j.range),
        "residual_mm": 1000 * j.residual_rms,
    }


def kinematic_tree(seg: ObjectSegmentation, points: np.ndarray) -> tuple[Joint, ...]:
    """The object's parts joined into a tree of 1-DoF joints, root outwards (see module docstring).

    ``points``: [T, N, 3] the whole flow's points (world m). The root is the part that moves least
    (the largest on ties). Then, greedily (Prim), the outside part whose joint to a part already in
    the tree leaves the smallest point residual (RMS over the child's points) is attached there.
    A single-part object has no joints. Raises ChordError if a part cannot be attached (its
    motion equals every tree part's, which segmentation rules out).
    """
    parts = seg.parts
    if len(parts) < 2:
        return ()
    root = min(range(len(parts)), key=lambda k: (parts[k].motion, -len(parts[k].indices)))
    inside, joints = [root], []
    fits: dict[tuple[int, int], Joint | None] = {}
    while len(inside) < len(parts):
        best: Joint | None = None
        for a in inside:
            for b in range(len(parts)):
                if b in inside:
                    continue
                if (a, b) not in fits:
                    try:
                        fits[a, b] = fit_joint(
                            parts[a].track.motion, parts[b].track.motion, points[0, parts[b].indices], a, b
                        )
                    except ValueError:
                        fits[a, b] = None  # no relative motion: no joint to fit between them
                j = fits[a, b]
                if j is not None and (best is None or j.residual_rms < best.residual_rms):
                    best = j
        if best is None:
            raise ChordError(
                f"object {seg.name!r}: parts {sorted(set(range(len(parts))) - set(inside))} "
                "move exactly as the rest of the object; they are not separate parts"
            )
        inside.append(best.child)
        joints.append(best)
    return tuple(joints)


def _path(tree: tuple[Joint, ...], part: int) -> list[Joint]:
    """The joints from the tree's root to ``part``, root first."""
    up = {j.child: j for j in tree}
    path = []
    while part in up:
        path.append(up[part])
        part = up[part].parent
    return path[::-1]


def joint_moves(joint: Joint, child_points0: np.ndarray, motion_threshold: float) -> bool:
    """Whether the flow moves ``joint``: its child's points travel at least ``motion_threshold``
    (m, SegmentConfig.motion_threshold, the same bar that calls a part moving) relative to the parent."""
    travel = [np.linalg.norm(apply(joint.transform(v), child_points0) - child_points0, axis=-1).max()
              for v in joint.range]  # fmt: skip
    return max(travel) >= motion_threshold


def choose_target(
    seg: ObjectSegmentation, tree: tuple[Joint, ...], points: np.ndarray, motion_threshold: float
) -> tuple[int, tuple[int, ...]]:
    """(target part index, child part indices of moving joints its path does not hold).

    The target's path from the root holds as many of the moving joints as any part's does; among
    those, the part whose points travel farthest. For a chain that is the distal part.
    """
    moving = {
        j.child for j in tree if joint_moves(j, points[0, seg.parts[j.child].indices], motion_threshold)
    }

    def key(k: int) -> tuple[int, float]:
        return len(moving & {j.child for j in _path(tree, k)}), seg.parts[k].motion

    candidates = [k for k, p in enumerate(seg.parts) if p.moving]
    target = max(candidates, key=key)
    held = {j.child for j in _path(tree, target)}
    return target, tuple(sorted(moving - held))


def analyse_flow(
    flow: ObjectFlow,
    config: SegmentConfig | None = None,
    objects: list[str] | None = None,  # only these may be the target (e.g. the movable ones)
    nonrigid_threshold: float = 0.01,  # metres
) -> FlowAnalysis:
    """Segment every object of ``flow`` and pick the part to manipulate.

    Raises ChordError if nothing in the flow moves more than ``config.motion_threshold``.
    """
    config = SegmentConfig() if config is None else config
    pts = flow.points.astype(np.float64)
    segs = []
    for i, name in enumerate(flow.object_names):
        idx = np.flatnonzero(flow.object_index == i)
        try:
            segs.append(segment_object(pts[:, idx], name, idx, config))
        except ValueError as e:
            raise ChordError(str(e)) from e
    moving = np.zeros(flow.num_points, bool)
    best: tuple[float, int, int] | None = None
    for oi, seg in enumerate(segs):
        for pi, part in enumerate(seg.parts):
            if part.moving:
                moving[part.indices] = True
                allowed = objects is None or seg.name in objects
                if allowed and (best is None or part.motion > best[0]):
                    best = (part.motion, oi, pi)
    if best is None:
        largest = max((p.motion for s in segs for p in s.parts), default=0.0)
        raise ChordError(
            f"flow has no motion to plan for: the largest part displacement is {1000 * largest:.1f} mm, "
            f"below motion_threshold {1000 * config.motion_threshold:.1f} mm"
            + (f" (among objects {objects})" if objects is not None else "")
        )
    _, oi, pi = best
    trees = tuple(kinematic_tree(s, pts) for s in segs)
    seg, tree = segs[oi], trees[oi]
    joint, undriven = None, ()
    if tree:
        pi, undriven = choose_target(seg, tree, pts, config.motion_threshold)
        joint = next((j for j in tree if j.child == pi), None)
        for j in tree:
            log.info(
                "articulated %s: part %d -> %d, %s joint, axis %s, range %s, residual %.1f mm",
                seg.name, j.parent, j.child, j.kind, np.round(j.axis, 3).tolist(),
                np.round(j.range, 3).tolist(), 1000 * j.residual_rms,
            )  # fmt: skip
        if undriven:
            log.warning(
                "%s: the flow moves the joints of parts %s, which holding part %d cannot drive; "
                "the plan follows part %d only",
                seg.name, list(undriven), pi, pi,
            )  # fmt: skip
    return FlowAnalysis(tuple(segs), oi, pi, joint, moving, nonrigid_threshold, pts, trees, undriven)
