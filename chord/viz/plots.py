"""Static PNG plots for reports and notes: flow trajectories and loss curves (matplotlib, Agg).

The benchmark's success-rate plot is drawn by :func:`sim.bench.plot` (``success.png``), not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chord.viz.record import color
from core.atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    _pyplot().close(fig)
    return path


def plot_flow(
    flow,  # core.flow.ObjectFlow
    path: str | Path,
    *,
    max_tracks: int = 150,  # trajectories drawn per object
    seed: int = 0,
    plan_ee: np.ndarray | None = None,  # [M, 3] world end-effector path to overlay
) -> Path:
    """Write a PNG of the flow: top view (x-y) and side view (x-z) of point trajectories per object,
    start marked with a dot, plus each object's displacement over time. Returns the path."""
    plt = _pyplot()
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    pts = np.asarray(flow.points, float)
    for i, name in enumerate(flow.object_names):
        idx = np.flatnonzero(flow.object_index == i)
        drawn = idx if len(idx) <= max_tracks else rng.choice(idx, max_tracks, replace=False)
        c = color(i) / 255.0
        for ax, (a, b) in zip(axes[:2], ((0, 1), (0, 2)), strict=True):
            ax.plot(pts[:, drawn, a], pts[:, drawn, b], color=c, lw=0.6, alpha=0.6)
            ax.scatter(pts[0, drawn, a], pts[0, drawn, b], color=c, s=3)
        disp = np.linalg.norm(pts[:, idx] - pts[:1, idx], axis=-1)  # [T, n]
        axes[2].plot(flow.times, 1000 * disp.mean(1), color=c, label=f"{name} (mean)")
        axes[2].fill_between(flow.times, 1000 * disp.min(1), 1000 * disp.max(1), color=c, alpha=0.2)
    if plan_ee is not None:
        for ax, (a, b) in zip(axes[:2], ((0, 1), (0, 2)), strict=True):
            ax.plot(plan_ee[:, a], plan_ee[:, b], color="crimson", lw=1.8, label="planned EE path")
        axes[0].legend(loc="best", fontsize=8)
    for ax, (xl, yl), title in zip(
        axes[:2], (("x (m)", "y (m)"), ("x (m)", "z (m)")), ("top view", "side view"), strict=True
    ):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"flow trajectories, {title}")
        ax.grid(alpha=0.3)
    axes[2].set_xlabel("time (s)")
    axes[2].set_ylabel("displacement from frame 0 (mm)")
    axes[2].set_title(f"{flow.num_frames} frames, {flow.num_points} points, prior {flow.prior!r}")
    axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_losses(
    series: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str = ""
) -> Path:
    """Write a PNG of loss curves over iterations (log y where all values are positive)."""
    plt = _pyplot()
    loss_keys = [k for k in series if not k.startswith(("lr", "w_")) and "lr" not in k.split("_")]
    other = [k for k in series if k not in loss_keys]
    fig, axes = plt.subplots(1, 2 if other else 1, figsize=(12 if other else 7, 4.4), squeeze=False)
    for ax, keys, ylabel in (
        (axes[0, 0], loss_keys, "loss"),
        *(((axes[0, 1], other, "schedule"),) if other else ()),
    ):
        positive = True
        for k in keys:
            its, vals = series[k]
            ax.plot(its, vals, label=k)
            positive &= bool((vals > 0).all())
        if positive and keys:
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_title(title or "chord flow: losses")
    fig.tight_layout()
    return _save(fig, path)
