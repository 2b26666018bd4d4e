"""`chord flow --prior wan` through the CLI on a tiny random Wan folder: both speed modes run and are recorded."""

from __future__ import annotations

import json

import pytest

from chord.cli.main import main
from core.flow import ObjectFlow

TINY = [
    "--iterations", "2", "--checkpoint-every", "1", "--gaussians-per-object", "200",
    "--near-surface-target", "800", "--control-points-per-object", "6", "--width", "64",
    "--height", "32", "--flow-points-per-object", "64", "--device", "cpu", "--preview-every", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def setup(pick_banana_scene, tiny_wan_a14b):
    return pick_banana_scene, tiny_wan_a14b


@pytest.mark.parametrize(
    ("mode", "attention", "resident"),
    [("exact", None, "one"), ("fast", None, "both"), ("fast", "fp8", "both")],
)
def test_wan_speed_modes_run_and_are_recorded(setup, tmp_path, monkeypatch, mode, attention, resident):
    scene, folder = setup
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    extra = ["--wan-attention", attention] if attention else []
    rc = main(["flow", str(scene), "--out", str(run), "--prior", "wan", "--model-dir", str(folder),
               "--wan-mode", mode, *extra, *TINY])  # fmt: skip
    assert rc == 0
    inputs = json.loads((run / "config.json").read_text())["inputs"]
    assert inputs["wan_mode"] == mode and inputs["experts_resident"] == resident
    assert inputs["wan_attention"] == (attention or "native")  # FP8 attention is opt-in in both modes
    flow = ObjectFlow.load(run / "flow.npz")
    assert flow.num_frames == 41
    logs = [json.loads(line) for line in (run / "run.log").read_text().splitlines()]
    assert logs and all(r["grad_rms"] > 0 for r in logs)


def test_an_unknown_wan_mode_is_refused(setup, tmp_path, capsys):
    scene, folder = setup
    with pytest.raises(SystemExit):
        main(["flow", str(scene), "--out", str(tmp_path / "r"), "--prior", "wan", "--model-dir", str(folder),
              "--wan-mode", "turbo", *TINY])  # fmt: skip
    assert "turbo" in capsys.readouterr().err


def test_wan_options_with_the_video_prior_are_refused_not_ignored(setup, tmp_path, capsys):
    scene, folder = setup
    rc = main(["flow", str(scene), "--out", str(tmp_path / "r"), "--model-dir", str(folder),
               "--wan-attention", "fp8", *TINY])  # fmt: skip
    assert rc != 0
    assert "--model-dir, --wan-attention apply to --prior wan, not --prior video" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written
