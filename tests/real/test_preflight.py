"""A corpus of unsafe plans: each is refused before anything moves, with its own reason code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from real.kinematics import DHKinematics, kinematics_for
from real.limits import FR3, PANDA
from real.preflight import PreflightRefusedError, Reason, SafetyConfig, preflight
from tests.real.plans import READY, make_plan, min_jerk, restamp, safe_plan

KIN = kinematics_for(PANDA)
CFG = SafetyConfig()


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
    p.gripper[150] += 1e-3  # a 1 mm edit of the gripper is enough: not the validated trajectories
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


def _robot_elsewhere():
    here = READY.copy()
    here[3] += 0.02
    return safe_plan(), CFG, here


# kind -> (builder, expected code, whether the expected code must be the only one)
CORPUS = {
    "never validated": (_unvalidated, Reason.NOT_VALIDATED, False),
    "failed in sim": (_failed_in_sim, Reason.NOT_VALIDATED, True),
    "edited after validation": (_edited_after_validation, Reason.HASH_MISMATCH, True),
    "NaN joint": (_nan, Reason.NONFINITE, True),
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
}


def test_the_safe_plan_passes_every_check():
    report = preflight(safe_plan(), PANDA, KIN, CFG, READY)
    assert report.ok, report.format()
    assert {c.code for c in report.checks} == set(Reason.ALL)


@pytest.mark.parametrize("kind", list(CORPUS))
def test_unsafe_plan_is_refused_with_its_reason(kind):
    build, code, only = CORPUS[kind]
    plan, cfg, here = build()
    report = preflight(plan, PANDA, KIN, cfg, here)
    assert not report.ok
    assert code in report.reasons, report.format()
    if only:
        assert report.reasons == [code], report.format()
    with pytest.raises(PreflightRefusedError) as e:
        report.raise_if_refused()
    assert code in e.value.reasons


def test_corpus_covers_at_least_15_distinct_reasons():
    assert len({code for _, code, _ in CORPUS.values()}) >= 15


def test_messages_name_the_value_and_limit():
    plan, cfg, here = _too_fast()
    msg = next(c.message for c in preflight(plan, PANDA, KIN, cfg, here).refused)
    # 2.0 rad min-jerk over 3 s peaks at 1.875 * 2 / 3 = 1.25 rad/s; the limit is 0.25 x 2.61.
    assert "panda_joint7" in msg and "1.25" in msg and "0.6525" in msg


def test_panda_plan_on_an_fr3_is_refused_for_its_joint_names():
    report = preflight(safe_plan(), FR3, KIN, CFG, READY)
    assert Reason.JOINT_NAMES in report.reasons


def test_slowdown_turns_a_too_fast_plan_into_a_safe_one():
    plan, cfg, here = _too_fast()
    slow = dataclasses.replace(cfg, slowdown=2.0)
    assert preflight(plan, PANDA, KIN, slow, here).ok


def test_offline_dry_run_skips_start_state_and_is_not_ok():
    report = preflight(safe_plan(), PANDA, KIN, CFG, None)
    assert report.reasons == []
    assert not report.ok
    assert [c.code for c in report.checks if c.passed is None] == [Reason.START_STATE]


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
