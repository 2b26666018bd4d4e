"""The benchmark: seeds, perturbations, statistics, parallel trials and resume."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from core.errors import ChordError
from core.scene import Reference
from sim import bench as B
from tests.sim import scaffold as S


def test_wilson_interval_matches_known_values():
    # Reference values from the closed form (Wilson 1927), z = 1.96.
    lo, hi = B.wilson(8, 8)
    assert (lo, hi) == (pytest.approx(0.6756, abs=1e-4), 1.0)
    lo, hi = B.wilson(5, 8)
    assert lo == pytest.approx(0.3057, abs=1e-4) and hi == pytest.approx(0.8632, abs=1e-4)
    lo, hi = B.wilson(0, 8)
    assert lo == 0.0 and hi == pytest.approx(0.3244, abs=1e-4)
    assert B.wilson(0, 0) == (0.0, 1.0)


def test_trial_seed_is_stable_and_distinct():
    a = B.trial_seed(0, "pick_banana", 3)
    assert a == B.trial_seed(0, "pick_banana", 3)
    assert len({B.trial_seed(0, t, i) for t in ("a", "b") for i in range(50)}) == 100
    assert 0 <= a < 2**63


def test_perturbation_moves_scene_and_flows_together(tmp_path):
    scene = S.box_scene(tmp_path)
    flow = S.lift_flow()
    cfg = B.BenchConfig(position_noise=0.03, yaw_noise_deg=20.0)
    pert = B.sample_perturbation(scene, cfg, seed=7)
    assert pert == B.sample_perturbation(scene, cfg, seed=7)
    assert pert != B.sample_perturbation(scene, cfg, seed=8)
    p = pert["objects"]["box"]
    assert abs(p["dx"]) <= 0.03 and abs(p["yaw_deg"]) <= 20.0
    assert cfg.friction_range[0] <= pert["friction"] <= cfg.friction_range[1]
    scene_p, (flow_p,) = B.apply_perturbation(scene, [flow], pert)
    T_old, T_new = scene.objects[0].pose.matrix(), scene_p.objects[0].pose.matrix()
    # Every flow point keeps its coordinates in the object's frame.
    local_old = (flow.points[0] - T_old[:3, 3]) @ T_old[:3, :3]
    local_new = (flow_p.points[0] - T_new[:3, 3]) @ T_new[:3, :3]
    np.testing.assert_allclose(local_new, local_old, atol=1e-5)
    np.testing.assert_allclose(T_new[:2, 3] - T_old[:2, 3], [p["dx"], p["dy"]], atol=1e-9)
    yaw = math.degrees(math.atan2(T_new[1, 0], T_new[0, 0]))
    assert yaw == pytest.approx(p["yaw_deg"], abs=1e-6)
    assert flow_p.provenance["perturbation"] == pert


def test_noise_has_the_requested_std():
    flow = S.lift_flow(n=2000)
    noisy = B.add_noise(flow, 0.005, seed=1)
    assert np.std(noisy.points - flow.points) == pytest.approx(0.005, rel=0.02)
    assert B.add_noise(flow, 0.0, seed=1) is flow


def test_planner_errors_map_to_stages():
    assert B.planner_failure_stage("no grasp or push fits object 'lamp'") == "grasp"
    assert B.planner_failure_stage("unreachable track: none of the 25 ...") == "IK"
    assert B.planner_failure_stage("flow has no motion to plan for: ...") == "flow"


def test_table_and_summary():
    recs = [
        {"task": "pick", "method": "ours", "flow_noise_m": 0.0, "success": True, "cause": None, "seed": 1,
         "track_position_mean_m": 0.004},
        {"task": "pick", "method": "ours", "flow_noise_m": 0.0, "success": False, "cause": "grasp", "seed": 2,
         "track_position_mean_m": 0.1},
        {"task": "pick", "method": "video_flow", "flow_noise_m": 0.0, "success": False, "cause": "IK", "seed": 1},
    ]  # fmt: skip
    rows = {r["row"]: r for r in B.summarise(recs)}
    assert rows["ours"]["successes"] == 1 and rows["ours"]["trials"] == 2
    assert rows["ours"]["track_mean_mm"] == pytest.approx(52.0)
    assert rows["ours"]["causes"] == {"grasp": 1}
    assert rows["video flow"]["track_mean_mm"] is None
    table = B.format_table(recs)
    lines = table.splitlines()
    assert lines[1].split() == ["video", "flow", "0/1"]
    assert lines[2].split() == ["ours", "1/2"]
    assert "grasp: 1" in table and "[0.09, 0.91]" in table


def test_bench_runs_in_parallel_and_resumes(tmp_path, monkeypatch):
    scene = S.box_scene(tmp_path)
    flow_path = S.lift_flow().save(tmp_path / "flow.npz")
    scene = dataclasses.replace(scene, reference=Reference(flow=flow_path))
    scene_path = scene.save(tmp_path / "scene.yaml")
    cfg = B.BenchConfig(
        trials=2,
        methods=("ours",),
        workers=2,
        base_pose=(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
        position_noise=0.01,
    )
    out = tmp_path / "bench"
    recs = B.run_bench([scene_path], out, cfg)
    assert len(recs) == 2
    for r in recs:
        assert r["success"], r["reason"]
        assert r["seed"] == B.trial_seed(0, "box_lift", r["trial"])
        assert r["perturbation"] == B.sample_perturbation(scene, cfg, r["seed"])
        assert r["planning_flow_prior"] == "ground_truth"
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["key"] for x in lines) == sorted(r["key"] for r in recs)
    assert (out / "success.png").read_bytes()[:4] == b"\x89PNG"
    assert "2/2" in (out / "table.txt").read_text()

    # Resume: a torn line is dropped and no finished trial runs again.
    with (out / "results.jsonl").open("a") as fh:
        fh.write('{"key": "torn')

    def boom(trial):
        raise AssertionError(f"trial {trial.key} ran again")

    monkeypatch.setattr(B, "run_trial", boom)
    again = B.run_bench([scene_path], out, cfg)
    assert [r["key"] for r in again] == [r["key"] for r in recs]
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_plot_shows_success_with_intervals_and_tracking_error():
    from sim.bench import figure, summarise

    records = [
        {"task": "pick_banana", "method": "ours", "flow_noise_m": 0.0, "success": s, "seed": i,
         "cause": None if s else "grasp", "track_position_mean_m": tr}
        for i, (s, tr) in enumerate([(True, 0.004), (True, 0.006), (False, 0.011), (True, 0.005)])
    ]  # fmt: skip
    fig = figure(records)
    ax, ax_track = fig.axes[:2]
    (rate_bar,) = ax.patches
    (track_bar,) = ax_track.patches
    row = summarise(records)[0]
    assert rate_bar.get_height() == pytest.approx(0.75)
    assert track_bar.get_height() == pytest.approx(row["track_mean_mm"]) == pytest.approx(6.5)


def test_user_flows_layout_and_errors(tmp_path):
    scene_path = S.box_scene(tmp_path).save(tmp_path / "scene.yaml")
    flows = tmp_path / "wan_flows"
    with pytest.raises(ChordError, match=r"is not a folder; expected DIR/<task>/flow.npz"):
        B.user_flows([scene_path], flows)
    (flows / "pick_banana").mkdir(parents=True)
    with pytest.raises(ChordError, match=r"wan_flows/box_lift/flow.npz not found for task 'box_lift'") as e:
        B.user_flows([scene_path], flows)
    assert "['pick_banana']" in str(e.value) and "DIR/<task>/flow.npz" in str(e.value)
    (flows / "box_lift").mkdir()
    other = S.lift_flow()
    other = dataclasses.replace(other, object_names=("crate",))
    other.save(flows / "box_lift" / "flow.npz")
    with pytest.raises(ChordError, match=r"needs \['box'\] \(missing \['box'\]\): not a flow of this task"):
        B.user_flows([scene_path], flows)
    good = S.lift_flow().save(flows / "box_lift" / "flow.npz")
    B._CACHE.clear()  # the bad flow was cached under the same path
    assert B.user_flows([scene_path], flows) == {("box_lift", "ours"): good}


def test_manifest_refuses_to_resume_with_other_flows(tmp_path):
    a = S.lift_flow().save(tmp_path / "a.npz")
    b = S.lift_flow(lift=0.10).save(tmp_path / "b.npz")
    out = tmp_path / "bench"
    out.mkdir()
    cfg = B.BenchConfig(methods=("ours", "video_flow"))
    B._check_manifest(out, {("t", "ours"): a, ("t", "video_flow"): a, ("t", "rigid"): b}, cfg)
    manifest = json.loads((out / B.MANIFEST).read_text())
    assert manifest == {"t|ours": S.lift_flow().content_hash(), "t|video_flow": manifest["t|ours"]}
    (out / B.RESULTS).write_text("")
    B._check_manifest(out, {("t", "ours"): a}, cfg)  # the same flow: fine
    with pytest.raises(ChordError, match=r"planned from other flows for \['t\|ours'\]"):
        B._check_manifest(out, {("t", "ours"): b}, cfg)
