"""The planner's library API: PlannerConfig's checks and geometry rule, its record, plan_file."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from core.errors import ChordError, ContractError
from core.plan import Plan
from core.record import PlanRecord
from core.robots import PANDA
from planner import synthetic
from planner.api import PlanReport, plan_file
from planner.config import (
    GraspConfig,
    GripperGeometry,
    PlannerConfig,
    PlannerConfigError,
    config_dict,
    config_from_dict,
)
from tests.core.test_contracts import make_plan


@pytest.mark.parametrize("name", ["velocity_scale", "accel_scale"])
@pytest.mark.parametrize("bad", [0.0, -0.1, 1.0001, 1.5, math.nan, math.inf])
def test_scales_outside_0_1_are_refused_from_python(name, bad):
    with pytest.raises(PlannerConfigError, match=f"{name} is {bad!r}, expected a fraction"):
        PlannerConfig(**{name: bad})


@pytest.mark.parametrize("name", ["velocity_scale", "accel_scale"])
@pytest.mark.parametrize("good", [1e-3, 0.5, 1.0])
def test_scales_inside_0_1_are_kept(name, good):
    assert getattr(PlannerConfig(**{name: good}), name) == good


@pytest.mark.parametrize(
    "field, bad",
    [
        ("dt", 0.0),
        ("dt", math.nan),
        ("max_duration", -1.0),
        ("max_track_error", 0.0),
        ("max_track_rotation_deg", math.inf),
        ("retreat_distance", -0.01),
        ("gripper_time", math.nan),
        ("scene_tolerance", -0.1),
        ("approach_steps", 0),
        ("geometry", "meshes"),
        ("base_pose", (0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0)),  # not a unit quaternion
        ("base_pose", (0.0, 0.0, 0.0, 1.0, 0.0, 0.0)),  # six numbers
        ("base_pose", (math.nan, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)),
    ],
)
def test_other_values_are_checked_on_construction(field, bad):
    # A ChordError, so `chord` prints it as one line; and a ValueError for Python callers.
    with pytest.raises(ChordError, match=field) as info:
        PlannerConfig(**{field: bad})
    assert isinstance(info.value, ValueError)


def test_geometry_auto_is_mesh_with_a_scene_and_flow_without():
    assert PlannerConfig().geometry == "auto"
    assert PlannerConfig().geometry_for(scene_given=True) == "mesh"
    assert PlannerConfig().geometry_for(scene_given=False) == "flow"
    # An explicit choice is kept, scene or not ("flow" with a scene: the flow's own points).
    assert PlannerConfig(geometry="flow").geometry_for(scene_given=True) == "flow"
    assert PlannerConfig(geometry="mesh").geometry_for(scene_given=True) == "mesh"
    with pytest.raises(PlannerConfigError, match="needs the scene"):
        PlannerConfig(geometry="mesh").geometry_for(scene_given=False)


def test_config_round_trips_through_its_json_record(tmp_path):
    cfg = PlannerConfig(
        base_pose=(0.1, -0.2, 0.0, 1.0, 0.0, 0.0, 0.0),
        velocity_scale=0.25,
        grasp=replace(GraspConfig(), friction=0.45, gripper=replace(GripperGeometry(), palm_z=(-0.1, -0.04))),
        geometry="mesh",
    )
    rec = PlanRecord(config=config_dict(cfg), flow=tmp_path / "flow.npz")
    back = config_from_dict(PlanRecord.load(rec.save(tmp_path / "plan.npz")).config)
    assert back == cfg and back != PlannerConfig()
    d = config_dict(cfg)
    with pytest.raises(PlannerConfigError, match=r"unknown field\(s\) \['colour'\]"):
        config_from_dict({**d, "colour": "red"})
    with pytest.raises(
        PlannerConfigError, match=r"config.grasp: unknown field\(s\) \[\], missing field\(s\) \['anchors'\]"
    ):
        config_from_dict({**d, "grasp": {k: v for k, v in d["grasp"].items() if k != "anchors"}})
    with pytest.raises(PlannerConfigError, match=r"config.velocity_scale is '0.5' \(str\), expected float"):
        config_from_dict({**d, "velocity_scale": "0.5"})
    # A bool field takes a JSON bool only (not 1, not "yes").
    assert config_from_dict({**d, "segment": {**d["segment"], "merge": False}}).segment.merge is False
    with pytest.raises(PlannerConfigError, match=r"config.segment.merge is 1 \(int\), expected bool"):
        config_from_dict({**d, "segment": {**d["segment"], "merge": 1}})
    with pytest.raises(
        PlannerConfigError, match=r"config.grasp.gripper.palm_z is \[0.1\], expected 2 values"
    ):
        config_from_dict(
            {**d, "grasp": {**d["grasp"], "gripper": {**d["grasp"]["gripper"], "palm_z": [0.1]}}}
        )
    with pytest.raises(PlannerConfigError, match="velocity_scale is 2.0"):  # the config's own checks
        config_from_dict({**d, "velocity_scale": 2.0})


def test_plan_file_returns_the_report_it_stores(tmp_path):
    sf = synthetic.rigid_pick(n=1500, seed=1)
    flow_path = sf.flow.save(tmp_path / "flow.npz")
    out = tmp_path / "runs" / "plan.npz"
    outcome = plan_file(flow_path, None, out, PlannerConfig(velocity_scale=0.4))
    assert outcome.plan_path == out and outcome.config_path == tmp_path / "runs" / "plan.config.json"
    plan = Plan.load(out)
    # The returned report is the one in the written plan's meta, and agrees with its arrays.
    assert outcome.report == PlanReport.from_plan(plan)
    assert outcome.plan.content_hash() == plan.content_hash()
    r = plan.report
    assert outcome.report.waypoints == len(plan.t) and outcome.report.duration_s == plan.duration
    assert outcome.report.grasp_kind == r["grasp"]["kind"] == "grasp"
    assert outcome.report.target_object == "box"
    assert outcome.report.tracking_max_mm == r["tracking"]["sampled_position_max_mm"] < 5.0
    assert 0.0 < outcome.report.peak_speed_fraction <= 0.4 * 1.02
    assert outcome.report.grasp_reason.startswith("antipodal grasp")
    # No scene: "auto" planned on the flow's own points, and the record says so.
    assert outcome.report.geometry == "flow" and outcome.config.geometry == "flow"
    record = PlanRecord.load(outcome.config_path)
    assert record.flow == flow_path and record.scene is None
    assert (
        config_from_dict(record.config)
        == outcome.config
        # as planned: the robot's gripper filled in
        == PlannerConfig(
            velocity_scale=0.4, geometry="flow", grasp=GraspConfig(gripper=PANDA.gripper.geometry)
        )
    )


def test_plan_file_writes_nothing_when_planning_fails(tmp_path):
    still = synthetic.rigid_pick(n=800, lift=0.0, yaw_deg=0.0)
    flow_path = still.flow.save(tmp_path / "still.npz")
    with pytest.raises(ChordError, match="no motion"):
        plan_file(flow_path, None, tmp_path / "plan.npz")
    with pytest.raises(ChordError, match="needs the scene"):
        plan_file(flow_path, None, tmp_path / "plan.npz", PlannerConfig(geometry="mesh"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["still.npz"]


def test_a_plan_without_a_planner_report_has_no_plan_report():
    plan = make_plan(np.random.default_rng(0))  # a valid plan whose report is empty
    assert plan.report == {}
    with pytest.raises(ContractError, match=r"meta.report.grasp.kind: missing"):
        PlanReport.from_plan(plan)


def test_the_summary_line_says_what_how_long_how_well():
    report = PlanReport(
        grasp_kind="push",
        target_object="laptop",
        waypoints=412,
        duration_s=4.126,
        tracking_max_mm=0.314,
        tracking_max_deg=0.0449,
        joint_limit_margin_rad=0.4567,
        peak_speed_fraction=0.4951,
        planning_time_s=2.345,
        grasp_reason="push: ...",
        geometry="mesh",
    )
    assert report.summary("runs/x/plan.npz") == (
        "runs/x/plan.npz: push of 'laptop', 412 waypoints over 4.13 s; tracking 0.31 mm / 0.04 deg max, "
        "joint-limit margin 0.457 rad, peak speed 50% of limit; planned in 2.35 s on mesh geometry"
    )
