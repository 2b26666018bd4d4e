"""sim.api.validate_plan: what `chord sim` (and `chord run`) call, without the CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.errors import ChordError
from core.plan import Plan
from core.scene import Reference
from sim.api import validate_plan
from sim.rules import EvalConfig
from sim.world import SimConfig
from tests.sim import scaffold as S


@pytest.fixture()
def files(tmp_path):
    scene = S.box_scene(tmp_path)
    flow = S.lift_flow()
    flow_path = flow.save(tmp_path / "flow.npz")
    scene_path = dataclasses.replace(scene, reference=Reference(flow=flow_path)).save(tmp_path / "scene.yaml")
    return scene_path, flow, flow_path, tmp_path


def test_validate_plan_judges_and_writes_only_when_asked(files):
    scene_path, flow, _, tmp = files
    plan = S.ik_plan(flow)
    plan_path = plan.save(tmp / "plan.npz")
    r = validate_plan(plan_path, scene_path)
    assert r.success and r.cause is None and r.object_name == "box"
    assert r.flow_sha256 == flow.content_hash()  # judged against the scene's reference flow
    assert Plan.load(plan_path).validation is None

    cfg, ev = SimConfig(hold_s=1.0), EvalConfig(slip_tolerance=0.03)
    r2 = validate_plan(
        plan_path, scene_path, config=cfg, eval_config=ev, write_verdict=True, out_json=tmp / "v.json"
    )
    assert r2.success
    assert r2.sim_seconds == pytest.approx(r.sim_seconds + 0.5, abs=0.01)  # the config reached the rollout
    judged = Plan.load(plan_path)
    assert judged.content_hash() == plan.content_hash()
    v = judged.validation
    assert v == json.loads((tmp / "v.json").read_text())
    assert v["success"] is True and v["plan_sha256"] == plan.content_hash()
    assert v["sim_config"]["hold_s"] == 1.0 and v["eval_config"]["slip_tolerance"] == 0.03


def test_validate_plan_blames_a_planning_flow_that_differs(files):
    scene_path, _, flow_path, tmp = files
    low = S.lift_flow(lift=0.05)
    low_path = low.save(tmp / "low.npz")
    plan_path = S.ik_plan(low).save(tmp / "plan.npz")
    r = validate_plan(plan_path, scene_path, goal_flow=flow_path, planned_from=low_path)
    assert not r.success and r.cause == "flow", r.reason
    assert "planning flow's final pose of the part is 70.0 mm" in r.reason
    # Judged against the flow it was made from, the same plan succeeds.
    assert validate_plan(plan_path, scene_path, goal_flow=low_path).success


def test_validate_plan_without_a_goal_flow_is_a_clear_error(tmp_path):
    scene_path = S.box_scene(tmp_path).save(tmp_path / "scene.yaml")
    plan_path = S.ik_plan(S.lift_flow()).save(tmp_path / "plan.npz")
    with pytest.raises(ChordError, match=r"scene.yaml: the scene has no reference flow"):
        validate_plan(plan_path, scene_path)
