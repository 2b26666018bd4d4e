"""A corpus of unsafe plans: each is refused before anything moves, with its own reason code.

Every plan is checked with the full set of models a session has: FK, the collision model with a
scene (the box task's table and box, or the same plus a post), and a re-simulation verdict (a
passing one given by the test, except for the plans whose re-simulation is the point: those are
re-simulated in PyBullet by ``real.revalidate``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from core.plan import Plan
from real.kinematics import DHKinematics, kinematics_for
from real.limits import FR3, PANDA
from real.preflight import (
    PreflightRefusedError,
    Reason,
    SafetyConfig,
    check_self_collision,
    collision_samples,
    preflight,
)
from real.revalidate import revalidate
from tests.real.plans import BOX_SLOWDOWN, READY, make_plan, min_jerk, passing_resim, restamp, safe_plan
from tests.sim import scaffold as S

KIN = kinematics_for(PANDA)
CFG = SafetyConfig()
# Joints where a Panda finger is inside link1 (found by sampling configurations in PyBullet); every
# joint is > 0.1 rad inside its limits and every link origin well above the table.
FINGER_IN_LINK1 = np.array([-1.312, -1.022, -0.741, -2.927, -0.345, 0.251, -1.428])


def _unvalidated():
    p = safe_plan()
    object.__setattr__(p, "validation", None)
    return p, CFG, READY


def _failed_in_sim():
    p = safe_plan()
    object.__setattr__(p, "validation", {**p.validation, "success": False})
    return p, CFG, READY


def _edited_after_validation():
    p = safe_plan()
    # A 1 mm edit of the recorded tool path is enough: not the validated trajectories. (An edit of
    # the gripper mid-motion would also be refused as gripper_while_moving.)
    p.ee_pose[150, 0] += 1e-3
    return p, CFG, READY


def _nan():
    p = safe_plan()
    p.q[120, 3] = np.nan
    return restamp(p), CFG, READY


def _swapped_joints():
    names = list(PANDA.joint_names)
    names[1], names[2] = names[2], names[1]
    t, q = min_jerk(READY, READY + 0.1, 3.0)
    return make_plan(t, q, joint_names=tuple(names)), CFG, READY


def _other_robot():
    p = safe_plan()  # panda_joint names on an FR3
    return p, dataclasses.replace(CFG), READY


def _made_for_another_arm():
    # the Panda's joints and motion, but the plan says it was made for an FR3: pre-flight on a Panda
    return restamp(dataclasses.replace(safe_plan(), robot="fr3")), CFG, READY


def _time_backwards():
    p = safe_plan()
    p.t[60] = p.t[59]
    return restamp(p), CFG, READY


def _sparse():
    t, q = min_jerk(READY, READY + 0.1, 3.0, dt=0.5)
    return make_plan(t, q), CFG, READY


def _ends_moving():
    t, q = min_jerk(READY, READY + 0.3, 3.0)
    return make_plan(t[:151], q[:151]), CFG, READY


def _starts_moving():
    t, q = min_jerk(READY, READY + 0.3, 3.0)
    return make_plan(t[150:] - t[150], q[150:]), CFG, q[150]


def _joint_limit():
    start = READY.copy()
    start[5] = 0.0  # joint 6 lower limit is -0.0175 rad: inside the 0.05 rad margin band
    t, q = min_jerk(start, start + np.array([0, 0, 0, 0, 0, 0, 0.1]), 2.0)
    return make_plan(t, q), CFG, start


def _too_fast():
    # Joint 7 spins about the tool axis: fast in joint space, nothing moves in cartesian space.
    t, q = min_jerk(READY, READY + np.array([0, 0, 0, 0, 0, 0, 2.0]), 3.0)
    return make_plan(t, q), CFG, READY


def _too_hard_acceleration():
    t, q = min_jerk(READY, READY + np.array([0, 0, 0, 0, 0, 0, 0.05]), 0.2)
    return make_plan(t, q), CFG, READY


def _jerky():
    # Bang-bang acceleration (4 rad/s^2, under 0.25 x 20) sampled at 1 kHz: the switch is a jerk spike.
    dt, a = 0.001, 4.0
    t = np.arange(0, 0.2 + dt / 2, dt)
    acc = np.where(t < 0.1, a, -a)
    v = np.concatenate([[0], np.cumsum(acc[:-1] * dt)])
    x = np.concatenate([[0], np.cumsum(v[:-1] * dt + 0.5 * acc[:-1] * dt**2)])
    q = np.tile(READY, (len(t), 1))
    q[:, 6] += x
    return make_plan(t, q), CFG, READY


def _outside_workspace():
    t, q = min_jerk(READY, READY + np.array([0, 0.4, 0, 0.4, 0, 0, 0]), 4.0)
    cfg = dataclasses.replace(CFG, workspace_max=(0.4, 0.9, 1.2))
    return make_plan(t, q), cfg, READY


def _into_table():
    t, q = min_jerk(READY, READY + np.array([0, 0.3, 0, 0.1, 0, 0, 0]), 4.0)
    lowest = KIN.points(q)[:, -1, 2].min()
    cfg = dataclasses.replace(CFG, table_z=float(lowest) + 0.01 - CFG.tcp_clearance)
    return make_plan(t, q), cfg, READY


def _tool_too_fast():
    # Within the full joint limits (speed_scale 1) but over the first-run cartesian cap.
    t, q = min_jerk(READY, READY + np.array([0.5, 0, 0, 0, 0, 0, 0]), 1.0)
    return make_plan(t, q), dataclasses.replace(CFG, speed_scale=1.0), READY


def _link_too_fast():
    t, q = min_jerk(READY, READY + np.array([0, 0, 0, 0, 0, 0.5, 0]), 1.0)
    return make_plan(t, q), dataclasses.replace(CFG, first_run=False, cartesian_speed_max=0.1), READY


def _only_the_tool_too_fast():
    # Joint 6 turns the hand: the tool, furthest out, peaks at 0.065 m/s, the fingers at 0.053.
    t, q = min_jerk(READY, READY + np.array([0, 0, 0, 0, 0, 0.3, 0]), 2.0)
    return make_plan(t, q), dataclasses.replace(CFG, first_run=False, cartesian_speed_max=0.06), READY


def _only_a_link_too_fast():
    # Folded so the wrist (0.44 m out) is twice as far from the base axis as the tool (0.21 m),
    # then turned about joint 1: the wrist peaks at 0.124 m/s, the tool at 0.059 m/s.
    folded = np.array([0.0, 0.2, 0.0, -2.3, 0.0, 0.5, 0.785])
    t, q = min_jerk(folded, folded + np.array([0.3, 0, 0, 0, 0, 0, 0]), 2.0)
    return make_plan(t, q), dataclasses.replace(CFG, first_run=False, cartesian_speed_max=0.09), folded


def _robot_elsewhere():
    here = READY.copy()
    here[3] += 0.02
    return safe_plan(), CFG, here


def _gripper_too_wide():
    p = safe_plan()
    p.gripper[:] = 0.5  # 0.5 m all along: the Franka Hand opens 0.08 m at most
    return restamp(p), CFG, READY


def _grasp_force_too_high():
    return safe_plan(), dataclasses.replace(CFG, grasp_force=500.0), READY  # the hand allows 70 N


def _gripper_closes_while_moving():
    p = safe_plan()
    p.gripper[100:151] = np.linspace(0.04, 0.02, 51)  # closes between t=1.0 and 1.5 s, mid-motion
    p.gripper[151:] = 0.02
    return restamp(p), CFG, READY


def _finger_into_link1():
    t, q = min_jerk(READY, FINGER_IN_LINK1, 10.0)
    return make_plan(t, q), CFG, READY


def _through_a_post():
    return safe_plan(), CFG, READY  # checked against the scene with a post in the tool's way


def _box_plan(box_task, **config) -> tuple[Plan, SafetyConfig, np.ndarray]:
    plan = Plan.load(box_task.plan)
    return plan, dataclasses.replace(CFG, slowdown=BOX_SLOWDOWN, **config), plan.q[0]


def _judged_against_another_flow(box_task, tmp: Path):
    plan, cfg, here = _box_plan(box_task)
    other = S.lift_flow(lift=0.05).save(tmp / "low.npz")
    return plan, cfg, here, revalidate(plan, box_task.scene, other)


def _forged_validation(box_task, tmp: Path):
    # The fingers never close: the box stays on the table. The record claims success, with the
    # plan's own content hash recomputed after the edit: every check of the file passes.
    plan, cfg, here = _box_plan(box_task)
    plan.gripper[:] = plan.gripper.max()
    restamp(plan)
    return plan, cfg, here, revalidate(plan, box_task.scene, box_task.flow)


# kind -> (builder, expected code, whether the expected code must be the only one)
CORPUS = {
    "never validated": (_unvalidated, Reason.NOT_VALIDATED, True),
    "failed in sim": (_failed_in_sim, Reason.NOT_VALIDATED, True),
    "edited after validation": (_edited_after_validation, Reason.HASH_MISMATCH, True),
    "NaN joint": (_nan, Reason.NONFINITE, True),
    "made for another arm": (_made_for_another_arm, Reason.ROBOT, True),
    "swapped joint order": (_swapped_joints, Reason.JOINT_NAMES, True),
    "time goes backwards": (_time_backwards, Reason.TIME_NOT_INCREASING, True),
    "waypoints too sparse": (_sparse, Reason.SAMPLE_GAP, True),
    "ends moving": (_ends_moving, Reason.FINAL_NOT_AT_REST, True),
    "starts moving": (_starts_moving, Reason.START_NOT_AT_REST, True),
    "inside joint limit margin": (_joint_limit, Reason.JOINT_LIMIT, True),
    "joint too fast": (_too_fast, Reason.VELOCITY_LIMIT, True),
    "joint accelerates too hard": (_too_hard_acceleration, Reason.ACCELERATION_LIMIT, True),
    "jerk spike": (_jerky, Reason.JERK_LIMIT, True),
    "leaves the workspace box": (_outside_workspace, Reason.WORKSPACE, True),
    "dips into the table": (_into_table, Reason.TABLE, True),
    "tool too fast for a first run": (_tool_too_fast, Reason.TCP_SPEED, False),
    "link too fast": (_link_too_fast, Reason.LINK_SPEED, False),
    "robot not at the start": (_robot_elsewhere, Reason.START_STATE, True),
    "only the tool over the cap": (_only_the_tool_too_fast, Reason.TCP_SPEED, True),
    "only a link over the cap": (_only_a_link_too_fast, Reason.LINK_SPEED, True),
    "gripper opens 0.5 m": (_gripper_too_wide, Reason.GRIPPER_WIDTH, True),
    "grasp force 500 N": (_grasp_force_too_high, Reason.GRASP_FORCE, True),
    "gripper closes while the arm moves": (_gripper_closes_while_moving, Reason.GRIPPER_WHILE_MOVING, True),
    "finger driven into link 1": (_finger_into_link1, Reason.SELF_COLLISION, True),
    "tool through a post": (_through_a_post, Reason.SCENE_COLLISION, True),
    "re-simulated against another flow": (_judged_against_another_flow, Reason.FLOW_MISMATCH, True),
    "forged validation record": (_forged_validation, Reason.SIM_FAILED, True),
}
# Builders that need the box task (and a folder) and bring their own re-simulation verdict.
NEEDS_BOX = {_judged_against_another_flow, _forged_validation}


@pytest.fixture()
def checks(box_collision_model):
    """What a session checks with: FK, the collision model with the box scene, a passing verdict."""
    return {"collision": box_collision_model, "sim": passing_resim()}


def test_the_safe_plan_passes_every_check(checks):
    report = preflight(safe_plan(), PANDA, KIN, CFG, READY, **checks)
    assert report.ok, report.format()
    assert {c.code for c in report.checks} == set(Reason.ALL)


def test_the_planned_box_lift_passes_every_check_re_simulated(box_task, box_collision_model):
    plan, cfg, here = _box_plan(box_task)
    sim = revalidate(plan, box_task.scene, box_task.flow)
    report = preflight(plan, PANDA, KIN, cfg, here, collision=box_collision_model, sim=sim)
    assert report.ok, report.format()
    assert "re-simulated here in PyBullet" in sim[1].message


@pytest.mark.parametrize("kind", list(CORPUS))
def test_unsafe_plan_is_refused_with_its_reason(kind, checks, box_task, post_collision_model, tmp_path):
    build, code, only = CORPUS[kind]
    if build in NEEDS_BOX:
        plan, cfg, here, checks["sim"] = build(box_task, tmp_path)
    else:
        plan, cfg, here = build()
    if build is _through_a_post:
        checks["collision"] = post_collision_model
    report = preflight(plan, PANDA, KIN, cfg, here, **checks)
    assert not report.ok
    assert code in report.reasons, report.format()
    if only:
        assert report.reasons == [code], report.format()
    with pytest.raises(PreflightRefusedError) as e:
        report.raise_if_refused()
    assert code in e.value.reasons


def test_corpus_covers_at_least_15_distinct_reasons():
    assert len({code for _, code, _ in CORPUS.values()}) >= 15


def test_corpus_covers_every_reason():
    assert {code for _, code, _ in CORPUS.values()} == set(Reason.ALL)
    assert len(Reason.ALL) == len(set(Reason.ALL)) == 25
    # ... each by a plan that hits exactly that reason and no other
    assert {code for _, code, only in CORPUS.values() if only} == set(Reason.ALL)


def test_messages_name_the_value_and_limit():
    plan, cfg, here = _too_fast()
    msg = next(c.message for c in preflight(plan, PANDA, KIN, cfg, here).refused)
    # 2.0 rad min-jerk over 3 s peaks at 1.875 * 2 / 3 = 1.25 rad/s; the limit is 0.25 x 2.61.
    assert "panda_joint7" in msg and "1.25" in msg and "0.6525" in msg


def test_panda_plan_on_an_fr3_is_refused_for_its_joint_names():
    report = preflight(safe_plan(), FR3, KIN, CFG, READY)
    assert Reason.JOINT_NAMES in report.reasons


def test_slowdown_turns_a_too_fast_plan_into_a_safe_one(checks):
    plan, cfg, here = _too_fast()
    slow = dataclasses.replace(cfg, slowdown=2.0)
    assert preflight(plan, PANDA, KIN, slow, here, **checks).ok


def test_offline_dry_run_skips_start_state_and_is_not_ok(checks):
    report = preflight(safe_plan(), PANDA, KIN, CFG, None, **checks)
    assert report.reasons == []
    assert not report.ok
    assert [c.code for c in report.checks if c.passed is None] == [Reason.START_STATE]


def test_without_collision_model_scene_or_resimulation_nothing_passes():
    # Each missing model is a skipped rule, and a skipped rule keeps the plan from running.
    report = preflight(safe_plan(), PANDA, KIN, CFG, READY)
    skipped = [c.code for c in report.checks if c.passed is None]
    assert report.reasons == [] and not report.ok
    assert skipped == [Reason.SELF_COLLISION, Reason.SCENE_COLLISION, Reason.FLOW_MISMATCH, Reason.SIM_FAILED]
    resim = next(c for c in report.checks if c.code == Reason.FLOW_MISMATCH)
    assert "--scene, --flow" in resim.message


def test_a_plan_refused_for_its_own_faults_is_not_re_simulated():
    # The re-simulation takes seconds: pre-flight calls it only once every other rule but the
    # start state passed, and at most once however often it is asked.
    calls = []

    def resim():
        calls.append(1)
        return passing_resim()

    bad = _joint_limit()[0]
    report = preflight(bad, PANDA, KIN, CFG, READY, sim=resim)
    assert Reason.JOINT_LIMIT in report.reasons and calls == []
    skipped = {c.code: c.message for c in report.checks if c.passed is None}
    assert "refused already (joint_limit" in skipped[Reason.FLOW_MISMATCH]
    assert skipped[Reason.SIM_FAILED] == "skipped: depends on flow_mismatch"
    report = preflight(safe_plan(), PANDA, KIN, CFG, READY, sim=resim)
    assert calls == [1]
    assert [c.passed for c in report.checks if c.code in (Reason.FLOW_MISMATCH, Reason.SIM_FAILED)] == [
        True,
        True,
    ]


def test_self_collision_names_the_finger_and_link1(self_collision_model):
    plan, cfg, here = _finger_into_link1()
    report = preflight(plan, PANDA, KIN, cfg, here, collision=self_collision_model, sim=passing_resim())
    msg = next(c.message for c in report.refused)
    assert report.reasons == [Reason.SELF_COLLISION]
    assert "panda_link1 and panda_" in msg and "finger" in msg, msg
    # Without a scene there is nothing else to hit: the scene check says so; the self-collision
    # check needs no scene.
    scene = next(c for c in report.checks if c.code == Reason.SCENE_COLLISION)
    assert scene.passed is True and scene.message == "no scene given (--scene): only the arm itself"


def test_collisions_are_sampled_finer_than_a_control_period(self_collision_model):
    # Two collision-free waypoints 2 s apart whose straight joint line brushes the left finger
    # against link1 in between (found by sampling in PyBullet): a check at the waypoints sees
    # nothing; the samples, at most 4 ms and 0.01 rad apart, find it.
    a = np.array([-0.815, -1.018, -0.421, -2.747, -0.3, 1.067, -0.311])
    b = np.array([-0.815, -0.847, -0.499, -2.674, -0.129, 0.436, -0.867])
    t, q, w = np.array([0.0, 2.0]), np.stack([a, b]), np.full(2, 0.04)
    ts, qs, _ = collision_samples(t, q, w, CFG.collision_dt, CFG.collision_step)
    assert np.diff(ts).max() <= CFG.collision_dt + 1e-12 and len(ts) == 501
    assert np.abs(np.diff(qs, axis=0)).max() <= CFG.collision_step
    np.testing.assert_allclose(qs[[0, -1]], q)
    assert self_collision_model.self_collision(q, w, CFG.self_clearance) is None
    r = check_self_collision(
        t, q, w, PANDA, self_collision_model, CFG.self_clearance, CFG.collision_dt, CFG.collision_step
    )
    assert r.passed is False and "panda_link1 and panda_leftfinger" in r.message, r.message


def test_ur5e_dh_matches_published_zero_pose():
    # UR's own zero pose: the flange at x = a2 + a3, y = -(d4 + d6), z = d1 - d5.
    p = DHKinematics("ur5e").points(np.zeros((1, 6)))[0, -1]
    np.testing.assert_allclose(p, [-0.8172, -0.2329, 0.0628], atol=1e-4)


def test_panda_fk_matches_pybullet():
    import pybullet as pb
    import pybullet_data

    cid = pb.connect(pb.DIRECT)
    try:
        body = pb.loadURDF(
            f"{pybullet_data.getDataPath()}/franka_panda/panda.urdf", useFixedBase=True, physicsClientId=cid
        )
        links = {
            pb.getJointInfo(body, i, physicsClientId=cid)[12].decode(): i
            for i in range(pb.getNumJoints(body, physicsClientId=cid))
        }
        rng = np.random.default_rng(0)
        lo, hi = np.asarray(PANDA.lower), np.asarray(PANDA.upper)
        for q in rng.uniform(lo, hi, size=(5, 7)):
            for j in range(7):
                pb.resetJointState(body, j, q[j], physicsClientId=cid)
            ours = KIN.points(q[None])[0]
            for name, p in zip(KIN.frame_names, ours, strict=True):
                theirs = pb.getLinkState(
                    body, links[name], computeForwardKinematics=True, physicsClientId=cid
                )[4]
                np.testing.assert_allclose(p, theirs, atol=1e-5, err_msg=name)
    finally:
        pb.disconnect(physicsClientId=cid)
