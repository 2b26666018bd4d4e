"""The simulator as the planner's grasp judge: a grasp that holds outranks one that slips."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.errors import ChordError
from planner.judge import GraspVerdict
from planner.pipeline import PlannerConfig, plan_flow
from planner.robot import Robot
from sim.evaluate import simulate
from sim.grasp_trial import (
    GraspTrialConfig,
    SimGraspJudge,
    TrialMeasures,
    contact_lost_at,
    trial_frames,
    verdict_of,
)
from sim.rules import EvalConfig
from tests.sim import scaffold as S

BASE = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


class Recorder:
    """A judge that holds every candidate and keeps what it was given."""

    def __init__(self):
        self.calls = []

    def accepts(self, scene):
        return True

    def __call__(self, scene, analysis, robot, T_world_base, candidates):
        self.calls.append((analysis, T_world_base, list(candidates)))
        return [GraspVerdict(True, 0.0, "recorded") for _ in candidates]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """The tiny scene (one 4 x 4 x 6 cm box), its lift flow, and the reachable grasps the planner finds."""
    scene = S.box_scene(tmp_path_factory.mktemp("box"))
    flow = S.lift_flow()
    robot = Robot()
    rec = Recorder()
    plan_flow(flow, scene, PlannerConfig(base_pose=BASE), robot, rec)
    analysis, T_world_base, cands = rec.calls[0]
    return scene, flow, robot, analysis, T_world_base, cands


def _short(cand):
    """The same grasp closing 3 mm short of the box on each side: the box slides out of the hand as
    the track lifts it. (PyBullet's 70 N fingers hold the 0.2 kg box in any grasp that closes on
    it, centred or 18 mm off, squeezing or not, at friction 0.3 to 1 and up to 25x its mass; a
    command of 42 mm on the 40 mm box still touches it, the finger pads' collision shapes being
    thicker than their visuals.)"""
    short = S.BOX[0] + 0.006
    return dataclasses.replace(cand, gripper=np.maximum(cand.gripper, short))


def test_a_grasp_that_holds_outranks_one_that_slips(box):
    scene, _, robot, analysis, T_world_base, cands = box
    good = cands[0]
    verdicts = SimGraspJudge()(scene, analysis, robot, T_world_base, [_short(good), good])
    slips, holds = verdicts
    assert holds.holds, holds.reason
    assert not slips.holds, slips.reason
    assert holds.score > slips.score
    # The squeezing grasp carries the box: both fingers on it throughout, little slip, on its track.
    m = holds.metrics
    assert m["closed"] and m["contact_at_end"] and m["contact_fraction"] > 0.95
    assert m["slip_mm"] < 5.0 and m["track_mm"] < 10.0
    assert m["followed"] == pytest.approx(1.0, abs=0.25)
    assert m["part"] == "box/base" and m["frames"] == trial_frames(21, 1.0) == 20
    assert not m["arm_table"]
    # The short one leaves the box behind: it slips by most of what the track lifts it.
    lift_mm = 1000 * (
        analysis.target.track.T_world_part[20, 2, 3] - analysis.target.track.T_world_part[0, 2, 3]
    )
    assert slips.metrics["slip_mm"] > 0.5 * lift_mm
    assert slips.metrics["followed"] < 0.5
    assert not slips.metrics["closed"] and "the fingers did not close on the part" in slips.reason


def test_the_planner_with_the_judge_chooses_the_holding_grasp(box):
    scene, flow, robot, *_ = box
    result = plan_flow(flow, scene, PlannerConfig(base_pose=BASE), robot, SimGraspJudge())
    search = result.report["grasp"]["search"]["grasp"]
    assert search["sim_held"] is True
    chosen = [t for t in search["sim_trials"] if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["holds"]
    assert chosen[0]["score"] == max(t["score"] for t in search["sim_trials"] if t["holds"])
    assert search["sim_trials_s"] < 30.0  # a few candidates cost seconds
    # And the plan it makes succeeds in the full simulation.
    assert simulate(result.plan, scene, flow).success


def test_trials_are_deterministic(box):
    scene, _, robot, analysis, T_world_base, cands = box
    a = SimGraspJudge()(scene, analysis, robot, T_world_base, cands[:2])
    b = SimGraspJudge()(scene, analysis, robot, T_world_base, cands[:2])
    assert [v.metrics for v in a] == [v.metrics for v in b]
    # A trial does not depend on the trials before it (each restores the settled scene).
    c = SimGraspJudge()(scene, analysis, robot, T_world_base, cands[1:2])
    assert c[0].metrics == a[1].metrics


def _measures(**kw):
    base = dict(
        kind="grasp", part="box/base", closed=True, contact_fraction=1.0, contact_at_end=True, lost_at_s=None,
        arm_table=False,
        slip_mm=1.0, slip_deg=0.5, track_mm=2.0, track_deg=0.5, followed=1.0, frames=5, sim_s=2.0, steps=480,
    )  # fmt: skip
    base.update(kw)
    return TrialMeasures(**base)


def test_verdict_rules():
    cfg, ev = GraspTrialConfig(), EvalConfig()
    ok = verdict_of(_measures(), cfg, ev)
    assert ok.holds and ok.score == pytest.approx(-(1.0 / 20.0 + 0.5 / 15 + 2.0 / 20 + 0.5 / 15))
    assert verdict_of(_measures(slip_mm=19.9), cfg, ev).holds
    assert not verdict_of(_measures(slip_mm=20.1), cfg, ev).holds
    # Slip limits: the sim's 20 mm / 15 deg, scaled to the fraction of the track tried.
    cfg = GraspTrialConfig(track_fraction=0.5)
    assert verdict_of(_measures(slip_mm=9.9), cfg, ev).holds
    assert not verdict_of(_measures(slip_mm=10.1), cfg, ev).holds
    assert verdict_of(_measures(slip_deg=7.4), cfg, ev).holds
    assert not verdict_of(_measures(slip_deg=7.6), cfg, ev).holds
    quarter = GraspTrialConfig(track_fraction=0.25)
    assert not verdict_of(_measures(slip_mm=5.1), quarter, ev).holds
    table = verdict_of(_measures(arm_table=True), cfg, ev)
    assert not table.holds and table.reason.endswith("; the arm hit the table")
    lost = verdict_of(_measures(contact_at_end=False, lost_at_s=1.25), cfg, ev)
    assert not lost.holds and "the fingers lost the part at t = 1.25 s" in lost.reason
    never = verdict_of(_measures(closed=False), cfg, ev)
    assert not never.holds and "did not close on the part" in never.reason
    assert not verdict_of(_measures(track_mm=21.0), cfg, ev).holds
    nan = verdict_of(_measures(slip_mm=math.nan), cfg, ev)
    assert not nan.holds and nan.score == -math.inf
    push = verdict_of(_measures(kind="push", slip_mm=50.0), cfg, ev)
    assert push.holds and push.reason.startswith("push: the arm touched the part")


def test_trial_frames_are_a_fraction_of_the_track():
    assert trial_frames(21, 0.25) == 5
    assert trial_frames(41, 0.25) == 10
    assert trial_frames(3, 0.01) == 1  # at least one frame
    assert trial_frames(41, 1.0) == 40


def test_contact_lost_before_the_closing_time_is_found():
    t = np.arange(10) * 0.1
    # A push that touched its part only on the way in (steps 2-3), before the trial's closing time
    # (step 6): lost at step 4. Looking for the last contact only after the closing raised an
    # IndexError and ended the bench's trial.
    only_on_approach = np.zeros(10, bool)
    only_on_approach[2:4] = True
    assert contact_lost_at(only_on_approach, t) == pytest.approx(0.4)
    held = np.zeros(10, bool)
    held[5:] = True
    assert contact_lost_at(held, t) is None  # in contact at the end
    assert contact_lost_at(np.zeros(10, bool), t) is None  # never touched
    lost = np.zeros(10, bool)
    lost[6:8] = True
    assert contact_lost_at(lost, t) == pytest.approx(0.8)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, math.nan])
def test_track_fraction_is_checked(bad):
    with pytest.raises(ChordError, match="track_fraction"):
        GraspTrialConfig(track_fraction=bad)


def test_the_judge_accepts_only_scenes_whose_objects_have_urdfs(box):
    scene, flow, robot, *_ = box
    assert SimGraspJudge().accepts(scene)
    no_urdf = dataclasses.replace(
        scene, objects=tuple(dataclasses.replace(o, urdf=None) for o in scene.objects)
    )
    assert not SimGraspJudge().accepts(no_urdf)
    # The planner then chooses as without a judge: the same plan, no trials.
    plain = plan_flow(flow, no_urdf, PlannerConfig(base_pose=BASE), robot)
    judged = plan_flow(flow, no_urdf, PlannerConfig(base_pose=BASE), robot, SimGraspJudge())
    assert judged.plan.content_hash() == plain.plan.content_hash()
    assert "sim_trials" not in judged.report["grasp"]["search"]["grasp"]


def test_the_judge_names_a_missing_object(box):
    scene, _, robot, analysis, T_world_base, cands = box
    other = dataclasses.replace(
        scene, objects=tuple(dataclasses.replace(o, name="crate") for o in scene.objects)
    )
    with pytest.raises(ChordError, match="'box' is not in the simulated scene"):
        SimGraspJudge()(other, analysis, robot, T_world_base, cands[:1])
    assert np.isfinite(cands[0].q).all()


def test_chord_plan_tries_grasps_in_simulation_unless_told_not_to(box, tmp_path, capsys):
    from chord.cli.main import main
    from core.plan import Plan

    scene, flow, *_ = box
    flow_path = flow.save(tmp_path / "flow.npz")
    scene_path = scene.save(tmp_path / "scene.yaml")
    base = ["--base-pose", *map(str, BASE)]
    assert (
        main(["plan", str(flow_path), "--scene", str(scene_path), "--out", str(tmp_path / "a.npz"), *base])
        == 0
    )
    printed = capsys.readouterr().out
    judged = Plan.load(tmp_path / "a.npz").report["grasp"]
    assert "in simulation it held" in printed and "in simulation it held" in judged["reason"]
    trials = judged["search"]["grasp"]["sim_trials"]
    assert len(trials) >= 2 and sum(t["chosen"] for t in trials) == 1
    assert all({"slip_mm", "slip_deg", "track_mm", "closed"} <= set(t["metrics"]) for t in trials)
    rc = main(
        ["plan", str(flow_path), "--scene", str(scene_path), "--out", str(tmp_path / "b.npz"), *base,
         "--no-sim-grasp"]
    )  # fmt: skip
    assert rc == 0
    plain = Plan.load(tmp_path / "b.npz").report["grasp"]
    assert "in simulation" not in capsys.readouterr().out and "sim_trials" not in plain["search"]["grasp"]


def test_worst_case_over_frictions():
    from sim.grasp_trial import worst_case

    grip = GraspVerdict(True, -0.3, "firm", {"slip_mm": 2.0})
    turns = GraspVerdict(False, -4.0, "turned out", {"slip_mm": 18.0})
    v = worst_case([grip, turns], (0.5, 1.0))
    assert not v.holds and v.score == -4.0 and v.reason == "at friction 1: turned out"
    assert v.metrics["friction"] == 1.0 and v.metrics["slip_mm"] == 18.0
    assert [f["holds"] for f in v.metrics["per_friction"]] == [True, False]
    both = worst_case([grip, dataclasses.replace(grip, score=-0.5)], (0.5, 1.0))
    assert both.holds and both.score == -0.5
    assert worst_case([grip], (0.8,)).reason == "firm"  # a known friction: no prefix


def test_trials_bracket_an_unknown_friction_and_use_a_known_one(box):
    scene, _, robot, analysis, T_world_base, cands = box
    from sim.world import SimConfig

    bracketed = SimGraspJudge()(scene, analysis, robot, T_world_base, cands[:1])[0]
    assert [f["friction"] for f in bracketed.metrics["per_friction"]] == [0.5, 1.0]
    known = SimGraspJudge(SimConfig(object_friction=0.8))(scene, analysis, robot, T_world_base, cands[:1])[0]
    assert [f["friction"] for f in known.metrics["per_friction"]] == [0.8]
    # 1 kg at friction 0.05: two 70 N fingers hold 7 N < 9.8 N, the lift leaves it behind.
    slippery = SimGraspJudge(SimConfig(object_friction=0.05, mass_scale=5.0))
    dropped = slippery(scene, analysis, robot, T_world_base, cands[:1])[0]
    assert not dropped.holds and dropped.metrics["slip_mm"] > 50.0


@pytest.mark.parametrize("bad", [(), (0.0,), (0.5, math.nan), (-1.0,)])
def test_frictions_are_checked(bad):
    with pytest.raises(ChordError, match="frictions"):
        GraspTrialConfig(frictions=bad)
