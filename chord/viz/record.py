"""Opening a rerun recording (a file or a live viewer) and the timelines every stage shares.

Timelines (one name per kind of time, so stages never mix clocks):

- ``frame``      sequence: the flow's frame index t in [0, T)
- ``flow_time``  duration: the flow's ``times[t]``, seconds
- ``plan_time``  duration: seconds since the plan's start (plan, robot, sim rollout)
- ``iteration``  sequence: optimisation iteration of ``chord flow``

Entity paths: everything spatial lives under ``world/`` (metres, z up, the scene's world frame);
plots live under ``plots/``; images and video under ``camera/``.

Every stage command can take ``--rerun out.rrd``::

    with open_recording(args.rerun) as rec:   # None -> rec is None, nothing is logged
        ...
        if rec is not None:
            log_flow(rec, flow)
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ChordError

log = logging.getLogger(__name__)

APPLICATION_ID = "chord"
FRAME = "frame"
FLOW_TIME = "flow_time"
PLAN_TIME = "plan_time"
ITERATION = "iteration"
# rerun's default live-viewer address (`rerun` started with no arguments listens here).
DEFAULT_VIEWER_URL = "rerun+http://127.0.0.1:9876/proxy"


@dataclass
class Recording:
    """An open rerun recording stream plus where it goes; pass it to the ``log_*`` functions."""

    stream: Any  # rerun.RecordingStream
    path: Path | None  # the .rrd file being written, None for a live viewer

    def set_frame(self, t: int, seconds: float | None = None) -> None:
        """Put the following logs at flow frame ``t`` (and at ``seconds`` on ``flow_time``)."""
        self.stream.set_time(FRAME, sequence=int(t))
        if seconds is not None:
            self.stream.set_time(FLOW_TIME, duration=float(seconds))

    def set_plan_time(self, seconds: float) -> None:
        self.stream.set_time(PLAN_TIME, duration=float(seconds))

    def set_iteration(self, it: int) -> None:
        self.stream.set_time(ITERATION, sequence=int(it))

    def reset_time(self) -> None:
        self.stream.reset_time()

    def log(self, entity: str, archetype: Any, *, static: bool = False) -> None:
        self.stream.log(entity, archetype, static=static)

    def send_columns(self, entity: str, indexes: list[Any], columns: Any) -> None:
        self.stream.send_columns(entity, indexes=indexes, columns=columns)


def _rr():
    try:
        import rerun as rr
    except ImportError as e:  # pragma: no cover - rerun-sdk is a base dependency
        raise ChordError("visualisation needs rerun-sdk: `pip install rerun-sdk`") from e
    return rr


def new_recording(
    path: str | Path | None = None,
    *,
    connect: bool | str = False,
    recording_id: str | None = None,
) -> Recording:
    """Start a recording that writes ``path`` (an .rrd file) and/or streams to a running viewer.

    ``connect``: True streams to the default viewer address, a string to that URL. Nothing
    spawns a viewer: this works headless. The caller must :func:`close_recording` it (or use
    :func:`open_recording`). Raises ChordError for a path that is not ``.rrd``, or no sink.
    """
    rr = _rr()
    if path is None and not connect:
        raise ChordError("a recording needs a file (--rerun out.rrd / --out) or a viewer (--connect)")
    stream = rr.RecordingStream(APPLICATION_ID, recording_id=recording_id)
    # Wall-clock timelines would make every recording differ and clutter the viewer's time panel.
    stream.set_log_time_enabled(False)
    stream.set_log_tick_enabled(False)
    target = None
    if path is not None:
        target = Path(path)
        if target.suffix != ".rrd":
            raise ChordError(f"rerun recording path {str(target)!r}: expected a file name ending in .rrd")
        target.parent.mkdir(parents=True, exist_ok=True)
    if connect:
        url = DEFAULT_VIEWER_URL if connect is True else str(connect)
        stream.connect_grpc(url)
        log.info("streaming the recording to the viewer at %s", url)
    rec = Recording(stream, target)
    if target is not None:
        # Written beside the target and renamed on close: a reader never sees half a recording.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp.rrd", dir=target.parent)
        os.close(fd)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's 0600 would make the recording private
        rec._tmp = Path(tmp)  # type: ignore[attr-defined]
        if connect:
            stream.set_sinks(rr.FileSink(tmp), rr.GrpcSink(url))
        else:
            stream.save(tmp)
    rr_world_axes(rec)
    return rec


def rr_world_axes(rec: Recording) -> None:
    """Declare the world frame: right-handed, z up (the scene spec's convention)."""
    rr = _rr()
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)


def close_recording(rec: Recording, *, keep: bool = True) -> Path | None:
    """Flush and finish the recording; with ``keep`` the .rrd appears at its path atomically."""
    rec.stream.flush()
    rec.stream.disconnect()
    tmp: Path | None = getattr(rec, "_tmp", None)
    if tmp is None:
        return None
    if keep and rec.path is not None:
        os.replace(tmp, rec.path)
        log.info("wrote rerun recording %s (%.1f MB)", rec.path, rec.path.stat().st_size / 1e6)
        return rec.path
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    return None


@contextlib.contextmanager
def open_recording(
    path: str | Path | None, *, connect: bool | str = False, recording_id: str | None = None
) -> Iterator[Recording | None]:
    """Context for a stage's ``--rerun PATH`` flag: yields None when neither path nor viewer is given.

    On a clean exit the file appears at ``path``; if the body raises, no file is left behind.
    """
    if path is None and not connect:
        yield None
        return
    rec = new_recording(path, connect=connect, recording_id=recording_id)
    ok = False
    try:
        yield rec
        ok = True
    finally:
        close_recording(rec, keep=ok)


# -- colours ------------------------------------------------------------------------------
# Tableau-10: distinct, colour-blind-tolerant; object i gets PALETTE[i % 10].
PALETTE = np.array(
    [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ],
    dtype=np.uint8,
)


def color(i: int) -> np.ndarray:
    """[3] uint8 RGB of category ``i``."""
    return PALETTE[int(i) % len(PALETTE)]


def shade(base: np.ndarray, k: int, n: int) -> np.ndarray:  # base: [3] uint8
    """[3] uint8: variant ``k`` of ``n`` of a base colour (parts of one object), dark to light."""
    if n <= 1:
        return np.asarray(base, np.uint8)
    f = -0.45 + 0.9 * k / (n - 1)  # -0.45 darkens toward black, +0.45 lightens toward white
    b = np.asarray(base, float)
    out = b * (1 + f) if f < 0 else b + (255 - b) * f
    return np.clip(out, 0, 255).astype(np.uint8)


def safe_name(name: str) -> str:
    """An entity-path part for a user-given name (rerun splits paths on '/')."""
    return "".join(c if (c.isalnum() or c in "_-.") else "_" for c in str(name)) or "_"
