"""``chord real``: dry run by default, fake execution with a log, replay, and typed confirmation."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from chord.cli.main import main
from chord.cli.real import confirm
from core.errors import ChordError
from core.plan import Plan
from real.log import ExecutionLog
from real.preflight import SafetyConfig
from real.session import ConfirmRequest
from tests.real.plans import BOX_SLOWDOWN, READY, make_plan, min_jerk, safe_plan


def test_dry_run_prints_report_and_moves_nothing(tmp_path, capsys):
    path = safe_plan().save(tmp_path / "plan.npz")
    assert main(["real", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] jerk_limit" in out and "[skip] start_state" in out and "nothing moved" in out
    assert not (tmp_path / "real_logs").exists()


def test_unsafe_plan_exits_1_naming_the_reason(tmp_path, capsys):
    t, q = min_jerk(READY, READY + np.array([0, 0, 0, 0, 0, 0, 2.0]), 3.0)
    path = make_plan(t, q).save(tmp_path / "fast.npz")
    assert main(["real", str(path), "--backend", "fake", "--execute"]) == 1
    assert "velocity_limit" in capsys.readouterr().err
    assert not (tmp_path / "real_logs").exists()


def _box_args(box_task) -> list[str]:
    """The box task's plan with what `chord real` re-simulates it with, slowed to the default speed scale."""
    return [
        "real", str(box_task.plan), "--scene", str(box_task.scene), "--flow", str(box_task.flow),
        "--slowdown", str(BOX_SLOWDOWN),
    ]  # fmt: skip


def test_fake_execute_with_approach_then_replay(box_task, tmp_path, capsys, monkeypatch):
    # The fake arm and hand run on a simulated clock here: what is tested does not depend on the
    # wall clock, and a loaded test machine must not miss deadlines in a 7 s rehearsal.
    import real.backends.fake

    monkeypatch.setattr(real.backends.fake, "WallClock", real.backends.fake.SimClock)
    log = tmp_path / "run.npz"
    args = [*_box_args(box_task), "--backend", "fake", "--execute", "--log-path", str(log)]
    args += ["--fake-object-width", "0.04"]  # the 4 cm box between the fingers
    assert main([*args, "--fake-offset", "0.05"]) == 1  # off the start, no --approach: refused
    assert "start_state" in capsys.readouterr().err
    assert main([*args, "--fake-offset", "0.05", "--approach"]) == 0
    out = capsys.readouterr().out
    assert "approach move:" in out and "done: reached the goal" in out
    assert "[ok  ] sim_failed: re-simulated here in PyBullet" in out
    run = ExecutionLog.load(log)
    assert run.meta["success"] and run.meta["plan_sha256"] == Plan.load(box_task.plan).content_hash()
    assert ExecutionLog.load(tmp_path / "run_approach.npz").meta["approach"] is True
    assert main(["real", "--replay-log", str(log)]) == 0
    assert "0 tick(s) touching the table" in capsys.readouterr().out
    assert main(["real", "--replay-log", str(log), "--table-z", "0.6"]) == 0  # the table reaches the arm
    out = capsys.readouterr().out
    assert "touching the table" in out and "0 tick(s) touching" not in out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_hardware_needs_a_tty_and_the_typed_word():
    request = ConfirmRequest(word="172.16.0.2", what="plan", robot="panda", address="172.16.0.2")
    with pytest.raises(ChordError, match="not a TTY"):
        confirm(request, read=lambda _: "172.16.0.2", stdin=io.StringIO())
    with pytest.raises(ChordError, match="typed 'yes'"):
        confirm(request, read=lambda _: "yes", stdin=_Tty())
    assert confirm(request, read=lambda _: " 172.16.0.2\n", stdin=_Tty()) is True


# -- the safety flags come from SafetyConfig ---------------------------------------------------


def _tool_fast_plan():
    """Within the full joint limits, but its tool moves faster than the first-run cap (0.25 m/s)."""
    t, q = min_jerk(READY, READY + np.array([0.5, 0, 0, 0, 0, 0, 0]), 1.0)
    return make_plan(t, q)


def _joint_fast_plan():
    """Joint 7 at 1.25 rad/s: over 0.25 x its 2.61 rad/s limit, under 0.5 x it."""
    t, q = min_jerk(READY, READY + np.array([0, 0, 0, 0, 0, 0, 2.0]), 3.0)
    return make_plan(t, q)


@pytest.mark.parametrize(
    ("build", "base", "flags", "code"),
    [
        (safe_plan, [], ["--table-z", "0.5"], "table"),  # the tool is 0.485 m above the base at its lowest
        (safe_plan, [], ["--tcp-clearance", "0.6"], "table"),
        (safe_plan, [], ["--link-clearance", "0.55"], "table"),  # the fingers' lowest is 0.532 m
        (safe_plan, [], ["--speed-scale", "0.05"], "velocity_limit"),
        (safe_plan, [], ["--workspace-max", "0.3", "0.9", "1.2"], "workspace"),
        (safe_plan, [], ["--workspace-min", "-0.9", "-0.9", "0.5"], "workspace"),
        (safe_plan, [], ["--joint-margin", "1.0"], "joint_limit"),
        (safe_plan, [], ["--max-sample-gap", "0.005"], "sample_gap"),
        (safe_plan, [], ["--cartesian-speed-max", "0.01"], "tcp_speed"),
        (_tool_fast_plan, ["--speed-scale", "1", "--no-first-run"], ["--first-run"], "tcp_speed"),
    ],
)
def test_a_safety_flag_refuses_a_plan_that_passes_without_it(tmp_path, capsys, build, base, flags, code):
    path = str(build().save(tmp_path / "plan.npz"))
    assert main(["real", path, *base]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["real", path, *base, *flags]) == 1
    assert f"refused before moving ({code}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("build", "base", "flags"),
    [
        (_tool_fast_plan, ["--speed-scale", "1"], ["--no-first-run"]),  # cap 1 m/s instead of 0.25
        (_joint_fast_plan, [], ["--slowdown", "2"]),
        (_joint_fast_plan, [], ["--speed-scale", "0.5"]),
    ],
)
def test_a_safety_flag_clears_a_refused_plan(tmp_path, capsys, build, base, flags):
    path = str(build().save(tmp_path / "plan.npz"))
    assert main(["real", path, *base]) == 1
    capsys.readouterr()
    assert main(["real", path, *base, *flags]) == 0, capsys.readouterr().err
    assert "nothing moved" in capsys.readouterr().out


def test_start_tolerance_reaches_the_robot_check(box_task, capsys):
    off = [*_box_args(box_task), "--backend", "fake", "--fake-offset", "0.05"]
    assert main(off) == 1 and "(start_state)" in capsys.readouterr().err
    assert main([*off, "--start-tolerance", "0.06"]) == 0
    assert "dry run: nothing moved; add --execute" in capsys.readouterr().out


def test_flags_build_the_safety_config_and_unset_ones_keep_its_defaults(tmp_path, monkeypatch):
    import real.session

    seen = []
    monkeypatch.setattr(
        real.session, "dry_run", lambda plan, limits, config, kin, **checks: seen.append(config) or 1 / 0
    )
    path = str(safe_plan().save(tmp_path / "plan.npz"))
    flags = ["--speed-scale", "0.5", "--no-first-run", "--slowdown", "1.5", "--table-z", "-0.02"]
    flags += ["--workspace-min", "-1", "-1", "-0.2", "--workspace-max", "1", "1", "1.5"]
    for argv in (["real", path], ["real", path, *flags]):
        with pytest.raises(ZeroDivisionError):
            main(argv)
    assert seen[0] == SafetyConfig()
    assert seen[1] == dataclasses.replace(
        SafetyConfig(),
        speed_scale=0.5,
        first_run=False,
        slowdown=1.5,
        table_z=-0.02,
        workspace_min=(-1.0, -1.0, -0.2),
        workspace_max=(1.0, 1.0, 1.5),
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--slowdown", "nan"], "safety config: slowdown is nan, expected a finite number"),
        (["--table-z", "nan"], "safety config: table_z is nan, expected a finite number"),
        (["--grasp-force", "nan"], "safety config: grasp_force is nan, expected a finite number"),
        (["--self-clearance", "-0.01"], "safety config: self_clearance is -0.01, expected >= 0"),
        (["--collision-dt", "0"], "safety config: collision_dt is 0.0, expected > 0"),
        (["--speed-scale", "inf"], "safety config: speed_scale is inf, expected a finite number"),
        (["--speed-scale", "1.5"], "safety config: speed_scale is 1.5, expected a fraction in (0, 1]"),
        (
            ["--slowdown", "0.5"],
            "safety config: slowdown is 0.5, expected >= 1 (it may only slow a plan down)",
        ),
        (
            ["--workspace-min", "-0.9", "-0.9", "nan"],
            "safety config: workspace_min is (-0.9, -0.9, nan), expected 3 finite numbers (x y z, metres)",
        ),
        (
            ["--workspace-min", "1", "-0.9", "-0.1"],
            "safety config: workspace_min (1.0, -0.9, -0.1) must be below workspace_max (0.9, 0.9, 1.2) "
            "on every axis (x: 1.0 >= 0.9)",
        ),
    ],
)
def test_bad_safety_values_are_one_line_errors(tmp_path, capsys, flags, message):
    path = str(safe_plan().save(tmp_path / "plan.npz"))
    assert main(["real", path, *flags]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"chord real: error: {message}"]
    with pytest.raises(ChordError, match="safety config"):  # --verbose shows the traceback instead
        main(["real", path, *flags, "--verbose"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--fake-object-width", "nan"],
            "fake gripper: object_width is nan, expected a width in (0.0, 0.08] m (or none: an empty hand)",
        ),
        (
            ["--fake-object-width", "1"],
            "fake gripper: object_width is 1.0, expected a width in (0.0, 0.08] m (or none: an empty hand)",
        ),
        (
            ["--fake-offset", "nan"],
            "--fake-offset is nan, expected -3.14159 to 3.14159 rad",
        ),
    ],
)
def test_bad_fake_backend_values_are_one_line_errors(tmp_path, capsys, flags, message):
    path = str(safe_plan().save(tmp_path / "plan.npz"))
    assert main(["real", path, "--backend", "fake", *flags]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"chord real: error: {message}"]


def test_a_plan_whose_robot_is_a_file_path_is_never_loaded_by_chord_real(box_task, tmp_path, capsys):
    import dataclasses as dc

    from tests.real.plans import restamp

    plan = restamp(dc.replace(Plan.load(box_task.plan), robot="/etc/passwd.urdf"))
    path = str(plan.save(tmp_path / "p.npz"))
    args = ["real", path, "--scene", str(box_task.scene), "--flow", str(box_task.flow), "--slowdown", "2"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # refused by name before anything is loaded: the robot is looked up in the registry
    assert len(err) == 1 and err[0].startswith(
        "chord real: error: plan robot '/etc/passwd.urdf' is not a known robot"
    )
