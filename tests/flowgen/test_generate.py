"""flowgen.generate: the flow stage from Python behaves as `chord flow` does (same prior, same record)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.errors import ChordError
from core.record import RunRecord
from core.scene import Scene
from flowgen.config import FlowConfig
from flowgen.generate import (
    VideoInputs,
    WanOptions,
    check_prior_options,
    check_reusable,
    generate_flow,
    make_prior,
    resume_flow,
)

TINY = FlowConfig(
    iterations=6, checkpoint_every=3, gaussians_per_object=200, near_surface_target=800,
    control_points_per_object=6, width=52, height=29, split_iteration=3, flow_points_per_object=64,
    device="cpu", preview_every=0,
)  # fmt: skip


def test_the_video_fit_of_a_scene_takes_its_reference_and_gives_every_movable_object_the_3d_term(
    pick_banana_scene: Path, close_laptop_scene: Path
):
    banana = Scene.load(pick_banana_scene)
    inputs: dict = {}
    prior, config = make_prior(banana, FlowConfig(), inputs=inputs)
    ref = pick_banana_scene.parent / "reference"
    assert inputs == {
        "video": str(ref / "frames"),
        "masks": str(ref / "masks.npz"),
        "depth": str(ref / "depth.npz"),
    }
    assert prior.size == (208, 116) and (config.width, config.height) == (208, 116)
    # the 3D term: on the movable rigid banana, not on the static table-side objects
    assert prior.movable == [o.movable for o in banana.objects] and any(prior.movable)
    laptop = Scene.load(close_laptop_scene)
    prior, _ = make_prior(laptop, FlowConfig())
    # jointed or not: no per-kind switch (issue 21)
    assert prior.movable == [o.movable for o in laptop.objects] and any(prior.movable)
    no_depth, _ = make_prior(banana, FlowConfig(), VideoInputs(no_depth=True))
    assert no_depth.depth_np is None and prior.depth_np is not None


def test_wan_options_with_another_prior_are_named():
    check_prior_options("wan", WanOptions(wan_mode="fast"))
    check_prior_options("video", WanOptions())
    with pytest.raises(ChordError, match="--model-dir, --wan-mode apply to --prior wan, not --prior video"):
        check_prior_options("video", WanOptions(model_dir=Path("w"), wan_mode="fast"))


def test_generate_records_a_run_that_resume_and_reuse_read(pick_banana_scene: Path, tmp_path: Path):
    out = tmp_path / "run"
    summary = generate_flow(pick_banana_scene, out, TINY)
    assert summary.flow_path == out / "flow.npz" and summary.flow_path.is_file()
    # The banana's rigid start explains its depth video and holds its track: the run's 6 steps
    # could not change the flow, so none was taken (flowgen.optimize).
    assert (summary.frames, summary.iterations, summary.prior) == (41, 0, "video")
    assert [e.name for e in summary.errors] == ["banana"] and summary.errors[0].motion_mm > 100
    record = RunRecord.load(out)
    assert record.scene == pick_banana_scene and record.prior == "video" and record.config["iterations"] == 6
    check_reusable(out, TINY)  # the same settings: reusable
    with pytest.raises(ChordError, match=r"other settings \(\['iterations'\]\)"):
        check_reusable(out, FlowConfig(**{**TINY.to_dict(), "iterations": 7}))
    # A finished run resumes to the same flow (nothing left to do) with its own recorded settings.
    again = resume_flow(out)
    assert again.iterations == 0 and again.flow_path == summary.flow_path
    # A record from before versioning is refused with what to do.
    doc = json.loads((out / "config.json").read_text())
    del doc["schema"], doc["version"]
    (out / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ChordError, match="--resume: .*written before run records were versioned"):
        resume_flow(out)
    with pytest.raises(ChordError, match="holds no run"):
        resume_flow(tmp_path / "empty")


def test_a_scene_without_a_movable_object_is_refused_before_any_work(pick_banana_scene: Path, tmp_path: Path):
    import yaml

    folder = tmp_path / "scene"
    shutil.copytree(pick_banana_scene.parent, folder)
    doc = yaml.safe_load((folder / "scene.yaml").read_text())
    for o in doc["objects"]:
        o["movable"] = False
    (folder / "scene.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ChordError, match="has no movable object"):
        generate_flow(folder / "scene.yaml", tmp_path / "run", TINY)
    assert not (tmp_path / "run").exists()


def _scene_copy(scene_yaml: Path, tmp_path: Path, edit) -> Path:
    import yaml

    folder = tmp_path / "scene"
    shutil.copytree(scene_yaml.parent, folder)
    doc = yaml.safe_load((folder / "scene.yaml").read_text())
    edit(doc, folder)
    (folder / "scene.yaml").write_text(yaml.safe_dump(doc))
    return folder / "scene.yaml"


def _yaml_as_reference(doc, folder):
    (folder / "reference" / "yaml.npz").write_text("a: 1\n")
    doc["reference"]["flow"] = "reference/yaml.npz"


def _reference_without(name: str, frames: int | None = None):
    """An edit that replaces the scene's reference flow by a valid one lacking ``name`` (or cut to ``frames``)."""
    import numpy as np

    from core.flow import ObjectFlow

    def edit(doc, folder):
        ref = ObjectFlow.load(folder / doc["reference"]["flow"])
        keep = [i for i, n in enumerate(ref.object_names) if n != name]
        sel = np.isin(ref.object_index, keep)
        index = np.searchsorted(keep, ref.object_index[sel]).astype(np.int32)
        T = frames or ref.num_frames
        ObjectFlow(
            ref.points[:T, sel],
            index,
            ref.times[:T],
            tuple(ref.object_names[i] for i in keep),
            ref.fps,
            ref.prior,
        ).save(folder / "other.npz")
        doc["reference"]["flow"] = "other.npz"

    return edit


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d, f: d.update(fps=1e300), "fps: is 1e+300, expected 1 to 240 frames per second"),
        (lambda d, f: d["objects"][0]["pose"].update(position=[0.0, 0.0, -0.05]), "objects[0].pose.position: puts 'banana' 0.05 m into the table"),
        (lambda d, f: d["camera"].update(pose={"position": [0.0, 0.0, 0.01], "quat_wxyz": [1, 0, 0, 0]}) or d["camera"].pop("look_at", None), "camera.position: is [0.0, 0.0, 0.01], inside object 'banana'"),
        (_yaml_as_reference, "is not a chord.flow .npz archive: its content starts with b'a: 1"),
        (_reference_without("banana"), "has no points of the movable object(s) ['banana']; its objects are ['mug']"),
        (_reference_without("nothing", frames=21), "other.npz has 21 frames, the scene 41; expected the same"),
    ],
    ids=["fps_1e300", "object_in_the_table", "camera_inside_the_banana", "reference_flow_is_yaml",
         "reference_flow_lacks_the_banana", "reference_flow_of_21_frames"],
)  # fmt: skip
def test_bad_inputs_are_refused_before_any_work_and_leave_no_run_folder(
    pick_banana_scene: Path, tmp_path: Path, capsys, edit, needle
):
    from chord.cli.main import main

    scene = _scene_copy(pick_banana_scene, tmp_path, edit)
    out = tmp_path / "run"
    with pytest.raises(ChordError) as e:
        generate_flow(scene, out, TINY)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()
    rc = main(["flow", str(scene), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and needle in err
    assert not out.exists()


def test_a_device_this_machine_lacks_is_refused_in_one_line(pick_banana_scene: Path, tmp_path: Path, capsys):
    from chord.cli.main import main
    from flowgen.optimize import resolve_device

    for name in ("tpu:7", "cuda:x", "mps", "cpu:3", ""):
        with pytest.raises(ChordError, match=f"device is '{name}', expected auto, cpu, cuda or cuda:N"):
            resolve_device(name)
    assert str(resolve_device("cpu")) == "cpu"
    out = tmp_path / "run"
    rc = main(["flow", str(pick_banana_scene), "--out", str(out), "--device", "tpu:7"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "chord flow: error: device is 'tpu:7', expected auto, cpu, cuda or cuda:N" in err
    assert not out.exists()


def test_a_gpu_index_this_machine_lacks_is_refused(monkeypatch):
    import torch

    from flowgen.optimize import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert str(resolve_device("cuda:1")) == "cuda:1"
    with pytest.raises(
        ChordError, match=r"device is 'cuda:7', but this machine has 2 GPU\(s\): cuda:0 to cuda:1"
    ):
        resolve_device("cuda:7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ChordError, match="CUDA is not available here"):
        resolve_device("cuda")
