"""A simulated rollout in a recording: the object's actual path beside the flow's, the arm as measured;
sim verdicts and benchmark results."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from chord.viz.record import FRAME, PLAN_TIME, Recording, color, safe_name

log = logging.getLogger(__name__)


def carried_path(
    T_world_obj: np.ndarray,  # [S, 4, 4] the object's simulated base pose at each step
    point0: np.ndarray,  # [3] world point on the object at step 0
) -> np.ndarray:
    """[S, 3] where ``point0`` goes when carried rigidly with the object."""
    local = np.linalg.solve(T_world_obj[0], np.r_[point0, 1.0])
    return (T_world_obj @ local)[:, :3]


def log_rollout(
    rec: Recording,
    rollout,  # sim.rollout.Rollout
    flow=None,  # core.flow.ObjectFlow the rollout should follow (its centroid path is drawn)
    *,
    urdf: str | Path | None = None,  # arm URDF to animate with the measured joints (None: no arm)
    joint_names: tuple[str, ...] | None = None,  # arm joint names of rollout.q (with urdf)
    T_world_base: np.ndarray | None = None,  # [4, 4] arm base (with urdf)
    prefix: str = "world/sim",
    max_samples: int = 2000,  # steps logged on plan_time (evenly thinned beyond this)
) -> dict[str, np.ndarray]:
    """Log a rollout on ``plan_time``: per movable object, ``<prefix>/<obj>/actual_path`` (static
    strip) and ``<prefix>/<obj>/actual`` (point per step) of the flow centroid carried by the
    simulated object; ``<prefix>/<obj>/flow_path`` (the flow's own centroid path, static) beside
    it; the TCP path; measured gripper width. Returns object -> [S, 3] actual path.
    """
    import rerun as rr

    S = len(rollout.t)
    keep = np.unique(np.linspace(0, S - 1, min(S, max_samples)).round().astype(int))
    time_col = rr.TimeColumn(PLAN_TIME, duration=np.asarray(rollout.t, float)[keep])
    tcp = np.asarray(rollout.T_world_tcp)[keep, :3, 3]
    rec.log(f"{prefix}/tcp_path", rr.LineStrips3D([tcp], colors=[[230, 60, 60]]), static=True)
    rec.send_columns("plots/sim/gripper_width", [time_col], rr.Scalars.columns(scalars=rollout.width[keep]))
    out = {}
    for name, T in rollout.T_world_obj.items():
        ent = f"{prefix}/{safe_name(name)}"
        k = list(flow.object_names).index(name) if flow is not None and name in flow.object_names else None
        if k is not None:
            c_flow = flow.points[:, flow.object_index == k].mean(1).astype(float)  # [T, 3]
            rec.log(
                f"{ent}/flow_path",
                rr.LineStrips3D([c_flow], colors=[color(k)], radii=rr.Radius.ui_points(3.0), labels=["flow"]),
                static=True,
            )
            start = c_flow[0]
        else:
            start = np.asarray(T)[0, :3, 3]
        path = carried_path(np.asarray(T, float), start)
        out[name] = path
        rec.log(
            f"{ent}/actual_path",
            rr.LineStrips3D(
                [path[keep]], colors=[[20, 20, 20]], radii=rr.Radius.ui_points(2.0), labels=["sim"]
            ),
            static=True,
        )
        rec.log(f"{ent}/actual", rr.Points3D.from_fields(colors=[[20, 20, 20]], radii=0.01), static=True)
        rec.send_columns(f"{ent}/actual", [time_col], rr.Points3D.columns(positions=path[keep]))
        for link, TL in zip(
            rollout.link_names.get(name, ()),
            np.moveaxis(rollout.T_world_link.get(name, np.zeros((S, 0, 4, 4))), 1, 0),
            strict=True,
        ):
            rec.send_columns(
                f"{ent}/links/{safe_name(link)}", [time_col], rr.Points3D.columns(positions=TL[keep, :3, 3])
            )
    if urdf is not None and joint_names is not None:
        from chord.viz.robot import load_urdf, log_robot_model, log_robot_motion

        model = load_urdf(urdf)
        log_robot_model(rec, model, prefix="world/sim_robot")
        log_robot_motion(
            rec, model, np.asarray(rollout.t)[keep], joint_names, np.asarray(rollout.q)[keep],
            T_world_base=T_world_base, prefix="world/sim_robot",
        )  # fmt: skip
    return out


def log_sim_result(rec: Recording, result: dict[str, Any], entity: str = "sim") -> None:
    """Log a sim verdict (``SimResult.to_dict()`` or ``chord sim --out`` JSON): a text summary, and
    the per-flow-frame tracking error (mm) on the ``frame`` timeline at ``plots/<entity>/track_error_mm``."""
    import rerun as rr

    metrics = result.get("metrics", result)
    status = "SUCCESS" if result.get("success") else f"FAILURE ({result.get('cause')})"
    lines = [f"# sim: {status}", "", str(result.get("reason", "")), ""]
    lines += [
        f"- **{k}**: {v}" for k, v in metrics.items() if isinstance(v, (int, float, str)) and v is not None
    ]
    rec.log(
        f"{entity}/verdict", rr.TextDocument("\n".join(lines), media_type=rr.MediaType.MARKDOWN), static=True
    )
    track = metrics.get("track_position_m")
    if track:
        rec.send_columns(
            f"plots/{entity}/track_error_mm",
            [rr.TimeColumn(FRAME, sequence=np.arange(len(track)))],
            rr.Scalars.columns(scalars=1000 * np.asarray(track, float)),
        )


def log_bench(rec: Recording, folder: str | Path, entity: str = "bench") -> list[str]:
    """Log a ``chord bench`` folder: ``success.png`` (its plot, drawn by sim.bench), ``table.txt``
    and per-trial tracking errors from ``results.jsonl``. Returns the files used."""
    import rerun as rr

    folder = Path(folder)
    used = []
    png = folder / "success.png"
    if png.is_file():
        rec.log(f"{entity}/success_plot", rr.EncodedImage(path=png), static=True)
        used.append(png.name)
    table = folder / "table.txt"
    if table.is_file():
        rec.log(f"{entity}/table", rr.TextDocument(table.read_text(encoding="utf-8")), static=True)
        used.append(table.name)
    results = folder / "results.jsonl"
    if results.is_file():
        rows = []
        for line in results.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError):
                continue  # a torn last line from an interrupted run
        lines = [
            f"{r.get('task', '?')} {r.get('method', '?')} trial {r.get('trial', '?')}: "
            f"{'success' if r.get('success') else r.get('cause') or 'failure'}"
            for r in rows
        ]
        rec.log(f"{entity}/trials", rr.TextDocument("\n".join(lines)), static=True)
        used.append(results.name)
    return used
