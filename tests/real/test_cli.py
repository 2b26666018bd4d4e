"""``chord real``: dry run by default, fake execution with a log, replay, and typed confirmation."""

from __future__ import annotations

import io

import numpy as np
import pytest

from chord.cli.main import main
from chord.cli.real import confirm
from core.errors import ChordError
from real.backends.fake import FakeRobot
from real.limits import PANDA
from real.log import ExecutionLog
from tests.real.plans import READY, make_plan, min_jerk, safe_plan


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


def test_fake_execute_with_approach_then_replay(tmp_path, capsys):
    path = safe_plan().save(tmp_path / "plan.npz")
    log = tmp_path / "run.npz"
    args = ["real", str(path), "--backend", "fake", "--execute", "--log-path", str(log)]
    assert main([*args, "--fake-offset", "0.05"]) == 1  # off the start, no --approach: refused
    assert "start_state" in capsys.readouterr().err
    assert main([*args, "--fake-offset", "0.05", "--approach"]) == 0
    out = capsys.readouterr().out
    assert "approach move:" in out and "done: reached the goal" in out
    run = ExecutionLog.load(log)
    assert run.meta["success"] and run.meta["plan_sha256"] == safe_plan().content_hash()
    assert ExecutionLog.load(tmp_path / "run_approach.npz").meta["approach"] is True
    assert main(["real", "--replay-log", str(log)]) == 0
    assert "0 tick(s) touching the table" in capsys.readouterr().out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_hardware_needs_a_tty_and_the_typed_word():
    robot = FakeRobot(PANDA, address="172.16.0.2", q0=READY)
    robot.is_hardware = True
    with pytest.raises(ChordError, match="not a TTY"):
        confirm(robot, "172.16.0.2", "plan", read=lambda _: "172.16.0.2", stdin=io.StringIO())
    with pytest.raises(ChordError, match="typed 'yes'"):
        confirm(robot, "172.16.0.2", "plan", read=lambda _: "yes", stdin=_Tty())
    confirm(robot, "172.16.0.2", "plan", read=lambda _: " 172.16.0.2\n", stdin=_Tty())
