"""The simulator loads robots by name (or from the command line), never a file a plan names."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from chord.cli.main import main
from core.errors import ChordError
from core.robots import ROBOTS
from core.scene import Reference
from sim.api import validate_plan
from sim.world import robot_for
from tests.sim import scaffold as S


@pytest.fixture()
def files(tmp_path):
    flow = S.lift_flow()
    flow_path = flow.save(tmp_path / "flow.npz")
    scene = dataclasses.replace(S.box_scene(tmp_path), reference=Reference(flow=flow_path))
    return scene.save(tmp_path / "scene.yaml"), flow, tmp_path


PANDA_URDF = ROBOTS["panda"].urdf_path()


def test_a_name_resolves_through_the_registry():
    assert sorted(ROBOTS) == ["fr3", "panda", "ur5", "xarm6"]
    for name in ROBOTS:
        assert robot_for(name) is ROBOTS[name]
    # Plans written before robots had names carry the registered URDF's own path: the same robot.
    assert robot_for(str(PANDA_URDF)) is ROBOTS["panda"]


@pytest.mark.parametrize("name", ["/etc/passwd.urdf", "../../panda.urdf", "franka", "", "x" * 5000])
def test_any_other_name_is_a_one_line_error(name):
    with pytest.raises(ChordError) as e:
        robot_for(name)
    msg = str(e.value)
    assert "\n" not in msg and "known: ['fr3', 'panda', 'ur5', 'xarm6']" in msg
    assert len(msg) < 400  # a huge name is cut, not echoed


def test_a_urdf_file_named_by_a_plan_is_not_loaded(tmp_path):
    copy = shutil.copy(PANDA_URDF, tmp_path / "panda.urdf")  # a real URDF, just not registered
    with pytest.raises(ChordError, match="is not a known robot"):
        robot_for(str(copy))


def test_the_command_line_robot_must_be_the_plans_and_its_urdf_must_exist(tmp_path):
    # --robot-urdf replaces the entry's file, the robot stays the plan's
    spec = robot_for("panda", urdf=PANDA_URDF)
    assert spec.name == "panda" and spec.urdf_path() == PANDA_URDF
    with pytest.raises(ChordError, match="--robot-urdf"):
        robot_for("panda", urdf=tmp_path / "missing.urdf")
    # --robot names an arm: the plan must have been made for it
    assert robot_for("xarm6", "xarm6") is ROBOTS["xarm6"]
    with pytest.raises(
        ChordError, match="--robot 'ur5' describes the arm 'ur5'; the plan was made for 'panda'"
    ):
        robot_for("panda", "ur5")


def test_a_plan_naming_etc_passwd_is_refused_before_pybullet_sees_it(files, capsys):
    scene_path, flow, tmp = files
    # A robot that is neither a name nor a .urdf path is refused by the plan contract itself.
    with pytest.raises(ChordError, match=r"meta.robot: is '/etc/passwd', expected a robot name"):
        dataclasses.replace(S.ik_plan(flow), robot="/etc/passwd").save(tmp / "p0.npz")
    # One that looks like a URDF path reaches the simulator's registry, which refuses it by name.
    plan = dataclasses.replace(S.ik_plan(flow), robot="/etc/passwd.urdf")
    plan_path = plan.save(tmp / "plan.npz")
    with pytest.raises(ChordError, match=r"plan robot '/etc/passwd.urdf' is not a known robot"):
        validate_plan(plan_path, scene_path)
    assert main(["sim", str(plan_path), "--scene", str(scene_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "chord sim: error: plan robot '/etc/passwd.urdf' is not a known robot"
    )
    # The person at the command line may give the URDF, but the plan still names no registered
    # robot: a file named by a plan is never the robot.
    with pytest.raises(ChordError, match="is not a known robot"):
        validate_plan(plan_path, scene_path, robot_urdf=PANDA_URDF)
    # --robot names the arm; it must be the plan's
    assert main(["sim", str(plan_path), "--scene", str(scene_path), "--robot", "panda"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the plan was made for '/etc/passwd.urdf'" in err[0]


def test_a_plan_naming_the_robot_by_name_runs(files):
    scene_path, flow, tmp = files
    plan_path = dataclasses.replace(S.ik_plan(flow), robot="panda").save(tmp / "plan.npz")
    assert validate_plan(plan_path, scene_path).success
