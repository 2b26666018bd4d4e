"""``chord view``: assemble one rerun recording from a run folder (file or live viewer), plus PNG plots."""

from __future__ import annotations

import logging
from pathlib import Path

import tyro

log = logging.getLogger(__name__)


def view(
    run_dir: tyro.conf.Positional[Path],
    out: Path | None = None,
    connect: bool = False,
    url: str = "",
    plots: Path | None = None,
    max_tracks: int = 1000,
    robot: bool = True,
) -> None:
    """Assemble one rerun recording from a run folder: scene, flow, plan, arm, sim verdict, losses, preview.

    Reads whatever RUN_DIR holds (scene.yaml or the scene named in config.json, flow.npz, plan.npz,
    sim.json, run.log, preview.mp4, bench results) and writes OUT (an .rrd file; open it with
    `rerun OUT`), or streams to a running viewer with --connect. Default OUT: RUN_DIR/recording.rrd.
    With --plots DIR, also writes PNGs (flow trajectories, loss curves) there.

    Example: chord view runs/banana --out runs/banana/recording.rrd

    Args:
        run_dir: run folder to show.
        out: .rrd file to write; default RUN_DIR/recording.rrd (none with --connect unless given).
        connect: stream to a running rerun viewer (start one with `rerun`).
        url: viewer address for --connect; "" = rerun's default (rerun+http://127.0.0.1:9876/proxy).
        plots: folder for PNG plots (flow.png, losses.png).
        max_tracks: flow trajectories drawn as line strips per object.
        robot: draw the arm (URDF meshes) moving along the plan.
    """
    from chord.viz.record import open_recording
    from chord.viz.run import log_run
    from core.errors import ChordError

    if max_tracks < 1:
        raise ChordError(f"--max-tracks is {max_tracks}, expected at least 1")
    if out is None and not connect:
        out = run_dir / "recording.rrd"
    with open_recording(out, connect=(url or True) if connect else False) as rec:
        contents = log_run(rec, run_dir, max_tracks=max_tracks, robot=robot)
    shown = [
        name
        for name, have in (
            ("scene", contents.scene),
            ("flow", contents.flow),
            (f"{len(contents.plans)} plan(s)", contents.plans),
            (f"{len(contents.sims)} sim verdict(s)", contents.sims),
            ("losses", contents.run_log),
            ("preview", contents.preview),
            ("bench", contents.bench),
        )
        if have
    ]
    where = f"{out}" if out is not None else "the viewer"
    print(f"{where}: {', '.join(shown)} from {run_dir}" + (f"; open it with `rerun {out}`" if out else ""))
    if plots is not None:
        for p in write_plots(run_dir, plots):
            print(f"plot: {p}")


def write_plots(run_dir: Path, folder: Path) -> list[Path]:
    """PNG plots of what RUN_DIR holds: flow.png (with the planned EE path) and losses.png."""
    import numpy as np

    from chord.viz.plots import plot_flow, plot_losses
    from chord.viz.run import find_run_contents
    from chord.viz.train import read_run_log
    from core.transforms import pose_to_matrix

    c = find_run_contents(run_dir)
    written = []
    if c.flow is not None:
        from core.flow import ObjectFlow

        ee = None
        if c.plans:
            from core.plan import Plan

            plan = Plan.load(c.plans[0])
            b = np.asarray(plan.base_pose)
            T = pose_to_matrix(b[:3], b[3:])
            ee = plan.ee_pose[:, :3] @ T[:3, :3].T + T[:3, 3]
        written.append(plot_flow(ObjectFlow.load(c.flow), folder / "flow.png", plan_ee=ee))
    if c.run_log is not None:
        written.append(
            plot_losses(read_run_log(c.run_log), folder / "losses.png", title=f"{run_dir.name}: losses")
        )
    return written
