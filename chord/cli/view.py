"""``chord view``: assemble one rerun recording from a run folder (file or live viewer), plus PNG plots."""

from __future__ import annotations

import logging
from pathlib import Path

import tyro

from core.names import check_output_dir, check_output_file

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
    from chord.viz.run import record_run, write_plots

    if out is None and not connect:
        out = run_dir / "recording.rrd"
    if out is not None:
        check_output_file(out, "--out")
    if plots is not None:
        check_output_dir(plots, "--plots")
    contents = record_run(
        run_dir, out, (url or True) if connect else False, max_tracks=max_tracks, robot=robot
    )
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
