"""Execute a Plan in a SimWorld and record what happened, step by step.

The plan's q(t) and gripper(t) are interpolated linearly at the physics rate and sent as position
targets (with the plan's joint velocity fed forward). Every step records the arm, the tool, every
movable object's base, links and joint values, and the contacts that decide success: arm-table and
finger-object. Time 0 is the plan's start; the objects settle before it.

A plan longer than ``MAX_PLAN_DURATION_S`` is refused before the first step (every step is
recorded: a plan of 1e5 s would take hours and tens of GB), and a rollout that runs long logs its
progress every ``PROGRESS_EVERY_S`` seconds of wall time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from core.errors import ChordError
from core.plan import Plan
from core.transforms import pose_to_matrix, xyzw_to_wxyz
from sim.world import SimWorld

log = logging.getLogger(__name__)

# The longest plan the simulator runs, seconds. A tabletop manipulation plan lasts 5 to 60 s
# (``chord bench`` counts plans over its max_plan_s, 120 s by default, as planner failures); 10
# minutes of simulated time take minutes of wall time and GBs of recorded steps.
MAX_PLAN_DURATION_S = 600.0
PROGRESS_EVERY_S = 10.0  # wall seconds between progress lines of a long rollout


@dataclass(frozen=True)
class Rollout:
    """A simulated execution, one row per physics step (plan time t >= 0)."""

    t: np.ndarray  # [S] seconds since the plan's start
    q: np.ndarray  # [S, J] measured arm joints, rad
    q_cmd: np.ndarray  # [S, J] commanded arm joints, rad
    width: np.ndarray  # [S] measured gripper opening, m
    width_cmd: np.ndarray  # [S] commanded gripper opening, m
    T_world_tcp: np.ndarray  # [S, 4, 4] tool centre point in the world
    T_world_obj: dict[str, np.ndarray]  # movable object -> [S, 4, 4] URDF base frame in the world
    T_world_link: dict[str, np.ndarray]  # movable object -> [S, L, 4, 4] its child links in the world
    link_names: dict[str, tuple[str, ...]]  # movable object -> L child link names (T_world_link order)
    joints: dict[str, np.ndarray]  # movable object -> [S, K] joint values, rad or m
    joint_names: dict[str, tuple[str, ...]]  # movable object -> K joint names
    finger_contact: dict[str, np.ndarray]  # movable object -> [S, 2, L + 1] bool: finger i touches
    #   link l (index 0 = base, l + 1 = child link l)
    arm_contact: dict[str, np.ndarray]  # movable object -> [S, L + 1] bool: any arm link touches it
    arm_table: np.ndarray  # [S] bool: a moving arm link touches the table
    arm_table_links: tuple[str, ...]  # names of the arm links that touched the table
    settle_drift: dict[str, float]  # movable object -> metres its base moved while settling
    physics_hz: float  # solver rate (steps/s x sub-steps)
    wall_s: float  # seconds of wall time the rollout took
    # every other (not movable) object -> [S, 4, 4] its base frame in the world: a distractor the
    # arm knocks over is seen (the truth's judge requires bystanders to stay put)
    T_world_static: dict[str, np.ndarray] = field(default_factory=dict)

    def index_at(self, times: np.ndarray) -> np.ndarray:  # times: [K] seconds
        """[K] indices of the recorded steps nearest to ``times``."""
        return np.clip(
            np.searchsorted(self.t, np.asarray(times) - 0.5 * (self.t[1] - self.t[0])), 0, len(self.t) - 1
        )


def check_plan_duration(duration: float) -> None:
    """Raise ChordError for a plan the simulator will not run: longer than ``MAX_PLAN_DURATION_S``."""
    if not duration <= MAX_PLAN_DURATION_S:  # NaN fails too
        raise ChordError(
            f"the plan lasts {duration:.6g} s, more than the {MAX_PLAN_DURATION_S:g} s the simulator runs "
            "(sim.rollout.MAX_PLAN_DURATION_S); a tabletop plan lasts seconds: re-plan it"
        )


def plan_commands(plan: Plan, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # t: [S]
    """Linear interpolation of the plan at times t: q [S, J] rad, qd [S, J] rad/s, width [S] m."""
    return commands(plan.t, plan.q, plan.gripper, t)


def commands(
    t_plan: np.ndarray,  # [M] s, increasing
    q_plan: np.ndarray,  # [M, J] rad
    gripper: np.ndarray,  # [M] m
    t: np.ndarray,  # [S] s, the physics steps' times
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation of a timed trajectory at times t: q [S, J] rad, qd [S, J] rad/s
    (the segment's slope, 0 after its end), width [S] m."""
    q = np.stack([np.interp(t, t_plan, q_plan[:, j]) for j in range(q_plan.shape[1])], axis=1)
    seg = np.clip(np.searchsorted(t_plan, t, side="right") - 1, 0, len(t_plan) - 2)
    qd = (q_plan[seg + 1] - q_plan[seg]) / (t_plan[seg + 1] - t_plan[seg])[:, None]
    qd[t >= t_plan[-1]] = 0.0
    width = np.interp(t, t_plan, gripper)
    return q, qd, width


def execute(world: SimWorld, plan: Plan) -> Rollout:
    """Settle the scene with the arm at the plan's start, run the plan, hold, and record every step.

    Raises ChordError if the plan's joints are not the world's arm joints, or if it lasts longer
    than ``MAX_PLAN_DURATION_S`` (before any step).
    """
    check_plan_duration(plan.duration)
    if tuple(plan.joint_names) != tuple(world.arm_joint_names):
        raise ChordError(
            f"plan joints {list(plan.joint_names)} differ from the simulated arm's {list(world.arm_joint_names)}"
        )
    p, c, cfg = world.p, world.client, world.config
    wall0 = time.perf_counter()
    movable = [n for n, ob in world.objects.items() if ob.movable]
    world.reset_arm(plan.q[0], plan.gripper[0])
    start = {n: world.object_pose(n)[:3, 3] for n in movable}
    world.step(round(cfg.settle_s * cfg.physics_hz))
    drift = {n: float(np.linalg.norm(world.object_pose(n)[:3, 3] - start[n])) for n in movable}

    steps = int(np.ceil((plan.duration + cfg.hold_s) * cfg.physics_hz)) + 1
    t = np.arange(steps) * cfg.dt
    q_cmd, qd_cmd, w_cmd = plan_commands(plan, t)
    J = plan.num_joints
    links = {n: tuple(world.objects[n].links) for n in movable}
    link_idx = {n: list(world.objects[n].links.values()) for n in movable}
    rec_q = np.empty((steps, J))
    rec_w = np.empty(steps)
    rec_tcp = np.empty((steps, 4, 4))
    rec_obj = {n: np.empty((steps, 4, 4)) for n in movable}
    still = [n for n in world.objects if n not in movable]
    rec_still = {n: np.empty((steps, 4, 4)) for n in still}
    rec_link = {n: np.empty((steps, len(links[n]), 4, 4)) for n in movable}
    rec_joint = {n: np.empty((steps, len(world.objects[n].joints))) for n in movable}
    fingers = {n: np.zeros((steps, 2, len(links[n]) + 1), bool) for n in movable}
    arm_obj = {n: np.zeros((steps, len(links[n]) + 1), bool) for n in movable}
    arm_table = np.zeros(steps, bool)
    table_links: set[str] = set()
    finger_slot = {link: i for i, link in enumerate(world.finger_links[:2])}
    col = {n: {-1: 0, **{li: k + 1 for k, li in enumerate(link_idx[n])}} for n in movable}

    next_report = time.perf_counter() + PROGRESS_EVERY_S
    for k in range(steps):
        if time.perf_counter() >= next_report:
            next_report += PROGRESS_EVERY_S
            log.info(
                "sim: %.1f of %.1f s simulated (%.0f%%), %.0f s so far",
                t[k], t[-1], 100 * k / steps, time.perf_counter() - wall0,
            )  # fmt: skip
        world.command(q_cmd[k], qd_cmd[k], w_cmd[k])
        world.step()
        rec_q[k], rec_w[k] = world.arm_state()
        rec_tcp[k] = world.tcp_pose()
        for n in movable:
            ob = world.objects[n]
            rec_obj[n][k] = world.object_pose(n)
            if link_idx[n]:
                states = p.getLinkStates(
                    ob.body, link_idx[n], computeForwardKinematics=True, physicsClientId=c
                )
                for li, s in enumerate(states):
                    rec_link[n][k, li] = pose_to_matrix(np.array(s[4]), xyzw_to_wxyz(np.array(s[5])))
            rec_joint[n][k] = world.joint_values(n)
            for cp in world.contacts(world.arm, ob.body):
                slot = col[n].get(cp[4])
                if slot is None:
                    continue
                arm_obj[n][k, slot] = True
                f = finger_slot.get(cp[3])
                if f is not None:
                    fingers[n][k, f, slot] = True
        for n in still:
            rec_still[n][k] = world.object_pose(n)
        touching = world.contacts(world.arm, world.table)
        if touching:
            arm_table[k] = True
            table_links.update(world.arm_link_names.get(cp[3], str(cp[3])) for cp in touching)

    return Rollout(
        t=t,
        q=rec_q,
        q_cmd=q_cmd,
        width=rec_w,
        width_cmd=w_cmd,
        T_world_tcp=rec_tcp,
        T_world_obj=rec_obj,
        T_world_link=rec_link,
        link_names=links,
        joints=rec_joint,
        joint_names={n: tuple(world.objects[n].joints) for n in movable},
        finger_contact=fingers,
        arm_contact=arm_obj,
        arm_table=arm_table,
        arm_table_links=tuple(sorted(table_links)),
        settle_drift=drift,
        physics_hz=cfg.physics_hz * cfg.substeps,
        wall_s=time.perf_counter() - wall0,
        T_world_static=rec_still,
    )
