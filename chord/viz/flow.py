"""Dense object flow in a recording: trajectories as line strips, and the points moving frame by frame."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from chord.viz.record import FLOW_TIME, FRAME, Recording, color, safe_name, shade

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowLogged:
    """What :func:`log_flow` wrote for one object."""

    name: str  # object name
    entity: str  # entity path prefix, e.g. "world/flow/banana"
    tracks: int  # trajectories drawn as line strips
    points: int  # points animated on the frame timeline
    parts: int  # distinct part labels among the object's points (0 if none given)


def flow_colors(
    object_index: np.ndarray,  # [N] int
    parts: np.ndarray | None = None,  # [N] int part label, -1 = none
) -> np.ndarray:
    """[N, 3] uint8: each object its palette colour; with ``parts``, each part a shade of it."""
    object_index = np.asarray(object_index)
    out = np.empty((len(object_index), 3), np.uint8)
    for i in np.unique(object_index):
        m = object_index == i
        base = color(int(i))
        if parts is None:
            out[m] = base
            continue
        labels = np.unique(parts[m][parts[m] >= 0])
        out[m] = (0.5 * base + 0.5 * 128).astype(np.uint8)  # unlabelled: greyed
        for k, lab in enumerate(labels):
            out[m & (parts == lab)] = shade(base, k, len(labels))
    return out


def log_flow(
    rec: Recording,
    flow,  # core.flow.ObjectFlow
    *,
    parts: np.ndarray | None = None,  # [N] int part label per point (-1 = none); colours by part
    max_tracks: int = 1000,  # line strips per object (a random subset beyond this)
    animate: bool = True,  # also log every point at every frame on the `frame` timeline
    radius: float = 0.002,  # metres, point radius in the viewer
    seed: int = 0,  # which subset of tracks is drawn
    prefix: str = "world/flow",
) -> list[FlowLogged]:
    """Log a flow: per object, ``<prefix>/<object>/tracks`` (static LineStrips3D, one strip of T
    vertices per drawn point) and ``<prefix>/<object>/points`` (Points3D on the ``frame`` and
    ``flow_time`` timelines, one row per frame).

    Colours: by object (palette), or by part when ``parts`` is given. Raises ValueError if
    ``parts`` is not [N] integers or ``max_tracks`` < 1.
    """
    import rerun as rr

    pts = np.asarray(flow.points, np.float32)  # [T, N, 3]
    T, N = pts.shape[:2]
    if parts is not None:
        parts = np.asarray(parts)
        if parts.shape != (N,) or parts.dtype.kind not in "iu":
            raise ValueError(
                f"log_flow: parts has shape {parts.shape} dtype {parts.dtype}, expected [{N}] int"
            )
    if max_tracks < 1:
        raise ValueError(f"log_flow: max_tracks is {max_tracks}, expected at least 1")
    colors = flow_colors(flow.object_index, parts)
    rng = np.random.default_rng(seed)
    frames = rr.TimeColumn(FRAME, sequence=np.arange(T))
    times = rr.TimeColumn(FLOW_TIME, duration=np.asarray(flow.times, np.float64))
    out = []
    for i, name in enumerate(flow.object_names):
        idx = np.flatnonzero(flow.object_index == i)
        ent = f"{prefix}/{safe_name(name)}"
        drawn = idx if len(idx) <= max_tracks else np.sort(rng.choice(idx, max_tracks, replace=False))
        rec.log(
            f"{ent}/tracks",
            rr.LineStrips3D(
                np.ascontiguousarray(pts[:, drawn].transpose(1, 0, 2)),
                colors=colors[drawn],
                radii=rr.Radius.ui_points(1.0),
            ),
            static=True,
        )
        if animate:
            rec.log(f"{ent}/points", rr.Points3D.from_fields(colors=colors[idx], radii=radius), static=True)
            rec.send_columns(
                f"{ent}/points",
                [frames, times],
                rr.Points3D.columns(positions=pts[:, idx].reshape(-1, 3)).partition([len(idx)] * T),
            )
        n_parts = 0 if parts is None else len(np.unique(parts[idx][parts[idx] >= 0]))
        out.append(FlowLogged(name, ent, len(drawn), len(idx) if animate else 0, n_parts))
    log.debug("logged flow: %s", out)
    return out
