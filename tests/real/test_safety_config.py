"""SafetyConfig refuses what would disable a check: non-finite numbers and out-of-range values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.errors import ChordError
from real.preflight import SafetyConfig

SCALARS = [f.name for f in dataclasses.fields(SafetyConfig) if f.type == "float"]


def test_the_scalar_fields_are_all_here():
    assert len(SCALARS) == 14 and "slowdown" in SCALARS and "table_z" in SCALARS
    assert {"self_clearance", "scene_clearance", "collision_dt", "collision_step"} <= set(SCALARS)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_nonfinite_grasp_force_is_refused(value):
    with pytest.raises(
        ChordError, match=rf"safety config: grasp_force is {value!r}, expected a finite number"
    ):
        SafetyConfig(grasp_force=value)


def test_grasp_force_is_positive_or_unset():
    assert SafetyConfig().grasp_force is None and SafetyConfig(grasp_force=30.0).grasp_force == 30.0
    with pytest.raises(ChordError, match=r"grasp_force is 0.0, expected > 0 N"):
        SafetyConfig(grasp_force=0.0)


@pytest.mark.parametrize("name", SCALARS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_numbers_are_refused_by_name(name, value):
    with pytest.raises(ChordError, match=rf"safety config: {name} is {value!r}, expected a finite number"):
        SafetyConfig(**{name: value})


@pytest.mark.parametrize(
    ("name", "bad", "good"),
    [
        ("speed_scale", 0.0, 1e-3),
        ("speed_scale", 1.0 + 1e-9, 1.0),
        ("slowdown", 1.0 - 1e-9, 1.0),
        ("cartesian_speed_max", 0.0, 1e-3),
        ("max_sample_gap", 0.0, 1e-3),
        ("joint_margin", -1e-9, 0.0),
        ("link_clearance", -1e-9, 0.0),
        ("tcp_clearance", -1e-9, 0.0),
        ("start_tolerance", -1e-9, 0.0),
        ("rest_velocity", -1e-9, 0.0),
        ("self_clearance", -1e-9, 0.0),
        ("scene_clearance", -1e-9, 0.0),
        ("collision_dt", 0.0, 1e-3),
        ("collision_step", 0.0, 1e-3),
    ],
)
def test_each_side_of_a_range(name, bad, good):
    assert getattr(SafetyConfig(**{name: good}), name) == good
    with pytest.raises(ChordError, match=rf"safety config: {name} is {bad!r}, expected"):
        SafetyConfig(**{name: bad})


def test_table_z_may_be_any_finite_height():
    assert SafetyConfig(table_z=-0.3).table_z == -0.3


def test_inverted_box_names_the_axis():
    with pytest.raises(ChordError, match=r"on every axis \(z: 1.2 >= 1.0\)"):
        SafetyConfig(workspace_min=(-0.9, -0.9, 1.2), workspace_max=(0.9, 0.9, 1.0))
    with pytest.raises(ChordError, match=r"\(x: 0.5 >= 0.5, y: 0.9 >= -0.9\)"):
        SafetyConfig(workspace_min=(0.5, 0.9, 0.0), workspace_max=(0.5, -0.9, 1.0))


@pytest.mark.parametrize("corner", [(0.9, float("nan"), 1.2), (0.9, 0.9), (0.9, 0.9, 1.2, 2.0), "0.9"])
def test_box_corner_must_be_three_finite_numbers(corner):
    with pytest.raises(ChordError, match=r"workspace_max is .*, expected 3 finite numbers"):
        SafetyConfig(workspace_max=corner)


def test_box_corners_become_float_tuples():
    cfg = SafetyConfig(workspace_min=[-1, -1, 0], workspace_max=np.array([1.0, 1.0, 2.0]))
    assert cfg.workspace_min == (-1.0, -1.0, 0.0) and cfg.workspace_max == (1.0, 1.0, 2.0)
    assert all(type(x) is float for x in (*cfg.workspace_min, *cfg.workspace_max))


def test_first_run_must_be_a_bool():
    with pytest.raises(ChordError, match="first_run is 'no', expected True or False"):
        SafetyConfig(first_run="no")


@pytest.mark.parametrize(
    ("name", "bad", "good"),
    [
        ("start_tolerance", 0.1 + 1e-9, 0.1),  # 1e6 rad would switch the start check off
        ("rest_velocity", 0.1 + 1e-9, 0.1),
        ("max_sample_gap", 0.5 + 1e-9, 0.5),
        ("cartesian_speed_max", 2.0 + 1e-9, 2.0),
        ("slowdown", 100.0 + 1e-6, 100.0),
        ("collision_dt", 0.008 + 1e-9, 0.008),  # sampled at least as finely as a UR's 8 ms period
        ("collision_step", 0.05 + 1e-9, 0.05),
        ("table_z", -2.0 - 1e-9, -2.0),  # a table 1 km below the arm checks nothing
        ("table_z", 2.0 + 1e-9, 2.0),
    ],
)
def test_values_that_would_switch_a_check_off_are_refused(name, bad, good):
    assert getattr(SafetyConfig(**{name: good}), name) == good
    with pytest.raises(ChordError, match=rf"safety config: {name} is {bad!r}, expected"):
        SafetyConfig(**{name: bad})


@pytest.mark.parametrize("corner", [(1e6, 0.9, 1.2), (0.9, 0.9, 2.5)])
def test_a_workspace_beyond_any_arms_reach_is_refused(corner):
    with pytest.raises(ChordError, match=r"workspace_max is .*, expected 3 numbers within 2.0 m"):
        SafetyConfig(workspace_max=corner)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0, True])
def test_execution_config_refuses_what_is_not_finite_and_positive(value):
    from real.execute import ExecutionConfig

    with pytest.raises(
        ChordError, match=r"ExecutionConfig.path_tolerance is .*, expected a finite number > 0"
    ):
        ExecutionConfig(path_tolerance=value)
