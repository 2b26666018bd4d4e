"""A plan in a recording: the end-effector path, grasps, joint states and the arm moving."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from chord.viz.record import PLAN_TIME, Recording, safe_name
from core.transforms import pose_to_matrix

log = logging.getLogger(__name__)

FINGER_LENGTH = 0.05  # metres, drawn finger length of the gripper glyph
STEM_LENGTH = 0.05  # metres, drawn wrist stem behind the palm


def gripper_glyph(
    T_world_ee: np.ndarray,  # [4, 4] TCP pose: z toward the object, fingers close along y
    width: float,  # metres, opening between the fingertips
) -> list[np.ndarray]:
    """Line strips (world metres) drawing a parallel gripper: two fingers, a palm and a stem."""
    h = 0.5 * width
    u, d = -FINGER_LENGTH, -FINGER_LENGTH - STEM_LENGTH
    local = [
        np.array([[0, -h, 0], [0, -h, u], [0, h, u], [0, h, 0]]),
        np.array([[0, 0, u], [0, 0, d]]),
    ]
    return [p @ T_world_ee[:3, :3].T + T_world_ee[:3, 3] for p in local]


def log_grasps(
    rec: Recording,
    T_world_ee: np.ndarray,  # [K, 4, 4] candidate TCP poses in the world
    widths: np.ndarray,  # [K] metres, gripper opening drawn for each
    scores: np.ndarray | None = None,  # [K] higher is better; colours red (worst) to green (best)
    chosen: int | None = None,  # index of the chosen candidate, drawn thick and labelled
    entity: str = "world/plan/grasps",
) -> None:
    """Log grasp candidates as gripper glyphs (static) and the chosen one at ``<entity>/chosen``.

    Raises ValueError for mismatched lengths or a ``chosen`` index out of range.
    """
    import rerun as rr

    T = np.asarray(T_world_ee, float).reshape(-1, 4, 4)
    widths = np.broadcast_to(np.asarray(widths, float), (len(T),))
    if scores is not None and len(scores) != len(T):
        raise ValueError(f"log_grasps: {len(scores)} scores for {len(T)} candidates")
    if chosen is not None and not 0 <= chosen < len(T):
        raise ValueError(f"log_grasps: chosen is {chosen}, expected an index in [0, {len(T)})")
    if scores is not None and len(T):
        s = np.asarray(scores, float)
        u = (s - s.min()) / (np.ptp(s) or 1.0)
        cols = np.stack([255 * (1 - u), 200 * u, 40 + 0 * u], 1).astype(np.uint8)
    else:
        cols = np.tile(np.array([[120, 120, 220]], np.uint8), (len(T), 1))
    strips, strip_cols = [], []
    for k in range(len(T)):
        if k == chosen:
            continue
        g = gripper_glyph(T[k], widths[k])
        strips += g
        strip_cols += [cols[k]] * len(g)
    if strips:
        rec.log(
            entity, rr.LineStrips3D(strips, colors=strip_cols, radii=rr.Radius.ui_points(1.0)), static=True
        )
    if chosen is not None:
        log_chosen_grasp(rec, T[chosen], float(widths[chosen]), f"{entity}/chosen")


def log_chosen_grasp(
    rec: Recording, T_world_ee: np.ndarray, width: float, entity: str, label: str = ""
) -> None:
    """Log one grasp glyph, thick and gold, with an optional label."""
    import rerun as rr

    rec.log(
        entity,
        rr.LineStrips3D(
            gripper_glyph(T_world_ee, width),
            colors=[[255, 190, 0]],
            radii=rr.Radius.ui_points(4.0),
            labels=[label or "chosen grasp", ""],
        ),
        static=True,
    )


def _plan_urdf(plan) -> Path | None:
    """The URDF of the registered robot the plan names (core.robots); None for any other name (a plan
    never chooses the file that is loaded) or when the entry's URDF is not installed."""
    from core.errors import ChordError
    from core.robots import ROBOTS

    if plan.robot not in ROBOTS:
        return None
    try:
        return ROBOTS[plan.robot].urdf_path()
    except ChordError:
        return None


def log_plan(
    rec: Recording,
    plan,  # core.plan.Plan
    *,
    urdf: str | Path | None = None,  # arm model; default: the registered robot plan.robot names
    robot: bool = True,  # animate the arm from its URDF
    prefix: str = "world/plan",
) -> dict[str, object]:
    """Log a plan on the ``plan_time`` timeline.

    Entities: ``<prefix>/ee_path`` (static LineStrips3D of all M end-effector positions, world),
    ``<prefix>/ee`` (Points3D, one per sample), ``<prefix>/grasps/chosen`` (the gripper at the
    grasp, from the report's ``close`` phase), ``plots/plan/q/<joint>`` and
    ``plots/plan/gripper_width`` (Scalars), and the arm (``world/robot/<link>``, see
    :mod:`chord.viz.robot`). Returns what was logged: ``ee_world`` [M, 3], ``links``, ``urdf``.
    """
    import rerun as rr

    from chord.viz.robot import load_urdf, log_robot_model, log_robot_motion

    base = np.asarray(plan.base_pose, float)
    T_world_base = pose_to_matrix(base[:3], base[3:])
    T_base_ee = np.stack([pose_to_matrix(p[:3], p[3:]) for p in plan.ee_pose])
    T_world_ee = T_world_base @ T_base_ee
    ee = T_world_ee[:, :3, 3]
    t = np.asarray(plan.t, float)
    time_col = rr.TimeColumn(PLAN_TIME, duration=t)
    rec.log(
        f"{prefix}/ee_path",
        rr.LineStrips3D([ee], colors=[[230, 60, 60]], radii=rr.Radius.ui_points(2.0)),
        static=True,
    )
    rec.log(f"{prefix}/ee", rr.Points3D.from_fields(colors=[[230, 60, 60]], radii=0.008), static=True)
    rec.send_columns(f"{prefix}/ee", [time_col], rr.Points3D.columns(positions=ee))
    rec.send_columns("plots/plan/gripper_width", [time_col], rr.Scalars.columns(scalars=plan.gripper))
    for j, name in enumerate(plan.joint_names):
        rec.send_columns(
            f"plots/plan/q/{safe_name(name)}", [time_col], rr.Scalars.columns(scalars=plan.q[:, j])
        )

    phases = plan.report.get("phases_s", {}) if isinstance(plan.report, dict) else {}
    grasp = plan.report.get("grasp", {}) if isinstance(plan.report, dict) else {}
    if "close" in phases:
        k = int(np.clip(np.searchsorted(t, float(phases["close"][0])), 0, len(t) - 1))
        width = float(plan.gripper[max(k - 1, 0)])
        label = f"{grasp.get('kind', 'grasp')} at t={t[k]:.2f} s, width {1000 * width:.0f} mm"
        log_chosen_grasp(rec, T_world_ee[k], width, f"{prefix}/grasps/chosen", label)

    out: dict[str, object] = {"ee_world": ee, "links": {}, "urdf": None}
    if robot:
        path = Path(urdf) if urdf is not None else _plan_urdf(plan)
        if path is None:
            log.warning("plan robot %r is not a URDF file: the arm is not drawn", plan.robot)
            return out
        model = load_urdf(path)
        log_robot_model(rec, model)
        by_name = {j.name: j for j in model.joints.values()}
        # Joints the plan does not drive: prismatic fingers share the gripper width, others stay at 0.
        fingers = [
            n for n in model.movable_joints if n not in plan.joint_names and by_name[n].kind == "prismatic"
        ]
        extra = {n: 0.5 * np.asarray(plan.gripper) for n in fingers}
        out["links"] = log_robot_motion(
            rec, model, t, plan.joint_names, plan.q, T_world_base=T_world_base, extra=extra
        )
        out["urdf"] = path
    return out
