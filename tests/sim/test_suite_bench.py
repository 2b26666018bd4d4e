"""``chord bench --suite``: the task suite planned from its ground-truth flows and judged by its truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assets.suite import SuiteConfig, build_suite
from chord.cli.main import main
from core.errors import ChordError
from core.scene import Scene
from core.truth import Truth
from sim.bench import BenchConfig, perturb_truth, sample_perturbation
from sim.suite_bench import FAILURE_COLUMNS, SuiteSelection, format_suite_table, suite_rows

TINY = dict(resolution=(64, 36), points_per_object=300, frames=9)


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    build_suite(out, SuiteConfig(split="train", only=("rigid", "door", "drawer"), limit=1, **TINY))
    return out


def test_table_counts_add_up():
    cats = {"rigid_000": "rigid", "rigid_001": "rigid", "door_000": "door"}
    causes = [None, "grasp", None, "IK", "execution", "error", "flow", None]
    tasks = [
        "rigid_000",
        "rigid_000",
        "rigid_001",
        "rigid_001",
        "door_000",
        "door_000",
        "door_000",
        "door_000",
    ]
    records = [{"task": t, "success": c is None, "cause": c} for t, c in zip(tasks, causes, strict=True)]
    rows = {r["category"]: r for r in suite_rows(records, cats)}
    assert list(rows) == ["rigid", "door", "all"]  # the suite's category order, then the total
    assert (rows["rigid"]["tasks"], rows["rigid"]["trials"], rows["rigid"]["successes"]) == (2, 4, 2)
    assert rows["rigid"]["failures"] == {"flow": 0, "IK": 1, "grasp": 1, "execution": 0, "error": 0}
    assert rows["door"]["failures"] == {"flow": 1, "IK": 0, "grasp": 0, "execution": 1, "error": 1}
    assert rows["all"]["trials"] == rows["rigid"]["trials"] + rows["door"]["trials"] == 8
    for r in rows.values():
        assert sum(r["failures"].values()) == r["trials"] - r["successes"]
    assert rows["all"]["rate"] == pytest.approx(3 / 8)
    table = format_suite_table(list(rows.values()), "test")
    assert "rigid" in table and " 50%" in table and " 38%" in table
    with pytest.raises(ChordError, match="planner"):
        suite_rows([{"task": "rigid_000", "success": False, "cause": "planner"}], cats)


def test_truth_moves_with_the_trial_perturbation(tiny_suite):
    scene = Scene.load(tiny_suite / "rigid_000" / "scene.yaml")
    truth = Truth.load(scene.reference.truth)
    pert = sample_perturbation(scene, BenchConfig(position_noise=0.05, yaw_noise_deg=20.0), seed=3)
    moved = perturb_truth(scene, truth, pert)
    for o in scene.objects:
        d = pert["objects"][o.name]
        P, Q = truth.pose_matrices(o.name), moved.pose_matrices(o.name)
        D = Q[0] @ np.linalg.inv(P[0])  # the same world transform at every frame
        assert np.allclose(Q, D @ P, atol=1e-9)
        assert np.degrees(np.arctan2(D[1, 0], D[0, 0])) == pytest.approx(d["yaw_deg"], abs=1e-6)
    assert np.array_equal(moved.joints, truth.joints)


def test_suite_bench_runs_judges_by_truth_and_resumes(tiny_suite, tmp_path, capsys):
    """The short suite CI runs: a rigid pick, a door and a drawer, one randomised (perturbed) trial
    each, with the grasp trials on. (One trial, not two: each costs ~8 s of CI's time, most of it
    the grasp trials; several trials of a task, their seeds and a resume that runs none of them
    again are tests/sim/test_bench.py's test_bench_runs_in_parallel_and_resumes.)"""
    out = tmp_path / "bench"
    argv = ["bench", "--suite", str(tiny_suite), "--split", "train", "--limit", "1", "--trials", "1"]
    argv += ["--workers", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    print(printed)  # the table, in the test log
    assert "judged by the ground truth" in printed and "rigid" in printed and "door" in printed
    doc = json.loads((out / "suite_bench.json").read_text())
    rows = {r["category"]: r for r in doc["categories"]}
    assert set(rows) == {"rigid", "door", "drawer", "all"}
    assert rows["all"]["trials"] == 3 and rows["all"]["tasks"] == 3
    for r in rows.values():
        assert sum(r["failures"].values()) == r["trials"] - r["successes"]
    # Every trial is a verdict: no planner or simulator crashed on an unseen object.
    assert rows["all"]["failures"]["error"] == 0, [r for r in doc["tasks"]]
    assert doc["judged_by"] == ["truth"] and doc["split"] == "train"
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"ours"} and all(r["judged_by"] == "truth" for r in records)
    # The base is placed once per task, from its unperturbed scene, and every trial of it stands there.
    bases = json.loads((out / "bases.json").read_text())
    assert sorted(bases) == sorted(f"{t}|ours|panda" for t in ("rigid_000", "door_000", "drawer_000"))
    for r in records:
        assert r["base_pose"] == bases[f"{r['task']}|ours|panda"]["base"] and r["robot"] == "panda"
    assert (out / "suite_table.txt").read_text().strip() in printed
    # Resume: the same trials are found in results.jsonl and not run again.
    assert main(argv) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == len(records)
    # A stale record (judged by the flow in an older bench; which records are stale:
    # test_a_resumed_bench_runs_again_only_records_made_otherwise) is run again, not reused.
    assert all(r["sim_grasp"] is True for r in records)
    stale = [{**records[0], "judged_by": "flow", "success": not records[0]["success"], "cause": None}]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale + records[1:]))
    assert main(argv) == 0
    again = json.loads((out / "suite_bench.json").read_text())
    assert again["judged_by"] == ["truth"] and again["categories"] == doc["categories"]


def test_a_resumed_bench_runs_again_only_records_made_otherwise():
    from sim.bench import Trial, reusable

    on, off = BenchConfig(), BenchConfig(sim_grasp=False)
    base = [-0.4, 0.1, 0.0, 1.0, 0.0, 0.0, 0.0]
    place = {"base": base}
    trial = Trial("t", "t/scene.yaml", "ours", "t/flow.npz", 0.0, 0, 1, on, "truth", place)
    record = {"key": trial.key, "judged_by": "truth", "sim_grasp": True, "base_pose": base}
    assert reusable(record, trial, on)
    assert not reusable(None, trial, on)  # never run
    assert not reusable({**record, "judged_by": "flow"}, trial, on)  # judged by the flow, truth now
    older = {k: v for k, v in record.items() if k != "judged_by"}
    assert not reusable(older, trial, on)  # older: by the flow
    trial_off = Trial("t", "t/scene.yaml", "ours", "t/flow.npz", 0.0, 0, 1, off, "truth", place)
    assert not reusable(record, trial_off, off)  # planned with grasp trials, off now
    assert not reusable({**record, "sim_grasp": False}, trial, on)  # and the other way
    assert not reusable({k: v for k, v in record.items() if k != "sim_grasp"}, trial, on)  # older than trials
    # planned at another base, or before bases were placed per task (the old fixed base)
    assert not reusable({**record, "base_pose": [-0.5, 0, 0, 1, 0, 0, 0]}, trial, on)
    assert not reusable({k: v for k, v in record.items() if k != "base_pose"}, trial, on)
    # a fixed base: the trial's base is the config's
    fixed = BenchConfig(base_pose=(-0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0))
    at_fixed = Trial("t", "t/scene.yaml", "ours", "t/flow.npz", 0.0, 0, 1, fixed, "truth")
    assert at_fixed.base_pose == (-0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    assert reusable({**record, "base_pose": [-0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]}, at_fixed, fixed)


def test_a_resumed_bench_reruns_records_of_another_arm(tmp_path):
    from sim.bench import Trial, base_key, reusable
    from tests.core.test_robots import _yaml_doc

    base = [-0.4, 0.1, 0.0, 1.0, 0.0, 0.0, 0.0]
    record = {"judged_by": "truth", "sim_grasp": True, "base_pose": base}
    for cfg, name in ((BenchConfig(), "panda"), (BenchConfig(robot="xarm6"), "xarm6")):
        trial = Trial("t", "t/scene.yaml", "ours", "t/flow.npz", 0.0, 0, 1, cfg, "truth", {"base": base})
        assert reusable({**record, "robot": name}, trial, cfg)
        assert not reusable({**record, "robot": "ur5"}, trial, cfg)
    # records older than robot names were the Panda's
    assert reusable(record, Trial("t", "t/scene.yaml", "ours", "t/flow.npz", 0.0, 0, 1, BenchConfig(), "truth",
                                  {"base": base}), BenchConfig())  # fmt: skip
    # a YAML arm is named by its own name, not by its file's path
    yaml_arm = BenchConfig(robot=str(_yaml_doc(tmp_path)))
    assert yaml_arm.robot_name == "my_arm" and base_key("t", "ours", yaml_arm.robot_name) == "t|ours|my_arm"
    trial = Trial("t", "t/scene.yaml", "ours", "t/flow.npz", 0.0, 0, 1, yaml_arm, "truth", {"base": base})
    assert reusable({**record, "robot": "my_arm"}, trial, yaml_arm)
    with pytest.raises(ChordError, match="BenchConfig.robot: robot 'kuka' is not a known robot"):
        BenchConfig(robot="kuka")


def test_a_task_without_a_base_placement_fails_its_trials_with_the_planners_reason(tiny_suite):
    from sim.bench import Trial, run_trial

    sp = tiny_suite / "rigid_000" / "scene.yaml"
    scene = Scene.load(sp)
    place = {"base": None, "error": "no reachable grasp at any placement", "cause": "IK"}
    trial = Trial(
        scene.name, str(sp), "ours", str(scene.reference.flow), 0.0, 0, 1, BenchConfig(), "truth", place
    )
    rec = run_trial(trial)
    assert rec["success"] is False and rec["cause"] == "IK" and rec["simulated"] is False
    assert (
        "no robot base placement" in rec["reason"] and "no reachable grasp at any placement" in rec["reason"]
    )
    assert rec["base_pose"] is None


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--limit", "0"], "--limit is 0"),
        (["--tasks-dir", "x"], "drop ['--tasks-dir']"),
        (["--full", "--flow-dir", "x"], "give --full (generate the flows) or --flow-dir"),
        (["--split", "dev"], "--split is 'dev', expected train, test or all"),
        (["--only", "door", "lamp"], "--only lamp: not a category or task id of the all tasks"),
    ],
)
def test_bad_suite_options_are_refused_in_one_line(tiny_suite, tmp_path, capsys, extra, needle):
    rc = main(["bench", "--suite", str(tiny_suite), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert rc != 0 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_suite_options_without_a_suite_and_a_missing_suite_are_refused(tmp_path, capsys):
    assert main(["bench", "--split", "test", "--out", str(tmp_path / "o")]) != 0
    assert "add --suite" in capsys.readouterr().err
    assert main(["bench", "--suite", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip()
    assert "no suite index here" in err and len(err.splitlines()) == 1
    (tmp_path / "file").write_text("x")
    assert main(["bench", "--suite", str(tmp_path / "none"), "--out", str(tmp_path / "file")]) != 0
    assert "--out" in capsys.readouterr().err


def test_selection_limits_per_category(tiny_suite):
    entries = SuiteSelection(tiny_suite, "train", 1).entries()
    assert sorted(e.category for e in entries) == ["door", "drawer", "rigid"]
    # --only keeps the categories and task ids it names
    only = SuiteSelection(tiny_suite, "train", only=("door", "rigid_000")).entries()
    assert [e.id for e in only] == [e.id for e in entries if e.id in ("door_000", "rigid_000")]
    with pytest.raises(ChordError, match="expected one of the categories \\['door', 'drawer', 'rigid'\\]"):
        SuiteSelection(tiny_suite, "train", only=("rigid_001",)).entries()
    with pytest.raises(ChordError, match="no test tasks"):
        SuiteSelection(tiny_suite, "test").entries()
    assert FAILURE_COLUMNS == ("flow", "IK", "grasp", "execution", "error")


def _one_trial_each(suite):
    """bench --suite arguments: one task per category, one trial. The grasp trials are not what
    the tests using it check (the short suite above runs them): off, for CI's time."""
    return [
        "bench",
        "--suite",
        str(suite),
        "--limit",
        "1",
        "--trials",
        "1",
        "--workers",
        "1",
        "--no-sim-grasp",
    ]


def test_flow_dir_plans_from_the_users_flows(tiny_suite, tmp_path, capsys):
    import shutil

    flows = tmp_path / "flows"
    base = _one_trial_each(tiny_suite)
    assert main([*base, "--flow-dir", str(flows), "--out", str(tmp_path / "a")]) != 0
    err = capsys.readouterr().err.strip()
    assert "is not a folder" in err and len(err.splitlines()) == 1
    task = "rigid_000"  # one task (--only): the flows' lookup is what this checks
    (flows / task).mkdir(parents=True)
    shutil.copy(tiny_suite / task / "reference" / "flow.npz", flows / task / "flow.npz")
    out = tmp_path / "b"
    assert main([*base, "--only", task, "--flow-dir", str(flows), "--out", str(out)]) == 0
    doc = json.loads((out / "suite_bench.json").read_text())
    assert doc["planning_flows"] == "user" and doc["judged_by"] == ["truth"]
    manifest = json.loads((out / "planning_flows.json").read_text())
    assert set(manifest) == {"rigid_000|ours"}


def test_full_suite_bench_generates_each_tasks_flow_and_plans_from_it(tiny_suite, tmp_path, capsys):
    from core.flow import ObjectFlow
    from tests.sim.test_bench_full import SMALL

    out = tmp_path / "full"
    args = [*_one_trial_each(tiny_suite), "--only", "rigid", "door", "--full"]  # a rigid and a jointed fit
    assert main([*args, "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "suite_bench.json").read_text())
    assert doc["planning_flows"] == "generated" and doc["judged_by"] == ["truth"]
    assert "planned from flows the flow stage generated (--full)" in printed
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task"] for r in records) == ["door_000", "rigid_000"]
    for r in records:
        assert r["planning_flow_prior"] == "video", r
        flow = ObjectFlow.load(out / "flows" / r["task"] / "flow.npz")
        reference = ObjectFlow.load(tiny_suite / r["task"] / "reference" / "flow.npz")
        # The video fit's flow (256 points per object, as SMALL asks), not the task's reference.
        assert flow.prior == "video" and flow.num_points == 256 * len(flow.object_names)
        assert flow.num_points != reference.num_points
    # Without --full into the same OUT: refused (its trials were planned from generated flows).
    capsys.readouterr()
    assert main([*args[:-1], "--out", str(out)]) != 0  # the same without --full
    assert "generated (--full) flows" in capsys.readouterr().err


@pytest.mark.parametrize("base", [[float("nan")] + [0.0] * 6, [0.0] * 7, [1.0, 2.0], "x"])
def test_a_bad_base_in_bases_json_is_refused_before_any_trial(tiny_suite, tmp_path, base):
    from sim.bench import BASES, task_placements

    out = tmp_path / "bench"
    out.mkdir()
    (out / BASES).write_text(json.dumps({"rigid_000|ours|panda": {"base": base}}))
    scenes = [tiny_suite / "rigid_000" / "scene.yaml"]
    with pytest.raises(ChordError, match="rigid_000\\|ours\\|panda.*expected null or xyz"):
        task_placements(out, scenes, BenchConfig(methods=("ours",)), {}, 1)
