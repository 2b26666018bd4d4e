"""Collision geometry for dynamic bodies: convex pieces (PyBullet needs convex shapes to move).

Convex parts use their hull. Other meshes are split by PyBullet's V-HACD (``p.vhacd``), cached by
the mesh's content and the settings, because a decomposition takes seconds. The cache lives in
``$CHORD_CACHE/vhacd`` (default ``~/.cache/chord/vhacd``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh

from core.atomic import atomic_write
from core.errors import ChordError

log = logging.getLogger(__name__)

# A mesh whose volume is within this fraction of its hull's counts as convex.
CONVEX_TOLERANCE = 0.02


@dataclass(frozen=True)
class VhacdSettings:
    """The V-HACD settings that matter for us (PyBullet's ``p.vhacd`` keywords)."""

    resolution: int = 100_000  # voxels; 20,000 is ~4x faster and coarser
    concavity: float = 0.0025  # maximum allowed concavity, fraction of the object's size
    maxNumVerticesPerCH: int = 64  # vertices per convex piece
    minVolumePerCH: float = 0.0001  # smallest piece, fraction of the object's volume


def cache_dir() -> Path:
    """Folder of cached decompositions (``$CHORD_CACHE/vhacd`` or ``~/.cache/chord/vhacd``)."""
    root = os.environ.get("CHORD_CACHE") or str(Path.home() / ".cache" / "chord")
    return Path(root) / "vhacd"


def is_convex(mesh: trimesh.Trimesh, tolerance: float = CONVEX_TOLERANCE) -> bool:
    """Whether a closed mesh fills its convex hull to within ``tolerance`` (volume fraction)."""
    if not mesh.is_watertight:
        return False
    hull = mesh.convex_hull.volume
    return hull > 0 and abs(hull - abs(mesh.volume)) <= tolerance * hull


def convex_pieces(mesh: trimesh.Trimesh, settings: VhacdSettings | None = None) -> list[trimesh.Trimesh]:
    """Convex pieces covering ``mesh`` (same frame): its hull if convex, else a V-HACD decomposition.

    Open meshes (partial scans) are decomposed too; if V-HACD returns nothing, the hull is used.
    """
    if is_convex(mesh):
        return [mesh.convex_hull]
    pieces = vhacd(mesh, settings or VhacdSettings())
    if not pieces:
        log.warning("V-HACD returned no pieces; using the convex hull for collision")
        return [mesh.convex_hull]
    return pieces


def vhacd(mesh: trimesh.Trimesh, settings: VhacdSettings) -> list[trimesh.Trimesh]:
    """V-HACD convex decomposition through PyBullet, cached on disk by content and settings."""
    key = hashlib.sha256()
    key.update(np.ascontiguousarray(mesh.vertices, dtype=np.float64).tobytes())
    key.update(np.ascontiguousarray(mesh.faces, dtype=np.int64).tobytes())
    key.update(repr(sorted(asdict(settings).items())).encode())
    cached = cache_dir() / f"{key.hexdigest()[:32]}.obj"
    if not cached.is_file():
        _run_vhacd(mesh, settings, cached)
    else:
        log.debug("V-HACD cache hit %s", cached)
    return read_obj_objects(cached)


def _run_vhacd(mesh: trimesh.Trimesh, settings: VhacdSettings, out: Path) -> None:
    import pybullet as p

    with tempfile.TemporaryDirectory(prefix="chord_vhacd_") as tmp:
        src, dst, log_file = Path(tmp, "in.obj"), Path(tmp, "out.obj"), Path(tmp, "log.txt")
        plain = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        src.write_text(trimesh.exchange.obj.export_obj(plain, include_normals=False, include_color=False))
        client = p.connect(p.DIRECT)
        try:
            with _quiet_stdout():
                p.vhacd(str(src), str(dst), str(log_file), physicsClientId=client, **asdict(settings))
        finally:
            p.disconnect(client)
        if not dst.is_file():
            raise ChordError(f"V-HACD produced no output for a mesh of {len(mesh.faces)} faces")
        with atomic_write(out, "w") as f:
            f.write(dst.read_text())
    log.info("V-HACD decomposition cached at %s", out)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence C-level stdout (V-HACD prints progress lines straight to file descriptor 1)."""
    try:
        fd = os.dup(1)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            try:
                yield
            finally:
                os.dup2(fd, 1)
    finally:
        os.close(fd)


def read_obj_objects(path: Path) -> list[trimesh.Trimesh]:
    """The ``o``-separated objects of an OBJ file (V-HACD's output) as convex hulls."""
    verts: list[list[float]] = []
    groups: list[list[list[int]]] = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("o ") or (line.startswith("f ") and not groups):
            groups.append([])
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            groups[-1].append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:4]])
    V = np.asarray(verts, dtype=float)
    pieces = []
    for faces in groups:
        if not faces:
            continue
        used = np.unique(np.asarray(faces))
        pts = V[used]
        if len(pts) >= 4 and np.linalg.matrix_rank(pts - pts.mean(0), tol=1e-9) == 3:
            pieces.append(trimesh.convex.convex_hull(pts))
    return pieces
