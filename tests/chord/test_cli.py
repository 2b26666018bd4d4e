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


def _parses(fn, args: list[str]) -> dict:
    """The arguments tyro gives ``fn`` for ``args``, without running it (SystemExit if they do not parse)."""
    import functools

    import tyro

    got: list[dict] = []

    @functools.wraps(fn)
    def record(*a, **k):
        got.append(k)

    tyro.cli(record, args=args)
    return got[0]


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_subcommand_help_has_an_example_that_parses(name: str, capsys):
    fn = subcommands()[name]
    # tyro drops a docstring's "Example:" *section*; write "Example: chord ..." on one line.
    (example,) = re.findall(rf"^\s*Example: (chord {name} .+)$", fn.__doc__, flags=re.MULTILINE)
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert f"Example: {example}" in _flat(capsys.readouterr().out)

    words = example.split(" (")[0].split()[2:]  # without a trailing remark in brackets
    assert isinstance(_parses(fn, words), dict)  # a real command line (parsed, not run)


def test_the_example_parser_refuses_a_bad_line():
    """Guard against a vacuous check above: a wrong flag does not parse."""
    with pytest.raises(SystemExit):
        _parses(subcommands()["plan"], ["flow.npz", "--no-such-flag", "1"])


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


def test_a_reader_that_goes_away_ends_the_command_quietly_with_status_141():
    """`chord sim --help | head`: the write into the closed pipe is not an error of chord's: no
    traceback, and the status a shell gives a pipe's writer (128 + SIGPIPE). In a child process,
    since the handler points the process's stdout at devnull."""
    code = (
        "import sys, tyro\n"
        "from chord.cli.main import main\n"
        "def closed(*a, **k):\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "tyro.extras.subcommand_cli_from_dict = closed\n"
        "sys.exit(main(['sim', '--help']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
