"""The run-folder lock (core.lock) between real processes, stale locks, and the debris sweep."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import ChordError
from core.lock import LOCK_FILE, FolderBusyError, describe_holder, holds, run_lock, sweep_debris

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from core.lock import run_lock
with run_lock(sys.argv[1], "chord test-holder"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(folder: Path, seconds: float = 60.0) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (returns once it holds it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
    )


def test_a_second_process_is_refused_with_the_holder_named_and_writes_nothing(tmp_path: Path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        (run / "flow.npz").write_bytes(b"x")
        before = _listing(run)
        with pytest.raises(FolderBusyError) as info, run_lock(run, "chord flow"):
            pytest.fail("the lock was taken twice")
        message = str(info.value)
        assert "\n" not in message
        assert (
            f"is in use by chord test-holder (pid {proc.pid} on host {socket.gethostname()}, started "
            in message
        )
        assert "choose another output folder" in message
        assert _listing(run) == before  # not a byte written, the lock file untouched
        assert describe_holder(run).pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_is_free_again_when_its_holder_ends(tmp_path: Path):
    run = tmp_path / "run"
    proc = _holder(run, seconds=0.0)
    proc.wait()
    assert not (run / LOCK_FILE).exists()  # a clean end removes the lock file
    with run_lock(run, "chord flow"):
        assert holds(run)
    assert not holds(run) and not (run / LOCK_FILE).exists()


def test_a_killed_holders_lock_is_taken_over_with_a_warning_and_its_debris_removed(tmp_path: Path, caplog):
    run = tmp_path / "run"
    proc = _holder(run)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert describe_holder(run).pid == proc.pid  # the lock file stayed behind
    # What a killed writer leaves: core.atomic's temporaries, a half-built task folder, a preview's frames.
    (run / "checkpoints").mkdir()
    debris = [
        run / ".flow.npz.k2j4_x9a.tmp",
        run / "checkpoints" / ".ckpt_000015.safetensors.a1b2c3d4.tmp",
        run / ".recording.rrd.abcdefgh.tmp.rrd",
    ]
    for p in debris:
        p.write_bytes(b"half")
    (run / ".pick_banana.q1w2e3r4.tmp" / "assets").mkdir(parents=True)
    (run / ".preview.mp4.zz99yy88").mkdir()
    kept = [run / "flow.npz", run / "checkpoints" / "ckpt_000010.safetensors", run / ".hidden_of_the_user"]
    for p in kept:
        p.write_bytes(b"whole")
    with (
        caplog.at_level(logging.INFO, logger="core.lock"),
        run_lock(run, "chord flow", sweep=("", "checkpoints")),
    ):
        assert describe_holder(run).pid == os.getpid()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"taking over the lock of chord test-holder (pid {proc.pid}" in warnings[0]
    assert "no longer runs" in warnings[0]
    assert not any(p.exists() for p in debris)
    assert not (run / ".pick_banana.q1w2e3r4.tmp").exists() and not (run / ".preview.mp4.zz99yy88").exists()
    assert all(p.read_bytes() == b"whole" for p in kept)


def test_a_lock_of_another_host_is_never_taken_over(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(
        json.dumps(
            {
                "command": "chord bench",
                "pid": 1,
                "host": "elsewhere-1",
                "started": "2026-12-05T10:00:00+00:00",
            }
        )
    )
    with pytest.raises(FolderBusyError) as info, run_lock(run, "chord bench"):
        pass
    assert "chord bench (pid 1 on host elsewhere-1, started 2026-12-05T10:00:00+00:00)" in str(info.value)
    assert "if it no longer runs on elsewhere-1, delete" in str(info.value)


def test_a_reused_pid_is_not_mistaken_for_the_holder(tmp_path: Path):
    """A lock file naming a live pid whose process started at another time: the pid was reused."""
    run = tmp_path / "run"
    run.mkdir()
    doc = {"command": "chord flow", "pid": os.getppid(), "host": socket.gethostname(),
           "started": "2020-01-01T00:00:00+00:00", "process_start": 1}  # fmt: skip
    (run / LOCK_FILE).write_text(json.dumps(doc))
    with run_lock(run, "chord flow"):
        assert describe_holder(run).pid == os.getpid()


def test_the_lock_is_reentrant_and_a_created_folder_is_removed_if_left_empty(tmp_path: Path):
    run = tmp_path / "new" / "run"
    with run_lock(run, "chord run"):
        with run_lock(run, "chord flow"):  # the flow stage inside chord run
            assert holds(run)
        assert holds(run) and (run / LOCK_FILE).exists()
    assert not run.exists()  # created by the lock, nothing written: gone again
    with run_lock(run, "chord run"):
        (run / "summary.json").write_text("{}")
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]


def test_a_file_is_not_a_run_folder(tmp_path: Path):
    (tmp_path / "f").write_text("x")
    with (
        pytest.raises(ChordError, match="is a file, expected a folder"),
        run_lock(tmp_path / "f", "chord flow"),
    ):
        pass


def test_the_sweep_leaves_other_folders_and_links_alone(tmp_path: Path):
    run = tmp_path / "run"
    (run / "deep" / "er").mkdir(parents=True)
    deep = run / "deep" / "er" / ".x.abcdefgh.tmp"
    deep.write_text("not named")
    outside = tmp_path / ".target.abcdefgh.tmp"
    outside.write_text("outside")
    (run / ".link.abcdefgh.tmp").symlink_to(outside)
    assert sweep_debris(run) == []
    assert deep.exists() and outside.exists()


def test_real_processes_racing_for_one_folder_never_hold_it_at_once(tmp_path: Path):
    run = tmp_path / "run"
    code = """
import sys, time
from core.lock import run_lock, FolderBusyError
try:
    with run_lock(sys.argv[1], "chord race"):
        start = time.time()
        time.sleep(1.0)
        print("won", start, time.time())
except FolderBusyError as e:
    print("busy", e)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    won = sorted((float(o.split()[1]), float(o.split()[2])) for o in outs if o.startswith("won "))
    busy = [o for o in outs if o.startswith("busy ")]
    assert won and len(won) + len(busy) == 4, outs
    assert all("is in use by chord race (pid " in o for o in busy), busy
    for (_, end), (start, _) in itertools.pairwise(won):
        assert end <= start  # the winners held the folder one after another, never together
    assert not (run / LOCK_FILE).exists()


def test_a_task_build_killed_half_way_is_swept_by_the_next_build(tmp_path: Path):
    """A real SIGKILL inside `chord assets tasks` leaves .pick_banana.<random>.tmp/; the next build
    removes it (and the .<task>.<random>/ folders of chord versions before the .tmp suffix)."""
    out = tmp_path / "scenes"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chord", "assets", "tasks", "--out", str(out), "--only", "pick_banana"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not any((p / "assets").is_dir() for p in out.glob(".pick_banana.*.tmp")):
            assert time.time() < deadline and proc.poll() is None, "the build never started (or ended)"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    half = list(out.glob(".pick_banana.*.tmp"))
    assert len(half) == 1 and not (out / "pick_banana").exists()
    (out / ".close_laptop.k3j4h5g6" / "assets").mkdir(parents=True)  # an older chord's half folder
    (out / ".notes.k3j4h5g6").mkdir()  # not a task's: left alone

    from assets.tasks import build_task

    scene = build_task("pick_banana", out / "pick_banana")
    assert scene.is_file()
    assert sorted(p.name for p in out.iterdir()) == [".notes.k3j4h5g6", "pick_banana"]
