"""The simulator loads robots by name (or from the command line), never a file a plan names."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from chord.cli.main import main
from core.errors import ChordError
from core.scene import Reference
from sim.api import validate_plan
from sim.world import ROBOTS, default_robot_urdf, robot_urdf_for
from tests.sim import scaffold as S


@pytest.fixture()
def files(tmp_path):
    flow = S.lift_flow()
    flow_path = flow.save(tmp_path / "flow.npz")
    scene = dataclasses.replace(S.box_scene(tmp_path), reference=Reference(flow=flow_path))
    return scene.save(tmp_path / "scene.yaml"), flow, tmp_path


def test_a_name_resolves_through_the_registry():
    assert sorted(ROBOTS) == ["panda"]
    assert robot_urdf_for("panda") == default_robot_urdf()
    # Plans written before robots had names carry the registered URDF's own path: the same file.
    assert robot_urdf_for(str(default_robot_urdf())) == default_robot_urdf()


@pytest.mark.parametrize("name", ["/etc/passwd.urdf", "../../panda.urdf", "franka", "", "x" * 5000])
def test_any_other_name_is_a_one_line_error(name):
    with pytest.raises(ChordError) as e:
        robot_urdf_for(name)
    msg = str(e.value)
    assert "\n" not in msg and "known: ['panda']" in msg and "--robot-urdf" in msg
    assert len(msg) < 400  # a huge name is cut, not echoed


def test_a_urdf_file_named_by_a_plan_is_not_loaded(tmp_path):
    copy = shutil.copy(default_robot_urdf(), tmp_path / "panda.urdf")  # a real URDF, just not registered
    with pytest.raises(ChordError, match="is not a known robot"):
        robot_urdf_for(str(copy))


def test_the_command_line_urdf_wins_and_must_exist(tmp_path):
    assert robot_urdf_for("/etc/passwd.urdf", default_robot_urdf()) == default_robot_urdf()
    with pytest.raises(ChordError, match="--robot-urdf"):
        robot_urdf_for("panda", tmp_path / "missing.urdf")


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
    # The person at the command line may name the URDF: then the same plan runs.
    assert validate_plan(plan_path, scene_path, robot_urdf=default_robot_urdf()).success
    assert (
        main(["sim", str(plan_path), "--scene", str(scene_path), "--robot-urdf", str(default_robot_urdf())])
        == 0
    )


def test_a_plan_naming_the_robot_by_name_runs(files):
    scene_path, flow, tmp = files
    plan_path = dataclasses.replace(S.ik_plan(flow), robot="panda").save(tmp / "plan.npz")
    assert validate_plan(plan_path, scene_path).success
