"""The ``chord`` command: help for every subcommand, one-line errors, summaries of valid files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chord.cli.main import main, subcommands
from tests.core.test_contracts import make_flow, make_plan, make_scene


def run_chord(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chord")
    cmd = [exe] if exe else [sys.executable, "-m", "chord"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True)


def _flat(text: str) -> str:
    """Help text without tyro's box drawing and line wrapping, so sentences can be searched."""
    return " ".join(re.sub(r"[│╭╮╰╯─•]", " ", text).split())


def test_help_lists_every_subcommand_with_its_own_summary():
    out = run_chord("--help")
    assert out.returncode == 0, out.stderr
    flat = _flat(out.stdout)
    for name, fn in subcommands().items():
        first_line = " ".join(fn.__doc__.split("\n\n")[0].split())
        assert f"{name} {first_line}" in flat, (name, first_line)
    assert "Example: chord check scene.yaml runs/banana/flow.npz" in flat


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_subcommand_help_has_an_example(name: str):
    out = run_chord(name, "--help")
    assert out.returncode == 0, out.stderr
    # tyro drops a docstring's "Example:" *section*; write "Example: chord ..." on one line.
    example = re.search(rf"Example: (chord {name}( \S+)+)", _flat(out.stdout))
    assert example is not None, out.stdout
    # The example is a real command line: it parses (it is not run: it needs files).
    words = example.group(1).split()[1:]
    words = words[: words.index("(")] if "(" in words else words
    assert run_chord(*words, "--help").returncode == 0


def test_check_summarises_valid_files(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    flow = make_flow(rng).save(tmp_path / "flow.npz")
    plan = make_plan(rng).save(tmp_path / "plan.npz")
    scene = make_scene(tmp_path).save(tmp_path / "scene.yaml")
    assert main(["check", str(scene), str(flow), str(plan)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{scene}: scene 'pick_banana' v1: 2 object(s)")
    assert out[1].startswith(f"{flow}: flow v1: T=41 frames over 2.50 s, N=300 points")
    assert out[2].startswith(f"{plan}: plan v1: 50 waypoints")


def test_check_error_is_one_line_and_verbose_shows_traceback(tmp_path: Path):
    missing = tmp_path / "nope.npz"
    out = run_chord("check", str(missing))
    assert out.returncode == 1
    assert out.stderr.strip() == f"chord check: error: {missing}: file: does not exist"
    verbose = run_chord("check", str(missing), "--verbose")
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def test_check_rejects_unknown_suffix(tmp_path: Path, capsys):
    p = tmp_path / "notes.txt"
    p.write_text("hi")
    assert main(["check", str(p)]) == 1
    assert "has suffix '.txt'; expected .yaml/.yml/.json (scene) or .npz" in capsys.readouterr().err
