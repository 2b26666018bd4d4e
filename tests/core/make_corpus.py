"""Writes the corpus of malformed contract files in ``tests/core/corpus/``.

Each case is a file that breaks the flow, plan or scene contract in one way, with the text its
error message must contain. ``python tests/core/make_corpus.py`` rewrites the folder;
``tests/core/test_corpus.py`` loads every file and checks the message.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

CORPUS = Path(__file__).parent / "corpus"

T, N, M, J = 5, 6, 4, 7


def good_flow() -> tuple[dict[str, np.ndarray], dict]:
    rng = np.random.default_rng(0)
    arrays = {
        "points": rng.normal(size=(T, N, 3)).astype(np.float32),
        "object_index": np.array([0, 0, 0, 1, 1, 1], dtype=np.int32),
        "times": (np.arange(T) / 16.0).astype(np.float32),
    }
    meta = {
        "schema": "chord.flow",
        "version": 1,
        "object_names": ["banana", "table"],
        "fps": 16.0,
        "prior": "ground_truth",
        "prompt": "a hand picks up the banana",
        "camera": None,
        "provenance": {},
    }
    return arrays, meta


def good_plan() -> tuple[dict[str, np.ndarray], dict]:
    rng = np.random.default_rng(1)
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (M, 1))
    arrays = {
        "t": np.linspace(0.0, 1.5, M),
        "q": rng.uniform(-1, 1, size=(M, J)),
        "gripper": np.full(M, 0.04),
        "ee_pose": np.concatenate([rng.normal(size=(M, 3)), quat], axis=1),
    }
    meta = {
        "schema": "chord.plan",
        "version": 1,
        "robot": "franka_panda",
        "joint_names": [f"panda_joint{i + 1}" for i in range(J)],
        "base_pose": [0, 0, 0, 1, 0, 0, 0],
        "task": "pick banana",
        "flow_sha256": "0" * 64,
        "validation": None,
        "report": {},
    }
    return arrays, meta


def good_scene() -> dict:
    return {
        "schema": "chord.scene",
        "version": 1,
        "name": "pick_banana",
        "prompt": "a hand picks up the banana",
        "frames": 41,
        "fps": 16,
        "camera": {
            "width": 832,
            "height": 464,
            "fov_y_deg": 40,
            "look_at": {"eye": [1.0, 0.0, 0.6], "target": [0.5, 0.0, 0.0], "up": [0, 0, 1]},
        },
        "objects": [
            {"name": "banana", "cousin": {"kind": "banana", "length": 0.19}, "movable": True},
        ],
    }


def _npz(arrays: dict, meta: dict | str | None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        payload = dict(arrays)
        if meta is not None:
            payload["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
        np.savez(path, **payload)

    return write


def _yaml(doc: dict) -> Callable[[Path], None]:
    return lambda path: path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def _flow(change: Callable[[dict, dict], None]) -> Callable[[Path], None]:
    arrays, meta = good_flow()
    change(arrays, meta)
    return _npz(arrays, meta)


def _plan(change: Callable[[dict, dict], None]) -> Callable[[Path], None]:
    arrays, meta = good_plan()
    change(arrays, meta)
    return _npz(arrays, meta)


def _scene(change: Callable[[dict], None]) -> Callable[[Path], None]:
    doc = good_scene()
    change(doc)
    return _yaml(doc)


def _set(d: dict, key: str, value) -> None:
    d[key] = value


def _pickled_flow(path: Path) -> None:
    arrays, meta = good_flow()
    arrays["points"] = np.array([object()] * 3, dtype=object)
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def _nan_at(arr: np.ndarray, index: tuple, value: float = np.nan) -> None:
    arr[index] = value


# (file name, expected message fragment, writer). The fragment is what a user needs to see.
CASES: list[tuple[str, str, Callable[[Path], None]]] = [
    # --- flow.npz -------------------------------------------------------------------------
    ("flow_unknown_version.npz", "meta.version: is 2; this reader knows chord.flow version(s) [1]",
     _flow(lambda a, m: _set(m, "version", 2))),
    ("flow_wrong_schema.npz", "meta.schema: is 'chord.plan', expected 'chord.flow'",
     _flow(lambda a, m: _set(m, "schema", "chord.plan"))),
    ("flow_missing_points.npz", "points: missing from the chord.flow file",
     _flow(lambda a, m: a.pop("points"))),
    ("flow_points_float64.npz", "points: dtype is float64, expected float32",
     _flow(lambda a, m: _set(a, "points", a["points"].astype(np.float64)))),
    ("flow_points_2d.npz", "points: shape is (5, 18) (2-D), expected [T, N, 3] (3-D)",
     _flow(lambda a, m: _set(a, "points", a["points"].reshape(T, -1)))),
    ("flow_points_nan.npz", "points: holds a non-finite value nan at index (2, 3, 1)",
     _flow(lambda a, m: _nan_at(a["points"], (2, 3, 1)))),
    ("flow_times_not_increasing.npz", "times: must strictly increase, but times[1]=1.0 and times[2]=1.0",
     _flow(lambda a, m: _set(a, "times", np.array([0, 1, 1, 2, 3], dtype=np.float32)))),
    ("flow_times_inf.npz", "times: holds a non-finite value inf at index (4,)",
     _flow(lambda a, m: _nan_at(a["times"], (4,), np.inf))),
    ("flow_object_index_out_of_range.npz", "object_index: holds 5, expected 0..1",
     _flow(lambda a, m: _nan_at(a["object_index"], (2,), 5))),
    ("flow_object_index_wrong_length.npz", "object_index: shape is (4,), expected [N] with N=6 from points",
     _flow(lambda a, m: _set(a, "object_index", a["object_index"][:4]))),
    ("flow_object_without_points.npz", "object_index: object(s) ['table'] have no points",
     _flow(lambda a, m: _set(a, "object_index", np.zeros(N, dtype=np.int32)))),
    ("flow_one_frame.npz", "points: the number of frames T is 1, expected at least 2",
     _flow(lambda a, m: (_set(a, "points", a["points"][:1]), _set(a, "times", a["times"][:1])))),
    ("flow_visible_uint8.npz", "visible: dtype is uint8, expected bool",
     _flow(lambda a, m: _set(a, "visible", np.ones((T, N), dtype=np.uint8)))),
    ("flow_unexpected_field.npz", "colors: unexpected field; chord.flow v1 has",
     _flow(lambda a, m: _set(a, "colors", np.zeros((N, 3), dtype=np.float32)))),
    ("flow_pickled.npz", "points: holds pickled Python objects, refused", _pickled_flow),
    ("flow_meta_not_json.npz", "meta: is not valid JSON",
     _npz(good_flow()[0], "{schema: chord.flow")),
    ("flow_no_meta.npz", "meta: missing: not a chord contract file", _npz(good_flow()[0], None)),
    ("flow_negative_fps.npz", "meta.fps: is -16.0, expected a positive number",
     _flow(lambda a, m: _set(m, "fps", -16.0))),
    ("flow_missing_object_names.npz", "meta.object_names: missing",
     _flow(lambda a, m: m.pop("object_names"))),
    ("flow_not_an_archive.npz", "file: is not a readable .npz archive",
     _text("points,object_index\n1,2\n")),
    # --- plan.npz -------------------------------------------------------------------------
    ("plan_unknown_version.npz", "meta.version: is 7; this reader knows chord.plan version(s) [1]",
     _plan(lambda a, m: _set(m, "version", 7))),
    ("plan_missing_q.npz", "q: missing from the chord.plan file", _plan(lambda a, m: a.pop("q"))),
    ("plan_t_not_from_zero.npz", "t: must start at 0 s, starts at 0.25",
     _plan(lambda a, m: _set(a, "t", a["t"] + 0.25))),
    ("plan_t_decreasing.npz", "t: must strictly increase, but t[1]=1.0 and t[2]=0.5",
     _plan(lambda a, m: _set(a, "t", np.array([0.0, 1.0, 0.5, 2.0])))),
    ("plan_q_nan.npz", "q: holds a non-finite value nan at index (1, 3)",
     _plan(lambda a, m: _nan_at(a["q"], (1, 3)))),
    ("plan_q_float32.npz", "q: dtype is float32, expected float64",
     _plan(lambda a, m: _set(a, "q", a["q"].astype(np.float32)))),
    ("plan_gripper_wrong_length.npz", "gripper: shape is (3,), expected [M] with M=4 from t",
     _plan(lambda a, m: _set(a, "gripper", a["gripper"][:3]))),
    ("plan_joint_names_mismatch.npz", "meta.joint_names: has 6 names but q has 7 columns",
     _plan(lambda a, m: _set(m, "joint_names", m["joint_names"][:6]))),
    ("plan_bad_quaternion.npz", "ee_pose: quaternion (wxyz) at row 2 has norm 2",
     _plan(lambda a, m: _nan_at(a["ee_pose"], (2, 3), 2.0))),
    ("plan_negative_gripper.npz", "gripper: width gripper[1]=-0.01 m is negative",
     _plan(lambda a, m: _nan_at(a["gripper"], (1,), -0.01))),
    ("plan_bad_flow_hash.npz", "meta.flow_sha256: is 'abc', expected 64 lowercase hex digits",
     _plan(lambda a, m: _set(m, "flow_sha256", "abc"))),
    ("plan_base_pose_short.npz", "meta.base_pose: is [0.0, 0.0, 0.0], expected 7 finite numbers",
     _plan(lambda a, m: _set(m, "base_pose", [0, 0, 0]))),
    # --- scene.yaml -----------------------------------------------------------------------
    ("scene_unknown_version.yaml", "version: is 3; this reader knows chord.scene version 1",
     _scene(lambda d: _set(d, "version", 3))),
    ("scene_wrong_schema.yaml", "schema: is 'chord.flow', expected 'chord.scene'",
     _scene(lambda d: _set(d, "schema", "chord.flow"))),
    ("scene_no_objects.yaml", "objects: is [], expected a non-empty list of objects",
     _scene(lambda d: _set(d, "objects", []))),
    ("scene_typo_key.yaml", "objects[0].postion: unknown key; expected one of",
     _scene(lambda d: _set(d["objects"][0], "postion", [0, 0, 0]))),
    ("scene_bad_quaternion.yaml", "objects[0].pose.quat_wxyz: [1.0, 1.0, 0.0, 0.0] has norm 1.414",
     _scene(lambda d: _set(d["objects"][0], "pose", {"quat_wxyz": [1, 1, 0, 0]}))),
    ("scene_duplicate_names.yaml", "objects[1].name: 'banana' is used twice",
     _scene(lambda d: d["objects"].append(dict(d["objects"][0])))),
    ("scene_frames_string.yaml", "frames: is 'forty-one', expected an integer",
     _scene(lambda d: _set(d, "frames", "forty-one"))),
    ("scene_missing_mesh_file.yaml", "objects[0].mesh: file",
     _scene(lambda d: _set(d, "objects", [{"name": "duck", "mesh": "no_such_duck.obj"}]))),
    ("scene_fov_and_fx.yaml", "camera.fov_y_deg: give either fov_y_deg or fx/fy",
     _scene(lambda d: _set(d["camera"], "fx", 500.0))),
    ("scene_look_at_parallel_up.yaml", "camera.look_at: look_at: view direction",
     _scene(lambda d: _set(d["camera"], "look_at", {"eye": [0, 0, 1], "target": [0, 0, 0]}))),
    ("scene_bad_units.yaml", "objects[0].units: is 'inches', expected one of ['m', 'cm', 'mm']",
     _scene(lambda d: _set(d, "objects", [{"name": "duck", "cousin": {"kind": "box"}, "units": "inches"}]))),
    ("scene_not_yaml.yaml", "file: is not valid YAML", _text("objects: [banana\nprompt: : :\n")),
]  # fmt: skip


def main() -> None:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir(parents=True)
    for name, _, write in CASES:
        write(CORPUS / name)
    print(f"wrote {len(CASES)} malformed files to {CORPUS}")


if __name__ == "__main__":
    main()
