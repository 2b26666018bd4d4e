"""Synthetic object flows with known motion, for the planner's tests and benchmarks.

Points are sampled on box surfaces (trimesh) and moved by known rigid or articulated motions,
optionally with Gaussian noise and outlier trajectories. World frame: metres, z up, the table
top at z = 0, the robot base at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from core.flow import ObjectFlow
from planner.rigid import apply


@dataclass(frozen=True)
class SyntheticFlow:
    """A flow and the ground truth that generated it."""

    flow: ObjectFlow
    motions: dict[str, np.ndarray]  # part name -> [T, 4, 4] world motion from frame 0
    part_of_point: np.ndarray  # [N] int, index into part_names (-1 for outlier trajectories)
    part_names: tuple[str, ...]
    joint: dict | None = None  # {"kind", "axis" [3], "origin" [3], "values" [T]} if articulated


def box_surface(size: tuple[float, float, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 3] points uniformly on the surface of a box of ``size`` (m) centred at the origin."""
    import trimesh

    mesh = trimesh.creation.box(extents=size)
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=int(rng.integers(2**31)))
    return np.asarray(pts, dtype=float)


def _smooth(T: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, T)
    return s * s * (3 - 2 * s)


def _corrupt(points: np.ndarray, noise: float, outliers: float, rng: np.random.Generator) -> np.ndarray:
    """Add per-axis Gaussian noise (m) and replace a fraction of trajectories by random walks."""
    out = points + rng.normal(0.0, noise, points.shape) if noise > 0 else points.copy()
    bad = np.zeros(points.shape[1], bool)
    if outliers > 0:
        bad = rng.random(points.shape[1]) < outliers
        walk = np.cumsum(rng.normal(0.0, 0.01, (points.shape[0], bad.sum(), 3)), axis=0)
        out[:, bad] = points[:1, bad] + rng.normal(0.0, 0.05, (1, bad.sum(), 3)) + walk
    return out, bad


def _flow(points, object_index, names, T, fps=16.0) -> ObjectFlow:
    return ObjectFlow(
        points=points.astype(np.float32),
        object_index=np.asarray(object_index, dtype=np.int32),
        times=(np.arange(T) / fps).astype(np.float32),
        object_names=names,
        fps=fps,
        prior="ground_truth",
        prompt="synthetic",
    )


def rigid_pick(
    T: int = 41,
    n: int = 4000,
    noise: float = 0.0,  # metres, per-axis std
    outliers: float = 0.0,  # fraction of trajectories replaced by random walks
    seed: int = 0,
    box: tuple[float, float, float] = (0.04, 0.04, 0.12),  # metres, graspable across x and y
    lift: float = 0.15,  # metres
    yaw_deg: float = 30.0,
    position: tuple[float, float] = (0.5, 0.0),  # metres on the table
) -> SyntheticFlow:
    """A box lifted and turned about z, next to a static obstacle box ("pick the box")."""
    rng = np.random.default_rng(seed)
    n_obs = n // 4
    obj = box_surface(box, n - n_obs, rng) + np.array([position[0], position[1], box[2] / 2])
    obs = box_surface((0.1, 0.1, 0.05), n_obs, rng) + np.array([position[0], position[1] + 0.2, 0.025])
    s = _smooth(T)
    c = np.array([position[0], position[1], box[2] / 2])
    M = np.zeros((T, 4, 4))
    for t in range(T):
        R = Rotation.from_euler("z", yaw_deg * s[t], degrees=True).as_matrix()
        M[t] = np.eye(4)
        M[t, :3, :3] = R
        M[t, :3, 3] = c - R @ c + [0.0, 0.0, lift * s[t]]
    pts = np.concatenate([apply(M, obj), np.broadcast_to(obs, (T, *obs.shape))], axis=1)
    pts, bad = _corrupt(pts, noise, outliers, rng)
    idx = np.r_[np.zeros(len(obj), int), np.ones(len(obs), int)]
    part = np.where(bad, -1, idx)
    flow = _flow(pts, idx, ("box", "obstacle"), T)
    return SyntheticFlow(
        flow, {"box": M, "obstacle": np.broadcast_to(np.eye(4), (T, 4, 4))}, part, ("box", "obstacle")
    )


def hinged_lid(
    T: int = 41,
    n: int = 4000,
    noise: float = 0.0,
    outliers: float = 0.0,
    seed: int = 0,
    open_deg: float = 100.0,  # lid angle at frame 0 (0 = closed flat on the base)
    close_deg: float = 15.0,  # lid angle at the last frame
    position: tuple[float, float] = (0.35, 0.0),  # metres, centre of the base on the table
    hinge_yaw_deg: float = 0.0,  # rotates the whole object about z (tilts the hinge axis in xy)
) -> SyntheticFlow:
    """A laptop-like base (static) and lid rotating about a hinge at the base's back edge."""
    rng = np.random.default_rng(seed)
    W, D, hb, hl = 0.30, 0.22, 0.02, 0.01  # width (y), depth (x), base and lid thickness
    n_lid = n // 2
    base = box_surface((D, W, hb), n - n_lid, rng) + np.array([0, 0, hb / 2])
    lid_closed = box_surface((D, W, hl), n_lid, rng) + np.array([0, 0, hb + hl / 2])
    # Hinge along y at the back edge (x = +D/2, away from the robot), top of the base.
    hinge = np.array([D / 2, 0.0, hb])
    axis = np.array([0.0, 1.0, 0.0])  # opening rotates the lid's front edge up: about +y

    def rot(deg: float) -> np.ndarray:
        T4 = np.eye(4)
        R = Rotation.from_rotvec(axis * np.radians(deg)).as_matrix()
        T4[:3, :3], T4[:3, 3] = R, hinge - R @ hinge
        return T4

    place = np.eye(4)
    place[:3, :3] = Rotation.from_euler("z", hinge_yaw_deg, degrees=True).as_matrix()
    place[:3, 3] = [position[0], position[1], 0.0]
    angles = open_deg + (close_deg - open_deg) * _smooth(T)
    lid0 = apply(place @ rot(open_deg), lid_closed)
    base_w = apply(place, base)
    M = np.stack([place @ rot(a) @ np.linalg.inv(rot(open_deg)) @ np.linalg.inv(place) for a in angles])
    pts = np.concatenate([np.broadcast_to(base_w, (T, *base_w.shape)), apply(M, lid0)], axis=1)
    pts, bad = _corrupt(pts, noise, outliers, rng)
    idx = np.zeros(pts.shape[1], int)
    part = np.where(bad, -1, np.r_[np.zeros(len(base), int), np.ones(len(lid0), int)])
    flow = _flow(pts, idx, ("laptop",), T)
    axis_w = place[:3, :3] @ axis
    joint = {
        "kind": "revolute",
        "axis": axis_w,
        "origin": apply(place, hinge[None])[0],
        "values": np.radians(angles - open_deg),
    }
    return SyntheticFlow(
        flow,
        {"base": np.broadcast_to(np.eye(4), (T, 4, 4)), "lid": M},
        part,
        ("base", "lid"),
        joint,
    )


def drawer(
    T: int = 41,
    n: int = 3000,
    noise: float = 0.0,
    outliers: float = 0.0,
    seed: int = 0,
    travel: float = 0.15,  # metres the drawer slides out
    position: tuple[float, float] = (0.6, 0.0),
    height: float = 0.13,  # metres: the drawer's and its handle's centre above the table
) -> SyntheticFlow:
    """A static cabinet and a drawer sliding towards the robot (-x): a prismatic joint."""
    rng = np.random.default_rng(seed)
    n_d = n // 2
    cab = box_surface((0.3, 0.3, 0.3), n - n_d, rng) + np.array([position[0], position[1], 0.15])
    n_h = n_d // 5
    drw = box_surface((0.26, 0.26, 0.08), n_d - n_h, rng) + np.array(
        [position[0] - 0.04, position[1], height]
    )
    # A handle bar 3 cm in front of the drawer face, 2 cm thick: the graspable feature.
    handle = box_surface((0.02, 0.12, 0.02), n_h, rng) + np.array(
        [position[0] - 0.04 - 0.13 - 0.03, position[1], height]
    )
    drw = np.concatenate([drw, handle])
    axis = np.array([-1.0, 0.0, 0.0])
    d = travel * _smooth(T)
    M = np.broadcast_to(np.eye(4), (T, 4, 4)).copy()
    M[:, :3, 3] = d[:, None] * axis
    pts = np.concatenate([np.broadcast_to(cab, (T, *cab.shape)), apply(M, drw)], axis=1)
    pts, bad = _corrupt(pts, noise, outliers, rng)
    idx = np.zeros(pts.shape[1], int)
    part = np.where(bad, -1, np.r_[np.zeros(len(cab), int), np.ones(len(drw), int)])
    joint = {"kind": "prismatic", "axis": axis, "origin": drw.mean(0), "values": d}
    return SyntheticFlow(
        _flow(pts, idx, ("cabinet",), T),
        {"cabinet": np.broadcast_to(np.eye(4), (T, 4, 4)), "drawer": M},
        part,
        ("cabinet", "drawer"),
        joint,
    )


def two_joints(
    T: int = 41,
    n: int = 4000,
    noise: float = 0.0,
    outliers: float = 0.0,
    seed: int = 0,
    elbow_deg: float = -30.0,  # the arm's turn about its hinge on the base, last frame
    head_deg: float = 25.0,  # the head's turn about its own hinge, last frame
    branch: bool = False,  # hinge the head on the base (two independent joints), not on the arm
    position: tuple[float, float] = (0.5, 0.0),
) -> SyntheticFlow:
    """A lamp-like chain: a static base, an arm hinged on its top (about y), a head hinged on the
    arm's far end (about y); both joints turn at once. With ``branch`` the head hangs from the
    base on its own hinge (about x), so holding either moving part cannot drive the other's joint.
    ``joint`` holds the arm's joint; ``motions`` every part's world motion."""
    rng = np.random.default_rng(seed)
    x0, y0 = position
    n_arm, n_head = n // 4, n // 4
    base = box_surface((0.12, 0.12, 0.10), n - n_arm - n_head, rng) + np.array([x0, y0, 0.05])
    arm = box_surface((0.03, 0.03, 0.25), n_arm, rng) + np.array([x0, y0, 0.10 + 0.125])
    elbow, y = np.array([x0, y0, 0.10]), np.array([0.0, 1.0, 0.0])
    if branch:
        head = box_surface((0.05, 0.12, 0.05), n_head, rng) + np.array([x0 - 0.085, y0, 0.075])
        pivot, head_axis = np.array([x0 - 0.06, y0, 0.10]), np.array([1.0, 0.0, 0.0])
    else:
        head = box_surface((0.12, 0.05, 0.05), n_head, rng) + np.array([x0 + 0.06, y0, 0.375])
        pivot, head_axis = np.array([x0, y0, 0.35]), y

    def turn(axis: np.ndarray, point: np.ndarray, rad: float) -> np.ndarray:
        T4 = np.eye(4)
        T4[:3, :3] = Rotation.from_rotvec(axis * rad).as_matrix()
        T4[:3, 3] = point - T4[:3, :3] @ point
        return T4

    s = _smooth(T)
    e, h = np.radians(elbow_deg) * s, np.radians(head_deg) * s
    M_arm = np.stack([turn(y, elbow, v) for v in e])
    M_own = np.stack([turn(head_axis, pivot, v) for v in h])
    M_head = M_own if branch else M_arm @ M_own
    pts = np.concatenate(
        [np.broadcast_to(base, (T, *base.shape)), apply(M_arm, arm), apply(M_head, head)], axis=1
    )
    pts, bad = _corrupt(pts, noise, outliers, rng)
    labels = np.r_[np.zeros(len(base), int), np.ones(len(arm), int), np.full(len(head), 2)]
    joint = {"kind": "revolute", "axis": y, "origin": elbow, "values": e}
    return SyntheticFlow(
        _flow(pts, np.zeros(pts.shape[1], int), ("lamp",), T),
        {"base": np.broadcast_to(np.eye(4), (T, 4, 4)), "arm": M_arm, "head": M_head},
        np.where(bad, -1, labels),
        ("base", "arm", "head"),
        joint,
    )
