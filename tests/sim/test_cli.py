"""`chord sim` end to end: verdict written into the plan, exit status on failure."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chord.cli.main import main
from core.plan import Plan
from core.scene import Reference
from tests.sim import scaffold as S


@pytest.fixture()
def files(tmp_path):
    scene = S.box_scene(tmp_path)
    flow = S.lift_flow()
    flow_path = flow.save(tmp_path / "flow.npz")
    scene = dataclasses.replace(scene, reference=Reference(flow=flow_path))
    return scene.save(tmp_path / "scene.yaml"), flow, tmp_path


def test_sim_writes_verdict(files, capsys):
    scene_path, flow, tmp = files
    plan = S.ik_plan(flow)
    plan_path = plan.save(tmp / "plan.npz")
    assert (
        main(
            [
                "sim",
                str(plan_path),
                "--scene",
                str(scene_path),
                "--write-verdict",
                "--out",
                str(tmp / "v.json"),
                "--rerun",
                str(tmp / "sim.rrd"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "SUCCESS" in out and "tracking of box/base" in out
    judged = Plan.load(plan_path)
    assert judged.content_hash() == plan.content_hash()
    assert judged.validation["success"] is True
    assert judged.validation["plan_sha256"] == plan.content_hash()
    assert json.loads((tmp / "v.json").read_text())["success"] is True
    from chord.viz.readback import read_recording

    entities = read_recording(tmp / "sim.rrd")
    assert {"/world/plan/ee_path", "/sim/verdict", "/plots/sim/track_error_mm"} <= set(entities)


def test_sim_failure_exits_1_with_cause(files, capsys):
    scene_path, flow, tmp = files
    plan_path = S.ik_plan(flow, offset=(0.0, 0.05, 0.0)).save(tmp / "bad.npz")
    with pytest.raises(SystemExit) as e:
        main(["sim", str(plan_path), "--scene", str(scene_path), "--write-verdict"])
    assert e.value.code == 1
    assert "FAILURE (grasp)" in capsys.readouterr().out
    assert Plan.load(plan_path).validation["cause"] == "grasp"


def test_sim_without_reference_flow_is_a_clear_error(tmp_path, capsys):
    scene = S.box_scene(tmp_path)
    scene_path = scene.save(tmp_path / "scene.yaml")
    plan_path = S.ik_plan(S.lift_flow()).save(tmp_path / "plan.npz")
    assert main(["sim", str(plan_path), "--scene", str(scene_path)]) == 1
    assert "no reference flow" in capsys.readouterr().err


def test_bench_plans_ours_from_a_flow_dir(files, capsys):
    scene_path, _, tmp = files
    flows = tmp / "gpu_flows"
    (flows / "box_lift").mkdir(parents=True)
    # A "generated" flow that lifts 9 cm where the reference lifts 12 cm: judged against the reference.
    S.lift_flow(lift=0.09).save(flows / "box_lift" / "flow.npz")
    out = tmp / "bench"
    args = [
        "bench",
        str(scene_path),
        "--out",
        str(out),
        "--trials",
        "1",
        "--methods",
        "ours",
        "--workers",
        "1",
    ]
    base = ["--base-pose", "0", "0", "0", "1", "0", "0", "0", "--position-noise", "0", "--yaw-noise-deg", "0"]
    assert main([*args, *base, "--flow-dir", str(flows)]) == 0
    rec = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    # The planner followed the generated flow's 9 cm lift; the reference asks for 12 cm: a flow failure.
    assert not rec["success"] and rec["cause"] == "flow", rec["reason"]
    assert "final pose of the part is 30.0 mm" in rec["reason"]
    assert "box_lift|ours" in json.loads((out / "planning_flows.json").read_text())
    assert "ours" in capsys.readouterr().out

    # The same OUT with the reference flow would mix trials of two flows: refused.
    assert main([*args, *base]) == 1
    assert "planned from other flows" in capsys.readouterr().err
    assert main([*args, *base, "--flow-dir", str(tmp / "nowhere")]) == 1
    assert "expected DIR/<task>/flow.npz" in capsys.readouterr().err


# -- options: every config field is a flag, and the flags reach the library -------------------

# field -> (flag and value(s), what the library must receive); a non-default value for each.
SIM_FLAGS = {
    "physics_hz": (["--physics-hz", "300"], 300.0),
    "substeps": (["--substeps", "3"], 3),
    "gravity": (["--gravity", "9.0"], 9.0),
    "settle_s": (["--settle-s", "0.25"], 0.25),
    "hold_s": (["--hold-s", "1.0"], 1.0),
    "arm_control": (["--arm-control", "position"], "position"),
    "joint_stiffness": (["--joint-stiffness", *["1000"] * 7], (1000.0,) * 7),
    "damping_ratio": (["--damping-ratio", "0.7"], 0.7),
    "position_gain": (["--position-gain", "0.2"], 0.2),
    "velocity_gain": (["--velocity-gain", "0.5"], 0.5),
    "arm_forces": (["--arm-forces", "50", "50", "50", "50", "10", "10", "10"], (50.0,) * 4 + (10.0,) * 3),
    "finger_force": (["--finger-force", "40"], 40.0),
    "finger_coupling_force": (["--finger-coupling-force", "0"], 0.0),
    "finger_spinning_friction": (["--finger-spinning-friction", "0.005"], 0.005),
    "object_friction": (["--object-friction", "0.4"], 0.4),
    "finger_friction": (["--finger-friction", "0.8"], 0.8),
    "table_friction": (["--table-friction", "0.7"], 0.7),
    "mass_scale": (["--mass-scale", "1.5"], 1.5),
    "table_size": (["--table-size", "1", "1", "0.04"], (1.0, 1.0, 0.04)),
    "gui": (["--gui"], True),
}
EVAL_FLAGS = {
    "position_tolerance": (["--position-tolerance", "0.01"], 0.01),
    "angle_tolerance_deg": (["--angle-tolerance-deg", "5"], 5.0),
    "joint_tolerance_fraction": (["--joint-tolerance-fraction", "0.2"], 0.2),
    "slip_tolerance": (["--slip-tolerance", "0.03"], 0.03),
    "ik_position_tolerance": (["--ik-position-tolerance", "0.001"], 0.001),
    "ik_angle_tolerance_deg": (["--ik-angle-tolerance-deg", "1"], 1.0),
    "ik_limit_tolerance": (["--ik-limit-tolerance", "0"], 0.0),
    "grasp_window": (["--grasp-window", "0.3"], 0.3),
    "joint_axis_tolerance_deg": (["--joint-axis-tolerance-deg", "10"], 10.0),
    "joint_offset_tolerance": (["--joint-offset-tolerance", "0.02"], 0.02),
}
BENCH_FLAGS = {
    "trials": (["--trials", "3"], 3),
    "seed": (["--seed", "7"], 7),
    "methods": (["--methods", "ours", "rigid"], ("ours", "rigid")),
    "flow_noise_mm": (["--flow-noise-mm", "0", "5"], (0.0, 5.0)),
    "position_noise": (["--position-noise", "0.01"], 0.01),
    "yaw_noise_deg": (["--yaw-noise-deg", "5"], 5.0),
    "friction_range": (["--friction-range", "0.5", "0.9"], (0.5, 0.9)),
    "mass_scale_range": (["--mass-scale-range", "0.9", "1.1"], (0.9, 1.1)),
    "base_pose": (["--base-pose", "0", "0.1", "0", "1", "0", "0", "0"], (0.0, 0.1, 0.0, 1.0, 0.0, 0.0, 0.0)),
    "max_plan_s": (["--max-plan-s", "60"], 60.0),
    "workers": (["--workers", "2"], 2),
    "physics_hz": (["--physics-hz", "300"], 300.0),
    "substeps": (["--substeps", "3"], 3),
    "geometry": (["--geometry", "flow"], "flow"),
    "sim_grasp": (["--no-sim-grasp"], False),
    "robot": (["--robot", "xarm6"], "xarm6"),
}


def test_the_flag_tables_cover_every_config_field():
    from sim.bench import BenchConfig
    from sim.rules import EvalConfig
    from sim.world import SimConfig

    names = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    assert set(SIM_FLAGS) == names(SimConfig)
    assert set(EVAL_FLAGS) == names(EvalConfig)
    assert set(BENCH_FLAGS) == names(BenchConfig)


@pytest.fixture()
def spy_validate(monkeypatch):
    """Record validate_plan's arguments instead of simulating."""
    import sim.api
    from sim.evaluate import SimResult

    calls: list[dict] = []

    def fake(
        plan_path,
        scene_path,
        goal_flow,
        planned_from,
        config,
        eval_config,
        write_verdict,
        out_json,
        robot_urdf,
        robot,
    ):
        calls.append(dict(locals()))
        return SimResult(True, None, "recorded")

    monkeypatch.setattr(sim.api, "validate_plan", fake)
    return calls


@pytest.mark.parametrize("table, field", [("sim", f) for f in SIM_FLAGS] + [("eval", f) for f in EVAL_FLAGS])
def test_each_sim_flag_reaches_validate_plan(table, field, spy_validate, tmp_path):
    from sim.rules import EvalConfig
    from sim.world import SimConfig

    args, value = (SIM_FLAGS if table == "sim" else EVAL_FLAGS)[field]
    plan, scene = tmp_path / "plan.npz", tmp_path / "scene.yaml"
    assert main(["sim", str(plan), "--scene", str(scene), *args]) == 0
    (call,) = spy_validate
    config = call["config" if table == "sim" else "eval_config"]
    default = SimConfig() if table == "sim" else EvalConfig()
    assert getattr(config, field) == value != getattr(default, field)
    # Only that field moved; the rest keep the dataclass defaults.
    assert dataclasses.replace(config, **{field: getattr(default, field)}) == default
    assert (call["plan_path"], call["scene_path"], call["write_verdict"], call["out_json"]) == (
        plan,
        scene,
        False,
        None,
    )


def test_sim_passes_its_files_to_validate_plan(spy_validate, tmp_path):
    p, s, f, g, o = (tmp_path / n for n in ("p.npz", "s.yaml", "f.npz", "g.npz", "v.json"))
    args = ["sim", str(p), "--scene", str(s), "--flow", str(f), "--planned-from", str(g), "--write-verdict"]
    assert main([*args, "--out", str(o)]) == 0
    (call,) = spy_validate
    assert (call["goal_flow"], call["planned_from"], call["write_verdict"], call["out_json"]) == (
        f,
        g,
        True,
        o,
    )


def test_sim_refuses_a_bad_physics_value(tmp_path, capsys):
    rc = main(["sim", str(tmp_path / "p.npz"), "--scene", str(tmp_path / "s.yaml"), "--physics-hz", "nan"])
    assert rc == 1
    assert capsys.readouterr().err == (
        "chord sim: error: SimConfig.physics_hz is nan, expected a finite number >= 240 Hz\n"
    )


def test_sim_physics_flags_change_the_rollout(files, capsys):
    scene_path, flow, tmp = files
    plan = S.ik_plan(flow)
    plan_path = plan.save(tmp / "plan.npz")
    base = ["sim", str(plan_path), "--scene", str(scene_path)]
    assert main([*base, "--out", str(tmp / "default.json")]) == 0
    assert (
        main(
            [*base, "--physics-hz", "360", "--substeps", "3", "--hold-s", "1.0", "--out", str(tmp / "v.json")]
        )
        == 0
    )
    default, v = (json.loads((tmp / n).read_text()) for n in ("default.json", "v.json"))
    assert (v["sim_config"]["physics_hz"], v["sim_config"]["substeps"], v["sim_config"]["hold_s"]) == (
        360.0,
        3,
        1.0,
    )
    # The solver ran at 360 x 3 Hz, and simulated 0.5 s more after the plan than by default.
    assert v["physics_hz"] == v["metrics"]["physics_hz"] == 1080.0 and default["physics_hz"] == 480.0
    assert default["metrics"]["sim_seconds"] == pytest.approx(plan.duration + 0.5, abs=0.01)
    assert v["metrics"]["sim_seconds"] == pytest.approx(plan.duration + 1.0, abs=0.01)
    assert v["success"]


def test_sim_contact_flags_drop_the_box(files, capsys):
    scene_path, flow, tmp = files
    plan_path = S.ik_plan(flow).save(tmp / "plan.npz")
    # 1 kg at friction 0.05: two 70 N fingers hold 7 N < 9.8 N (as test_evaluate's slippery box).
    args = ["--object-friction", "0.05", "--mass-scale", "5", "--out", str(tmp / "v.json")]
    with pytest.raises(SystemExit) as e:
        main(["sim", str(plan_path), "--scene", str(scene_path), *args])
    assert e.value.code == 1
    assert "FAILURE (execution): part dropped" in capsys.readouterr().out
    v = json.loads((tmp / "v.json").read_text())
    assert (v["sim_config"]["object_friction"], v["sim_config"]["mass_scale"]) == (0.05, 5.0)


def test_sim_tolerance_flags_change_the_verdict(files, capsys):
    scene_path, flow, tmp = files
    plan_path = S.ik_plan(flow).save(tmp / "plan.npz")
    coupled = ["sim", str(plan_path), "--scene", str(scene_path), "--write-verdict"]
    # The Franka hand's coupled fingers hold the box within 4 um; free of each other (the old
    # hand, --finger-coupling-force 0) they let it slip 0.4 mm: the numbers this test reads.
    assert main([*coupled, "--slip-tolerance", "0.0001"]) == 0
    capsys.readouterr()
    base = [*coupled, "--finger-coupling-force", "0"]
    assert main(base) == 0  # the box slips 0.4 mm in the hand and ends 0.6 mm from the goal
    with pytest.raises(SystemExit):
        main([*base, "--slip-tolerance", "0.0001"])
    assert "FAILURE (execution): part dropped: it moved 0.4 mm" in capsys.readouterr().out
    v = Plan.load(plan_path).validation
    assert v["cause"] == "execution" and v["eval_config"]["slip_tolerance"] == 0.0001
    # A 0.5 mm position tolerance: the planned tool path (0.8 mm off the track) is blamed first.
    with pytest.raises(SystemExit):
        main([*base, "--position-tolerance", "0.0005"])
    assert "FAILURE (IK): the planned tool path carries the part off the flow's track by 0.8 mm" in (
        capsys.readouterr().out
    )
    assert Plan.load(plan_path).validation["eval_config"]["position_tolerance"] == 0.0005


@pytest.fixture()
def spy_bench(monkeypatch):
    """Record run_bench's config instead of running trials."""
    import sim.bench

    calls: list = []

    def fake(scenes, out, config, flows=None):
        calls.append((scenes, out, config, flows))
        return []

    monkeypatch.setattr(sim.bench, "run_bench", fake)
    return calls


@pytest.mark.parametrize("field", list(BENCH_FLAGS))
def test_each_bench_flag_reaches_run_bench(field, spy_bench, tmp_path):
    from sim.bench import BenchConfig

    args, value = BENCH_FLAGS[field]
    scene = tmp_path / "scene.yaml"
    assert main(["bench", str(scene), "--out", str(tmp_path / "b"), *args]) == 0
    ((scenes, out, config, flows),) = spy_bench
    assert getattr(config, field) == value != getattr(BenchConfig(), field)
    assert dataclasses.replace(config, **{field: getattr(BenchConfig(), field)}) == BenchConfig()
    assert (scenes, out, flows) == ([scene], tmp_path / "b", None)


def test_bench_default_config_is_the_dataclass(spy_bench, tmp_path):
    from sim.bench import BenchConfig

    assert main(["bench", str(tmp_path / "scene.yaml"), "--out", str(tmp_path / "b")]) == 0
    assert spy_bench[0][2] == BenchConfig()
    assert spy_bench[0][2].methods == ("ours", "video_flow", "rigid")


def test_bench_refuses_a_bad_value(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "scene.yaml"), "--workers", "-1"]) == 1
    assert (
        capsys.readouterr().err == "chord bench: error: BenchConfig.workers is -1, expected an integer >= 0\n"
    )


def test_bench_flags_change_the_trials(files):
    scene_path, _, tmp = files
    base = [
        "bench",
        str(scene_path),
        "--trials",
        "1",
        "--methods",
        "ours",
        "--workers",
        "1",
        "--position-noise",
        "0",
    ]
    base += ["--yaw-noise-deg", "0", "--base-pose", "0", "0", "0", "1", "0", "0", "0"]
    # The solver rate reaches the simulation of every trial (the grasp trials, which would run at
    # it too, are not what this checks: off, for CI's time).
    assert (
        main([*base, "--out", str(tmp / "a"), "--physics-hz", "300", "--substeps", "3", "--no-sim-grasp"])
        == 0
    )
    (rec,) = [json.loads(x) for x in (tmp / "a" / "results.jsonl").read_text().splitlines()]
    assert rec["success"] and rec["physics_hz"] == 900.0
    # Two noise levels give two rows; a 0.5 s plan limit fails every plan before simulation (the
    # grasp trials, before the limit, are off again: CI's time).
    flags = ["--flow-noise-mm", "0", "5", "--max-plan-s", "0.5", "--no-sim-grasp"]
    assert main([*base, "--out", str(tmp / "b"), *flags]) == 0
    recs = [json.loads(x) for x in (tmp / "b" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["flow_noise_m"] for r in recs) == [0.0, 0.005]
    assert all(
        r["cause"] == "IK" and "over max_plan_s 0.5 s" in r["reason"] and not r["simulated"] for r in recs
    )
    summary = json.loads((tmp / "b" / "summary.json").read_text())
    assert summary["config"]["max_plan_s"] == 0.5 and summary["config"]["flow_noise_mm"] == [0.0, 5.0]
