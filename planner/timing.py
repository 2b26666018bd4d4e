"""Time-optimal parameterisation of a joint path under velocity and acceleration limits (TOPP-RA).

The waypoints are joined by a cubic spline over their cumulative joint-space distance s; TOPP-RA
(``toppra``) finds the fastest admissible path speed sdot(s) on a grid, and the trajectory is
integrated between grid points with constant path acceleration, so q(t) is exactly on the spline.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from core.errors import ChordError, MissingDependencyError

log = logging.getLogger(__name__)


def _toppra():
    try:
        import toppra
        import toppra.algorithm
        import toppra.constraint
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("time parameterisation needs toppra: `pip install toppra`") from e
    toppra.setup_logging("WARNING")
    return toppra


@dataclass(frozen=True)
class TimedPath:
    """A joint path with its time law s(t); sample it with :meth:`sample`."""

    knots: np.ndarray  # [K] path parameter of each waypoint (rad of joint-space distance)
    grid: np.ndarray  # [G] path parameter of the TOPP-RA grid points
    grid_t: np.ndarray  # [G] time at each grid point, seconds from the path's start
    sd: np.ndarray  # [G] path speed at each grid point (1/s in units of s)
    spline: object  # toppra.SplineInterpolator: q(s), q'(s)
    index: np.ndarray  # [K] int, input waypoint index of each knot (identical ones are merged)
    stretch: float = 1.0  # the time law is slowed uniformly by this factor (>= 1)

    @property
    def duration(self) -> float:
        return float(self.grid_t[-1]) * self.stretch

    def s_at(self, t: np.ndarray) -> np.ndarray:  # t: [M] seconds
        """Path parameter [M] at times t, constant path acceleration between grid points."""
        t = np.clip(np.asarray(t, dtype=float), 0.0, self.duration) / self.stretch
        i = np.clip(np.searchsorted(self.grid_t, t, side="right") - 1, 0, len(self.grid) - 2)
        ds = self.grid[i + 1] - self.grid[i]
        acc = (self.sd[i + 1] ** 2 - self.sd[i] ** 2) / (2 * ds)
        tau = t - self.grid_t[i]
        return np.minimum(self.grid[i] + self.sd[i] * tau + 0.5 * acc * tau**2, self.grid[i + 1])

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # t: [M]
        """(s [M], q [M, J]) at times t (seconds from the path's start)."""
        s = self.s_at(t)
        return s, np.asarray(self.spline(s))


# A phase of a plan (approach, follow, retreat) lasts seconds: a flow clip is 2-5 s and the
# Cartesian speed cap stretches a follow a few times at most. A timing past this is a stalled
# path speed, and sampling it every 2 ms for the limit check would take gigabytes (a stalled lift
# came out at 629,536 s: a 2.3 GiB array, and the bench's worker was killed for memory).
MAX_DURATION_S = 600.0


def parameterize(
    q: np.ndarray,  # [K, J] waypoints, rad
    v_max: np.ndarray,  # [J] rad/s
    a_max: np.ndarray,  # [J] rad/s^2
    grid_per_knot: int = 6,
    min_step: float = 1e-3,  # rad: waypoints closer than this (joint-space norm) are merged
) -> TimedPath:
    """Fastest timing of the spline through ``q`` that respects |qd| <= v_max and |qdd| <= a_max.

    Starts and ends at rest. Near-duplicate waypoints are merged (``min_step``). Raises ChordError if
    TOPP-RA finds no admissible parameterisation.
    """
    ta = _toppra()
    q = np.asarray(q, dtype=float)
    # Waypoints closer than min_step to the last kept one are dropped (the last waypoint is
    # always kept): near-duplicate knots (a flow at rest, IK jitter) make the spline ring, and
    # its huge curvature there would force the path speed to ~0.
    keep = [0]
    for k in range(1, len(q)):
        if np.linalg.norm(q[k] - q[keep[-1]]) > min_step:
            keep.append(k)
    if keep[-1] != len(q) - 1:
        if len(keep) > 1:
            keep[-1] = len(q) - 1
        elif np.linalg.norm(q[-1] - q[0]) > 1e-9:
            keep.append(len(q) - 1)
    index = np.array(keep)
    q = q[index]
    if len(q) < 2:
        raise ChordError("time parameterisation: the path does not move (all waypoints identical)")
    s = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(q, axis=0), axis=1))]
    # Natural end conditions (no curvature at the ends): the waypoints say nothing of the path's
    # curvature there, and scipy's default (not-a-knot) extends the last cubic over the last two
    # intervals, so a path that turns there (a redundant arm's self-motion after the tool stops,
    # the IK drifting the elbow while the tool stands still) swings the end by hundreds of rad per
    # rad^2; TOPP-RA then holds the path speed at the last grid point near 0 and the last interval
    # took 13 s for 2 mrad (then stretched 2.8x by the Cartesian cap: the held part stood 39 s).
    spline = ta.SplineInterpolator(s, q, bc_type="natural")
    # The limits hold at grid points only: every knot is one, so a piece shorter than the grid's
    # spacing (merged near-duplicates leave short pieces at a path's ends) has its own ends checked
    # where the spline's curvature peaks, not only points around it. Uniform points within a
    # micro-fraction of a knot give way to it (a near-zero interval would ill-condition the steps).
    uniform = np.linspace(0.0, s[-1], max(50, grid_per_knot * len(q)))
    apart = np.abs(uniform[:, None] - s[None, :]).min(axis=1) > 1e-6 * s[-1]
    grid = np.union1d(uniform[apart], s)
    vlim = np.stack([-v_max, v_max], axis=1)
    alim = np.stack([-a_max, a_max], axis=1)
    instance = ta.algorithm.TOPPRA(
        [ta.constraint.JointVelocityConstraint(vlim), ta.constraint.JointAccelerationConstraint(alim)],
        spline,
        gridpoints=grid,
    )
    instance.compute_parameterization(0.0, 0.0)
    data = instance.problem_data
    from toppra.algorithm.algorithm import ParameterizationReturnCode

    if data.sd_vec is None or data.return_code != ParameterizationReturnCode.Ok:
        raise ChordError(f"time parameterisation failed: TOPP-RA return code {data.return_code}")
    g = np.asarray(data.gridpoints, dtype=float)
    sd = forward_pass(spline, g, np.asarray(data.K, dtype=float), a_max)
    g, sd = _stop_and_go(g, sd, float(np.min(a_max)))
    dt = 2 * np.diff(g) / np.maximum(sd[1:] + sd[:-1], 1e-12)
    grid_t = np.r_[0.0, np.cumsum(dt)]
    if not grid_t[-1] <= MAX_DURATION_S:  # before the dense check samples it every 2 ms (NaN too)
        raise ChordError(
            f"time parameterisation: the path would take {grid_t[-1]:.3g} s for {s[-1]:.3g} rad of joint "
            f"motion, over the {MAX_DURATION_S:.0f} s any phase of a plan may take (a path speed of ~0 "
            "between grid points)"
        )
    path = TimedPath(s, g, grid_t, sd, spline, index)
    # TOPP-RA holds the limits at the grid points only; check densely and slow down uniformly
    # (velocity scales with 1/k, acceleration with 1/k^2) until they hold everywhere.
    ratio_v, ratio_a = limit_ratios(path, v_max, a_max)
    k = max(1.0, ratio_v, np.sqrt(ratio_a)) * 1.01
    if k > 1.011:
        log.debug("timing: stretched by %.3f (grid overshoot v %.3f, a %.3f)", k, ratio_v, ratio_a)
    return dataclasses.replace(path, stretch=k)


def forward_pass(
    spline,  # toppra.SplineInterpolator: q(s), q'(s), q''(s)
    grid: np.ndarray,  # [G] path parameter of the grid points
    K: np.ndarray,  # [G, 2] TOPP-RA's controllable sets of x = sd^2 at the grid points
    a_max: np.ndarray,  # [J] rad/s^2
) -> np.ndarray:
    """[G] path speed sd at the grid points: the greedy forward pass of TOPP-RA, solved exactly.

    From x_0 = 0, each step takes the largest x_{i+1} in the controllable set K_{i+1} that the
    stage's joint accelerations allow: |q'(s_i) u + q''(s_i) x_i| <= a_max with x_{i+1} = x_i +
    2 ds u, a one-variable bound per joint. TOPP-RA's own forward pass (its seidel LP solver)
    returned x = 6e-8 at the last grid point of a path that turns there, where K allowed 0.0063
    and the stage reached it (sd 2.5e-4 instead of 0.079: 12.7 s for the last 1.2 mrad; suite
    rigid_004, a mug lifted with the arm's self-motion after the tool stops). K comes from TOPP-RA's
    backward pass, which holds the velocity limits and the way to rest at the end.
    """
    d1 = np.asarray(spline(grid, 1), dtype=float)  # [G, J]
    d2 = np.asarray(spline(grid, 2), dtype=float)
    x = np.zeros(len(grid))
    x[0] = min(max(0.0, K[0, 0]), K[0, 1])
    for i in range(len(grid) - 1):
        c, r = d1[i], d2[i] * x[i]
        moving = np.abs(c) > 1e-12  # a joint standing still bounds x alone, which K holds
        b1, b2 = (-a_max - r)[moving] / c[moving], (a_max - r)[moving] / c[moving]
        u_hi = float(np.maximum(b1, b2).min()) if moving.any() else np.inf
        reach = x[i] + 2.0 * (grid[i + 1] - grid[i]) * u_hi
        x[i + 1] = min(max(reach, K[i + 1, 0]), K[i + 1, 1])
    return np.sqrt(np.maximum(x, 0.0))


def _stop_and_go(
    g: np.ndarray,  # [G] grid points (path parameter, rad of joint-space distance)
    sd: np.ndarray,  # [G] path speed at each grid point, >= 0
    accel: float,  # path acceleration available from rest (min of a_max: |q'(s)| <= 1 per joint)
) -> tuple[np.ndarray, np.ndarray]:
    """(grid [G'], speeds [G']) with a midpoint added to every grid segment that the constant path
    acceleration between its two ends crosses slower than speeding up and braking again would.

    TOPP-RA gives the path speed at grid points only, and between two of them the trajectory
    keeps one path acceleration: a segment whose ends both sit at nearly zero speed (a spline
    that doubles back on itself between grid points, as an arm's redundant joints do where a
    flow's part eases to rest) is crossed at that speed, ds / sd. One such segment 5.6 mrad long,
    entered at 1.4e-4 rad/s, took 78 s of a 74 deg knob turn's plan (85 s instead of 1.2 s), the
    arm holding the knob all that while. A midpoint at squared speed (sd_i^2 + sd_i+1^2 + A ds) / 2
    speeds up over the first half and brakes over the second at A / 2 plus what the two ends'
    difference asks, A = ``accel`` (under the arc-length parameter no joint's q'(s) exceeds 1,
    so the joints' accelerations allow it from rest); it is added only where it is quicker.
    Where the path's curvature makes the midpoint too fast, the caller's dense limit check slows
    the whole path down.
    """
    ds = np.diff(g)
    x = sd**2
    mid_sd = np.sqrt(0.5 * (x[:-1] + x[1:] + accel * ds))
    direct = 2 * ds / np.maximum(sd[1:] + sd[:-1], 1e-12)
    split = ds / (sd[:-1] + mid_sd) + ds / (mid_sd + sd[1:])
    i = np.flatnonzero(split < 0.5 * direct)  # only where it is much quicker: TOPP-RA's speeds stand
    if not len(i):
        return g, sd
    order = np.argsort(np.r_[g, 0.5 * (g[i] + g[i + 1])], kind="stable")
    return np.r_[g, 0.5 * (g[i] + g[i + 1])][order], np.r_[sd, mid_sd[i]][order]


def limit_ratios(
    path: TimedPath, v_max: np.ndarray, a_max: np.ndarray, dt: float = 0.002
) -> tuple[float, float]:
    """Peak |qd| / v_max and |qdd| / a_max over the path, by finite differences at step dt (s)."""
    t = np.arange(0.0, path.duration + dt, dt)
    _, q = path.sample(t)
    qd = np.diff(q, axis=0) / dt
    qdd = np.diff(qd, axis=0) / dt
    return float((np.abs(qd) / v_max).max()), float((np.abs(qdd) / a_max).max())
