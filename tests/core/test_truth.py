"""The ground-truth contract (chord.truth v1): round trip, matrices, and refusals naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.asset import rotation, translation
from core.contract import write_npz
from core.errors import ContractError
from core.truth import Truth


def make_truth(T: int = 9) -> tuple[Truth, dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(3)
    times = np.arange(T) / 16.0
    lid = np.linspace(0.0, -1.2, T)
    poses = {
        "box": np.stack(
            [translation(rng.uniform(-0.3, 0.3, 3)) @ rotation(rng.normal(size=3), a) for a in lid]
        ),
        "laptop": np.repeat(rotation((0, 0, 1), 0.4)[None], T, axis=0),
    }
    truth = Truth.from_matrices(times, 16.0, poses, {"laptop": {"hinge": ("revolute", lid)}}, {"task": "t"})
    return truth, poses, lid


def test_round_trip_keeps_poses_and_joints(tmp_path: Path):
    truth, poses, lid = make_truth()
    loaded = Truth.load(truth.save(tmp_path / "truth.npz"))
    assert loaded.object_names == ("box", "laptop") and loaded.fps == 16.0
    for name, P in poses.items():
        assert np.allclose(loaded.pose_matrices(name), P, atol=1e-12)
    assert loaded.joint_values("laptop")["hinge"] == pytest.approx(lid, abs=0)
    assert loaded.joint_values("box") == {}
    assert loaded.joint_types == ("revolute",) and loaded.provenance == {"task": "t"}


def test_rigid_only_truth_has_no_joint_columns(tmp_path: Path):
    T = np.repeat(np.eye(4)[None], 3, axis=0)
    truth = Truth.from_matrices(np.arange(3) / 10.0, 10.0, {"cup": T}, {})
    assert truth.joints.shape == (3, 0)
    assert Truth.load(truth.save(tmp_path / "t.npz")).joint_names == ()


def _write_edited(tmp_path: Path, **edits) -> Path:
    truth, _, _ = make_truth()
    arrays = {"times": truth.times, "poses": truth.poses.copy(), "joints": truth.joints}
    meta = truth._meta()
    for key, value in edits.items():
        if key in arrays:
            arrays[key] = value(arrays[key]) if callable(value) else value
        else:
            meta[key] = value
    path = tmp_path / "truth.npz"
    write_npz(path, arrays, meta)
    return path


def _scale_quat(poses: np.ndarray) -> np.ndarray:
    poses[4, 1, 3:] *= 1.01
    return poses


def _nan(poses: np.ndarray) -> np.ndarray:
    poses[2, 0, 0] = np.nan
    return poses


@pytest.mark.parametrize(
    "edits, needle",
    [
        ({"poses": _scale_quat}, "poses: quaternion [4, 1] has norm 1.01"),
        ({"poses": _nan}, "poses: holds a non-finite value nan at index (2, 0, 0)"),
        ({"poses": lambda p: p * 100.0}, "expected within 10 m"),
        ({"times": np.zeros(9)}, "times: must strictly increase"),
        ({"joint_names": []}, "meta.joint_names: has 0 entries, expected J=1"),
        ({"joint_types": ["screw"]}, "meta.joint_types[0]: is 'screw'"),
        ({"joint_objects": ["lamp"]}, "meta.joint_objects[0]: is 'lamp'"),
        ({"object_names": ["box", "../x"]}, "meta.object_names[1]: is '../x'"),
        ({"object_names": ["box"]}, "meta.object_names: has 1 names, expected K=2"),
        ({"fps": 0.0}, "meta.fps: is 0.0, expected 1 to 240"),
        ({"poses": lambda p: p.astype(np.float32)}, "poses: dtype is float32, expected float64"),
        ({"joints": lambda j: j[:5]}, "joints: shape is (5, 1)"),
    ],
)
def test_a_bad_truth_file_is_refused_naming_the_field(tmp_path: Path, edits, needle):
    path = _write_edited(tmp_path, **edits)
    with pytest.raises(ContractError) as e:
        Truth.load(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_another_schema_is_refused(tmp_path: Path):
    path = tmp_path / "flow.npz"
    write_npz(path, {"times": np.arange(3.0)}, {"schema": "chord.flow", "version": 1})
    with pytest.raises(ContractError, match="chord.truth"):
        Truth.load(path)
    assert json.loads(json.dumps(make_truth()[0]._meta()))["schema"] == "chord.truth"


def test_a_scene_names_its_truth_and_the_reader_checks_its_schema(tmp_path: Path):
    import yaml

    from core.scene import Scene
    from tests.core.test_contracts import _scene_doc, make_flow

    truth = make_truth()[0].save(tmp_path / "truth.npz")
    flow = make_flow(np.random.default_rng(8)).save(tmp_path / "flow.npz")

    def scene_with(reference: dict) -> Path:
        doc = _scene_doc()
        doc["reference"] = reference
        path = tmp_path / "scene.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    scene = Scene.load(scene_with({"flow": "flow.npz", "truth": "truth.npz"}))
    assert scene.reference.truth == truth and scene.reference.flow == flow
    # Written back relative to the scene's folder.
    assert scene.to_dict(tmp_path)["reference"] == {"flow": "flow.npz", "truth": "truth.npz"}
    with pytest.raises(
        ContractError,
        match="reference.truth: .*flow.npz' holds meta.schema 'chord.flow', expected 'chord.truth'",
    ):
        Scene.load(scene_with({"truth": "flow.npz"}))
    (tmp_path / "t.npz").write_text("not a zip")
    with pytest.raises(
        ContractError, match="reference.truth: .*is not a chord.truth .npz archive.*Truth.save"
    ):
        Scene.load(scene_with({"truth": "t.npz"}))


def test_chord_check_summarises_a_truth_file_and_refuses_a_bad_one(tmp_path: Path, capsys):
    from chord.cli.main import main

    good = make_truth()[0].save(tmp_path / "truth.npz")
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "truth v1: T=9 frames over 0.50 s, poses of ['box', 'laptop'], joints ['laptop/hinge']" in out
    bad = _write_edited(tmp_path, poses=_scale_quat)
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "poses: quaternion [4, 1] has norm 1.01" in err and len(err.strip().splitlines()) == 1
