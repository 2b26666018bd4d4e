"""The seed's schedules (A.1) and the run config."""

from __future__ import annotations

import pytest

from flowgen.config import FlowConfig
from flowgen.schedules import Decay, linear, log_linear


def test_log_linear_matches_3dgs_decay():
    assert log_linear(0.006, 0.00006, 0.0) == pytest.approx(0.006, rel=1e-12)
    assert log_linear(0.006, 0.00006, 0.5) == pytest.approx(0.0006, rel=1e-12)  # geometric mean
    assert log_linear(0.006, 0.00006, 1.0) == pytest.approx(0.00006, rel=1e-12)
    assert log_linear(0.006, 0.00006, 1.7) == pytest.approx(0.00006, rel=1e-12)  # clamped


def test_seed_defaults():
    s = FlowConfig(prior="wan").resolved(832, 464).schedule
    assert (s.deformation_lr.start, s.deformation_lr.end) == (0.006, 0.00006)
    assert (s.control_scale_lr.start, s.control_scale_lr.end) == (0.006, 0.00006)
    assert (s.control_rotation_lr.start, s.control_rotation_lr.end) == (0.003, 0.00003)
    # CFG decays linearly 25 -> 12: 18.5 half way.
    assert s.cfg_scale.at(0.5) == pytest.approx(18.5)
    assert s.temporal_weight.at(0.0) == pytest.approx(9.6) and s.temporal_weight.at(1.0) == pytest.approx(1.6)
    assert s.spatial_weight.at(0.0) == pytest.approx(3000) and s.spatial_weight.at(1.0) == pytest.approx(300)
    c = FlowConfig(prior="wan").resolved(832, 464)
    assert (c.iterations, c.batch, c.split_iteration, c.split_frame) == (2000, 4, 100, 30)
    assert (c.width, c.height, c.gaussians_per_object, c.control_points_per_object) == (832, 464, 20000, 60)


def test_video_fit_defaults_are_cpu_sized_and_explicit_values_win():
    c = FlowConfig(prior="video").resolved(208, 116)
    assert (c.iterations, c.split_iteration, c.width, c.height) == (600, 200, 208, 116)
    assert c.schedule.deformation_lr.start == pytest.approx(0.03)
    assert c.schedule.control_rotation_lr.end == pytest.approx(0.00015)
    assert c.schedule.temporal_weight.start == pytest.approx(9.6)  # weights stay the seed's
    mine = FlowConfig(prior="video", iterations=50, split_iteration=0, width=104, height=58).resolved(
        208, 116
    )
    assert (mine.iterations, mine.split_iteration, mine.width, mine.height) == (50, 0, 104, 58)
    assert FlowConfig.from_dict(c.to_dict()) == c


def test_linear_and_bad_decays():
    assert linear(25, 12, 0.25) == pytest.approx(21.75)
    with pytest.raises(ValueError, match="a log decay needs positive ends"):
        Decay(1.0, 0.0)
    with pytest.raises(ValueError, match="Decay.kind is 'cubic'"):
        Decay(1.0, 2.0, "cubic")


def test_config_round_trip_and_hash():
    c = FlowConfig(iterations=300, batch=2, width=208, height=116)
    assert FlowConfig.from_dict(c.to_dict()) == c
    # Cadence and device do not change the optimisation; iterations and schedules do.
    assert (
        FlowConfig(iterations=300, checkpoint_every=7, device="cpu").optimisation_hash()
        == FlowConfig(iterations=300).optimisation_hash()
    )
    assert FlowConfig(iterations=301).optimisation_hash() != FlowConfig(iterations=300).optimisation_hash()
    with pytest.raises(ValueError, match="config has unknown field"):
        FlowConfig.from_dict({"iterationz": 3})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch": 0}, "FlowConfig.batch is 0, expected a positive integer"),
        ({"prior": "sora"}, "FlowConfig.prior is 'sora'"),
        ({"width": 8}, "FlowConfig.width is 8, expected None or pixels >= 16"),
        ({"split_frame": -1}, "FlowConfig.split_frame is -1"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FlowConfig(**kwargs)
