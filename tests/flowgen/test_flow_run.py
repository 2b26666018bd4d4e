"""`chord flow` end to end on a small pick-banana run: outputs, kill-and-resume, input errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from chord.cli.main import main
from core.flow import ObjectFlow
from core.lock import LOCK_FILE, describe_holder
from flowgen.checkpoint import load_latest_checkpoint

SMALL = [
    "--iterations", "60", "--checkpoint-every", "5", "--gaussians-per-object", "400",
    "--near-surface-target", "800", "--control-points-per-object", "8", "--width", "104",
    "--height", "58", "--split-iteration", "10", "--flow-points-per-object", "256", "--device", "cpu",
]  # fmt: skip
# Runs that must take steps: with depth the banana's rigid start explains the video and holds its
# track, and a run whose every motion is held takes no step at all
# (test_the_prior_places_the_parts_on_a_fresh_run_only); on colour and masks alone it is fitted.
STEPS = [*SMALL, "--no-depth"]


@pytest.fixture(scope="module")
def scene(pick_banana_scene: Path) -> Path:
    return pick_banana_scene


def chord(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "chord", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )


def final_params(run: Path) -> dict[str, torch.Tensor]:
    ckpt = load_latest_checkpoint(run / "checkpoints")
    assert ckpt.iteration == 60
    return ckpt.tensors


@pytest.fixture(scope="module")
def whole(scene: Path, tmp_path_factory) -> Path:
    """One uninterrupted STEPS run, by the `chord` command in its own process (as the killed one)."""
    run = tmp_path_factory.mktemp("whole") / "run"
    proc = chord("flow", str(scene), "--out", str(run), *STEPS)
    assert proc.wait(timeout=600) == 0, proc.stdout.read().decode()[-2000:]
    return run


def test_run_writes_its_outputs_and_moves_the_banana_up(whole: Path):
    run = whole
    assert {p.name for p in run.iterdir()} >= {
        "flow.npz",
        "config.json",
        "run.log",
        "checkpoints",
        "preview.mp4",
    }
    flow = ObjectFlow.load(run / "flow.npz")
    assert flow.prior == "video" and flow.num_frames == 41
    lift = flow.object_points("banana")[-1, :, 2].mean() - flow.object_points("banana")[0, :, 2].mean()
    assert lift > 0.05  # the reference lifts it 15 cm; even 60 small steps follow it up
    mug = flow.object_points("mug")
    assert np.abs(mug - mug[0]).max() == 0.0  # a static object never moves
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["iterations"] == 60 and record["inputs"].get("depth") is None  # --no-depth
    logged = [json.loads(line) for line in (run / "run.log").read_text().splitlines()]
    assert logged[-1]["iteration"] == 59 and {"photometric", "mask", "temporal"} <= set(logged[-1])
    assert "depth" not in logged[-1]


def test_killed_run_resumes_to_the_same_parameters_bit_for_bit(scene: Path, whole: Path, tmp_path: Path):
    killed = tmp_path / "killed"
    proc = chord("flow", str(scene), "--out", str(killed), *STEPS)
    deadline = time.time() + 300
    while time.time() < deadline:
        latest = killed / "checkpoints" / "latest.json"
        if latest.exists() and json.loads(latest.read_text())["iteration"] >= 15:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "flow.npz").exists(), "the run finished before it could be killed"
    stopped_at = load_latest_checkpoint(killed / "checkpoints").iteration
    assert 15 <= stopped_at < 60
    assert describe_holder(killed).pid == proc.pid  # the killed run's lock file stayed behind
    # What a kill inside an atomic write leaves (the kill above may or may not have hit one).
    debris = [
        killed / ".flow.npz.k2j4x9ab.tmp",
        killed / "checkpoints" / ".ckpt_000020.safetensors.a1b2c3d4.tmp",
    ]
    for p in debris:
        p.write_bytes(b"half a file")
    (killed / ".preview.mp4.q1w2e3r4").mkdir()

    resumed = chord("flow", "--resume", str(killed))
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read().decode()[-2000:]
    said = resumed.stdout.read().decode()
    assert f"taking over the lock of chord flow (pid {proc.pid} on host " in said, said[-2000:]
    leftovers = [p.name for p in killed.rglob("*") if p.name.startswith(".")]
    assert leftovers == [], leftovers  # no temporary file, no half folder, no lock file
    a, b = final_params(whole), final_params(killed)
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    np.testing.assert_array_equal(
        ObjectFlow.load(whole / "flow.npz").points, ObjectFlow.load(killed / "flow.npz").points
    )

    # The log reads as one run: every logged iteration once, in order, as in the uninterrupted one.
    def logged(run):
        return [json.loads(line)["iteration"] for line in (run / "run.log").read_text().splitlines()]

    assert logged(killed) == logged(whole)


def _scene_copy(scene: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "scene"
    shutil.copytree(scene.parent, folder)
    doc = yaml.safe_load((folder / "scene.yaml").read_text())
    change(doc, folder)
    (folder / "scene.yaml").write_text(yaml.safe_dump(doc))
    return folder / "scene.yaml"


def _no_movable(doc, folder):
    for o in doc["objects"]:
        o["movable"] = False


def _empty_masks(doc, folder):
    from core.rgbd import load_masks, save_masks
    from core.scene import Scene

    labels, names = load_masks(folder / "reference" / "masks.npz")
    save_masks(
        folder / "reference" / "masks.npz",
        np.full_like(labels, -1),
        names,
        Scene.load(folder / "scene.yaml").camera,
    )


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (lambda d, f: d.update(frames=33), [], "flow.npz has 41 frames, the scene 33"),
        (_no_movable, [], "has no movable object"),
        (lambda d, f: None, ["--video", "nowhere.mp4"], "--video 'nowhere.mp4' does not exist"),
        (_empty_masks, [], "the masks are empty"),
        (lambda d, f: None, ["--width", "100", "--height", "100"], "aspect"),
        (lambda d, f: None, ["--prior", "wan"], "--prior wan needs --model-dir"),
    ],
)
def test_bad_input_is_refused_before_any_work(scene, tmp_path, capsys, change, extra, message):
    path = _scene_copy(scene, tmp_path, change)
    run = tmp_path / "run"
    assert main(["flow", str(path), "--out", str(run), *SMALL, *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chord flow: error: ") and message in err, err
    assert not (run / "checkpoints").exists()


def test_an_existing_run_is_not_overwritten_and_resume_checks_the_config(scene, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert main(["flow", str(scene), "--out", str(run), *SMALL]) == 1
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert main(["flow", "--resume", str(tmp_path / "nothing")]) == 1
    assert "holds no run (no config.json)" in capsys.readouterr().err


def test_a_cousin_only_object_is_built_from_its_measurements():
    """A scene may describe an object by measurements alone; flowgen builds its mesh."""
    from core.mesh import object_mesh
    from core.scene import Pose, SceneObject

    mesh = object_mesh(SceneObject("b", Pose(), cousin={"kind": "box", "size": [0.05, 0.04, 0.03]}))
    np.testing.assert_allclose(np.ptp(mesh.vertices, axis=0), [0.05, 0.04, 0.03], atol=1e-6)


def test_resume_refuses_changed_prior_settings(scene, tmp_path, capsys):
    """A video-fit default changed since the run started (recorded in config.json) is not resumed over."""
    run = tmp_path / "run"
    short = [("4" if a == "60" else a) for a in SMALL]
    assert main(["flow", str(scene), "--out", str(run), *short]) == 0
    record = json.loads((run / "config.json").read_text())
    assert record["prior_settings"]["point_weight"] > 0  # the video fit's own settings are recorded
    record["prior_settings"]["point_weight"] = 99.0
    (run / "config.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["flow", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert "prior's settings differ" in err and "point_weight" in err and "99.0" in err, err


def test_the_prior_places_the_parts_on_a_fresh_run_only(scene: Path, tmp_path: Path, monkeypatch):
    """``initialise(model)`` (the video fit's starts) runs before the first step of a new run;
    a resumed run takes its nodes from the checkpoint and must not be re-initialised. With depth,
    the banana's rigid start explains the video and holds its track, so no step could change the
    flow and none is taken: the run checkpoints what the start decided, and its resume neither
    re-initialises nor steps."""
    from flowgen.video_fit import VideoFitPrior

    calls: list[int] = []
    real = VideoFitPrior.initialise

    def counting(self, model):
        calls.append(int(model.deformation.rot_nodes.abs().sum() > 0))  # 0: the nodes are at rest
        return real(self, model)

    monkeypatch.setattr(VideoFitPrior, "initialise", counting)
    short = [a if a != "60" else "10" for a in SMALL]  # 10 iterations, checkpoints every 5
    run = tmp_path / "run"
    assert main(["flow", str(scene), "--out", str(run), *short]) == 0
    assert calls == [0]  # once, on the fresh model
    assert (run / "run.log").read_text() == ""  # no step was taken
    assert load_latest_checkpoint(run / "checkpoints").iteration == 0
    flow = ObjectFlow.load(run / "flow.npz").object_points("banana")
    assert flow[-1, :, 2].mean() - flow[0, :, 2].mean() > 0.12  # the tracked lift (the reference's 15 cm)
    assert main(["flow", "--resume", str(run)]) == 0
    assert calls == [0]  # not again on resume
    assert (run / "run.log").read_text() == ""
    torch.testing.assert_close(
        ObjectFlow.load(run / "flow.npz").object_points("banana"), flow, atol=0, rtol=0
    )
    # A run that must fit takes its steps, after its (one) start.
    fitted = tmp_path / "fitted"
    assert main(["flow", str(scene), "--out", str(fitted), *[a if a != "60" else "10" for a in STEPS]]) == 0
    assert calls == [0, 0]
    assert len((fitted / "run.log").read_text().splitlines()) == 2  # iterations 0 and 9
    assert main(["flow", "--resume", str(fitted)]) == 0
    assert calls == [0, 0]


def _wait_for(predicate, what: str, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_second_run_on_the_same_out_is_refused_naming_the_first_and_writes_nothing(
    scene: Path, tmp_path: Path, capsys
):
    run = tmp_path / "run"
    short = [a if a != "60" else "20" for a in STEPS]  # the first run only has to outlive the checks
    first = chord("flow", str(scene), "--out", str(run), *short)
    try:
        _wait_for(
            lambda: (run / "run.log").is_file() and (run / "run.log").stat().st_size > 0, "the first run"
        )
        first.send_signal(signal.SIGSTOP)  # hold the first still: the folder must not change under us
        before = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in run.rglob("*"))
        # A second run as a command (all its process prints: one line), and a --resume in this
        # process (a process of its own would add only the imports: seconds of CI's time).
        for args in (("flow", str(scene), "--out", str(run), *short), ("flow", "--resume", str(run))):
            if args[1] == "--resume":
                capsys.readouterr()
                assert main(list(args)) == 1
                said = capsys.readouterr()
                lines = (said.out + said.err).strip().splitlines()
            else:
                second = chord(*args)
                assert second.wait(timeout=300) == 1
                lines = second.stdout.read().decode().strip().splitlines()
            assert len(lines) == 1, lines
            assert lines[0].startswith(
                f"chord flow: error: {str(run)!r} is in use by chord flow (pid {first.pid} on host "
            )
            assert "started 20" in lines[0] and "choose another output folder" in lines[0]
            assert sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in run.rglob("*")) == before
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=600) == 0, first.stdout.read().decode()[-2000:]
    finally:
        first.kill()
        first.wait()
    logged = [json.loads(line)["iteration"] for line in (run / "run.log").read_text().splitlines()]
    assert logged == [0, 10, 19]  # one run's log, not two interleaved
    assert not (run / LOCK_FILE).exists()


def test_a_run_killed_before_its_first_checkpoint_resumes_without_duplicate_log_lines(
    scene: Path, tmp_path: Path
):
    run = tmp_path / "run"
    late = [a if a != "5" else "50" for a in STEPS]  # the first checkpoint after iteration 50
    proc = chord("flow", str(scene), "--out", str(run), *late)
    _wait_for(
        lambda: (run / "run.log").is_file() and len((run / "run.log").read_text().splitlines()) >= 2, "logs"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "checkpoints" / "latest.json").exists(), "a checkpoint was written before the kill"
    assert len((run / "run.log").read_text().splitlines()) >= 2  # iterations 0 and 10 were logged

    # Resumed in this process: the kill needs a process of its own, the resume does not (a resume
    # by the command in its own process is the bit-for-bit test's; each process start imports
    # torch and its compiler again, seconds of CI's time).
    assert main(["flow", "--resume", str(run)]) == 0
    logged = [json.loads(line)["iteration"] for line in (run / "run.log").read_text().splitlines()]
    assert logged == [0, 10, 20, 30, 40, 50, 59]
    assert ObjectFlow.load(run / "flow.npz").num_frames == 41


def test_out_that_is_a_file_fails_at_once_and_leaves_the_file(scene: Path, tmp_path: Path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("precious")
    t0 = time.perf_counter()
    assert main(["flow", str(scene), "--out", str(target), *SMALL]) == 1
    assert time.perf_counter() - t0 < 5.0  # before the prior, the Gaussians or any step
    err = capsys.readouterr().err
    assert (
        err
        == f"chord flow: error: --out {str(target)!r} is a file, expected a folder (it is created if missing)\n"
    )
    assert target.read_text() == "precious"
