"""chord real re-simulates the plan it is about to stream; the plan file's own record is never trusted."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from chord.cli.main import main
from core.plan import Plan
from real.backends.fake import FakeGripper, FakeRobot, SimClock
from real.kinematics import kinematics_for
from real.limits import FRANKA_HAND, PANDA
from real.preflight import Reason, SafetyConfig
from real.revalidate import revalidate
from real.session import run_session
from tests.real.plans import BOX_SLOWDOWN, restamp
from tests.sim import scaffold as S


def _forged(box_task, tmp_path) -> tuple[Plan, str]:
    """The box plan with its fingers never closing, and a record claiming success for it.

    The record is edited as an attacker would: meta.validation rewritten with the plan's own,
    recomputed content hash. Every check of the file itself passes.
    """
    plan = Plan.load(box_task.plan)
    plan.gripper[:] = plan.gripper.max()
    restamp(plan)
    assert plan.validation["plan_sha256"] == plan.content_hash()
    return plan, str(plan.save(tmp_path / "forged.npz"))


def test_the_planned_plan_re_simulates_in_its_scene(box_task):
    flow, sim = revalidate(Plan.load(box_task.plan), box_task.scene, box_task.flow)
    assert flow.passed and "the one the plan was made from" in flow.message
    assert sim.passed and sim.message.startswith(
        "re-simulated here in PyBullet: box/base reached the flow's goal"
    )


def test_a_forged_record_is_refused_by_the_re_simulation(box_task, tmp_path):
    plan, _ = _forged(box_task, tmp_path)
    flow, sim = revalidate(plan, box_task.scene, box_task.flow)
    assert flow.passed and sim.passed is False
    assert sim.message.startswith("re-simulated here in PyBullet: FAILURE (grasp)")


def test_a_forged_plan_never_reaches_the_arm(box_task, tmp_path):
    plan, _ = _forged(box_task, tmp_path)
    clock = SimClock()
    hand = FakeGripper(FRANKA_HAND, width=float(plan.gripper[0]), object_width=0.04, clock=clock)
    robot = FakeRobot(PANDA, q0=plan.q[0], clock=clock, gripper=hand)
    from core.scene import Scene
    from real.collision import collision_for

    with collision_for(PANDA, scene=Scene.load(box_task.scene)) as collision, robot:
        out = run_session(
            robot, plan, SafetyConfig(slowdown=BOX_SLOWDOWN), lambda request: True,
            kinematics=kinematics_for(PANDA), collision=collision,
            sim=revalidate(plan, box_task.scene, box_task.flow),
            approach=False, execute=True, log_path=tmp_path / "log.npz",
        )  # fmt: skip
    assert not out.success and out.message.startswith("refused before moving (sim_failed)")
    assert [e for e in robot.events if e.kind == "send"] == [] and hand.commands == []


def test_chord_real_refuses_a_forged_record_end_to_end(box_task, tmp_path, capsys):
    _, path = _forged(box_task, tmp_path)
    log = tmp_path / "run.npz"
    args = ["real", path, "--scene", str(box_task.scene), "--flow", str(box_task.flow)]
    args += ["--slowdown", str(BOX_SLOWDOWN), "--backend", "fake", "--execute", "--fake-object-width", "0.04"]
    assert main([*args, "--log-path", str(log)]) == 1
    captured = capsys.readouterr()
    assert (
        "[ok  ] not_validated" in captured.out and "[ok  ] hash_mismatch" in captured.out
    )  # the forgery holds
    assert "[FAIL] sim_failed: re-simulated here in PyBullet: FAILURE (grasp)" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("chord real: error: refused before moving (sim_failed)")
    assert not log.exists() and not (tmp_path / "real_logs").exists()  # nothing ran


def test_without_scene_and_flow_nothing_moves(box_task, capsys):
    args = ["real", str(box_task.plan), "--slowdown", str(BOX_SLOWDOWN), "--backend", "fake"]
    assert main([*args, "--execute", "--fake-object-width", "0.04"]) == 1
    captured = capsys.readouterr()
    assert "[skip] flow_mismatch: skipped: not re-simulated: give the scene and the flow" in captured.out
    assert "refused before moving" in captured.err
    assert main(["real", str(box_task.plan), "--scene", str(box_task.scene)]) == 1
    assert "give both --scene and --flow" in capsys.readouterr().err


def test_a_flow_the_plan_does_not_belong_to_is_refused(box_task, tmp_path):
    other = S.lift_flow(lift=0.05).save(tmp_path / "low.npz")
    plan = Plan.load(box_task.plan)
    flow, sim = revalidate(plan, box_task.scene, other)
    assert flow.passed is False and sim.passed is None
    assert "but the plan was made from flow" in flow.message and "judged against" in flow.message
    # The flow a record names as judged against is accepted, and the simulation decides.
    judged = dataclasses.replace(plan, validation={**plan.validation, "goal_flow_sha256": flow_hash(other)})
    flow, sim = revalidate(judged, box_task.scene, other)
    assert flow.passed and "judged against" in flow.message and sim.passed is not None


def flow_hash(path) -> str:
    from core.flow import ObjectFlow

    return ObjectFlow.load(path).content_hash()


@pytest.mark.parametrize("what", ["scene", "flow", "robot"])
def test_what_cannot_be_simulated_is_refused_not_raised(box_task, tmp_path, what):
    plan = Plan.load(box_task.plan)
    scene, flow = box_task.scene, box_task.flow
    if what == "scene":
        scene = tmp_path / "missing.yaml"
    elif what == "flow":
        flow = tmp_path / "garbage.npz"
        flow.write_bytes(b"not an npz")
    else:
        plan = restamp(dataclasses.replace(plan, robot="/etc/passwd.urdf"))
    flow_r, sim_r = revalidate(plan, scene, flow)
    if what != "robot":  # an unreadable file refuses both; a robot the sim cannot load, the sim
        assert flow_r.passed is False and flow_r.message.startswith("cannot be run:")
    assert sim_r.passed is False and sim_r.message.startswith("cannot be run:")
    if what == "robot":
        assert "plan robot '/etc/passwd.urdf' is not a known robot" in sim_r.message
    assert sim_r.code == Reason.SIM_FAILED and np.isfinite(plan.q).all()
