"""Writes the hostile-input corpus: inputs a careless or hostile user gives chord, and what must happen.

Each :class:`Case` is a folder of input files plus the ``chord`` command line that reads them. The
corpus covers seven kinds of input (scene, flow, plan, mesh, parts file, Wan folder, CLI option),
at least 25 cases each. ``tests/hostile/test_hostile.py`` runs every case and checks that the
command refuses it with one line naming what is wrong (exit status 1, or 2 for a malformed command
line), shows no traceback, writes nothing outside the case's ``out/`` folder, and that no hostile
plan reaches an arm backend's command call.

    python -m tests.hostile.make_hostile DIR     # writes DIR/<kind>/<case>/ and DIR/cases.json

The valid starting points are the pick-banana task scene (``assets.tasks``), its reference flow and
a plan made from that flow; each case breaks one thing.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

KINDS = ("scene", "flow", "plan", "mesh", "parts", "wan", "cli")


@dataclass(frozen=True)
class Case:
    """One hostile input and the command that reads it."""

    kind: str  # one of KINDS
    name: str  # unique within the kind; the case's folder name
    argv: list[str]  # the chord command line; {dir} = the case folder, {out} = its out/ folder
    expect: tuple[str, ...]  # words the one-line error must contain (the field and/or the value)
    exit_code: int = 1  # 1: a ChordError; 2: a command line tyro cannot parse
    executes: bool = False  # the command may move a (fake) arm: count commands that reach it
    verdict: bool = False  # refused as a simulated FAILURE (chord sim's verdict), not an error

    def args(self, folder: Path) -> list[str]:
        out = folder / "out"
        return [a.replace("{dir}", str(folder)).replace("{out}", str(out)) for a in self.argv]


@dataclass
class Corpus:
    """The cases and the writers of their input files (written by :func:`write`)."""

    cases: list[Case] = field(default_factory=list)
    writers: dict[tuple[str, str], Callable[[Path], None]] = field(default_factory=dict)

    def add(self, case: Case, write: Callable[[Path], None] | None = None) -> None:
        key = (case.kind, case.name)
        if key in self.writers:
            raise ValueError(f"duplicate case {key}")
        self.cases.append(case)
        self.writers[key] = write or (lambda folder: None)


# ---------------------------------------------------------------------------------------------
# Writers of small files


def _text(name: str, text: str | bytes) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        p = folder / name
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)

    return write


def _yaml(name: str, doc) -> Callable[[Path], None]:
    return _text(name, yaml.safe_dump(doc, sort_keys=False))


def _npz(name: str, arrays: dict[str, np.ndarray], meta) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        payload = dict(arrays)
        if meta is not None:
            payload["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
        np.savez(folder / name, **payload)

    return write


def _lying_npy_header(name: str, member: str, shape: tuple[int, ...], base: Callable[[Path], None]):
    """An npz whose ``member`` declares ``shape`` (terabytes) in its .npy header but holds 8 bytes."""

    def write(folder: Path) -> None:
        base(folder)
        path = folder / name
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        text = repr(header).encode("latin1")
        pad = 64 - (10 + len(text) + 1) % 64
        text = text + b" " * pad + b"\n"
        members[f"{member}.npy"] = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + b"\0" * 8
        with zipfile.ZipFile(path, "w") as z:
            for n, data in members.items():
                z.writestr(n, data)

    return write


def _zip_bomb(name: str, member: str, base: Callable[[Path], None], gib: float = 18.0):
    """An npz whose ``member`` is a deflated stream of zeros declaring ``gib`` GiB uncompressed.

    Only the zip directory's sizes lie: reading the member would inflate until memory runs out,
    which is what a size guard must refuse before allocating.
    """

    def write(folder: Path) -> None:
        base(folder)
        path = folder / name
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist() if n != f"{member}.npy"}
        n = int(gib * 2**30) // 4
        header = {"descr": "<f4", "fortran_order": False, "shape": (n // 3, 3)}
        text = repr(header).encode("latin1")
        pad = 64 - (10 + len(text) + 1) % 64
        text = text + b" " * pad + b"\n"
        npy_head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for m, data in members.items():
                z.writestr(m, data)
            # 64 MiB of zeros, deflated to ~64 kB; the stream is cut there and the sizes patched below.
            z.writestr(f"{member}.npy", npy_head + bytes(64 * 2**20))
        raw = bytearray(path.read_bytes())
        target = f"{member}.npy".encode()
        declared = min(n * 4 + len(npy_head), 2**32 - 1)  # zip32 sizes: at most 4 GiB each
        for sig, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
            start = 0
            while (i := raw.find(sig, start)) >= 0:
                name_len = struct.unpack_from("<H", raw, i + (26 if sig == b"PK\x03\x04" else 28))[0]
                if raw[i + name_at : i + name_at + name_len] == target:
                    struct.pack_into("<I", raw, i + size_at, declared)
                start = i + 4
        path.write_bytes(bytes(raw))

    return write


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def put(key: str, value) -> Callable[[dict, dict], None]:
    """A change of an npz case: set array ``key`` to ``value``."""

    def change(a, m):
        a[key] = value

    return change


def meta_(key: str, value) -> Callable[[dict, dict], None]:
    """A change of an npz case: set ``meta[key]`` to ``value``."""

    def change(a, m):
        m[key] = value

    return change


# ---------------------------------------------------------------------------------------------
# Scenes


def _scene_doc(scene_path: Path) -> dict:
    """The valid scene's document with every file path made absolute (so a case needs no copies)."""
    doc = yaml.safe_load(scene_path.read_text())
    base = scene_path.parent.resolve()
    for obj in doc["objects"]:
        for key in ("mesh", "urdf"):
            if obj.get(key):
                obj[key] = str(base / obj[key])
    doc["reference"] = {k: str(base / v) for k, v in doc.get("reference", {}).items()}
    return doc


def _scene_case(corpus: Corpus, scene: Path, name: str, change, expect, argv=None) -> None:
    """The valid scene with ``change(doc)`` applied, written to the case folder's scene.yaml
    (a change may also return the whole file's text)."""

    def write(folder: Path) -> None:
        doc = _scene_doc(scene)
        out = change(doc, folder)
        text = out if isinstance(out, str) else yaml.safe_dump(doc, sort_keys=False)
        (folder / "scene.yaml").write_text(text)

    corpus.add(Case("scene", name, argv or ["check", "{dir}/scene.yaml"], tuple(expect)), write)


def _obj(doc: dict, name: str) -> dict:
    return next(o for o in doc["objects"] if o["name"] == name)


def scene_cases(corpus: Corpus, scene: Path) -> None:
    def set_(path: str, value):
        def change(doc, folder):
            d = doc
            keys = path.split(".")
            for k in keys[:-1]:
                d = d[int(k)] if isinstance(d, list) else d[k]
            last = keys[-1]
            if isinstance(d, list):
                d[int(last)] = value
            else:
                d[last] = value

        return change

    def banana(key, value):
        def change(doc, folder):
            _obj(doc, "banana")[key] = value

        return change

    def banana_pose(position=None, quat=None):
        def change(doc, folder):
            pose = _obj(doc, "banana").setdefault("pose", {})
            if position is not None:
                pose["position"] = position
            if quat is not None:
                pose["quat_wxyz"] = quat

        return change

    flow_run = ["flow", "{dir}/scene.yaml", "--out", "{out}/run", "--iterations", "2", "--device", "cpu"]
    cases = [
        ("unknown_version", set_("version", 9), ["version", "9"]),
        ("wrong_schema", set_("schema", "chord.flow"), ["schema", "chord.flow"]),
        ("typo_key", set_("framez", 41), ["framez"]),
        ("frames_string", set_("frames", "forty-one"), ["frames", "forty-one"]),
        ("frames_zero", set_("frames", 0), ["frames", "0"]),
        ("frames_huge", set_("frames", 100_000_000), ["frames", "100000000"]),
        ("fps_huge", set_("fps", 1e300), ["fps", "1e+300"]),
        ("fps_zero", set_("fps", 0), ["fps", "0"]),
        ("fps_nan", set_("fps", float("nan")), ["fps", "nan"]),
        ("no_objects", set_("objects", []), ["objects"]),
        ("objects_not_a_list", set_("objects", "banana"), ["objects"]),
        ("duplicate_names", lambda d, f: d["objects"].append(dict(d["objects"][0])), ["duplicate", "banana"]),
        ("name_traversal", set_("name", "../../escape"), ["name", "../../escape"]),
        ("name_absolute", set_("name", "/abs/elsewhere"), ["name", "/abs/elsewhere"]),
        ("object_name_empty", banana("name", ""), ["name"]),
        ("object_name_hidden", banana("name", ".hidden"), ["name", ".hidden"]),
        ("object_name_slash", banana("name", "a/b"), ["name", "a/b"]),
        ("position_nan", banana_pose(position=[float("nan"), 0.0, 0.0]), ["position", "nan"]),
        ("quat_zero", banana_pose(quat=[0.0, 0.0, 0.0, 0.0]), ["quat"]),
        ("quat_inf", banana_pose(quat=[float("inf"), 0.0, 0.0, 0.0]), ["quat", "inf"]),
        ("object_50m_away", banana_pose(position=[50.0, 0.0, 0.0]), ["position", "50"]),
        ("object_under_table", banana_pose(position=[0.0, 0.0, -5.0]), ["position", "-5"]),
        ("table_1e6", set_("table", {"height": 1e6}), ["height", "1000000"]),
        ("camera_100000px", set_("camera.width", 100_000), ["width", "100000"]),
        ("camera_zero_px", set_("camera.height", 0), ["height", "0"]),
        ("camera_fov_180", set_("camera.fov_y_deg", 180), ["fov_y_deg", "180"]),
        ("units_inches", banana("units", "inches"), ["units", "inches"]),
        ("mesh_missing", banana("mesh", "nowhere.obj"), ["nowhere.obj"]),
        ("mesh_is_etc_passwd", banana("mesh", "/etc/passwd"), ["/etc/passwd"]),
        ("reference_flow_is_yaml", lambda d, f: d["reference"].update(flow="scene.yaml"), ["flow"]),
        ("reference_flow_dev_zero", lambda d, f: d["reference"].update(flow="/dev/zero"), ["/dev/zero"]),
        ("python_tag", lambda d, f: "!!python/object/apply:os.system ['echo pwned']\n", ["scene.yaml"]),
        ("not_a_mapping", lambda d, f: "- just\n- a\n- list\n", ["scene.yaml"]),
        ("deep_nesting", lambda d, f: _deep_json(100_000), ["scene.yaml"]),
        (
            "billion_laughs",
            lambda d, f: (
                "a: &a [x, x, x, x, x, x, x, x, x]\n"
                + "".join(
                    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
                )
            ),
            ["scene.yaml", "aliases"],
        ),
        ("binary_garbage", lambda d, f: "\x00\x01\x02garbage\xff", ["scene.yaml"]),
        ("empty_file", lambda d, f: "", ["scene.yaml"]),
    ]
    for name, change, expect in cases:
        _scene_case(corpus, scene, name, change, expect)
    # Values a reader accepts only if nothing checks them: also fed to `chord flow`, which must
    # refuse before any optimisation (and leave no run folder behind).
    for name, change, expect in (
        ("flow_fps_huge", set_("fps", 1e300), ["fps"]),
        ("flow_name_traversal", set_("name", "../../escape"), ["name"]),
    ):
        _scene_case(corpus, scene, name, change, expect, argv=flow_run)


# ---------------------------------------------------------------------------------------------
# Flows


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    return arrays, meta


def flow_cases(corpus: Corpus, scene: Path, flow: Path) -> None:
    good_arrays, good_meta = _load_npz(flow)
    T = good_arrays["points"].shape[0]

    def case(name, change, expect, command="check"):
        arrays = {k: v.copy() for k, v in good_arrays.items()}
        meta = json.loads(json.dumps(good_meta))
        result = change(arrays, meta)
        writer = result if callable(result) else _npz("flow.npz", arrays, meta)
        argv = (
            ["check", "{dir}/flow.npz"]
            if command == "check"
            else ["plan", "{dir}/flow.npz", "--scene", str(scene), "--out", "{out}/plan.npz"]
        )
        corpus.add(Case("flow", name, argv, tuple(expect)), writer)

    def drop(key):
        def change(a, m):
            a.pop(key)

        return change

    pts = good_arrays["points"]
    nan = pts.copy()
    nan[3, 7, 1] = np.nan
    far = pts.copy()
    far[:, :, 0] += 5000.0
    times400 = np.linspace(0, 400, T).astype(np.float32)
    back = good_arrays["times"].copy()
    back[5] = back[4]
    oi = good_arrays["object_index"].copy()
    oi[0] = 99
    cases = [
        ("missing_points", drop("points"), ["points", "missing"]),
        ("missing_times", drop("times"), ["times", "missing"]),
        ("points_float64", put("points", pts.astype(np.float64)), ["points", "float64"]),
        ("points_2d", put("points", pts[0]), ["points"]),
        ("points_nan", put("points", nan), ["points", "nan"]),
        ("points_5km", put("points", far), ["points"]),
        ("times_not_increasing", put("times", back), ["times"]),
        ("times_400s_at_16fps", put("times", times400), ["times", "400"]),
        ("times_wrong_length", put("times", good_arrays["times"][:-1]), ["times"]),
        ("object_index_out_of_range", put("object_index", oi), ["object_index", "99"]),
        (
            "object_index_int64",
            put("object_index", good_arrays["object_index"].astype(np.int64)),
            ["object_index", "int64"],
        ),
        ("unexpected_field", put("extra", np.zeros(3)), ["extra"]),
        ("unknown_version", meta_("version", 7), ["version", "7"]),
        ("wrong_schema", meta_("schema", "chord.plan"), ["schema", "chord.plan"]),
        ("fps_huge", meta_("fps", 1e300), ["fps"]),
        ("object_names_short", meta_("object_names", good_meta["object_names"][:1]), ["object_names"]),
        (
            "object_name_traversal",
            meta_("object_names", ["../../x", *good_meta["object_names"][1:]]),
            ["../../x"],
        ),
        ("meta_not_json", lambda a, m: _npz("flow.npz", a, "{not json"), ["meta", "JSON"]),
        ("meta_deep", lambda a, m: _npz("flow.npz", a, _deep_json(100_000)), ["meta"]),
        (
            "meta_huge",
            lambda a, m: _npz("flow.npz", a, json.dumps({**m, "prompt": "x" * (40 * 2**20)})),
            ["meta"],
        ),
        ("meta_missing", lambda a, m: _npz("flow.npz", a, None), ["meta", "missing"]),
        ("pickled_points", lambda a, m: _pickled("flow.npz", a, m, "points"), ["points"]),
        (
            "lying_header",
            lambda a, m: _lying_npy_header("flow.npz", "points", (2**40, 3), _npz("flow.npz", a, m)),
            ["points"],
        ),
        ("zip_bomb", lambda a, m: _zip_bomb("flow.npz", "points", _npz("flow.npz", a, m)), ["points"]),
        ("not_a_zip", lambda a, m: _text("flow.npz", "points: [1, 2, 3]\n"), ["npz"]),
        ("truncated_zip", lambda a, m: _truncated("flow.npz", _npz("flow.npz", a, m)), ["npz"]),
        ("empty_file", lambda a, m: _text("flow.npz", b""), ["flow.npz"]),
        ("directory", lambda a, m: lambda folder: (folder / "flow.npz").mkdir(), ["flow.npz"]),
    ]
    for name, change, expect in cases:
        case(name, change, expect)
    # Through the planner too: a flow that does not match the scene, and absurd motion.
    case("plan_other_scene_objects", meta_("object_names", ["duck", "mug"]), ["duck"], command="plan")
    case("plan_points_5km", put("points", far), ["points", "5000"], command="plan")


def _pickled(name: str, arrays, meta, member: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        payload = dict(arrays)
        payload[member] = np.array([object()] * 3, dtype=object)
        payload["meta"] = np.array(json.dumps(meta))
        np.savez(folder / name, **payload)

    return write


def _truncated(name: str, base: Callable[[Path], None]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        base(folder)
        p = folder / name
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])

    return write


# ---------------------------------------------------------------------------------------------
# Plans


def plan_cases(corpus: Corpus, scene: Path, flow: Path, plan: Path) -> None:
    good_arrays, good_meta = _load_npz(plan)
    M = good_arrays["q"].shape[0]

    def case(name, change, expect, commands=("check", "sim", "real"), verdict=False):
        arrays = {k: v.copy() for k, v in good_arrays.items()}
        meta = json.loads(json.dumps(good_meta))
        result = change(arrays, meta)
        writer = result if callable(result) else _npz("plan.npz", arrays, meta)
        # chord real gets the same plan with its validation record forged (the attacker recomputes
        # the public content hash), so only chord real's own checks stand between it and the arm.
        forged = writer if callable(result) else _npz("plan.npz", arrays, _forge(arrays, meta))
        for command in commands:
            argv = {
                "check": ["check", "{dir}/plan.npz"],
                "sim": [
                    "sim",
                    "{dir}/plan.npz",
                    "--scene",
                    str(scene),
                    "--flow",
                    str(flow),
                    "--out",
                    "{out}/sim.json",
                ],
                "real": real_argv(scene, flow),
            }[command]
            corpus.add(
                Case(
                    "plan",
                    f"{name}__{command}",
                    argv,
                    tuple(expect),
                    executes=command == "real",
                    verdict=verdict,
                ),
                forged if command == "real" else writer,
            )

    def q_change(fn):
        def change(a, m):
            a["q"] = fn(a["q"].copy())

        return change

    def nan_at(q):
        q[M // 2, 3] = np.nan
        return q

    def step(q):  # a 0.5 rad jump between two 10 ms samples
        q[M // 2 :, 0] += 0.5
        return q

    def beyond(q):
        q[:, 3] = 0.5  # panda joint 4 must stay below -0.0698 rad
        return q

    t = good_arrays["t"]
    cases = [
        ("q_nan", q_change(nan_at), ["q", "nan"]),
        ("q_inf", q_change(lambda q: np.where(np.arange(M)[:, None] == 3, np.inf, q)), ["q", "inf"]),
        ("q_wrong_joints", put("q", good_arrays["q"][:, :6]), ["q"]),
        ("t_not_increasing", put("t", np.concatenate([t[:5], t[4:5], t[6:]])), ["t"]),
        ("t_nan", put("t", np.where(np.arange(M) == 5, np.nan, t)), ["t", "nan"]),
        (
            "gripper_nan",
            put("gripper", np.where(np.arange(M) == 5, np.nan, good_arrays["gripper"])),
            ["gripper", "nan"],
        ),
        (
            "ee_pose_bad_quat",
            put("ee_pose", np.concatenate([good_arrays["ee_pose"][:, :3], np.zeros((M, 4))], axis=1)),
            ["ee_pose"],
        ),
        ("unknown_version", meta_("version", 3), ["version", "3"]),
        ("wrong_schema", meta_("schema", "chord.flow"), ["schema", "chord.flow"]),
        ("robot_etc_passwd", meta_("robot", "/etc/passwd"), ["robot", "/etc/passwd"]),
        ("joint_names_short", meta_("joint_names", good_meta["joint_names"][:-1]), ["joint_names"]),
        ("base_pose_nan", meta_("base_pose", [float("nan"), 0, 0, 1, 0, 0, 0]), ["base_pose"]),
        ("meta_deep", lambda a, m: _npz("plan.npz", a, _deep_json(100_000)), ["meta"]),
        (
            "lying_header",
            lambda a, m: _lying_npy_header("plan.npz", "q", (2**38, 7), _npz("plan.npz", a, m)),
            ["q"],
        ),
        ("zip_bomb", lambda a, m: _zip_bomb("plan.npz", "q", _npz("plan.npz", a, m)), ["q"]),
        ("not_a_zip", lambda a, m: _text("plan.npz", "t: [0, 1]\n"), ["npz"]),
    ]
    for name, change, expect in cases:
        case(name, change, expect)
    # Plans that load but must not simulate or move: absurd durations and gripper widths, joint
    # steps. The simulator runs what the Panda can do and judges it a FAILURE (its verdict names the
    # stage); chord real refuses before moving, naming its pre-flight reason.
    for name, change, sim_expect, real_expect in (
        # chord real refuses the 1e5 s plan for its sample gaps before it would re-simulate it
        ("duration_1e5s", put("t", t * (1e5 / t[-1])), ["100000"], ["sample_gap"]),
        (
            "gripper_half_metre",
            put("gripper", np.full(M, 0.5)),
            ["FAILURE (grasp)"],
            ["gripper_width"],
        ),
        ("gripper_1e6", put("gripper", np.full(M, 1e6)), ["FAILURE (grasp)"], ["gripper_width"]),
        ("gripper_negative", put("gripper", np.full(M, -0.01)), ["gripper", "-0.01"], ["gripper", "-0.01"]),
        ("joint_step", q_change(step), ["FAILURE"], ["velocity_limit"]),
        ("beyond_limits", q_change(beyond), ["FAILURE (IK)"], ["joint_limit"]),
    ):
        verdict = sim_expect[0].startswith("FAILURE")
        case(name, change, sim_expect, commands=("sim",), verdict=verdict)
        case(name, change, real_expect, commands=("real",))
    real_cases(corpus, scene, flow, plan, good_arrays, good_meta)


def real_argv(scene: Path, flow: Path | str, *extra: str) -> list[str]:
    """chord real on the fake arm, executing: the plan is re-simulated in ``scene`` against ``flow``.

    ``--slowdown 2``: the planner times plans at 0.5 x the joint limits and a first run allows
    0.25 x, so the valid plan passes every check and each hostile one is refused for its own fault.
    """
    return [
        "real", "{dir}/plan.npz", "--backend", "fake", "--execute", "--scene", str(scene),
        "--flow", str(flow), "--log-path", "{out}/log.npz", "--slowdown", "2", *extra,
    ]  # fmt: skip


def _other_flow(flow: Path, base: Callable[[Path], None]) -> Callable[[Path], None]:
    """``base``'s files and other_flow.npz: ``flow`` with the banana lifted 10 cm higher at the end."""

    def write(folder: Path) -> None:
        import dataclasses

        from core.flow import ObjectFlow

        base(folder)
        f = ObjectFlow.load(flow)
        points = f.points.copy()
        ramp = np.linspace(0.0, 0.10, len(points), dtype=np.float32)
        points[:, :, 2] += ramp[:, None]
        dataclasses.replace(f, points=points).save(folder / "other_flow.npz")

    return write


def _forge(arrays: dict[str, np.ndarray], meta: dict) -> dict:
    """``meta`` with a validation record claiming success for ``arrays``, as an attacker writes it:
    the public ``core.plan.Plan.content_hash`` run on the edited fields (no check of them, as an
    attacker's script would not). A plan too broken to hash keeps its meta."""
    from types import SimpleNamespace

    from core.plan import Plan

    try:
        fields = {k: np.asarray(arrays[k], dtype=np.float64) for k in ("t", "q", "gripper", "ee_pose")}
        keys = ("robot", "joint_names", "base_pose", "task", "flow_sha256")
        digest = Plan.content_hash(SimpleNamespace(**fields, **{k: meta[k] for k in keys}))
    except (KeyError, TypeError, ValueError):
        return meta
    return {**meta, "validation": {"success": True, "plan_sha256": digest, "simulator": "pybullet"}}


def real_cases(corpus: Corpus, scene: Path, flow: Path, plan: Path, good_arrays, good_meta) -> None:
    """Plans and options that only chord real's pre-flight can refuse: each names its reason code."""
    M = good_arrays["q"].shape[0]
    t = good_arrays["t"]

    def case(name, change=None, expect=(), extra=(), forge=True, goal=None):
        arrays = {k: v.copy() for k, v in good_arrays.items()}
        meta = json.loads(json.dumps(good_meta))
        if change is not None:
            change(arrays, meta)
        writer = _npz("plan.npz", arrays, _forge(arrays, meta) if forge else meta)
        argv = real_argv(scene, flow if goal is None else "{dir}/other_flow.npz", *extra)
        if goal is not None:
            writer = _other_flow(flow, writer)
        corpus.add(Case("plan", f"{name}__real", argv, tuple(expect), executes=True), writer)

    def edit_q(fn):
        def change(a, m):
            a["q"] = fn(a["q"].copy())

        return change

    def closes_mid_motion(a, m):
        g = a["gripper"]
        g[M // 2 :] = min(float(g.min()), 0.01)  # a step close half-way, whatever the arm does there

    def finger_into_link1(a, m):
        # After the plan, a slow 10 s move to a pose with a finger inside link 1 (found by search in
        # tests/real/test_preflight.py): within joint limits and speeds, only the collision check
        # can refuse it.
        finger_in_link1 = np.array([-1.312, -1.022, -0.741, -2.927, -0.345, 0.251, -1.428])
        n = 1001
        u = np.linspace(0.0, 1.0, n)[1:, None]
        s = 10 * u**3 - 15 * u**4 + 6 * u**5
        q_end = a["q"][-1]
        a["q"] = np.concatenate([a["q"], q_end + s * (finger_in_link1 - q_end)])
        a["t"] = np.concatenate([a["t"], a["t"][-1] + 10.0 * u[:, 0]])
        a["gripper"] = np.concatenate([a["gripper"], np.full(n - 1, a["gripper"][-1])])
        a["ee_pose"] = np.concatenate([a["ee_pose"], np.tile(a["ee_pose"][-1], (n - 1, 1))])

    def unvalidated(a, m):
        m["validation"] = None

    def failed_in_sim(a, m):
        m["validation"] = {"success": False, "plan_sha256": "0" * 64, "simulator": "pybullet"}

    def never_closes(a, m):
        a["gripper"][:] = a["gripper"].max()

    case("never_validated", unvalidated, ["not_validated"], forge=False)
    case("failed_in_sim", failed_in_sim, ["not_validated"], forge=False)
    # Edited after validation and not re-stamped: the record's hash no longer matches.
    case("edited_after_validation", edit_q(lambda q: q + 1e-3), ["hash_mismatch"], forge=False)
    # The forged record of a plan whose fingers never close: the re-simulation drops the banana.
    case("forged_never_grasps", never_closes, ["sim_failed"])
    case("gripper_closes_while_moving", closes_mid_motion, ["gripper"])
    case("finger_into_the_arm", finger_into_link1, ["self_collision"])
    # The rule names the longest gap's waypoints: the plan's own longest interval, stretched.
    longest = str(int(np.argmax(np.diff(t))))
    case("time_stretched_1e5", lambda a, m: a.__setitem__("t", t * (1e5 / t[-1])), ["sample_gap", longest])
    # Sped up until its fastest joint runs over the pre-flight's default velocity cap
    # (SafetyConfig.speed_scale of the Panda's limits), whatever the valid plan's own speed.
    from real.limits import PANDA
    from real.preflight import SafetyConfig

    qd = np.abs(np.diff(good_arrays["q"], axis=0)) / np.diff(t)[:, None]
    ratio = float((qd / (SafetyConfig().speed_scale * np.asarray(PANDA.velocity))).max())  # < 1: it passes
    # 1.5x the cap on the timeline chord real checks (real_argv slows plans 2x): over it, yet a
    # plan the simulator still follows (the velocity rule runs only after the re-simulation gate
    # passes; a far faster plan fails there first).
    case("too_fast_2x", lambda a, m: a.__setitem__("t", t * ratio / (1.5 * 2.0)), ["velocity_limit"])
    case("start_elsewhere", None, ["start_state"], extra=("--fake-offset", "0.3"))
    case("start_off_by_nan", None, ["--fake-offset", "nan"], extra=("--fake-offset", "nan"))
    case("table_above_the_plan", None, ["table"], extra=("--table-z", "0.5"))
    case("grasp_force_500", None, ["grasp_force"], extra=("--grasp-force", "500"))
    case("workspace_tiny", None, ["workspace"], extra=("--workspace-max", "0.1", "0.1", "0.1"))
    case("judged_against_another_flow", None, ["flow_mismatch"], goal="other")
    case("model_fr3", None, ["--model fr3 is not the plan's robot 'panda'"], extra=("--model", "fr3"))
    case("robot_urdf_etc_passwd", None, ["/etc/passwd"], extra=("--robot-urdf", "/etc/passwd"))


# ---------------------------------------------------------------------------------------------
# Meshes


def _obj_text(vertices, faces) -> str:
    lines = [f"v {x} {y} {z}" for x, y, z in vertices] + [f"f {a} {b} {c}" for a, b, c in faces]
    return "\n".join(lines) + "\n"


CUBE_V = [(x, y, z) for x in (0, 0.05) for y in (0, 0.05) for z in (0, 0.05)]
CUBE_F = [
    (1, 2, 4),
    (1, 4, 3),
    (5, 7, 8),
    (5, 8, 6),
    (1, 5, 6),
    (1, 6, 2),
    (3, 4, 8),
    (3, 8, 7),
    (1, 3, 7),
    (1, 7, 5),
    (2, 6, 8),
    (2, 8, 4),
]


def mesh_cases(corpus: Corpus) -> None:
    def case(name, file, content, expect, extra=()):
        argv = ["assets", "intake", f"{{dir}}/{file}", "--out", "{out}/asset", *extra]
        corpus.add(
            Case("mesh", name, argv, tuple(expect)), _text(file, content) if content is not None else None
        )

    nan_v = [*CUBE_V]
    nan_v[3] = (float("nan"), 0.0, 0.0)
    inf_v = [*CUBE_V]
    inf_v[3] = (float("inf"), 0.0, 0.0)
    stl_lying = b"\0" * 80 + struct.pack("<I", 1_000_000_000) + b"\0" * 50
    cube = _obj_text(CUBE_V, CUBE_F)
    case("nan_vertex", "m.obj", _obj_text(nan_v, CUBE_F), ["nan"])
    case("inf_vertex", "m.obj", _obj_text(inf_v, CUBE_F), ["inf"])
    case("one_triangle", "m.obj", _obj_text(CUBE_V[:3], [(1, 2, 3)]), ["m.obj"])
    case("no_faces", "m.obj", "\n".join(f"v {x} {y} {z}" for x, y, z in CUBE_V) + "\n", ["faces"])
    case("empty_file", "m.obj", "", ["m.obj"])
    case("binary_garbage", "m.obj", b"\x00\xff\x13garbage" * 100, ["m.obj"])
    case(
        "ply_named_obj",
        "m.obj",
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
        ["PLY"],
    )
    case("face_index_out_of_range", "m.obj", _obj_text(CUBE_V, [*CUBE_F[:-1], (1, 2, 99)]), ["m.obj"])
    case("zero_area", "m.obj", _obj_text([(0, 0, 0)] * 8, CUBE_F), ["area"])
    case(
        "huge_with_units_m",
        "m.obj",
        _obj_text([(1000 * x, 1000 * y, 1000 * z) for x, y, z in CUBE_V], CUBE_F),
        ["50"],
        ("--units", "m"),
    )
    case(
        "tiny",
        "m.obj",
        _obj_text([(1e-6 * x, 1e-6 * y, 1e-6 * z) for x, y, z in CUBE_V], CUBE_F),
        ["m"],
        ("--units", "m"),
    )
    case("unknown_suffix", "m.xyz", cube, ["xyz"])
    case("directory", "m.obj", None, ["m.obj"])
    case("missing", "nowhere.obj", None, ["nowhere.obj"])
    case("stl_lying_count", "m.stl", stl_lying, ["m.stl"])
    case("glb_garbage", "m.glb", b"glTF\x02\x00\x00\x00" + b"\xff" * 64, ["m.glb"])
    # Loads (exit 0): a material library outside the folder is not read as anything that matters,
    # and nothing is written outside out/.
    corpus.add(
        Case("mesh", "mtl_traversal", ["assets", "intake", "{dir}/m.obj", "--out", "{out}/asset"], (), 0),
        _text("m.obj", "mtllib ../../../../etc/passwd\n" + cube),
    )
    case("units_km", "m.obj", cube, ["units", "km"], ("--units", "km"))
    case("scale_nan", "m.obj", cube, ["scale", "nan"], ("--scale", "nan"))
    case("scale_negative", "m.obj", cube, ["scale", "-1"], ("--scale", "-1"))
    case("up_w", "m.obj", cube, ["up", "+w"], ("--up", "+w"))
    case("max_faces_zero", "m.obj", cube, ["max_faces", "0"], ("--max-faces", "0"))
    case("density_nan", "m.obj", cube, ["density", "nan"], ("--density", "nan"))
    case("min_component_2", "m.obj", cube, ["min_component", "2"], ("--min-component", "2"))
    case("name_traversal", "m.obj", cube, ["name", "../../escape"], ("--name", "../../escape"))
    case("name_hidden", "m.obj", cube, ["name", ".hidden"], ("--name", ".hidden"))


# ---------------------------------------------------------------------------------------------
# Parts files


def _parts_doc() -> dict:
    return {
        "name": "box_lid",
        "units": "m",
        "parts": [{"name": "base", "mesh": "base.obj"}, {"name": "lid", "mesh": "lid.obj"}],
        "joints": [
            {
                "name": "hinge",
                "type": "revolute",
                "parent": "base",
                "child": "lid",
                "origin": [0.0, 0.0, 0.05],
                "axis": [1.0, 0.0, 0.0],
                "limits_deg": [-90.0, 0.0],
                "damping": 0.05,
            }
        ],
    }


def parts_cases(corpus: Corpus, example: dict | None = None) -> None:
    lid_v = [(x, y, z + 0.05) for x, y, z in CUBE_V]

    def case(name, change, expect, extra=()):
        doc = json.loads(json.dumps(example or _parts_doc()))
        result = change(doc)
        text = (
            result
            if isinstance(result, str)
            else yaml.safe_dump(doc if result is None else result, sort_keys=False)
        )

        def write(folder: Path) -> None:
            (folder / "base.obj").write_text(_obj_text(CUBE_V, CUBE_F))
            (folder / "lid.obj").write_text(_obj_text(lid_v, CUBE_F))
            (folder / "parts.yaml").write_text(text)

        argv = ["assets", "parts", "{dir}/parts.yaml", "--out", "{out}/asset", *extra]
        corpus.add(Case("parts", name, argv, tuple(expect)), write)

    def part(i, key, value):
        def change(doc):
            doc["parts"][i][key] = value

        return change

    def joint(key, value):
        def change(doc):
            doc["joints"][0][key] = value

        return change

    cases = [
        ("part_name_traversal", part(1, "name", "../../../../PWNED_parts"), ["../../../../PWNED_parts"]),
        ("part_name_slash", part(1, "name", "a/b"), ["a/b"]),
        ("part_name_empty", part(1, "name", ""), ["name"]),
        ("part_name_hidden", part(1, "name", ".lid"), [".lid"]),
        ("part_names_duplicate", part(1, "name", "base"), ["base"]),
        ("joint_type_spherical", joint("type", "spherical"), ["spherical", "revolute"]),
        ("damping_abc", joint("damping", "abc"), ["damping", "abc"]),
        ("limits_1e6_deg", joint("limits_deg", [-1e6, 1e6]), ["limits_deg"]),
        ("limits_inverted", joint("limits_deg", [30.0, -30.0]), ["limits_deg"]),
        ("limits_nan", joint("limits_deg", [float("nan"), 0.0]), ["limits_deg", "nan"]),
        ("limits_missing", lambda d: d["joints"][0].pop("limits_deg") and None, ["limits_deg"]),
        ("hinge_1km_away", joint("origin", [1000.0, 0.0, 0.0]), ["origin", "1000"]),
        ("axis_zero", joint("axis", [0.0, 0.0, 0.0]), ["axis"]),
        ("axis_nan", joint("axis", [float("nan"), 0.0, 0.0]), ["axis", "nan"]),
        ("unknown_parent", joint("parent", "nothing"), ["nothing"]),
        ("parent_is_child", joint("parent", "lid"), ["lid"]),
        ("mesh_missing", part(1, "mesh", "nowhere.obj"), ["nowhere.obj"]),
        ("mesh_traversal", part(1, "mesh", "../../../../../etc/passwd"), ["passwd"]),
        ("mesh_absolute", part(1, "mesh", "/etc/passwd"), ["/etc/passwd"]),
        ("no_parts", lambda d: d.update(parts=[], joints=[]), ["parts"]),
        ("parts_not_a_list", lambda d: d.update(parts="base"), ["parts"]),
        ("unknown_key", lambda d: d.update(jionts=[]), ["jionts"]),
        ("units_furlongs", lambda d: d.update(units="furlongs"), ["units", "furlongs"]),
        ("name_traversal", lambda d: d.update(name="../../escape"), ["../../escape"]),
        ("part_density", part(0, "density", -5.0), ["density"]),  # not a key of a part
        ("yaml_python_tag", lambda d: "!!python/object/apply:os.system ['echo pwned']\n", ["parts.yaml"]),
        ("not_a_mapping", lambda d: "- a\n- b\n", ["parts.yaml"]),
        ("deep_nesting", lambda d: _deep_json(100_000), ["parts.yaml"]),
    ]
    for name, change, expect in cases:
        case(name, change, expect)
    case("density_negative", lambda d: None, ["density", "-5"], ("--density", "-5"))


# ---------------------------------------------------------------------------------------------
# Wan folders


def wan_cases(corpus: Corpus, scene: Path, wan: Path) -> None:
    """A tiny valid Wan 2.2 folder (``wan``) with one thing broken, given to ``chord flow --prior wan``."""

    def case(name, change, expect, model_dir="{dir}/wan"):
        def write(folder: Path) -> None:
            shutil.copytree(wan, folder / "wan")
            change(folder / "wan")

        argv = [
            "flow", str(scene), "--out", "{out}/run", "--prior", "wan", "--model-dir", model_dir,
            "--wan-dtype", "float32", "--iterations", "1", "--width", "64", "--height", "32",
            "--gaussians-per-object", "100", "--device", "cpu",
        ]  # fmt: skip
        corpus.add(Case("wan", name, argv, tuple(expect)), write)

    def edit_json(rel, fn):
        def change(folder: Path) -> None:
            p = folder / rel
            doc = json.loads(p.read_text())
            out = fn(doc)
            p.write_text(out if isinstance(out, str) else json.dumps(doc if out is None else out))

        return change

    def set_json(rel, key, value):
        return edit_json(rel, lambda d: d.__setitem__(key, value))

    def replace(rel, data: bytes | str):
        def change(folder: Path) -> None:
            p = folder / rel
            p.write_bytes(data if isinstance(data, bytes) else data.encode())

        return change

    def remove(rel):
        def change(folder: Path) -> None:
            p = folder / rel
            shutil.rmtree(p) if p.is_dir() else p.unlink()

        return change

    def first_weights(folder: Path, sub: str) -> Path:
        return sorted((folder / sub).glob("*.safetensors"))[0]

    def weights(sub, fn):
        def change(folder: Path) -> None:
            p = first_weights(folder, sub)
            p.write_bytes(fn(p.read_bytes()))

        return change

    def huge_header(data: bytes) -> bytes:
        return struct.pack("<Q", 2**40) + data[8:]

    def pickle_bytes(data: bytes) -> bytes:
        import pickle

        return pickle.dumps({"weight": [1.0, 2.0]})

    def shard_traversal(folder: Path) -> None:
        index = folder / "transformer" / "diffusion_pytorch_model.safetensors.index.json"
        name = first_weights(folder, "transformer").name
        index.write_text(json.dumps({"metadata": {}, "weight_map": {"x": "../../../../etc/" + name}}))

    cases = [
        ("missing_folder", lambda f: None, ["nowhere"], "{dir}/nowhere"),
        ("a_file_not_a_folder", lambda f: None, ["model_index.json", "folder"], "{dir}/wan/model_index.json"),
        (
            "empty_folder",
            lambda f: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in list(f.iterdir())],
            ["missing"],
            None,
        ),
        ("no_transformer_2", remove("transformer_2"), ["transformer_2"], None),
        ("no_vae_config", remove("vae/config.json"), ["vae/config.json"], None),
        ("vae_config_not_json", replace("vae/config.json", "{not json"), ["vae/config.json"], None),
        ("vae_config_a_list", replace("vae/config.json", "[1, 2]"), ["vae/config.json"], None),
        ("model_index_corrupt", replace("model_index.json", "{corrupt"), ["model_index.json"], None),
        ("model_index_a_list", replace("model_index.json", "[]"), ["model_index.json"], None),
        (
            "boundary_ratio_5",
            set_json("model_index.json", "boundary_ratio", 5.0),
            ["boundary_ratio", "5"],
            None,
        ),
        (
            "boundary_ratio_nan",
            edit_json("model_index.json", lambda d: json.dumps(d)[:-1] + ', "boundary_ratio": NaN}'),
            ["boundary_ratio"],
            None,
        ),
        (
            "in_channels_wrong",
            set_json("transformer/config.json", "in_channels", 17),
            ["in_channels", "17"],
            None,
        ),
        (
            "timesteps_zero",
            set_json("scheduler/scheduler_config.json", "num_train_timesteps", 0),
            ["num_train_timesteps", "0"],
            None,
        ),
        (
            "timesteps_string",
            set_json("scheduler/scheduler_config.json", "num_train_timesteps", "many"),
            ["num_train_timesteps"],
            None,
        ),
        ("pickle_as_safetensors", weights("vae", pickle_bytes), ["safetensors"], None),
        ("truncated_safetensors", weights("vae", lambda d: d[: len(d) // 3]), ["safetensors"], None),
        ("huge_header_safetensors", weights("vae", huge_header), ["safetensors"], None),
        ("empty_safetensors", weights("vae", lambda d: b""), ["safetensors"], None),
        ("shard_path_traversal", shard_traversal, [".."], None),
        (
            "text_encoder_config_missing",
            remove("text_encoder/config.json"),
            ["text_encoder/config.json"],
            None,
        ),
        ("tokenizer_missing", remove("tokenizer"), ["tokenizer"], None),
        ("z_dim_string", set_json("vae/config.json", "z_dim", "sixteen"), ["z_dim"], None),
        (
            "patch_size_zero",
            set_json("transformer/config.json", "patch_size", [0, 0, 0]),
            ["patch_size"],
            None,
        ),
        (
            "transformer_config_deep",
            replace("transformer/config.json", _deep_json(100_000)),
            ["transformer/config.json"],
            None,
        ),
        (
            "weights_are_a_folder",
            lambda f: (
                first_weights(f, "vae").unlink(),
                (f / "vae" / "diffusion_pytorch_model.safetensors").mkdir(),
            ),
            ["safetensors"],
            None,
        ),
    ]
    for name, change, expect, model_dir in cases:
        case(name, change, expect, model_dir or "{dir}/wan")


# ---------------------------------------------------------------------------------------------
# Command-line options


def cli_cases(corpus: Corpus, scene: Path, flow: Path, plan: Path) -> None:
    def case(name, argv, expect, exit_code=1, write=None):
        corpus.add(Case("cli", name, argv, tuple(expect), exit_code), write)

    p, f, s = str(plan), str(flow), str(scene)
    file_out = _text("a_file", "not a folder\n")
    case(
        "plan_velocity_scale_nan",
        ["plan", f, "--out", "{out}/p.npz", "--velocity-scale", "nan"],
        ["velocity_scale", "nan"],
    )
    case(
        "plan_velocity_scale_2",
        ["plan", f, "--out", "{out}/p.npz", "--velocity-scale", "2"],
        ["velocity_scale", "2"],
    )
    case(
        "plan_accel_scale_0", ["plan", f, "--out", "{out}/p.npz", "--accel-scale", "0"], ["accel_scale", "0"]
    )
    case(
        "plan_base_pose_nan",
        ["plan", f, "--out", "{out}/p.npz", "--base-pose", "nan", "0", "0", "1", "0", "0", "0"],
        ["base_pose"],
    )
    case("plan_geometry_unknown", ["plan", f, "--out", "{out}/p.npz", "--geometry", "points"], ["points"], 2)
    case("plan_out_unwritable", ["plan", f, "--out", "/proc/nope/p.npz"], ["/proc/nope"])
    case("plan_dt_negative", ["plan", f, "--out", "{out}/p.npz", "--dt", "-0.01"], ["dt", "-0.01"])
    case("real_slowdown_half", ["real", p, "--slowdown", "0.5"], ["slowdown", "0.5"])
    case("real_slowdown_nan", ["real", p, "--slowdown", "nan"], ["slowdown", "nan"])
    case("real_speed_scale_2", ["real", p, "--speed-scale", "2"], ["speed_scale", "2"])
    case("real_speed_scale_nan", ["real", p, "--speed-scale", "nan"], ["speed_scale", "nan"])
    case("real_table_z_nan", ["real", p, "--table-z", "nan"], ["table_z", "nan"])
    case(
        "real_workspace_inverted",
        ["real", p, "--workspace-min", "1", "1", "1", "--workspace-max", "0", "0", "0"],
        ["workspace"],
    )
    case("real_backend_unknown", ["real", p, "--backend", "kuka"], ["kuka"], 2)
    case("real_no_host", ["real", p, "--backend", "franka"], ["--host"])
    case("bench_workers_negative", ["bench", s, "--out", "{out}/b", "--workers", "-2"], ["workers", "-2"])
    case("bench_trials_zero", ["bench", s, "--out", "{out}/b", "--trials", "0"], ["trials", "0"])
    case(
        "bench_position_noise_nan",
        ["bench", s, "--out", "{out}/b", "--position-noise", "nan"],
        ["position_noise", "nan"],
    )
    case(
        "bench_friction_inverted",
        ["bench", s, "--out", "{out}/b", "--friction-range", "1", "0.5"],
        ["friction_range"],
    )
    case("sim_physics_hz_100", ["sim", p, "--scene", s, "--physics-hz", "100"], ["physics_hz", "100"])
    case("sim_physics_hz_inf", ["sim", p, "--scene", s, "--physics-hz", "inf"], ["physics_hz", "inf"])
    case("sim_substeps_zero", ["sim", p, "--scene", s, "--substeps", "0"], ["substeps", "0"])
    case("sim_mass_scale_negative", ["sim", p, "--scene", s, "--mass-scale", "-1"], ["mass_scale", "-1"])
    case("flow_device_tpu", ["flow", s, "--out", "{out}/run", "--device", "tpu:7"], ["device", "tpu:7"])
    case(
        "flow_iterations_negative",
        ["flow", s, "--out", "{out}/run", "--iterations", "-1"],
        ["iterations is -1"],
        2,
    )
    case("flow_out_is_a_file", ["flow", s, "--out", "{dir}/a_file"], ["a_file"], write=file_out)
    case("flow_resume_nothing", ["flow", "--resume", "{dir}/nowhere"], ["nowhere"])
    case("run_out_is_a_file", ["run", s, "--out", "{dir}/a_file"], ["a_file"], write=file_out)
    case("view_max_tracks_zero", ["view", "{dir}", "--max-tracks", "0"], ["max-tracks", "0"])
    case(
        "assets_resolution_zero",
        ["assets", "tasks", "--out", "{out}/t", "--resolution", "0x0"],
        ["resolution", "0x0"],
    )
    case(
        "assets_resolution_text",
        ["assets", "tasks", "--out", "{out}/t", "--resolution", "big"],
        ["resolution", "big"],
    )
    case(
        "assets_points_zero",
        ["assets", "tasks", "--out", "{out}/t", "--points-per-object", "0"],
        ["points_per_object", "0"],
    )
    case("assets_unknown_task", ["assets", "tasks", "--out", "{out}/t", "--only", "fly_kite"], ["fly_kite"])
    case("check_nothing", ["check"], ["give at least one file"])


# ---------------------------------------------------------------------------------------------


def build(scene: Path, flow: Path, plan: Path, wan: Path | None) -> Corpus:
    """Every case, given the valid scene, its flow, a plan made from it, and a tiny Wan folder."""
    corpus = Corpus()
    scene_cases(corpus, scene)
    flow_cases(corpus, scene, flow)
    plan_cases(corpus, scene, flow, plan)
    mesh_cases(corpus)
    parts_cases(corpus)
    if wan is not None:
        wan_cases(corpus, scene, wan)
    cli_cases(corpus, scene, flow, plan)
    return corpus


def write(corpus: Corpus, root: Path) -> list[Path]:
    """Write every case's inputs into ``root/<kind>/<name>/`` (and an empty ``out/``); returns the folders."""
    folders = []
    for case in corpus.cases:
        folder = root / case.kind / case.name
        folder.mkdir(parents=True)
        corpus.writers[(case.kind, case.name)](folder)
        folders.append(folder)
    (root / "cases.json").write_text(json.dumps([asdict(c) for c in corpus.cases], indent=1))
    return folders


def valid_inputs(root: Path, wan_folder: Path | None = None) -> tuple[Path, Path, Path, Path]:
    """The valid starting points, built under ``root``: scene, its reference flow, a plan, a tiny Wan
    folder (a copy of ``wan_folder``, an i2v-a14b folder of ``save_tiny_wan``'s defaults, when given:
    the tests' session already has one)."""
    from assets.tasks import build_task
    from planner.api import plan_file
    from sim.api import validate_plan
    from tests.flowgen.wan_tiny import save_tiny_wan

    scene, flow, plan, wan = valid_paths(root)
    build_task("pick_banana", scene.parent, points_per_object=1500)
    plan_file(flow, scene, plan)
    validate_plan(plan, scene, write_verdict=True)  # a validated plan: chord real's starting point
    if wan_folder is None:
        save_tiny_wan(wan, "i2v-a14b")
    else:
        shutil.copytree(wan_folder, wan)
    return scene, flow, plan, wan


def valid_paths(root: Path) -> tuple[Path, Path, Path, Path]:
    """Where :func:`valid_inputs` puts the scene, its reference flow, the plan and the Wan folder."""
    scene = root / "valid" / "pick_banana" / "scene.yaml"
    return scene, scene.parent / "reference" / "flow.npz", root / "valid" / "plan.npz", root / "valid" / "wan"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.hostile.make_hostile DIR", file=sys.stderr)
        return 2
    root = Path(argv[0])
    if root.exists() and any(root.iterdir()):
        print(f"{root} is not empty", file=sys.stderr)
        return 1
    corpus = build(*valid_inputs(root))
    write(corpus, root / "cases")
    counts = {k: sum(c.kind == k for c in corpus.cases) for k in KINDS}
    print(f"{len(corpus.cases)} cases in {root / 'cases'}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
