"""Every command checks where it will write before any work (issue 20: `chord flow --out <a file>`
failed after 33 s of work, `chord plan --out /proc/nope/p.npz` with a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chord.cli.main import main


def _never(*args, **kwargs):
    raise AssertionError("the command started its work before checking its output path")


@pytest.fixture()
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_text("precious")
    return path


def _fails_in_one_line(argv: list[str], capsys, *expected: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"chord {argv[0]}: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def test_plan_out_in_an_unwritable_place(monkeypatch, tmp_path: Path, capsys):
    monkeypatch.setattr("planner.api.plan_file", _never)
    _fails_in_one_line(
        ["plan", str(tmp_path / "flow.npz"), "--out", "/proc/nope/p.npz"],
        capsys,
        "--out '/proc/nope/p.npz' cannot be written: '/proc' is not writable",
    )
    _fails_in_one_line(
        ["plan", str(tmp_path / "flow.npz"), "--out", str(tmp_path)],
        capsys,
        "is a folder, expected a file name",
    )
    _fails_in_one_line(
        ["plan", str(tmp_path / "flow.npz"), "--out", "/dev/null"], capsys, "exists and is not a regular file"
    )
    _fails_in_one_line(
        ["plan", str(tmp_path / "f.npz"), "--out", str(tmp_path / "p.npz"), "--rerun", "/proc/nope/r.rrd"],
        capsys,
        "--rerun '/proc/nope/r.rrd' cannot be written",
    )


def test_flow_out_a_file_or_rerun_unwritable(monkeypatch, tmp_path: Path, a_file: Path, capsys):
    monkeypatch.setattr("flowgen.generate.generate_flow", _never)
    monkeypatch.setattr("flowgen.generate.resume_flow", _never)
    _fails_in_one_line(
        ["flow", "scene.yaml", "--out", str(a_file)], capsys, f"--out {str(a_file)!r} is a file"
    )
    _fails_in_one_line(
        ["flow", "scene.yaml", "--out", str(a_file / "run")], capsys, "is a file, not a folder"
    )
    _fails_in_one_line(
        ["flow", "scene.yaml", "--out", str(tmp_path / "run"), "--rerun", "/proc/nope/x.rrd"],
        capsys,
        "--rerun '/proc/nope/x.rrd' cannot be written",
    )
    assert a_file.read_text() == "precious"
    assert not (tmp_path / "run").exists()


def test_sim_outputs_checked_before_the_simulation(monkeypatch, tmp_path: Path, a_file: Path, capsys):
    monkeypatch.setattr("sim.api.validate_plan", _never)
    plan = tmp_path / "plan.npz"
    _fails_in_one_line(["sim", str(plan), "--scene", "s.yaml", "--out", "/proc/nope/v.json"], capsys, "--out")
    _fails_in_one_line(
        ["sim", str(plan), "--scene", "s.yaml", "--rerun", str(tmp_path)], capsys, "is a folder"
    )
    _fails_in_one_line(
        ["sim", "/dev/null", "--scene", "s.yaml", "--write-verdict"],
        capsys,
        "PLAN (--write-verdict) '/dev/null' exists and is not a regular file",
    )


def test_bench_and_run_out_a_file(monkeypatch, a_file: Path, capsys):
    monkeypatch.setattr("sim.bench.run_bench", _never)
    monkeypatch.setattr("sim.bench.task_scenes", _never)
    monkeypatch.setattr("chord.run.run_chain", _never)
    _fails_in_one_line(["bench", "--out", str(a_file)], capsys, f"--out {str(a_file)!r} is a file")
    _fails_in_one_line(["bench", "--out", "/proc/nope"], capsys, "cannot be written: '/proc' is not writable")
    _fails_in_one_line(
        ["bench", "--tasks-dir", str(a_file)], capsys, f"--tasks-dir {str(a_file)!r} is a file"
    )
    _fails_in_one_line(
        ["run", "scene.yaml", "--out", str(a_file)], capsys, f"--out {str(a_file)!r} is a file"
    )
    assert a_file.read_text() == "precious"


def test_view_and_assets_outputs(monkeypatch, tmp_path: Path, a_file: Path, capsys):
    monkeypatch.setattr("chord.viz.run.record_run", _never)
    monkeypatch.setattr("assets.urdf.write_asset", _never)
    monkeypatch.setattr("assets.tasks.build_task", _never)
    _fails_in_one_line(
        ["view", str(tmp_path), "--out", "/proc/nope/r.rrd"], capsys, "--out '/proc/nope/r.rrd'"
    )
    _fails_in_one_line(
        ["view", str(tmp_path), "--plots", str(a_file)], capsys, f"--plots {str(a_file)!r} is a file"
    )
    _fails_in_one_line(
        ["assets", "cousin", "banana", "--out", str(a_file)], capsys, "is a file, expected a folder"
    )
    _fails_in_one_line(["assets", "tasks", "--out", str(a_file)], capsys, "is a file, expected a folder")
    _fails_in_one_line(
        ["assets", "intake", "scan.obj", "--out", "/proc/nope"], capsys, "'/proc' is not writable"
    )
    assert a_file.read_text() == "precious"
