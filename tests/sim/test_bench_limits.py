"""Bad input to the bench and the sim: scene names as paths, the plan duration cap, OUT's lock."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.errors import ChordError
from core.lock import LOCK_FILE, describe_holder
from core.scene import Reference
from sim import bench as B
from sim.rollout import MAX_PLAN_DURATION_S
from tests.sim import scaffold as S

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def box(tmp_path: Path) -> tuple[Path, Path]:
    """A bench-ready box scene (scene.yaml with a reference flow) and that flow."""
    scene = S.box_scene(tmp_path)
    flow_path = S.lift_flow().save(tmp_path / "flow.npz")
    scene_path = dataclasses.replace(scene, reference=Reference(flow=flow_path)).save(tmp_path / "scene.yaml")
    return scene_path, flow_path


def _everything(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["/abs/elsewhere", "../x", "../../escape", ".hidden"])
def test_bench_with_a_scene_named_as_a_path_writes_nothing_anywhere(box, tmp_path: Path, capsys, name):
    """Issue 20: `name: /abs/elsewhere` made `chord bench` write /abs/elsewhere.npz."""
    from chord.cli.main import main

    scene_path, _ = box
    doc = yaml.safe_load(scene_path.read_text())
    doc["name"] = name
    scene_path.write_text(yaml.safe_dump(doc))
    B._CACHE.clear()
    before = _everything(tmp_path)
    out = tmp_path / "bench"
    assert main(["bench", str(scene_path), "--out", str(out), "--trials", "1", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chord bench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert f"name: is {name!r}: not a name" in err
    assert _everything(tmp_path) == before  # nothing in OUT, nothing beside it
    assert not Path("/abs").exists()


def test_a_scene_name_that_slipped_past_the_reader_still_cannot_leave_the_folder(box, tmp_path: Path):
    """The second layer: the video-flow cache and --flow-dir join names through safe_child."""
    from core.scene import Scene
    from sim.video_flow import cached_video_flow

    scene = Scene.load(box[0])
    object.__setattr__(scene, "name", "../../elsewhere")  # bypassing the checks on purpose
    with pytest.raises(ChordError, match="cannot name a file in .*: expected one path component"):
        cached_video_flow(scene, tmp_path / "bench" / "video_flow")
    (tmp_path / "flows").mkdir()
    B._CACHE[f"scene:{box[0]}"] = scene
    try:
        with pytest.raises(ChordError, match="cannot name a file in .*: expected one path component"):
            B.user_flows([box[0]], tmp_path / "flows")
    finally:
        B._CACHE.clear()
    assert not (tmp_path / "elsewhere.npz").exists() and not (tmp_path.parent / "elsewhere.npz").exists()


def test_max_plan_s_is_capped_at_the_simulators_limit(capsys):
    with pytest.raises(ChordError, match=r"max_plan_s is 100000.0, expected at most 600 s"):
        B.BenchConfig(max_plan_s=1e5)
    assert B.BenchConfig(max_plan_s=MAX_PLAN_DURATION_S).max_plan_s == 600.0
    from chord.cli.main import main

    assert main(["bench", "--max-plan-s", "1e5", "--out", "/nonexistent/never"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chord bench: error: ") and "at most 600 s" in err


def test_a_plan_of_1e5_s_is_refused_before_the_simulator_steps(box, tmp_path: Path, capsys):
    from core.plan import Plan
    from sim.api import validate_plan

    scene_path, _ = box
    plan = S.ik_plan(S.lift_flow())
    long = dataclasses.replace(plan, t=plan.t * (1e5 / plan.duration))
    path = long.save(tmp_path / "plan.npz")
    assert Plan.load(path).duration == pytest.approx(1e5)
    t0 = time.perf_counter()
    with pytest.raises(ChordError, match=r"the plan lasts 100000 s, more than the 600 s the simulator runs"):
        validate_plan(path, scene_path)
    assert time.perf_counter() - t0 < 20  # loading the world, not 1e5 s x 240 Hz of steps

    from chord.cli.main import main

    assert main(["sim", str(path), "--scene", str(scene_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chord sim: error: ") and err.count("\n") == 1 and "re-plan it" in err


HOLD = """
import sys, time
from core.lock import run_lock
with run_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(folder: Path, command: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), command], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("command", ["bench", "run"])
def test_a_second_bench_or_run_on_a_busy_out_is_refused_and_writes_nothing(
    box, tmp_path: Path, capsys, command
):
    from chord.cli.main import main

    scene_path, _ = box
    out = tmp_path / "out"
    holder = _hold(out, f"chord {command}")
    try:
        (out / "results.jsonl").write_text("")
        before = [(p, p.stat().st_mtime_ns) for p in sorted(out.rglob("*"))]
        args = {
            "bench": ["bench", str(scene_path), "--out", str(out), "--trials", "1", "--workers", "1"],
            "run": ["run", str(scene_path), "--out", str(out)],
        }[command]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(
            f"chord {command}: error: {str(out)!r} is in use by chord {command} (pid {holder.pid} on host "
        )
        assert [(p, p.stat().st_mtime_ns) for p in sorted(out.rglob("*"))] == before
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_bench_leaves_no_debris_after_the_next_one(box, tmp_path: Path, caplog):
    scene_path, _ = box
    out = tmp_path / "bench"
    holder = _hold(out, "chord bench")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert describe_holder(out).pid == holder.pid
    debris = [out / ".results.jsonl.ab12cd34.tmp", out / "video_flow" / ".box_lift.npz.zz11yy22.tmp",
              out / ".success.png.tmp.png"]  # fmt: skip
    for p in debris:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    (out / "tasks" / ".pick_banana.q1w2e3r4.tmp" / "assets").mkdir(parents=True)
    cfg = B.BenchConfig(trials=1, methods=("ours",), workers=1, base_pose=(0, 0, 0, 1, 0, 0, 0))
    with caplog.at_level(logging.INFO):
        recs = B.run_bench([scene_path], out, cfg)
    assert len(recs) == 1 and recs[0]["success"], recs[0].get("reason")
    assert any(
        f"taking over the lock of chord bench (pid {holder.pid}" in r.getMessage() for r in caplog.records
    )
    hidden = sorted(str(p.relative_to(out)) for p in out.rglob(".*"))
    assert hidden == [], hidden
    assert not (out / LOCK_FILE).exists()
    assert json.loads((out / "results.jsonl").read_text().splitlines()[0])["success"] is True
    assert np.isfinite(recs[0]["plan_duration_s"])


def test_a_long_rollout_reports_its_progress(box, tmp_path: Path, monkeypatch, caplog):
    """Anything that can take a minute says how far it is: the rollout logs every PROGRESS_EVERY_S."""
    import sim.rollout
    from sim.api import validate_plan

    scene_path, _ = box
    path = S.ik_plan(S.lift_flow()).save(tmp_path / "plan.npz")
    monkeypatch.setattr(sim.rollout, "PROGRESS_EVERY_S", 0.02)
    with caplog.at_level(logging.INFO, logger="sim.rollout"):
        assert validate_plan(path, scene_path).success
    lines = [r.getMessage() for r in caplog.records if r.name == "sim.rollout"]
    assert lines and all(line.startswith("sim: ") and " s simulated (" in line for line in lines), lines
    done = [float(line.split()[1]) for line in lines]
    assert done == sorted(done) and done[-1] > 0  # simulated seconds, growing


def _dies_on_two(x: int) -> int:  # module level: spawned workers import it
    if x == 2:
        os._exit(3)  # as the kernel's out-of-memory killer ends a worker: no exception, no result
    return 10 * x


def test_a_worker_that_dies_stops_the_bench_with_a_clear_error_instead_of_a_hang():
    """A multiprocessing.Pool replaces a killed worker and waits for its lost trial forever (a
    bench stood at 165 of 168 trials after one was killed for memory)."""
    from sim.bench import run_parallel

    assert sorted(run_parallel(_dies_on_two, [0, 1, 3], 2, "the items")) == [0, 10, 30]
    with pytest.raises(ChordError, match="a worker process died while running the items: killed for memory"):
        list(run_parallel(_dies_on_two, [0, 1, 2, 3], 2, "the items"))


def _pid_of(x: int) -> tuple[int, int]:  # module level: spawned workers import it
    return x, os.getpid()


def test_worker_processes_are_renewed_and_every_item_returns(monkeypatch):
    """Each batch of workers x RENEW_EVERY items runs in a fresh pool (ProcessPoolExecutor's
    max_tasks_per_child started no new process after the first ones' share: a bench stood at 40
    of 168 trials)."""
    from sim import bench

    monkeypatch.setattr(bench, "RENEW_EVERY", 2)
    got = list(bench.run_parallel(_pid_of, list(range(9)), 2, "the items"))
    assert sorted(x for x, _ in got) == list(range(9))
    # 9 items, 4 a batch: three pools of processes of their own, so more than 2 processes in all.
    assert len({pid for _, pid in got}) > 2 and os.getpid() not in {pid for _, pid in got}
