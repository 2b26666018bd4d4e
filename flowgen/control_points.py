"""Control points of one object from its mesh, as the seed (A.1) builds them.

On a grid of voxel size s (centres ``origin + (ijk + 0.5) s``, origin the mesh's bounding-box
minimum, axes tilted against the object's by the fixed rotation GRID_TILT), two voxel sets:

- S (near the surface): voxel centres whose unsigned distance to the surface is at most
  ``s * sqrt(3) / 2``, the half diagonal of a voxel. This is exactly the set of voxels whose
  closed cube could contain a surface point, so every voxel the surface passes through is in S.
  It needs no inside test, so it is well defined for open scans too. The temporal regulariser
  moves these points.
- I (inside): voxel centres with generalised winding number >= 0.5 (``phi <= 0``).

s is found by bisection on log s so that ``|S|`` is within ``tolerance`` (default 5%) of the
target (default 7,500). Then farthest point sampling followed by K-means on I gives the control
point positions p_k, and each one's covariance scale is the mean distance to its 3 nearest
control points (rotation identity). When I is too small to hold the control points (a plate
thinner than a voxel), I ∪ S is used instead, with a warning.

The inside test is the generalised winding number (Jacobson et al. 2013): the sum of the solid
angles the triangles subtend, over 4 pi. It is exactly 1 inside and 0 outside a closed mesh and
degrades gracefully on open ones (a cropped scan still reads about 1 inside its shell), unlike ray
parity, which flips on every hole. To keep it cheap, it is evaluated exactly only on S; the other
voxels form connected regions the surface cannot cross, and for a watertight mesh each region takes
the winding number of a few of its voxels. For an open mesh, a region whose samples disagree
(it leaks through a hole) is evaluated on every other voxel and refined where those disagree.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree

from core.errors import ChordError

log = logging.getLogger(__name__)

_HALF_DIAGONAL = math.sqrt(3.0) / 2.0
# Grid frame relative to the object frame: a fixed, generic rotation (axis-angle 0.5 rad about
# (1, 2, 3)/sqrt(14)); see control_points_from_mesh.
GRID_TILT = trimesh.transformations.rotation_matrix(0.5, [1.0, 2.0, 3.0])
_PAD = 2  # voxels of margin around the bounding box; >= 2 keeps the outer shell out of S


@dataclass(frozen=True)
class ControlPointConfig:
    """How control points are built from a mesh (seed A.1)."""

    num_control_points: int = 60  # K per object; see docs/flowgen.md for why 60
    target_near_surface: int = 7500  # |S|, the number of near-surface voxel centres
    tolerance: float = 0.05  # accepted relative deviation of |S| from the target
    max_iterations: int = 40  # search steps on s before giving up
    kmeans_iterations: int = 30  # Lloyd iterations after farthest point sampling
    scale_neighbors: int = 3  # Sigma_k scale = mean distance to this many nearest control points
    component_samples: int = 16  # winding-number samples per off-surface region


@dataclass(frozen=True)
class ObjectControlPoints:
    """Control points and voxel sets of one object, in the world frame (metres)."""

    positions: np.ndarray  # [K, 3] p_k, world metres
    scales: np.ndarray  # [K] initial covariance scale (std dev), metres
    near_surface: np.ndarray  # [S, 3] near-surface voxel centres S_i, world metres
    inside: np.ndarray  # [I, 3] inside voxel centres I_i, world metres
    voxel_size: float  # s, metres
    part: np.ndarray | None = None  # [K] int: the rigid part (link) of each control point; None: one


# -- geometry ---------------------------------------------------------------------------------


def point_triangle_distance(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unsigned distance from each point to its paired triangle.

    points: [P, 3]; triangles: [P, 3, 3] (the triangle paired with each point).
    Returns [P] distances. Degenerate triangles fall back to their edges.
    """
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    n = np.cross(b - a, c - a)
    nn = np.einsum("ij,ij->i", n, n)
    ok = nn > 1e-30
    safe = np.where(ok, nn, 1.0)
    # barycentric coordinates of the projection onto the plane
    ap = points - a
    u = np.einsum("ij,ij->i", np.cross(b - points, c - points), n) / safe
    v = np.einsum("ij,ij->i", np.cross(c - points, a - points), n) / safe
    w = 1.0 - u - v
    plane = np.abs(np.einsum("ij,ij->i", ap, n)) / np.sqrt(safe)
    inside = ok & (u >= 0) & (v >= 0) & (w >= 0)

    def seg(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
        d = p1 - p0
        dd = np.einsum("ij,ij->i", d, d)
        t = np.einsum("ij,ij->i", points - p0, d) / np.where(dd > 0, dd, 1.0)
        t = np.clip(t, 0.0, 1.0)
        return np.linalg.norm(points - (p0 + t[:, None] * d), axis=1)

    edge = np.minimum(np.minimum(seg(a, b), seg(b, c)), seg(c, a))
    return np.where(inside, plane, edge)


def winding_numbers(
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [F, 3] int
    queries: np.ndarray,  # [Q, 3]
    chunk_pairs: int = 1 << 16,
) -> np.ndarray:
    """Generalised winding number of each query point (1 inside, 0 outside a closed mesh).

    Sum of the triangles' signed solid angles (Van Oosterom-Strackee) over 4 pi, in float32
    numpy, chunked so each chunk's temporaries stay in cache (single-threaded on purpose: many
    small multi-threaded ops stall badly on a shared 2-core machine). Returns [Q] float64.
    """
    if len(queries) == 0:
        return np.zeros(0)
    center = vertices.mean(axis=0)  # centring keeps float32 accurate far from the origin
    tri = ((vertices - center)[faces]).astype(np.float32)  # [F, 3, 3]
    comps = [[np.ascontiguousarray(tri[:, i, j]) for j in range(3)] for i in range(3)]
    q_all = (queries - center).astype(np.float32)
    out = np.empty(len(queries))
    step = max(1, chunk_pairs // max(1, len(faces)))
    for i in range(0, len(queries), step):
        q = q_all[i : i + step]
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = (
            [comps[v][k] - q[:, k : k + 1] for k in range(3)] for v in range(3)
        )
        la = np.sqrt(ax * ax + ay * ay + az * az)
        lb = np.sqrt(bx * bx + by * by + bz * bz)
        lc = np.sqrt(cx * cx + cy * cy + cz * cz)
        det = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
        den = (
            la * lb * lc
            + (ax * bx + ay * by + az * bz) * lc
            + (bx * cx + by * cy + bz * cz) * la
            + (cx * ax + cy * ay + cz * az) * lb
        )
        out[i : i + step] = np.arctan2(det, den).sum(axis=1, dtype=np.float64)
    return out / (2.0 * math.pi)


# -- voxel sets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    origin: np.ndarray  # [3] object-frame metres; voxel ijk has centre origin + (ijk + 0.5) s
    size: float  # s, metres

    def centres(self, ijk: np.ndarray) -> np.ndarray:
        return self.origin + (ijk + 0.5) * self.size


def _subdivided(mesh: trimesh.Trimesh, max_edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces with no edge longer than ``max_edge`` (bounds the per-face work)."""
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    edges = np.linalg.norm(v[f] - v[np.roll(f, 1, axis=1)], axis=2)
    if edges.max() <= max_edge:
        return v, f
    return trimesh.remesh.subdivide_to_size(v, f, max_edge=max_edge, max_iter=32)


def near_surface_voxels(mesh: trimesh.Trimesh, voxel_size: float) -> np.ndarray:
    """[S, 3] int voxel indices whose centre is within ``voxel_size * sqrt(3)/2`` of the surface.

    Exact: every (voxel, triangle) pair whose boxes can be that close is tested with the true
    point-triangle distance. Index ijk has centre ``bounds[0] + (ijk + 0.5) * voxel_size``.
    """
    s = float(voxel_size)
    tau = s * _HALF_DIAGONAL
    origin = np.asarray(mesh.bounds[0], dtype=np.float64)
    verts, faces = _subdivided(mesh, 2.0 * s)
    tri = verts[faces]  # [F, 3, 3]
    lo = np.floor((tri.min(axis=1) - tau - origin) / s - 0.5).astype(np.int64) + 1
    hi = np.floor((tri.max(axis=1) + tau - origin) / s - 0.5).astype(np.int64)
    dims = np.maximum(hi - lo + 1, 0)  # [F, 3] voxel centres inside each face's padded box
    counts = dims.prod(axis=1)
    keys = []
    # chunk over faces so the pair arrays stay a few million long
    bounds = np.searchsorted(np.cumsum(counts), np.arange(0, counts.sum(), 4_000_000), "right")
    starts = np.unique(np.concatenate([[0], bounds, [len(faces)]]))
    for f0, f1 in itertools.pairwise(starts):
        cnt = counts[f0:f1]
        total = int(cnt.sum())
        if total == 0:
            continue
        fid = np.repeat(np.arange(f0, f1), cnt)
        local = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        d = dims[fid]
        ix = local // (d[:, 1] * d[:, 2])
        iy = (local // d[:, 2]) % d[:, 1]
        iz = local % d[:, 2]
        ijk = lo[fid] + np.stack([ix, iy, iz], axis=1)
        dist = point_triangle_distance(origin + (ijk + 0.5) * s, tri[fid])
        keys.append(ijk[dist <= tau])
    if not keys:
        return np.zeros((0, 3), dtype=np.int64)
    return np.unique(np.concatenate(keys), axis=0)


def find_voxel_size(
    mesh: trimesh.Trimesh, config: ControlPointConfig = ControlPointConfig()
) -> tuple[float, np.ndarray]:
    """Search s until |S| is within ``config.tolerance`` of ``config.target_near_surface``.

    |S| falls as a power of s (about s^-2: a band of surface area over voxels of side s), so each
    step solves the power law through the last two measurements (exponent clamped to [1, 3]) for
    the target, and bisects log s inside the bracket found so far when that would leave it. Two
    or three steps instead of bisection's five or six (each 0.4 s on a laptop's mesh).

    Returns (s in metres, S voxel indices [S, 3] int). Raises ChordError if it does not converge.
    """
    target, tol = config.target_near_surface, config.tolerance
    if target < 1 or not 0 < tol < 1:
        raise ValueError(f"target_near_surface {target} must be >= 1 and tolerance {tol} in (0,1)")
    # |S| ~ area * (band thickness s*sqrt(3)) / s^3 gives the first guess
    s = math.sqrt(float(mesh.area) * math.sqrt(3.0) / target)
    lo_s, hi_s = None, None  # lo_s: too many voxels (s too small); hi_s: too few
    best = None
    previous = None  # (s, |S|) of the step before
    for it in range(config.max_iterations):
        ijk = near_surface_voxels(mesh, s)
        n = len(ijk)
        err = abs(n / target - 1.0)
        log.debug("voxel search %d: s=%.5g m, |S|=%d", it, s, n)
        if best is None or err < best[0]:
            best = (err, s, ijk)
        if err <= tol:
            return s, ijk
        if n > target:
            lo_s = s
        else:
            hi_s = s
        power = 2.0
        if previous is not None and previous[1] > 0 and n > 0 and previous[0] != s:
            measured = -math.log(n / previous[1]) / math.log(s / previous[0])
            power = min(max(measured, 1.0), 3.0) if math.isfinite(measured) else power
        step = s * (max(n, 1) / target) ** (1.0 / power)
        previous = (s, n)
        if lo_s is not None and hi_s is not None and not lo_s < step < hi_s:
            step = math.sqrt(lo_s * hi_s)
        s = step
    raise ChordError(
        f"voxel size search did not reach |S| = {target} ± {tol:.0%} in {config.max_iterations} "
        f"steps: best s = {best[1]:.4g} m gives |S| = {len(best[2])}"
    )


def inside_voxels(
    mesh: trimesh.Trimesh,
    voxel_size: float,
    near_ijk: np.ndarray,  # [S, 3] from near_surface_voxels
    samples_per_region: int = 16,
    seed: int = 0,
) -> np.ndarray:
    """[I, 3] int voxel indices whose centre has winding number >= 0.5.

    S voxels are tested one by one; the rest of the padded grid splits into 6-connected regions
    that the surface cannot cross (any voxel it touches is in S). On a watertight mesh each
    region takes the majority of ``samples_per_region`` sampled winding numbers; on an open
    mesh, a region whose samples disagree is evaluated coarse to fine.
    """
    s = float(voxel_size)
    grid = _Grid(np.asarray(mesh.bounds[0], dtype=np.float64), s)
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    lo = -_PAD
    shape = np.floor(np.ptp(mesh.bounds, axis=0) / s).astype(np.int64) + 1 + 2 * _PAD
    band = np.zeros(tuple(shape), dtype=bool)
    band[tuple((near_ijk - lo).T)] = True
    inside = np.zeros_like(band)
    wn_band = winding_numbers(v, f, grid.centres(near_ijk))
    inside[tuple((near_ijk - lo).T)] = wn_band >= 0.5

    labels, count = ndimage.label(~band)
    rng = np.random.default_rng(seed)
    watertight = bool(mesh.is_watertight)
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(1, count + 2))
    for region in range(1, count + 1):
        members = order[starts[region - 1] : starts[region]]
        pick = rng.choice(members, size=min(samples_per_region, len(members)), replace=False)
        ijk = np.stack(np.unravel_index(pick, band.shape), axis=1) + lo
        wn = winding_numbers(v, f, grid.centres(ijk)) >= 0.5
        if watertight or wn.all() or not wn.any():
            if wn.mean() >= 0.5:
                inside.ravel()[members] = True
            continue
        inside.ravel()[members] = _region_coarse_to_fine(members, band.shape, lo, grid, v, f)
    return np.argwhere(inside) + lo


def _region_coarse_to_fine(
    members: np.ndarray,  # [M] flat indices into the grid array
    shape: tuple[int, ...],
    lo: int,
    grid: _Grid,
    v: np.ndarray,
    f: np.ndarray,
) -> np.ndarray:
    """[M] bool winding number >= 0.5 for one region of an open mesh, evaluated coarse to fine.

    The winding number is smooth away from the surface, so it is evaluated on the even voxels
    (1 in 8); a voxel whose even corners in the region all agree takes their value, the rest
    (near where the winding number crosses 0.5, e.g. across a hole) are evaluated one by one.
    """
    idx = np.stack(np.unravel_index(members, shape), axis=1)
    coarse = (idx % 2 == 0).all(axis=1)
    values = np.full(shape, -1, dtype=np.int8)
    cw = winding_numbers(v, f, grid.centres(idx[coarse] + lo)) >= 0.5
    values.ravel()[members[coarse]] = cw
    offsets = np.stack(np.meshgrid(*[[0, 2]] * 3, indexing="ij"), -1).reshape(-1, 3)
    corners = (idx - idx % 2)[:, None, :] + offsets[None]  # [M, 8, 3]
    ok = (corners < np.asarray(shape)).all(axis=-1)
    cv = np.where(ok, values[tuple(np.minimum(corners, np.asarray(shape) - 1).transpose(2, 0, 1))], -1)
    known = cv >= 0
    ones = ((cv == 1) | ~known).all(axis=1) & known.any(axis=1)
    zeros = ((cv == 0) | ~known).all(axis=1) & known.any(axis=1)
    out = ones.copy()
    fine = ~(ones | zeros)
    fine[coarse] = False
    out[coarse] = cw
    out[fine] = winding_numbers(v, f, grid.centres(idx[fine] + lo)) >= 0.5
    log.debug("open region: %d voxels, %d coarse, %d fine", len(members), coarse.sum(), fine.sum())
    return out


# -- control points ---------------------------------------------------------------------------


def farthest_point_sampling(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """[k] indices of ``points`` [P, 3] chosen by farthest point sampling from a random start."""
    if not 1 <= k <= len(points):
        raise ValueError(f"farthest_point_sampling: k = {k}, expected 1..{len(points)}")
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(len(points))
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for i in range(1, k):
        chosen[i] = int(np.argmax(dist))
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[i]], axis=1))
    return chosen


def kmeans(points: np.ndarray, centres: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Lloyd's K-means from the given centres; [K, 3] final centres (empty clusters stay put)."""
    centres = centres.astype(np.float64).copy()
    for _ in range(iterations):
        _, assign = cKDTree(centres).query(points)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, points)
        n = np.bincount(assign, minlength=len(centres))
        moved = np.where(n[:, None] > 0, sums / np.maximum(n, 1)[:, None], centres)
        if np.allclose(moved, centres, atol=1e-12):
            break
        centres = moved
    return centres


def neighbor_scales(positions: np.ndarray, k: int = 3) -> np.ndarray:
    """[K] mean distance from each position [K, 3] to its ``k`` nearest others."""
    if len(positions) < 2:
        return np.ones(len(positions))  # caller rescales; a single point has no neighbours
    k = min(k, len(positions) - 1)
    d, _ = cKDTree(positions).query(positions, k=k + 1)
    return d[:, 1:].mean(axis=1)


def control_points_from_mesh(
    mesh: trimesh.Trimesh,
    T_world_obj: np.ndarray,  # [4, 4]
    config: ControlPointConfig = ControlPointConfig(),
    seed: int = 0,
) -> ObjectControlPoints:
    """Build one object's control points and voxel sets (seed A.1); outputs in world metres.

    Raises ChordError if the voxel search fails or the object yields fewer voxels than
    ``config.num_control_points``.
    """
    T = np.asarray(T_world_obj, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T_world_obj must be [4, 4], got shape {T.shape}")
    # Voxelise in a grid frame tilted against the object's axes: faces parallel to the grid
    # (boxes, plates, digital cousins) would make |S| jump by whole layers as s changes.
    mesh = mesh.copy()
    mesh.apply_transform(np.linalg.inv(GRID_TILT))
    T = T @ GRID_TILT
    s, near_ijk = find_voxel_size(mesh, config)
    in_ijk = inside_voxels(mesh, s, near_ijk, config.component_samples, seed)
    grid = _Grid(np.asarray(mesh.bounds[0], dtype=np.float64), s)
    near, inside = grid.centres(near_ijk), grid.centres(in_ijk)
    k = config.num_control_points
    pool = inside
    if len(inside) < 4 * k:
        # thinner than a voxel (a plate, a sheet): the seed's I is (nearly) empty
        pool = grid.centres(np.unique(np.concatenate([in_ijk, near_ijk]), axis=0))
        log.warning(
            "only %d voxel centres inside (s = %.4g m) for %d control points: using inside "
            "plus near-surface voxels (%d)",
            len(inside),
            s,
            k,
            len(pool),
        )
    if len(pool) < k:
        raise ChordError(f"only {len(pool)} voxels for num_control_points = {k}; lower it")
    init = pool[farthest_point_sampling(pool, k, seed)]
    positions = kmeans(pool, init, config.kmeans_iterations)
    scales = neighbor_scales(positions, config.scale_neighbors)
    if k == 1:
        scales = np.array([float(np.ptp(pool, axis=0).max()) / 2 + s])

    def world(x: np.ndarray) -> np.ndarray:
        return x @ T[:3, :3].T + T[:3, 3]

    log.info("control points: s = %.4g m, |S| = %d, |I| = %d, K = %d", s, len(near), len(inside), k)
    return ObjectControlPoints(world(positions), scales, world(near), world(inside), s)


def split_by_part(
    cps: ObjectControlPoints,
    label: Callable[[np.ndarray], np.ndarray],  # world points [N, 3] -> [N] int part index
    num_control_points: int,  # K for the whole object, shared out by the parts' volumes
    min_per_part: int = 4,  # at least this many per part (a rotation needs 3 non-collinear points)
    kmeans_iterations: int = 30,
    scale_neighbors: int = 3,
    seed: int = 0,
) -> ObjectControlPoints:
    """The object's control points redrawn part by part: FPS + K-means on each part's voxels.

    Each part gets ``K * (its share of the voxels)`` control points, at least ``min_per_part`` (so
    the total may exceed K); a part thinner than a voxel (a laptop lid) draws from its inside and
    near-surface voxels, as ``control_points_from_mesh`` does for a thin object. Each point's
    covariance scale is measured among the control points of its own part. Raises ChordError
    when a part holds fewer voxels than its control points.
    """
    inside_part = np.asarray(label(cps.inside), dtype=np.int64)
    near_part = np.asarray(label(cps.near_surface), dtype=np.int64)
    parts = np.unique(np.concatenate([inside_part, near_part]))
    volume = np.array([(inside_part == p).sum() + 0.5 * (near_part == p).sum() for p in parts], float)
    counts = np.maximum(np.round(volume / volume.sum() * num_control_points).astype(np.int64), min_per_part)
    positions, scales, labels = [], [], []
    for p, k in zip(parts.tolist(), counts.tolist(), strict=True):
        pool = cps.inside[inside_part == p]
        if len(pool) < 4 * k:
            pool = np.concatenate([pool, cps.near_surface[near_part == p]])
        if len(pool) < k:
            raise ChordError(f"part {p} has only {len(pool)} voxels for {k} control points")
        pos = kmeans(pool, pool[farthest_point_sampling(pool, k, seed + p)], kmeans_iterations)
        positions.append(pos)
        scales.append(neighbor_scales(pos, scale_neighbors))
        labels.append(np.full(k, p))
    log.info("control points by part: %s", dict(zip(parts.tolist(), counts.tolist(), strict=True)))
    return ObjectControlPoints(
        np.concatenate(positions),
        np.concatenate(scales),
        cps.near_surface,
        cps.inside,
        cps.voxel_size,
        np.concatenate(labels),
    )
