"""Writes the corpus of malformed contract files in ``tests/core/corpus/``.

Each case is a file that breaks the flow, plan or scene contract in one way, with the text its
error message must contain. ``python tests/core/make_corpus.py`` rewrites the folder;
``tests/core/test_corpus.py`` loads every file and checks the message.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
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


def _npy(value: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    """An .npy header alone (magic, version 1.0, header dict): what a forged member starts with."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _members(good: tuple[dict, dict], change: Callable[[dict[str, bytes]], None]) -> Callable[[Path], None]:
    """An .npz written member by member (name.npy -> bytes), so a member can lie about itself."""
    arrays, meta = good

    def write(path: Path) -> None:
        members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
        members["meta.npy"] = _npy(np.array(json.dumps(meta)))
        change(members)
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)

    return write


def _deep_meta(depth: int) -> Callable[[dict[str, bytes]], None]:
    return lambda m: _set(m, "meta.npy", _npy(np.array("[" * depth + "]" * depth)))


def _many_members(m: dict[str, bytes]) -> None:
    for i in range(66):
        m[f"extra{i}.npy"] = m["times.npy"]


def _single_npy(path: Path) -> None:
    np.save(path.with_suffix(".npy"), good_flow()[0]["points"])
    path.with_suffix(".npy").rename(path)


def _pickled_plan(path: Path) -> None:
    arrays, meta = good_plan()
    arrays["ee_pose"] = np.array([object()] * 4, dtype=object)
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def _deep_yaml(path: Path) -> None:
    path.write_text("[" * 5000 + "]" * 5000)


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
    # hostile flows (issue 20): sizes and nesting checked before anything is allocated
    ("flow_lying_header.npz", "points: its header asks for shape (5, 1000000000000, 3) of float32: "
     "60000000000000 bytes (54.6 TiB)",
     _members(good_flow(), lambda m: _set(m, "points.npy", _npy_header((T, 10**12, 3), "<f4") + bytes(64)))),
    ("flow_header_disagrees.npz", "times: its header declares shape (50,) of float32 (200 bytes), but the "
     "archive holds 20 bytes for it",
     _members(good_flow(), lambda m: _set(m, "times.npy", _npy_header((50,), "<f4") + bytes(20)))),
    ("flow_meta_too_deep.npz", "meta: nests 1000 levels deep, more than the 64",
     _members(good_flow(), _deep_meta(1000))),
    ("flow_too_many_members.npz", "file: has 70 members, more than the 64",
     _members(good_flow(), _many_members)),
    ("flow_single_npy.npz", "file: holds a single .npy array, expected an .npz archive", _single_npy),
    ("flow_meta_not_an_object.npz", "meta: expected a JSON object, got list", _npz(good_flow()[0], "[1, 2]")),
    ("flow_meta_not_a_string.npz", "meta: expected a JSON string, got dtype int64 shape ()",
     _members(good_flow(), lambda m: _set(m, "meta.npy", _npy(np.array(7))))),
    ("flow_duplicate_object_names.npz", "meta.object_names: has duplicates: ['banana', 'banana']",
     _flow(lambda a, m: _set(m, "object_names", ["banana", "banana"]))),
    ("flow_fps_string.npz", "meta.fps: is '16' (str), expected int or float",
     _flow(lambda a, m: _set(m, "fps", "16"))),
    ("flow_no_points.npz", "points: the number of points N is 0, expected at least 1",
     _flow(lambda a, m: (_set(a, "points", np.zeros((T, 0, 3), np.float32)),
                         _set(a, "object_index", np.zeros(0, np.int32))))),
    ("flow_empty_prior.npz", "meta.prior: is '', expected a non-empty string",
     _flow(lambda a, m: _set(m, "prior", ""))),
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
    # hostile plans (issue 20)
    ("plan_lying_header.npz", "q: its header asks for shape (4, 100000000000000) of float64: "
     "3200000000000000 bytes (2.8 PiB)",
     _members(good_plan(), lambda m: _set(m, "q.npy", _npy_header((M, 10**14), "<f8") + bytes(8)))),
    ("plan_header_disagrees.npz", "gripper: its header declares shape (40,) of float64 (320 bytes), but the "
     "archive holds 32 bytes for it",
     _members(good_plan(), lambda m: _set(m, "gripper.npy", _npy_header((40,), "<f8") + bytes(32)))),
    ("plan_meta_too_deep.npz", "meta: nests 20000 levels deep, more than the 64",
     _members(good_plan(), _deep_meta(20_000))),
    ("plan_pickled.npz", "ee_pose: holds pickled Python objects, refused", _pickled_plan),
    ("plan_one_waypoint.npz", "t: the number of waypoints M is 1, expected at least 2",
     _plan(lambda a, m: [_set(a, k, a[k][:1]) for k in ("t", "q", "gripper", "ee_pose")])),
    ("plan_t_inf.npz", "t: holds a non-finite value inf at index (3,)",
     _plan(lambda a, m: _nan_at(a["t"], (3,), np.inf))),
    ("plan_gripper_nan.npz", "gripper: holds a non-finite value nan at index (2,)",
     _plan(lambda a, m: _nan_at(a["gripper"], (2,)))),
    ("plan_ee_pose_six_columns.npz", "ee_pose: shape is (4, 6), expected [M, 7] (axis 1 must be 7)",
     _plan(lambda a, m: _set(a, "ee_pose", a["ee_pose"][:, :6]))),
    ("plan_q_int.npz", "q: dtype is int64, expected float64",
     _plan(lambda a, m: _set(a, "q", np.zeros((M, J), np.int64)))),
    ("plan_duplicate_joint_names.npz", "meta.joint_names: must be distinct non-empty strings",
     _plan(lambda a, m: _set(m, "joint_names", ["j"] * J))),
    ("plan_base_pose_not_unit.npz", "meta.base_pose: quaternion [2.0, 0.0, 0.0, 0.0] is not unit length",
     _plan(lambda a, m: _set(m, "base_pose", [0, 0, 0, 2, 0, 0, 0]))),
    ("plan_validation_list.npz", "meta.validation: is [] (list), expected dict or NoneType",
     _plan(lambda a, m: _set(m, "validation", []))),
    ("plan_task_number.npz", "meta.task: is 3 (int), expected str", _plan(lambda a, m: _set(m, "task", 3))),
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
    # hostile scenes (issue 20): names that would become paths, nesting, nonsense
    ("scene_name_absolute.yaml", "name: is '/abs/elsewhere': not a name",
     _scene(lambda d: _set(d, "name", "/abs/elsewhere"))),
    ("scene_name_dotdot.yaml", "name: is '../x': not a name", _scene(lambda d: _set(d, "name", "../x"))),
    ("scene_name_newline.yaml", "name: is 'pick\\n': not a name", _scene(lambda d: _set(d, "name", "pick\n"))),
    ("scene_name_too_long.yaml", "name: is '" + "x" * 101 + "': 101 characters long",
     _scene(lambda d: _set(d, "name", "x" * 101))),
    ("scene_object_name_slash.yaml", "objects[0].name: is 'fruit/banana': not a name",
     _scene(lambda d: _set(d["objects"][0], "name", "fruit/banana"))),
    ("scene_object_name_hidden.yaml", "objects[0].name: is '.banana': not a name",
     _scene(lambda d: _set(d["objects"][0], "name", ".banana"))),
    ("scene_object_name_option.yaml", "objects[0].name: is '-rf': not a name",
     _scene(lambda d: _set(d["objects"][0], "name", "-rf"))),
    ("scene_too_deep.yaml", "file: nests deeper than the YAML parser can follow", _deep_yaml),
    ("scene_self_reference.yaml", "or an alias refers to itself",
     _text("schema: chord.scene\nversion: 1\nname: loop\nobjects: &o [*o]\n")),
    ("scene_not_a_mapping.yaml", "document: expected a mapping, got [1, 2]", _text("[1, 2]\n")),
    ("scene_frames_one.yaml", "frames: is 1, expected at least 2", _scene(lambda d: _set(d, "frames", 1))),
    ("scene_fov_too_wide.yaml", "camera.fov_y_deg: is 200.0, expected degrees between 1 and 170",
     _scene(lambda d: _set(d["camera"], "fov_y_deg", 200))),
    ("scene_movable_string.yaml", "objects[0].movable: is 'yes', expected true or false",
     _scene(lambda d: _set(d["objects"][0], "movable", "yes"))),
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
