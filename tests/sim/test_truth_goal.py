"""Judging by the truth: a scene's recorded ground truth, not the flow's own goal, decides success."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from core.scene import Reference
from core.transforms import pose_to_matrix
from core.truth import Truth
from sim.api import validate_plan
from tests.sim import scaffold as S


def box_truth(flow, shift=(0.0, 0.0, 0.0)) -> Truth:
    """The box's poses along the lift flow (its points' centroid), the last frame moved by ``shift`` m."""
    centre = flow.points.astype(np.float64).mean(axis=1)  # [T, 3]
    poses = np.repeat(np.eye(4)[None], flow.num_frames, axis=0)
    poses[:, :3, 3] = centre
    poses[-1, :3, 3] += shift
    return Truth.from_matrices(flow.times.astype(np.float64), flow.fps, {"box": poses}, {})


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    scene = S.box_scene(tmp)
    flow = S.lift_flow()
    flow_path = flow.save(tmp / "flow.npz")
    plan_path = S.ik_plan(flow).save(tmp / "plan.npz")

    def scene_with(truth: Truth | None, name: str):
        ref = Reference(flow=flow_path, truth=None if truth is None else truth.save(tmp / f"{name}.npz"))
        return dataclasses.replace(scene, reference=ref).save(tmp / f"{name}.yaml")

    return flow, plan_path, scene_with, tmp


def test_a_plan_that_works_succeeds_judged_by_the_truth(case):
    flow, plan, scene_with, tmp = case
    r = validate_plan(plan, scene_with(box_truth(flow), "truth"), out_json=tmp / "v.json")
    assert r.success and r.judged_by == "truth", r.reason
    assert "truth's goal" in r.reason
    assert r.final_position_error_m < 0.02
    assert json.loads((tmp / "v.json").read_text())["judged_by"] == "truth"


def test_a_moved_truth_goal_fails_where_the_flow_goal_passes(case):
    flow, plan, scene_with, _ = case
    by_flow = validate_plan(plan, scene_with(None, "flow_only"))
    assert by_flow.success and by_flow.judged_by == "flow"
    # The truth ends the box 5 cm further along +x than the flow does: only the truth sees the miss.
    r = validate_plan(plan, scene_with(box_truth(flow, shift=(0.05, 0.0, 0.0)), "moved"))
    assert not r.success and r.judged_by == "truth"
    assert r.cause == "execution"
    assert "truth's final pose" in r.reason
    assert r.final_position_error_m == pytest.approx(0.05, abs=0.01)


def test_a_truth_of_another_scene_is_refused_in_one_line(case):
    flow, plan, scene_with, _ = case
    truth = box_truth(flow)
    other = Truth.from_matrices(
        truth.times,
        truth.fps,
        {"crate": np.stack([pose_to_matrix(p[:3], p[3:]) for p in truth.poses[:, 0]])},
        {},
    )
    r = validate_plan(plan, scene_with(other, "other"))
    assert not r.success and r.cause == "flow" and r.judged_by == "truth"
    assert "ground truth moves none" in r.reason and "\n" not in r.reason


def test_sim_cli_says_what_judged(case, capsys):
    from chord.cli.main import main

    flow, plan, scene_with, _ = case
    assert main(["sim", str(plan), "--scene", str(scene_with(None, "flow_only2"))]) == 0
    assert "judged by the flow's own goal" in capsys.readouterr().out
    assert main(["sim", str(plan), "--scene", str(scene_with(box_truth(flow), "truth2"))]) == 0
    assert "judged by the truth" in capsys.readouterr().out


def test_joint_goal_reason_names_the_truth():
    from sim.rules import EvalConfig, check_joint_goal

    r = check_joint_goal(0.5, 1.0, 1.0, EvalConfig(), "hinge", judge="truth")
    assert not r.passed and "truth's goal 1.000" in r.reason


def _jointed(hinge: np.ndarray, elbow: np.ndarray, base_shift: float = 0.0):
    """A truth of object "cab" turning joints hinge and elbow, and a rollout (its three fields
    truth_rules reads) whose joints end at ``hinge[-1]``/``elbow[-1]`` over 5 steps."""
    from types import SimpleNamespace

    from sim.goal import truth_goal

    T = 5
    still = np.repeat(np.eye(4)[None], T, axis=0)
    truth = Truth.from_matrices(
        np.arange(T) / 10.0,
        10.0,
        {"cab": still},
        {
            "cab": {
                "hinge": ("revolute", np.linspace(0, 1.0, T)),
                "elbow": ("revolute", np.linspace(0, -0.5, T)),
            }
        },
    )
    cab = SimpleNamespace(name="cab")
    scene = SimpleNamespace(movable_objects=[cab], objects=[cab])  # what truth_goal reads
    moved = still.copy()
    moved[-1, 0, 3] += base_shift
    rollout = SimpleNamespace(
        T_world_obj={"cab": moved},
        joints={"cab": np.stack([hinge, elbow, np.zeros(T)], axis=1)},
        joint_names={"cab": ("hinge", "elbow", "knob")},
    )
    goal = SimpleNamespace(object_name="cab", articulated=True, centroid0=np.zeros(3))
    return truth_goal(truth, scene), rollout, goal


def test_every_joint_the_truth_moves_is_judged_and_the_base_must_stay():
    from sim.evaluate import truth_rules
    from sim.rules import EvalConfig, first_failure

    ok = np.linspace(0, 1, 5)
    target, rollout, goal = _jointed(0.97 * ok, -0.48 * ok)
    assert target.joints == {"hinge": (1.0, 1.0), "elbow": (-0.5, 0.5)}  # knob never moves: not judged
    rules, fields, final = truth_rules(rollout, target, goal, 4, {}, EvalConfig())
    assert first_failure(rules) is None and final is None
    assert fields["parent_position_error_m"] == 0.0

    # The hinge reaches its goal but the chain's second joint stops short (0.30 of 0.50 rad): fail.
    target, rollout, goal = _jointed(ok, -0.3 * ok)
    bad = first_failure(truth_rules(rollout, target, goal, 4, {}, EvalConfig())[0])
    assert bad is not None and bad.name == "joint_goal" and "elbow" in bad.reason
    assert bad.value == pytest.approx(0.2) and bad.limit == pytest.approx(0.05)

    # Both joints right, but the cabinet was shoved 3 cm (tolerance 2 cm).
    target, rollout, goal = _jointed(ok, -0.5 * ok, base_shift=0.03)
    bad = first_failure(truth_rules(rollout, target, goal, 4, {}, EvalConfig())[0])
    assert bad is not None and bad.name == "parent_in_place" and "truth" in bad.reason


def test_a_bystander_must_end_where_the_truth_leaves_it(tmp_path):
    from core.scene import Pose, SceneObject
    from sim.evaluate import bystander_errors
    from sim.goal import TruthGoal

    scene = S.box_scene(tmp_path)
    # A second box, not movable, 25 cm to the side of the lifted one: a bystander.
    post_pose = Pose((S.BOX_XY[0], S.BOX_XY[1] + 0.25, S.BOX[2] / 2), (1.0, 0.0, 0.0, 0.0))
    post = SceneObject(
        "post", post_pose, mesh=scene.objects[0].mesh, urdf=scene.objects[0].urdf, movable=False
    )
    scene = dataclasses.replace(scene, objects=(*scene.objects, post))
    flow = S.lift_flow()
    flow_path = flow.save(tmp_path / "flow.npz")
    plan = S.ik_plan(flow).save(tmp_path / "plan.npz")

    def truth(post_shift):
        box = box_truth(flow).pose_matrices("box")
        posts = np.repeat(post_pose.matrix()[None], flow.num_frames, axis=0)
        posts[-1, :3, 3] += post_shift
        return Truth.from_matrices(flow.times.astype(np.float64), flow.fps, {"box": box, "post": posts}, {})

    def judged(post_shift, name):
        ref = Reference(flow=flow_path, truth=truth(post_shift).save(tmp_path / f"{name}.npz"))
        return validate_plan(plan, dataclasses.replace(scene, reference=ref).save(tmp_path / f"{name}.yaml"))

    ok = judged((0.0, 0.0, 0.0), "still")
    assert ok.success, ok.reason
    # The truth moves the post 5 cm; the simulated post stays: the bystander rule sees the miss.
    r = judged((0.05, 0.0, 0.0), "post_moved")
    assert not r.success and r.cause == "execution"
    assert "post (not the task's object) ends 50" in r.reason, r.reason

    # The measure itself: a knocked-over bystander (moved 3 cm, tipped 90 deg about x).
    T0 = np.eye(4)
    T1 = np.eye(4)
    T1[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    T1[:3, 3] = (0.03, 0.0, 0.0)
    rollout = type("R", (), {"T_world_static": {"post": np.stack([T0, T1])}, "T_world_obj": {}})()
    goal = TruthGoal("box", np.eye(4), {}, {"post": np.eye(4), "gone": np.eye(4)})
    (pos, ang), *rest = bystander_errors(rollout, goal).values()
    assert not rest  # an object the simulator did not record is left out
    assert pos == pytest.approx(0.03) and ang == pytest.approx(90.0)
