"""SimConfig and BenchConfig refuse values out of range, NaN included, for Python callers and the CLI alike."""

from __future__ import annotations

import math

import pytest

from core.errors import ChordError
from sim.bench import METHODS, BenchConfig, planner_config
from sim.checks import ConfigError
from sim.world import SimConfig

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "field, value",
    [
        ("physics_hz", 239.0),
        ("physics_hz", NAN),
        ("physics_hz", INF),
        ("substeps", 0),
        ("substeps", 2.0),
        ("substeps", True),
        ("gravity", -9.81),
        ("gravity", NAN),
        ("settle_s", -0.1),
        ("hold_s", NAN),
        ("arm_control", "rigid"),
        ("joint_stiffness", (3000.0, NAN)),
        ("joint_stiffness", (3000.0, 0.0)),
        ("damping_ratio", 0.0),
        ("damping_ratio", NAN),
        ("position_gain", 0.0),
        ("velocity_gain", -1.0),
        ("arm_forces", (87.0, NAN)),
        ("arm_forces", (87.0, INF)),
        ("arm_forces", (87.0, 0.0)),
        ("finger_force", 0.0),
        ("finger_force", NAN),
        ("finger_friction", NAN),
        ("table_friction", -1.0),
        ("mass_scale", 0.0),
        ("mass_scale", INF),
        ("object_friction", 0.0),
        ("object_friction", NAN),
        ("table_size", (2.0, 2.0)),
        ("table_size", (2.0, 2.0, 0.0)),
    ],
)
def test_sim_config_refuses(field, value):
    with pytest.raises(ConfigError, match=rf"SimConfig\.{field}(\[\d\])? is ") as e:
        SimConfig(**{field: value})
    # A one-line error for the CLI (not a ValueError, which tyro would turn into a usage box).
    assert isinstance(e.value, ChordError) and not isinstance(e.value, ValueError)


def test_sim_config_accepts_its_edges():
    cfg = SimConfig(physics_hz=240.0, gravity=0.0, settle_s=0.0, hold_s=0.0, velocity_gain=0.0, arm_forces=())
    assert (cfg.physics_hz, cfg.gravity, cfg.arm_forces) == (240.0, 0.0, ())
    assert SimConfig(object_friction=None).object_friction is None


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("trials", 0, r"trials is 0, expected an integer >= 1"),
        ("seed", 1.5, r"seed is 1.5, expected an integer"),
        ("methods", (), r"methods is \[\], expected some of"),
        ("methods", ("ours", "oracle"), r"methods is \['ours', 'oracle'\]"),
        ("flow_noise_mm", (), r"flow_noise_mm is empty"),
        ("flow_noise_mm", (0.0, -5.0), r"flow_noise_mm\[1\] is -5.0, expected a finite number >= 0 mm"),
        ("flow_noise_mm", (NAN,), r"flow_noise_mm\[0\] is nan"),
        ("position_noise", NAN, r"position_noise is nan"),
        ("position_noise", -0.01, r"position_noise is -0.01"),
        ("yaw_noise_deg", NAN, r"yaw_noise_deg is nan"),
        (
            "friction_range",
            (1.0, 0.6),
            r"friction_range is \(1.0, 0.6\), expected \(low, high\) with low <= high",
        ),
        ("friction_range", (0.0, 0.6), r"friction_range\[0\] is 0.0, expected a finite number > 0"),
        ("friction_range", (0.6, INF), r"friction_range\[1\] is inf"),
        ("mass_scale_range", (NAN, 1.2), r"mass_scale_range\[0\] is nan"),
        ("mass_scale_range", (1.2, 0.8), r"mass_scale_range is \(1.2, 0.8\)"),
        ("base_pose", (0.0, 0.0, 0.0, 1.0, 0.0, 0.0), r"base_pose is .*expected 7 numbers"),
        ("base_pose", (NAN, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0), r"base_pose\[0\] is nan"),
        ("base_pose", (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), r"quaternion wxyz is zero"),
        ("max_plan_s", 0.0, r"max_plan_s is 0.0"),
        ("workers", -1, r"workers is -1, expected an integer >= 0"),
        ("physics_hz", 100.0, r"SimConfig.physics_hz is 100.0"),
        ("substeps", 0, r"SimConfig.substeps is 0"),
        ("geometry", "points", r"geometry is 'points', expected 'auto', 'flow' or 'mesh'"),
    ],
)
def test_bench_config_refuses(field, value, message):
    with pytest.raises(ConfigError, match=message):
        BenchConfig(**{field: value})


def test_bench_config_defaults_and_noise_in_metres():
    cfg = BenchConfig()
    assert cfg.methods == METHODS == ("ours", "video_flow", "rigid")
    # The sim settings it shares with SimConfig take SimConfig's defaults.
    assert (cfg.physics_hz, cfg.substeps) == (SimConfig().physics_hz, SimConfig().substeps)
    noisy = BenchConfig(flow_noise_mm=(0.0, 5.0, 10.0), workers=0, trials=1)
    assert noisy.flow_noise == (0.0, 0.005, 0.01)
    assert math.isclose(BenchConfig(flow_noise_mm=(2.5,)).flow_noise[0], 0.0025)


def test_bench_base_pose_none_lets_the_planner_place_the_base():
    # The default: no fixed base (each task's base is placed once, sim.bench.task_placements).
    assert BenchConfig().base_pose is None
    assert planner_config("ours", BenchConfig(base_pose=None)).base_pose is None
    fixed = (0.1, -0.2, 0.0, 1.0, 0.0, 0.0, 0.0)
    assert planner_config("ours", BenchConfig(base_pose=fixed)).base_pose == fixed
    # A task's placement is what the trial plans at, unless the config fixes the base.
    placed = (-0.4, 0.3, 0.0, 0.8, 0.0, 0.0, 0.6)
    assert planner_config("ours", BenchConfig(), placed).base_pose == placed
    assert planner_config("ours", BenchConfig(base_pose=fixed), None).base_pose == fixed
