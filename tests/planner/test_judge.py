"""The planner's grasp-judge hook: called with the reachable candidates, its verdict obeyed.

The judges here are fakes (the planner may not import the simulator); sim/grasp_trial.py's
real one is tested in tests/sim/test_grasp_trial.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ChordError
from core.scene import Camera, Pose, Scene, SceneObject
from planner import synthetic
from planner.config import GraspConfig
from planner.judge import GraspVerdict, TrialCandidate, pick
from planner.pipeline import PlannerConfig, plan_flow
from planner.robot import Robot

BASE = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def robot() -> Robot:
    return Robot()


@pytest.fixture(scope="module")
def pick_task():
    sf = synthetic.rigid_pick(n=1500, seed=3)
    cam = Camera.from_look_at((1.0, 0.0, 0.6), (0.5, 0.0, 0.05))
    objs = (
        SceneObject("box", Pose((0.5, 0.0, 0.06)), movable=True),
        SceneObject("obstacle", Pose((0.5, 0.2, 0.0)), movable=False),
    )
    scene = Scene(name="t", prompt="pick the box", objects=objs, camera=cam, frames=41)
    return sf, scene


class FakeJudge:
    """Records its calls; holds = the candidates whose position in the call is in ``holding``."""

    def __init__(self, holding, scores=None, accepts=True):
        self.holding, self.scores, self.calls, self.accepting = set(holding), scores, [], accepts

    def accepts(self, scene):
        return self.accepting

    def __call__(self, scene, analysis, robot, T_world_base, candidates):
        self.calls.append((scene, analysis, T_world_base.copy(), list(candidates)))
        out = []
        for k, _ in enumerate(candidates):
            score = self.scores[k] if self.scores is not None else -float(k)
            out.append(GraspVerdict(k in self.holding, score, f"fake trial {k}", {"k": k}))
        return out


def _config(**grasp):
    # The flow's own points: this scene has no meshes.
    return PlannerConfig(base_pose=BASE, geometry="flow", grasp=GraspConfig(**grasp))


def test_the_judge_gets_up_to_sim_candidates_reachable_candidates_with_their_trajectories(pick_task, robot):
    sf, scene = pick_task
    judge = FakeJudge(holding={0})
    result = plan_flow(sf.flow, scene, _config(sim_candidates=5), robot, judge)
    assert len(judge.calls) == 1
    got_scene, analysis, T_world_base, cands = judge.calls[0]
    assert got_scene is scene and analysis.target.object_name == "box"
    np.testing.assert_allclose(T_world_base, np.eye(4))
    # More than the 3 the planner keeps without a judge: the box has many reachable grasps.
    assert len(cands) == 5
    assert [c.rank for c in cands] == list(range(5))
    for c in cands:
        assert isinstance(c, TrialCandidate) and c.candidate.kind == "grasp"
        assert c.q.shape == (len(c.t), robot.dof) and c.gripper.shape == c.t.shape
        assert np.all(np.diff(c.t) > 0)
        # Frames are reached in order within the follow phase, the first at the closing's end.
        a, b = c.phase_times["follow"]
        assert len(c.frame_times) == sf.flow.num_frames
        assert c.frame_times[0] == pytest.approx(a) and c.frame_times[-1] == pytest.approx(b, abs=0.02)
        assert np.all(np.diff(c.frame_times) >= 0)
        assert c.frame_times[0] == pytest.approx(c.phase_times["close"][1])
        # Open on approach, squeezing below the part's width while following.
        assert c.gripper[0] > c.candidate.width and c.gripper[np.searchsorted(c.t, a) + 1] < c.candidate.width
    # Each candidate's trajectory is its own (different grasps, different joints).
    assert not np.allclose(cands[0].q[-1], cands[1].q[-1])
    trials = result.report["grasp"]["search"]["grasp"]["sim_trials"]
    assert [t["chosen"] for t in trials] == [True, False, False, False, False]
    assert [t["metrics"]["k"] for t in trials] == list(range(5))


def test_a_candidate_that_holds_beats_a_better_scored_one_that_drops(pick_task, robot):
    sf, scene = pick_task
    # Trial 0 scores best but drops the part; trial 3 holds with a worse score, trial 2 holds best.
    judge = FakeJudge(holding={2, 3}, scores=[5.0, 4.0, -1.0, -2.0])
    result = plan_flow(sf.flow, scene, _config(sim_candidates=4), robot, judge)
    cands = judge.calls[0][3]
    np.testing.assert_allclose(result.grasp.T_part_ee, cands[2].candidate.T_part_ee)
    search = result.report["grasp"]["search"]["grasp"]
    assert search["sim_held"] is True
    assert [t["chosen"] for t in search["sim_trials"]] == [False, False, True, False]
    assert "in simulation it held (fake trial 2)" in result.report["grasp"]["reason"]
    assert "best of the 2 of 4 tried candidates that held" in result.report["grasp"]["reason"]
    # The plan follows the chosen grasp: its first follow waypoint is that grasp on the part.
    T0 = result.analysis.target.track.T_world_part[0] @ cands[2].candidate.T_part_ee
    np.testing.assert_allclose(result.T_world_ee[result.phases["follow"][0]], T0, atol=1e-9)


def test_when_no_grasp_holds_pushes_are_searched_too(pick_task, robot):
    sf, scene = pick_task
    judge = FakeJudge(holding=set(), scores=[-3.0, -1.0, -2.0, -4.0])
    result = plan_flow(sf.flow, scene, _config(), robot, judge)
    search = result.report["grasp"]["search"]
    # No grasp held: the planner went on to the pushes (none of them reachable on this box), then
    # took the least bad grasp trial.
    assert search["grasp"]["sim_held"] is False
    assert search["push"]["candidates"] > 0
    assert [call[3][0].candidate.kind for call in judge.calls] == ["grasp"]
    np.testing.assert_allclose(result.grasp.T_part_ee, judge.calls[0][3][1].candidate.T_part_ee)


def test_pushes_are_judged_too(robot):
    sf = synthetic.hinged_lid(n=2500, seed=0)
    cam = Camera.from_look_at((1.0, 0.0, 0.6), (0.5, 0.0, 0.05))
    objs = tuple(
        SceneObject(n, Pose(tuple(sf.flow.object_points(n)[0].mean(0).tolist())), movable=True)
        for n in sf.flow.object_names
    )
    scene = Scene(name="t", prompt="close the lid", objects=objs, camera=cam, frames=sf.flow.num_frames)

    class PushesOnly(FakeJudge):
        # No grasp holds (the lid's grasps are tried first), the third push does.
        def __call__(self, scene, analysis, robot, T_world_base, candidates):
            out = super().__call__(scene, analysis, robot, T_world_base, candidates)
            grasps = candidates[0].candidate.kind == "grasp"
            return [GraspVerdict(v.holds and not grasps, v.score, v.reason, v.metrics) for v in out]

    judge = PushesOnly(holding={2}, scores=[0.0, 0.0, -5.0, 0.0])
    result = plan_flow(sf.flow, scene, PlannerConfig(geometry="flow"), robot, judge)
    kinds = [{c.candidate.kind for c in call[3]} for call in judge.calls]
    assert kinds[-1] == {"push"} and all(k == {"grasp"} for k in kinds[:-1])
    cands = judge.calls[-1][3]
    assert len(cands) == 4
    assert result.grasp.kind == "push"
    np.testing.assert_allclose(result.grasp.T_part_ee, cands[2].candidate.T_part_ee)
    assert (result.plan.gripper == 0).all()


def test_when_nothing_holds_the_least_bad_trial_is_chosen_and_the_report_says_so(pick_task, robot):
    sf, scene = pick_task
    judge = FakeJudge(holding=set(), scores=[-3.0, -1.0, -2.0, -4.0])
    result = plan_flow(sf.flow, scene, _config(), robot, judge)
    grasp_cands = judge.calls[0][3]
    np.testing.assert_allclose(result.grasp.T_part_ee, grasp_cands[1].candidate.T_part_ee)
    assert "none of the 4 tried candidates held" in result.report["grasp"]["reason"]


def test_without_a_judge_the_choice_is_unchanged(pick_task, robot):
    sf, scene = pick_task
    plain = plan_flow(sf.flow, scene, _config(), robot)
    # sim_candidates only matters to a judge: without one the planner keeps its first 3 reachable.
    wide = plan_flow(sf.flow, scene, _config(sim_candidates=9), robot)
    assert plain.plan.content_hash() == wide.plan.content_hash()
    assert "sim_trials" not in plain.report["grasp"]["search"]["grasp"]
    assert "in simulation" not in plain.grasp.reason
    # A judge that holds every one of the same 3 candidates and scores them as the planner does
    # chooses the grasp the planner chooses alone.
    probe = FakeJudge(holding=set())
    plan_flow(sf.flow, scene, _config(sim_candidates=3), robot, probe)
    scores = [c.planner_score for c in probe.calls[0][3]]
    same = plan_flow(sf.flow, scene, _config(sim_candidates=3), robot, FakeJudge({0, 1, 2}, scores))
    np.testing.assert_allclose(same.grasp.T_part_ee, plain.grasp.T_part_ee)


class OneVerdict(FakeJudge):
    def __call__(self, *args):
        return super().__call__(*args)[:1]


def test_a_judge_that_declines_the_scene_is_not_called(pick_task, robot):
    sf, scene = pick_task
    judge = FakeJudge(holding={0}, accepts=False)
    declined = plan_flow(sf.flow, scene, _config(sim_candidates=6), robot, judge)
    assert judge.calls == []
    plain = plan_flow(sf.flow, scene, _config(sim_candidates=6), robot)
    assert declined.plan.content_hash() == plain.plan.content_hash()


def test_a_judge_without_a_scene_is_not_called(robot):
    sf = synthetic.rigid_pick(n=1500, seed=3)
    judge = FakeJudge(holding={0})
    plan_flow(sf.flow, None, _config(), robot, judge)
    assert judge.calls == []


def test_a_judge_answering_the_wrong_number_of_verdicts_is_an_error(pick_task, robot):
    sf, scene = pick_task
    with pytest.raises(ChordError, match="returned 1 verdicts for 4 candidates"):
        plan_flow(sf.flow, scene, _config(), robot, OneVerdict(holding={0}))


def test_pick_prefers_holding_then_score_and_never_nan():
    v = [
        GraspVerdict(False, 9.0, ""),
        GraspVerdict(True, float("nan"), ""),
        GraspVerdict(True, -1.0, ""),
        GraspVerdict(True, -1.0, ""),
    ]
    assert pick(v) == 2  # the earlier of the tie; NaN never wins; a drop never wins
    assert pick(v[:2]) is None


@pytest.mark.parametrize("bad", [0, 33, -1, 2.5, True, float("nan")])
def test_sim_candidates_is_checked(bad):
    with pytest.raises(ChordError, match="GraspConfig.sim_candidates is"):
        GraspConfig(sim_candidates=bad)


def test_a_choice_that_fails_later_planning_gives_way_to_the_next_in_the_judges_order(
    pick_task, robot, monkeypatch
):
    import planner.pipeline as P

    sf, scene = pick_task
    check = P._check_waypoints
    calls = []

    def first_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ChordError("unreachable track: forced for the test")
        return check(*args, **kwargs)

    monkeypatch.setattr(P, "_check_waypoints", first_fails)
    # The judge ranks trial 2 first, then trial 0 (both hold), then the rest.
    judge = FakeJudge(holding={0, 2}, scores=[-1.0, -5.0, 0.0, -2.0])
    result = plan_flow(sf.flow, scene, _config(), robot, judge)
    cands = judge.calls[0][3]
    np.testing.assert_allclose(result.grasp.T_part_ee, cands[0].candidate.T_part_ee)
    assert result.report["grasp"]["search"]["failed_in_planning"] == [
        "unreachable track: forced for the test"
    ]
    assert "after 1 better-judged candidate(s) failed in planning" in result.report["grasp"]["reason"]
    # Without a judge there is one choice: its failure is the planner's, as before.
    calls.clear()
    with pytest.raises(ChordError, match="forced for the test"):
        plan_flow(sf.flow, scene, _config(), robot)
