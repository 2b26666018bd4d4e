"""Franka end to end: the franky backend against franky-sim (libfranka's protocol on 127.0.0.1).

franky-sim simulates the Franka Hand too (its gripper server on port 1338, MuJoCo fingers under
force control), so the gripper path is tested end to end: franky's ``Gripper`` closes on a cube
standing on a pedestal between the fingers, the measured width shows it held, and the cube rises
with the lift; with nothing between the fingers the run stops before the lift.
"""

from __future__ import annotations

import numpy as np
import pytest

from real.backends.franky import FrankaRobot
from real.collision import collision_for
from real.execute import ExecutionConfig, Outcome, execute
from real.kinematics import kinematics_for
from real.limits import FR3
from real.preflight import Reason, SafetyConfig, preflight
from tests.real.plans import make_plan, min_jerk, passing_resim, restamp

# realtime: franky-sim runs on the wall clock; scripts/test.sh runs these alone, after the parallel part.
pytestmark = [pytest.mark.slow, pytest.mark.realtime]
franky = pytest.importorskip("franky", reason="pip install franky-control franky-sim")
franky_sim = pytest.importorskip("franky_sim")


@pytest.fixture(scope="module")
def sim_host():
    from franky_sim.mujoco_simulator import MujocoSimulator

    with MujocoSimulator(enable_visualization=False) as sim:
        model = sim.add_robot()
        with franky_sim.SimulationServer(sim) as server:
            server.run_async()
            yield model.hostname


def test_validated_plan_executes_and_tracks(sim_host, tmp_path):
    assert sim_host == "127.0.0.1"
    # The arm alone: franky-sim's gripper server runs in this process, and a connected gripper
    # client makes its thread compete with the streaming loop for the GIL (the gripper tests below).
    robot = FrankaRobot(sim_host, model="fr3", realtime=False, gripper=False)
    with robot:
        q0 = robot.read_state().q
        t, q = min_jerk(q0, q0 + np.array([0.3, 0.15, -0.2, 0.2, 0.2, -0.2, 0.3]), 3.0)
        plan = make_plan(t, q, limits=FR3)
        # The FR3 is not in the simulator's registry: the re-simulation verdict is given by the test.
        with collision_for(FR3, plan.joint_names) as collision:
            report = preflight(
                plan, FR3, kinematics_for(FR3), SafetyConfig(), robot.read_state().q,
                collision=collision, sim=passing_resim(),
            )  # fmt: skip
        assert report.ok, report.format()
        res = execute(robot, plan.t, plan.q, ExecutionConfig(), meta={"plan_sha256": plan.content_hash()})
    assert res.success, res.message
    log = res.log
    path = log.save(tmp_path / "fr3.npz")
    assert path.is_file()
    sent = ~np.isnan(log.array("q_sent")[:, 0])
    err = np.abs(log.array("q_meas")[sent] - log.array("q_cmd")[sent]).max()
    # The simulated joint impedance controller lags franky's target by a few ticks at 0.25 x speed.
    assert err < 0.06, err
    np.testing.assert_allclose(log.array("q_meas")[-1], q[-1], atol=0.01)


def test_target_beyond_limits_is_refused_before_the_sim_clamps_it(sim_host):
    robot = FrankaRobot(sim_host, model="fr3", realtime=False)
    with robot:
        q0 = robot.read_state().q
        goal = q0.copy()
        goal[3] = -0.05  # FR3 joint 4 upper limit is -0.1518 rad
        t, q = min_jerk(q0, goal, 4.0)
        plan = make_plan(t, q, limits=FR3)
        report = preflight(plan, FR3, kinematics_for(FR3), SafetyConfig(), q0)
        assert Reason.JOINT_LIMIT in report.reasons and "fr3_joint4" in report.refused[0].message
    # Sent directly (what we refuse to do), the simulator does not stop: it ends short of the target.
    raw = franky.Robot(sim_host, relative_dynamics_factor=0.2, realtime_config=franky.RealtimeConfig.Ignore)
    try:
        raw.move(franky.JointMotion(franky.JointState(goal)))
        reached = np.array(raw.state.q)
    except Exception as e:  # franky may reject the target itself; either way it never gets there
        reached = np.array(raw.state.q)
        print("franky refused:", e)
    print("reached joint 4:", reached[3])
    assert reached[3] < goal[3] - 0.05


# -- the gripper ------------------------------------------------------------------------------

# franky-sim runs in this process: with the gripper connected its server thread competes with the
# streaming loop for the GIL, and a tick now and then starts ~0.1 s late (never on hardware, where
# libfranka's gripper connection is C++). The gripper tests allow that; deadlines are tested
# elsewhere (test_execute) and by the arm-only test above.
IN_PROCESS = ExecutionConfig(max_lateness=0.2, stale_after=0.2)
CUBE = (0.03, 0.03, 0.06)  # m: 3 cm between the fingers, tall enough that the fingertips clear the pedestal
LIFT = np.array([0.0, -0.0451, 0.0, 0.0514, 0.0, 0.0084, 0.0])  # rad: the tool 5 cm up from the start pose


@pytest.fixture()
def cube_host(tmp_path):
    """franky-sim with a cube on a pedestal, centred between the fingers at the FR3's start pose."""
    import xml.etree.ElementTree as ET

    from franky_sim.constants import DEFAULT_INITIAL_JOINT_POS
    from franky_sim.mujoco_simulator import MujocoSimulator

    tcp = kinematics_for(FR3).points(np.array([DEFAULT_INITIAL_JOINT_POS]))[0, -1]
    bottom = tcp[2] - CUBE[2] / 2
    with MujocoSimulator(enable_visualization=False) as sim:
        model = sim.add_robot()
        ET.SubElement(
            sim.worldbody, "geom", name="pedestal", type="box",
            size=f"0.02 0.02 {bottom / 2}", pos=f"{tcp[0]} {tcp[1]} {bottom / 2}",
        )  # fmt: skip
        cube = ET.SubElement(sim.worldbody, "body", name="cube", pos=f"{tcp[0]} {tcp[1]} {tcp[2]}")
        ET.SubElement(cube, "freejoint", name="cube_joint")
        ET.SubElement(
            cube,
            "geom",
            type="box",
            size=" ".join(str(h / 2) for h in CUBE),
            mass="0.05",
            friction="1 0.05 0.001",
        )
        with franky_sim.SimulationServer(sim) as server:
            server.run_async()
            yield model.hostname, sim


def _cube_z(sim) -> float:
    import mujoco

    return float(sim.data.xpos[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, "cube")][2])


def _pick_plan(q0: np.ndarray):
    """Hold 0.3 s, close 40 -> 10 mm in 0.8 s with the arm still, hold 0.3 s, lift 5 cm in 2.5 s."""
    hold = np.arange(0.0, 0.3, 0.01)
    close = np.arange(0.0, 0.8, 0.01)
    t_lift, q_lift = min_jerk(q0, q0 + LIFT, 2.5)
    t = np.concatenate([hold, 0.3 + close, 1.1 + hold, 1.4 + t_lift])
    q = np.vstack([np.tile(q0, (len(hold) + len(close) + len(hold), 1)), q_lift])
    g = np.concatenate(
        [
            np.full(len(hold), 0.04),
            np.linspace(0.04, 0.01, len(close)),
            np.full(len(hold) + len(t_lift), 0.01),
        ]
    )
    return t, q, g


def test_the_hand_grasps_the_cube_checks_it_and_lifts_it(cube_host):
    host, sim = cube_host
    robot = FrankaRobot(host, model="fr3", realtime=False)
    with robot:
        q0 = robot.read_state().q
        t, q, g = _pick_plan(q0)
        plan = make_plan(t, q, limits=FR3)
        plan.gripper[:] = g
        restamp(plan)
        with collision_for(FR3, plan.joint_names) as collision:
            report = preflight(
                plan, FR3, kinematics_for(FR3), SafetyConfig(), q0, collision=collision, sim=passing_resim()
            )
        assert report.ok, report.format()
        z0 = _cube_z(sim)
        res = execute(robot, plan.t, plan.q, IN_PROCESS, gripper=plan.gripper)
        z1 = _cube_z(sim)
    assert res.success, res.message
    verdict = next(e for e in res.log.meta["gripper_events"] if "verify" in e)
    assert verdict["ok"] and verdict["width"] == pytest.approx(
        CUBE[0], abs=0.004
    )  # on the cube, not at 10 mm
    meas = res.log.array("grip_meas")
    assert np.isfinite(meas).all() and meas[-1] == pytest.approx(CUBE[0], abs=0.004)
    assert z1 - z0 > 0.03, (z0, z1)  # the cube went up with the hand


def test_an_empty_grasp_stops_before_the_lift(sim_host):
    robot = FrankaRobot(sim_host, model="fr3", realtime=False)
    with robot:
        q0 = robot.read_state().q
        t, q, g = _pick_plan(q0)
        res = execute(robot, t, q, IN_PROCESS, gripper=g)
        q_end = robot.read_state().q
    assert res.reason == Outcome.GRASP_FAILED and "closed on nothing" in res.message
    np.testing.assert_allclose(q_end, q0, atol=0.01)  # never lifted
