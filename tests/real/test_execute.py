"""Fault injection on the fake arm: every fault stops the arm, and nothing is sent after the stop."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from real.backends.fake import FakeRobot, Faults, SimClock
from real.execute import ExecutionConfig, Outcome, execute
from real.limits import PANDA
from real.log import ExecutionLog
from real.robot import RobotStoppedError
from tests.real.plans import READY, safe_plan


def _run(faults=None, lag=0.0, config=None, robot_cls=FakeRobot):
    plan = safe_plan()
    robot = robot_cls(PANDA, q0=plan.q[0], clock=SimClock(), lag=lag, faults=faults)
    with robot:
        res = execute(robot, plan.t, plan.q, config or ExecutionConfig())
        assert robot.stopped == (not res.success)
    return robot, res


def _assert_stopped_cleanly(robot, res, sends):
    kinds = [e.kind for e in robot.events]
    assert kinds.count("stop") == 1 and kinds[-1] == "stop", kinds
    assert res.sends == sends == kinds.count("send")
    with pytest.raises(RobotStoppedError):
        robot.send_action(READY, np.zeros(7))
    assert [e.kind for e in robot.events][-1] == "stop"


def test_clean_run_completes_and_logs_every_tick():
    _, res = _run()
    assert res.success and res.reason == Outcome.COMPLETED
    log = res.log
    assert len(log) == res.sends + 1  # the last row is the goal check, nothing sent
    np.testing.assert_allclose(log.array("q_sent")[: res.sends], log.array("q_cmd")[: res.sends])
    assert np.isnan(log.array("q_sent")[-1]).all()
    np.testing.assert_allclose(log.array("q_meas")[-1], safe_plan().q[-1], atol=1e-6)
    # 3 s at 100 Hz: 300 moving ticks, then the goal is reached on the next reading
    assert res.sends == 300


@pytest.mark.parametrize("k", [1, 7, 150])
def test_protective_stop_at_tick_k(k):
    robot, res = _run(Faults(protective_stop_at=k))
    assert res.reason == Outcome.FAULT and "protective stop" in res.message
    _assert_stopped_cleanly(robot, res, k)


def test_stale_state_stops():
    robot, res = _run(Faults(stale_from=40))
    assert res.reason == Outcome.STALE_STATE
    # stale_after 0.05 s at a 0.01 s period: noticed 5-6 ticks after the stamp froze
    assert 44 <= res.sends <= 47
    _assert_stopped_cleanly(robot, res, res.sends)


def test_exception_mid_stream_stops():
    robot, res = _run(Faults(raise_at=90))
    assert res.reason == Outcome.EXCEPTION and "injected SDK error at send 90" in res.message
    _assert_stopped_cleanly(robot, res, 90)


def test_missed_deadline_stops():
    robot, res = _run(Faults(stall_at=20, stall_s=0.1))
    assert res.reason == Outcome.DEADLINE
    _assert_stopped_cleanly(robot, res, 21)


def test_path_tolerance_stops_a_lagging_arm():
    robot, res = _run(lag=1.0, config=ExecutionConfig(path_tolerance=0.02))
    assert res.reason == Outcome.PATH_TOLERANCE
    err = np.abs(res.log.array("q_meas")[-1] - res.log.array("q_cmd")[-2]).max()
    assert err > 0.02
    _assert_stopped_cleanly(robot, res, res.sends)


def test_goal_tolerance_watchdog_when_the_arm_cannot_settle():
    # A slow tracker stays within the path tolerance but cannot settle within 1.1 x 3 + 0.5 s.
    robot, res = _run(lag=2.0, config=ExecutionConfig(path_tolerance=1.0))
    assert res.reason == Outcome.GOAL_TOLERANCE
    assert res.log.array("t")[-1] > 1.1 * 3.0 + 0.5
    _assert_stopped_cleanly(robot, res, res.sends)


class _CtrlCAt(FakeRobot):
    def _send(self, q, dq):
        if self.sends == 33:
            os.kill(os.getpid(), signal.SIGINT)
        return super()._send(q, dq)


def test_ctrl_c_stops_within_one_tick_and_restores_the_handler():
    before = signal.getsignal(signal.SIGINT)
    robot, res = _run(robot_cls=_CtrlCAt)
    assert res.reason == Outcome.INTERRUPTED and "SIGINT" in res.message
    _assert_stopped_cleanly(robot, res, 34)
    assert signal.getsignal(signal.SIGINT) is before


def test_fault_at_connect_is_refused_and_never_cleared():
    robot = FakeRobot(PANDA, q0=READY, clock=SimClock(), faults=Faults(protective_stop_at=0))
    with pytest.raises(Exception, match="never auto-recovers"):
        with robot:
            pass
    assert not [e for e in robot.events if e.kind == "send"]


def test_log_round_trips_atomically(tmp_path):
    _, res = _run(Faults(protective_stop_at=25))
    path = res.log.save(tmp_path / "run.npz")
    back = ExecutionLog.load(path)
    assert back.meta["reason"] == Outcome.FAULT and back.meta["sends"] == 25
    np.testing.assert_array_equal(back.array("q_cmd"), res.log.array("q_cmd"))
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


def test_replay_in_sim_reports_tracking_and_table(tmp_path):
    from real.replay import replay_in_sim

    _, res = _run(lag=0.05)
    rep = replay_in_sim(res.log)
    assert rep.rows == len(res.log)
    assert rep.table_contacts == 0 and rep.min_link_z > 0.3
    # a 50 ms lag at <= 0.06 m/s tool speed: a few mm of deviation, not zero and not centimetres
    assert 1e-4 < rep.max_tcp_deviation < 0.01
    high = replay_in_sim(res.log, table_z=0.6)
    assert high.table_contacts > 0


def test_the_log_is_written_whatever_non_finite_numbers_its_record_holds(tmp_path):
    # JSON has no NaN: before, a NaN in the log's meta (the safety config of a `--table-z nan` run)
    # crashed the write after the arm had moved. Non-finite numbers are now written as strings.
    _, res = _run()
    log = res.log
    log.meta.update(
        safety_config={"table_z": float("nan")}, peak=np.float64("inf"), trace=[-float("inf"), 1.0]
    )
    back = ExecutionLog.load(log.save(tmp_path / "log.npz"))
    assert back.meta["safety_config"] == {"table_z": "nan"}
    assert back.meta["peak"] == "inf" and back.meta["trace"] == ["-inf", 1.0]


def test_a_non_finite_joint_reading_is_a_fault_and_nothing_follows_it():
    class NanArm(FakeRobot):
        def _read_state(self):
            s = super()._read_state()
            if self.sends >= 20:
                s.q[2] = np.nan
            return s

    robot, res = _run(robot_cls=NanArm)
    assert (
        res.reason == Outcome.FAULT
        and "joint reading" in res.message
        and "not 7 finite numbers" in res.message
    )
    _assert_stopped_cleanly(robot, res, 20)


class _RecordsTheCollector(FakeRobot):
    def _send(self, q, dq):
        import gc

        self.collector = [*getattr(self, "collector", []), gc.isenabled()]
        return super()._send(q, dq)


def test_the_cyclic_garbage_collector_is_off_while_streaming_and_back_after():
    import gc

    assert gc.isenabled()
    robot, res = _run(robot_cls=_RecordsTheCollector)
    assert res.success and len(robot.collector) == res.sends > 100
    assert not any(robot.collector)  # no stop-the-world pause can fall inside the stream
    assert gc.isenabled()
    # a stream that ends in a fault turns it back on as well
    _run(faults=Faults(protective_stop_at=20), robot_cls=_RecordsTheCollector)
    assert gc.isenabled()
