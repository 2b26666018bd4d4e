"""``chord view``'s work: one recording from whatever a run folder holds.

Recognised (all optional, at least one needed):

==========================  ===========================================================
file                        logged as
==========================  ===========================================================
``scene.yaml``, or the      scene meshes, table, camera (:mod:`chord.viz.scene`)
scene named in
``config.json`` /
``*.config.json``
``flow.npz``                flow tracks and points (:mod:`chord.viz.flow`)
``*.npz`` (chord.plan)      EE path, chosen grasp, joints, arm (:mod:`chord.viz.plan`);
                            its ``meta.validation`` as the sim verdict
``sim.json`` /              sim verdict (``chord sim --out``)
``*.sim.json``
``run.log``                 loss curves on ``iteration``
``preview.mp4`` / ``.gif``  the preview video on ``frame``
``success.png``,            the benchmark plot, table and trials
``table.txt``,
``results.jsonl``
==========================  ===========================================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from chord.viz.record import Recording
from core.contract import npz_schema, read_json_file
from core.errors import ChordError, ContractError
from core.record import PlanRecord, RunRecord

log = logging.getLogger(__name__)


@dataclass
class RunContents:
    """The files of a run folder that ``chord view`` knows how to show."""

    scene: Path | None = None
    flow: Path | None = None
    plans: list[Path] = field(default_factory=list)
    sims: list[Path] = field(default_factory=list)
    run_log: Path | None = None
    preview: Path | None = None
    bench: bool = False

    def empty(self) -> bool:
        return not (
            self.scene or self.flow or self.plans or self.sims or self.run_log or self.preview or self.bench
        )


def _scene_from_records(folder: Path) -> Path | None:
    """The scene named by the folder's run record or a plan record, if it exists on disk."""
    named: list[Path | None] = []
    if RunRecord.exists(folder):
        try:
            named.append(RunRecord.load(folder).scene)
        except ContractError as e:
            log.warning("not reading the scene from %s: %s", folder / "config.json", e)
    for path in sorted(folder.glob("*.config.json")):
        try:
            named.append(PlanRecord.load(path).scene)
        except ContractError as e:
            log.warning("not reading the scene from %s: %s", path, e)
    for scene in named:
        if scene is not None:
            for cand in (scene, folder / scene):
                if cand.is_file():
                    return cand
    return None


def find_run_contents(folder: str | Path) -> RunContents:
    """Look through ``folder`` (not recursively); raises ChordError if it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ChordError(f"run folder {str(folder)!r} does not exist or is not a folder")
    c = RunContents()
    for name in ("scene.yaml", "scene.yml"):
        if (folder / name).is_file():
            c.scene = folder / name
    c.scene = c.scene or _scene_from_records(folder)
    for npz in sorted(folder.glob("*.npz")):
        try:
            schema = npz_schema(npz)
        except ContractError as e:
            log.warning("skipping %s: %s", npz, e)
            continue
        if schema == "chord.flow" and (c.flow is None or npz.name == "flow.npz"):
            c.flow = npz
        elif schema == "chord.plan":
            c.plans.append(npz)
    c.sims = [p for p in [folder / "sim.json", *sorted(folder.glob("*.sim.json"))] if p.is_file()]
    c.run_log = folder / "run.log" if (folder / "run.log").is_file() else None
    for name in ("preview.mp4", "preview.gif"):
        if (folder / name).is_file():
            c.preview = folder / name
            break
    c.bench = any((folder / n).is_file() for n in ("success.png", "results.jsonl"))
    return c


def log_run(
    rec: Recording,
    folder: str | Path,
    *,
    max_tracks: int = 1000,  # flow line strips per object
    robot: bool = True,  # animate the arm of each plan
) -> RunContents:
    """Log everything :func:`find_run_contents` finds in ``folder`` into ``rec``.

    Raises ChordError if the folder holds nothing to show, or a file breaks its contract.
    """
    from chord.viz import flow as vflow
    from chord.viz import plan as vplan
    from chord.viz import scene as vscene
    from chord.viz import sim as vsim
    from chord.viz import train as vtrain

    folder = Path(folder)
    c = find_run_contents(folder)
    if c.empty():
        raise ChordError(
            f"{str(folder)!r} holds nothing chord view can show (scene.yaml, flow.npz, plan.npz, "
            "run.log, preview.mp4, sim.json, bench results)"
        )
    if c.scene is not None:
        from core.scene import Scene

        vscene.log_scene(rec, Scene.load(c.scene, check_files=False))
    if c.flow is not None:
        from core.flow import ObjectFlow

        vflow.log_flow(rec, ObjectFlow.load(c.flow), max_tracks=max_tracks)
    for p in c.plans:
        from core.plan import Plan

        plan = Plan.load(p)
        prefix = "world/plan" if len(c.plans) == 1 else f"world/plan_{p.stem}"
        vplan.log_plan(rec, plan, robot=robot and p == c.plans[0], prefix=prefix)
        if plan.validation is not None:
            vsim.log_sim_result(rec, plan.validation, entity=f"sim/{p.stem}")
    for s in c.sims:
        doc = read_json_file(s)  # size and nesting checked first (ContractError, one line)
        vsim.log_sim_result(rec, doc, entity=f"sim/{s.stem.replace('.', '_')}")
    if c.run_log is not None:
        vtrain.log_losses(rec, vtrain.read_run_log(c.run_log))
    if c.preview is not None:
        vtrain.log_preview(rec, c.preview)
    if c.bench:
        vsim.log_bench(rec, folder)
    return c


def record_run(
    run_dir: str | Path,
    out: Path | None,  # .rrd file to write; None with connect
    connect: bool | str = False,  # stream to a viewer: True (rerun's default address) or its URL
    *,
    max_tracks: int = 1000,  # flow line strips per object
    robot: bool = True,  # animate the arm of each plan
) -> RunContents:
    """One rerun recording of everything in ``run_dir`` (``chord view``); returns what it showed.

    Raises ChordError for a bad ``max_tracks``, a folder with nothing to show or a broken file.
    """
    from chord.viz.record import open_recording

    if max_tracks < 1:
        raise ChordError(f"--max-tracks is {max_tracks}, expected at least 1")
    with open_recording(out, connect=connect) as rec:
        return log_run(rec, run_dir, max_tracks=max_tracks, robot=robot)


def write_plots(run_dir: Path, folder: Path) -> list[Path]:
    """PNG plots of what RUN_DIR holds: flow.png (with the planned EE path) and losses.png."""
    import numpy as np

    from chord.viz.plots import plot_flow, plot_losses
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
