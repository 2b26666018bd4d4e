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
