"""The scene spec: one human-editable YAML file describing a tabletop task.

It names the objects (a mesh file or digital-cousin parameters, a pose, movable or not), the
camera, the number of frames and the prompt. Relative paths resolve against the file's folder.
World frame: metres, z up, gravity along -z, the table top at ``table.height``.

Example (``chord check`` validates it)::

    schema: chord.scene
    version: 1
    name: pick_banana
    prompt: a hand picks up the banana
    frames: 41          # deformation frames (4k+1 for the Wan prior)
    fps: 16
    table: {height: 0.0}
    camera:
      width: 832        # pixels
      height: 464
      fov_y_deg: 40     # or fx, fy (and optionally cx, cy) in pixels
      look_at: {eye: [1.0, 0.0, 0.6], target: [0.5, 0.0, 0.05], up: [0, 0, 1]}
                        # or pose: {position: [...], quat_wxyz: [...]}, OpenCV axes
    objects:
      - name: banana
        mesh: meshes/banana.obj
        units: m        # units of the mesh file: m, cm or mm
        pose: {position: [0.5, 0.0, 0.0], quat_wxyz: [1, 0, 0, 0]}
        movable: true
    reference:          # optional ground truth
      flow: reference/flow.npz
      video: reference/video.mp4
      truth: reference/truth.npz   # per-frame object poses and joint values (core.truth)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.atomic import write_text_atomic
from core.contract import npz_schema, read_yaml_file
from core.errors import ContractError
from core.names import name_problem
from core.transforms import look_at, matrix_to_quat, pose_to_matrix

SCENE_SCHEMA = "chord.scene"
SCENE_VERSION = 1
MESH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
_QUAT_TOL = 1e-3

# -- plausible ranges ------------------------------------------------------------------------
# Written once here (docs/assets.md "Ranges" lists them); every refusal names the value and the
# range. They are deliberately wide: each one only refuses what cannot be a tabletop scene.
#
# Video models make 8-30 frames/s and 240 is a high-speed camera; below 1 frame/s the clip is a
# slideshow, not motion.
FPS_RANGE = (1.0, 240.0)  # frames per second
# flowgen keeps a deformation state per frame and renders every frame at each step; Wan 2.2
# takes 81 frames at most, and 1000 is 25x the default 41.
MAX_FRAMES = 1000
# (frames - 1) / fps: one manipulation clip (Wan 2.2 makes 5 s); a plan of minutes is a typo.
MAX_DURATION = 60.0  # seconds
# Renderers allocate width x height x frames: 41 float RGB frames at 4096^2 px are already 8 GB.
MAX_IMAGE_SIDE = 4096  # pixels, width and height each
# A pinhole camera's field of view along either image axis (as fov_y_deg, or from fx / fy).
FOV_RANGE_DEG = (1.0, 170.0)
# Near and far clipping distances of the renderers: below 0.1 mm depth precision is gone, and
# nothing on a table is 100 m from the camera.
CLIP_RANGE = (1e-4, 100.0)  # metres
# z of the table top: the world origin sits on the floor or on the table, and no table is 2 m tall
# (1e6 m is a unit slip).
TABLE_HEIGHT_RANGE = (-2.0, 2.0)  # metres
# Every object's origin within this horizontal distance of the world origin: a table is at most a
# few metres across, and no arm reaches further (a Franka reaches 0.86 m, a UR10e 1.3 m).
SCENE_RADIUS = 2.0  # metres
# The largest extent of a tabletop object (core.mesh and core.cousins refuse larger ones). An
# object's origin lies inside its bounds, so an origin further than this below the table top
# leaves the whole object under the table, and one further above leaves it in the air.
MAX_OBJECT_SIZE = 3.0  # metres
# The camera within this distance of the world origin: from further, a tabletop object covers a
# few pixels of any camera in FOV_RANGE_DEG.
CAMERA_RADIUS = 10.0  # metres
# Two object origins closer than this are the same pose: one object inside the other (a copied
# line in the scene file), which no simulator or renderer can resolve.
MIN_OBJECT_SEPARATION = 1e-3  # metres
# Joints of articulated objects (digital cousins, parts files): a hinge or knob turns at most a
# full turn either way from its rest; more is a slip (radians written as degrees, or 1e6).
MAX_REVOLUTE_DEG = 360.0
# Joint damping (N m s/rad, or N s/m) and friction (N m, or N): a Franka's joints give at most
# 87 N m, so a joint that resists more than 100 cannot be moved by any arm chord drives.
MAX_JOINT_DAMPING = 100.0
MAX_JOINT_FRICTION = 100.0
# Densities of solids, kg/m^3: below 1 is lighter than air (aerogel is ~1); above 22,600 is
# denser than osmium, the densest element.
DENSITY_RANGE = (1.0, 22_600.0)


@dataclass(frozen=True)
class Pose:
    """A rigid pose: ``T_parent_child`` as a position and a unit quaternion."""

    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # metres
    quat_wxyz: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # unit, (w, x, y, z)

    def matrix(self) -> np.ndarray:
        """[4, 4] homogeneous transform."""
        return pose_to_matrix(np.array(self.position), np.array(self.quat_wxyz))

    @classmethod
    def from_matrix(cls, T: np.ndarray) -> Pose:
        """From a [4, 4] homogeneous transform."""
        T = np.asarray(T, dtype=float)
        q = matrix_to_quat(T[:3, :3])
        return cls(tuple(float(v) for v in T[:3, 3]), tuple(float(v) for v in q))


@dataclass(frozen=True)
class Camera:
    """A pinhole camera; ``T_world_cam`` uses OpenCV axes (x right, y down, z forward)."""

    fx: float  # focal length, pixels
    fy: float  # focal length, pixels
    cx: float  # principal point, pixels from the left edge
    cy: float  # principal point, pixels from the top edge
    T_world_cam: Pose  # camera pose in the world frame
    width: int = 832  # pixels (Wan 2.2's default)
    height: int = 464  # pixels
    near: float = 0.01  # metres, near clipping distance for renderers
    far: float = 10.0  # metres, far clipping distance

    @classmethod
    def from_look_at(
        cls,
        eye: tuple[float, float, float],
        target: tuple[float, float, float],
        up: tuple[float, float, float] = (0.0, 0.0, 1.0),
        fov_y_deg: float = 40.0,
        width: int = 832,
        height: int = 464,
    ) -> Camera:
        """A camera at ``eye`` (world metres) looking at ``target`` with vertical field of view."""
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        pose = Pose.from_matrix(look_at(np.array(eye), np.array(target), np.array(up)))
        return cls(f, f, width / 2, height / 2, pose, width, height)

    def resized(self, width: int, height: int) -> Camera:
        """The same camera rendering ``width`` x ``height`` pixels: intrinsics scaled per axis.

        Scaling continuous pixel coordinates keeps pixel edges on edges (centres stay at +0.5).
        Raises ValueError for a non-positive size.
        """
        for key, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Camera.resized: {key} is {v!r}, expected a positive integer (pixels)")
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
            width=width, height=height,
        )  # fmt: skip

    def K(self) -> np.ndarray:
        """[3, 3] intrinsic matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "near": self.near,
            "far": self.far,
            "pose": _pose_dict(self.T_world_cam),
        }


@dataclass(frozen=True)
class SceneObject:
    """One object on the table: a mesh file, digital-cousin parameters, or both.

    With both, ``mesh`` was generated from ``cousin`` (``chord assets``) and the parameters are
    kept as a record of the measurements.
    """

    name: str  # unique in the scene; letters, digits, _ . -
    pose: Pose  # T_world_obj
    mesh: Path | None = None  # mesh file (OBJ, PLY, GLB/GLTF, STL)
    cousin: dict[str, Any] | None = None  # digital-cousin parameters, {"kind": ..., ...}
    urdf: Path | None = None  # simulator model, if built
    movable: bool = True  # whether the prompt may move it
    units: str = "m"  # units of the mesh file: m, cm or mm


@dataclass(frozen=True)
class Reference:
    """Ground truth for a task scene, when known."""

    flow: Path | None = None  # flow.npz of the reference motion
    video: Path | None = None  # reference video: .mp4 or a folder of PNG frames
    truth: Path | None = None  # truth.npz: per-frame object poses and joint values (chord.truth)


@dataclass(frozen=True)
class Scene:
    """A tabletop task: objects, camera, frames and prompt."""

    name: str
    prompt: str
    objects: tuple[SceneObject, ...]
    camera: Camera
    frames: int = 41  # number of deformation frames T
    fps: float = 16.0  # frames per second of the motion
    table_height: float = 0.0  # z of the table top, world metres
    negative_prompt: str = ""
    reference: Reference | None = None
    path: Path | None = field(default=None, compare=False)  # file it was loaded from

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        _check_scene(self, self.path)

    def object(self, name: str) -> SceneObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"no object {name!r} in scene {self.name!r}; it has {self.object_names}")

    @property
    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    @property
    def movable_objects(self) -> list[SceneObject]:
        return [o for o in self.objects if o.movable]

    # -- file contract --------------------------------------------------------------------
    def to_dict(self, base_dir: Path | None = None) -> dict[str, Any]:
        """The YAML document; paths are written relative to ``base_dir`` where possible."""

        def rel(p: Path | None) -> str | None:
            if p is None:
                return None
            if base_dir is not None:
                try:
                    return Path(p).resolve().relative_to(Path(base_dir).resolve()).as_posix()
                except ValueError:
                    pass
            return str(p)

        objects = []
        for o in self.objects:
            d: dict[str, Any] = {"name": o.name}
            if o.mesh is not None:
                d["mesh"] = rel(o.mesh)
                d["units"] = o.units
            if o.cousin is not None:
                d["cousin"] = dict(o.cousin)
            if o.urdf is not None:
                d["urdf"] = rel(o.urdf)
            d["pose"] = _pose_dict(o.pose)
            d["movable"] = o.movable
            objects.append(d)
        doc: dict[str, Any] = {
            "schema": SCENE_SCHEMA,
            "version": SCENE_VERSION,
            "name": self.name,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "frames": self.frames,
            "fps": self.fps,
            "table": {"height": self.table_height},
            "camera": self.camera.to_dict(),
            "objects": objects,
        }
        if self.reference is not None:
            ref = self.reference
            doc["reference"] = {
                k: rel(v) for k, v in (("flow", ref.flow), ("video", ref.video), ("truth", ref.truth)) if v
            }
        return doc

    def save(self, path: str | Path) -> Path:
        """Write the scene as YAML atomically, with paths relative to its folder."""
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(path.parent), sort_keys=False, default_flow_style=None)
        write_text_atomic(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path, *, check_files: bool = True) -> Scene:
        """Read and validate a scene file; relative paths resolve against its folder.

        With ``check_files`` (the default), every referenced mesh, URDF and reference file must
        exist. Raises ContractError naming the field and the value.
        """
        path = Path(path)
        if not path.is_file():
            raise ContractError("file", "does not exist" if not path.exists() else "is not a file", path)
        # Size and nesting checked (core.contract): a scene is a few kB, 5 levels deep.
        doc = read_yaml_file(path, what="a scene file")
        scene = cls.from_dict(doc, base_dir=path.parent, path=path)
        if check_files:
            scene.check_files()
        return scene

    @classmethod
    def from_dict(cls, doc: Any, base_dir: Path, path: Path | None = None) -> Scene:
        """Build a scene from its YAML document (see the module docstring)."""
        return _parse_scene(doc, Path(base_dir), path)

    def check_files(self) -> None:
        """Raise ContractError for a referenced file that does not exist or is of the wrong kind.

        Meshes and URDFs must be files; the reference flow must be a ``chord.flow`` .npz archive
        (its meta is read, not its arrays: ``ObjectFlow.load`` checks those); the reference
        video a file or a folder of frames.
        """
        for i, o in enumerate(self.objects):
            for key in ("mesh", "urdf"):
                p = getattr(o, key)
                if p is not None:
                    _check_file(Path(p), f"objects[{i}].{key}", self.path)
        if self.reference is not None:
            for key, schema in (("flow", "chord.flow"), ("truth", "chord.truth")):
                p = getattr(self.reference, key)
                if p is not None:
                    _check_file(Path(p), f"reference.{key}", self.path)
                    _check_reference_npz(Path(p), f"reference.{key}", schema, self.path)
            video = self.reference.video
            if video is not None and not Path(video).exists():
                raise ContractError("reference.video", f"file {str(video)!r} does not exist", self.path)

    def with_objects(self, objects: list[SceneObject]) -> Scene:
        return replace(self, objects=tuple(objects))


def _check_file(p: Path, field_name: str, path: Path | None) -> None:
    if not p.exists():
        raise ContractError(field_name, f"file {str(p)!r} does not exist", path)
    if not p.is_file():
        raise ContractError(field_name, f"{str(p)!r} is a folder, expected a file", path)


# The first bytes of a zip archive (an .npz is one): a local file header, or an empty archive.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


_WRITERS = {"chord.flow": "ObjectFlow.save", "chord.truth": "Truth.save"}  # for the messages


def _check_reference_npz(p: Path, key: str, expected: str, path: Path | None) -> None:
    """A reference file (``reference.flow``, ``reference.truth``) is a chord .npz archive whose
    meta names the ``expected`` schema.

    Checked by content, before any work, so a YAML or pickle file named flow.npz is refused
    with what it is rather than failing after an optimisation (numpy reads a file that is not a
    zip as a pickle, and says so).
    """
    with open(p, "rb") as f:
        head = f.read(64)
    if not head.startswith(_ZIP_MAGIC):
        raise ContractError(
            key,
            f"{str(p)!r} is not a {expected} .npz archive: its content starts with {_show(head[:24])}, "
            f"expected a zip archive (write one with {_WRITERS[expected]})",
            path,
        )
    try:
        schema = npz_schema(p)
    except ContractError as e:
        raise ContractError(key, f"{str(p)!r}: {e}", path) from e
    if schema != expected:
        raise ContractError(key, f"{str(p)!r} holds meta.schema {_show(schema)}, expected {expected!r}", path)


def _pose_dict(p: Pose) -> dict[str, list[float]]:
    return {"position": [float(v) for v in p.position], "quat_wxyz": [float(v) for v in p.quat_wxyz]}


# -- parsing ------------------------------------------------------------------------------
class _Doc:
    """Reads one mapping of the YAML document, naming fields by their full dotted path."""

    def __init__(self, value: Any, where: str, path: Path | None):
        self.where, self.path = where, path
        if not isinstance(value, dict):
            raise self.fail("", f"expected a mapping, got {_show(value)}")
        self.value = value

    def fail(self, key: str, message: str) -> ContractError:
        field_name = ".".join(p for p in (self.where, key) if p) or "document"
        return ContractError(field_name, message, self.path)

    def only(self, *allowed: str) -> None:
        unknown = [k for k in self.value if k not in allowed]
        if unknown:
            raise self.fail(str(unknown[0]), f"unknown key; expected one of {list(allowed)}")

    def has(self, key: str) -> bool:
        return self.value.get(key) is not None

    def get(self, key: str, default: Any = ..., *, required: bool = False) -> Any:
        if key not in self.value or self.value[key] is None:
            if required or default is ...:
                raise self.fail(key, "missing")
            return default
        return self.value[key]

    def sub(self, key: str) -> _Doc:
        return _Doc(self.get(key, required=True), ".".join(p for p in (self.where, key) if p), self.path)

    def string(self, key: str, default: Any = ..., *, nonempty: bool = False) -> str:
        v = self.get(key, default)
        if not isinstance(v, str):
            raise self.fail(key, f"is {_show(v)}, expected a string")
        if nonempty and not v.strip():
            raise self.fail(key, "is empty, expected a non-empty string")
        return v

    def number(self, key: str, default: Any = ..., *, positive: bool = False) -> float:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(key, f"is {_show(v)}, expected a finite number")
        if positive and v <= 0:
            raise self.fail(key, f"is {v!r}, expected a positive number")
        return float(v)

    def integer(self, key: str, default: Any = ..., *, minimum: int | None = None) -> int:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"is {_show(v)}, expected an integer")
        if minimum is not None and v < minimum:
            raise self.fail(key, f"is {v}, expected at least {minimum}")
        return v

    def boolean(self, key: str, default: Any = ...) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, f"is {_show(v)}, expected true or false")
        return v

    def vector(self, key: str, n: int, default: Any = ...) -> tuple[float, ...]:
        v = self.get(key, default)
        ok = isinstance(v, (list, tuple)) and len(v) == n
        ok = ok and all(not isinstance(x, bool) and isinstance(x, (int, float)) for x in v)
        if not ok or not all(math.isfinite(x) for x in v):
            raise self.fail(key, f"is {_show(v)}, expected a list of {n} finite numbers")
        return tuple(float(x) for x in v)

    def file(self, key: str, base_dir: Path) -> Path | None:
        if not self.has(key):
            return None
        p = Path(self.string(key, nonempty=True)).expanduser()
        return p if p.is_absolute() else (base_dir / p)


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _parse_pose(d: _Doc) -> Pose:
    d.only("position", "quat_wxyz")
    position = d.vector("position", 3, (0.0, 0.0, 0.0))
    q = d.vector("quat_wxyz", 4, (1.0, 0.0, 0.0, 0.0))
    norm = math.sqrt(sum(x * x for x in q))
    if abs(norm - 1.0) > _QUAT_TOL:
        raise d.fail("quat_wxyz", f"{list(q)} has norm {norm:.4g}; expected a unit quaternion (w, x, y, z)")
    return Pose(position, q)


def _parse_camera(d: _Doc) -> Camera:
    d.only("width", "height", "fov_y_deg", "fx", "fy", "cx", "cy", "look_at", "pose", "near", "far")
    width = d.integer("width", 832, minimum=1)
    height = d.integer("height", 464, minimum=1)
    if d.has("fov_y_deg") == d.has("fx"):
        raise d.fail("fov_y_deg", "give either fov_y_deg or fx/fy (pixels), not both or neither")
    if d.has("fov_y_deg"):
        fov = d.number("fov_y_deg")
        if not FOV_RANGE_DEG[0] <= fov <= FOV_RANGE_DEG[1]:
            raise d.fail(
                "fov_y_deg",
                f"is {fov}, expected degrees between {FOV_RANGE_DEG[0]:g} and {FOV_RANGE_DEG[1]:g}",
            )
        fx = fy = 0.5 * height / math.tan(math.radians(fov) / 2)
    else:
        fx = d.number("fx", positive=True)
        fy = d.number("fy", positive=True)
    cx = d.number("cx", width / 2)
    cy = d.number("cy", height / 2)
    if d.has("look_at") == d.has("pose"):
        raise d.fail("look_at", "give either look_at {eye, target, up} or pose {position, quat_wxyz}")
    if d.has("look_at"):
        la = d.sub("look_at")
        la.only("eye", "target", "up")
        eye, target = la.vector("eye", 3), la.vector("target", 3)
        up = la.vector("up", 3, (0.0, 0.0, 1.0))
        try:
            pose = Pose.from_matrix(look_at(np.array(eye), np.array(target), np.array(up)))
        except ValueError as e:
            raise la.fail("", str(e)) from e
    else:
        pose = _parse_pose(d.sub("pose"))
    near = d.number("near", 0.01, positive=True)
    far = d.number("far", 10.0, positive=True)
    if far <= near:
        raise d.fail("far", f"is {far}, expected more than near={near}")
    return Camera(fx, fy, cx, cy, pose, width, height, near, far)


def _parse_object(d: _Doc, base_dir: Path) -> SceneObject:
    d.only("name", "mesh", "cousin", "urdf", "pose", "movable", "units")
    name = d.string("name", nonempty=True)
    problem = name_problem(name)  # object names become paths (assets/<name>/, ...)
    if problem is not None:
        raise d.fail("name", f"is {name!r}: {problem}")
    if not (d.has("mesh") or d.has("cousin")):
        raise d.fail("mesh", "missing: give mesh (a file), cousin (measured dimensions), or both")
    cousin = None
    if d.has("cousin"):
        c = d.sub("cousin")
        c.string("kind", nonempty=True)
        cousin = dict(c.value)
    units = d.string("units", "m")
    if units not in MESH_UNITS:
        raise d.fail("units", f"is {units!r}, expected one of {list(MESH_UNITS)}")
    pose = _parse_pose(d.sub("pose")) if d.has("pose") else Pose()
    return SceneObject(
        name=name,
        pose=pose,
        mesh=d.file("mesh", base_dir),
        cousin=cousin,
        urdf=d.file("urdf", base_dir),
        movable=d.boolean("movable", True),
        units=units,
    )


def _parse_scene(doc: Any, base_dir: Path, path: Path | None) -> Scene:
    d = _Doc(doc, "", path)
    d.only(
        "schema", "version", "name", "prompt", "negative_prompt", "frames", "fps", "table",
        "camera", "objects", "reference",
    )  # fmt: skip
    if d.get("schema", None) != SCENE_SCHEMA:
        raise d.fail("schema", f"is {_show(d.get('schema', None))}, expected {SCENE_SCHEMA!r}")
    version = d.get("version", None)
    if version != SCENE_VERSION or isinstance(version, bool):
        raise d.fail(
            "version", f"is {_show(version)}; this reader knows {SCENE_SCHEMA} version {SCENE_VERSION}"
        )
    table_height = 0.0
    if d.has("table"):
        t = d.sub("table")
        t.only("height")
        table_height = t.number("height", 0.0)
    raw_objects = d.get("objects", required=True)
    if not isinstance(raw_objects, list) or not raw_objects:
        raise d.fail("objects", f"is {_show(raw_objects)}, expected a non-empty list of objects")
    objects = [_parse_object(_Doc(o, f"objects[{i}]", path), base_dir) for i, o in enumerate(raw_objects)]
    reference = None
    if d.has("reference"):
        r = d.sub("reference")
        r.only("flow", "video", "truth")
        reference = Reference(
            flow=r.file("flow", base_dir), video=r.file("video", base_dir), truth=r.file("truth", base_dir)
        )
    return Scene(
        name=d.string("name", nonempty=True),
        prompt=d.string("prompt", nonempty=True),
        negative_prompt=d.string("negative_prompt", ""),
        frames=d.integer("frames", 41, minimum=2),
        fps=d.number("fps", 16.0, positive=True),
        table_height=table_height,
        camera=_parse_camera(d.sub("camera")),
        objects=tuple(objects),
        reference=reference,
        path=path,
    )


def _check_scene(scene: Scene, path: Path | None) -> None:
    """Whole-scene checks that hold however the scene was built: types, then the plausible ranges
    (module constants above) and consistency between objects and camera. Raises ContractError
    naming the field, the value and the expected range."""

    def fail(field_name: str, message: str) -> ContractError:
        return ContractError(field_name, message, path)

    # The scene's and the objects' names become file and folder names (OUT/flows/<scene>/,
    # assets/<object>/): one rule, core.names, keeps them inside their folders.
    for key, value in (
        ("name", scene.name),
        *((f"objects[{i}].name", o.name) for i, o in enumerate(scene.objects)),
    ):
        problem = name_problem(value)
        if problem is not None:
            raise fail(key, f"is {value!r}: {problem}")
    names = [o.name for o in scene.objects]
    if not names:
        raise fail("objects", "is empty, expected at least one object")
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise fail(f"objects[{i}].name", f"{n!r} is used twice; names must be unique")
        seen.add(n)
    if isinstance(scene.frames, bool) or not isinstance(scene.frames, int) or scene.frames < 2:
        raise fail("frames", f"is {scene.frames!r}, expected an integer >= 2")
    if scene.frames > MAX_FRAMES:
        raise fail("frames", f"is {scene.frames}, expected 2 to {MAX_FRAMES} frames")
    if not _finite(scene.fps) or not FPS_RANGE[0] <= scene.fps <= FPS_RANGE[1]:
        raise fail(
            "fps", f"is {scene.fps!r}, expected {FPS_RANGE[0]:g} to {FPS_RANGE[1]:g} frames per second"
        )
    duration = (scene.frames - 1) / scene.fps
    if duration > MAX_DURATION:
        raise fail(
            "frames",
            f"{scene.frames} frames at {scene.fps:g} fps span {duration:.4g} s, expected at most "
            f"{MAX_DURATION:g} s of motion (fewer frames or a higher fps)",
        )
    lo, hi = TABLE_HEIGHT_RANGE
    if not _finite(scene.table_height) or not lo <= scene.table_height <= hi:
        raise fail("table.height", f"is {scene.table_height!r}, expected {lo:g} to {hi:g} m")
    _check_camera(scene.camera, fail)
    _check_poses(scene, fail)


def _finite(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _check_camera(cam: Camera, fail: Any) -> None:
    """Pixel size, intrinsics and pose of the camera within their ranges."""
    for key in ("width", "height"):
        v = getattr(cam, key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise fail(f"camera.{key}", f"is {v!r}, expected a positive integer (pixels)")
        if v > MAX_IMAGE_SIDE:
            raise fail(f"camera.{key}", f"is {v} px, expected 1 to {MAX_IMAGE_SIDE} px")
    for key, size in (("fx", cam.width), ("fy", cam.height)):
        f = getattr(cam, key)
        if not _finite(f) or f <= 0:
            raise fail(f"camera.{key}", f"is {f!r}, expected a positive focal length in pixels")
        fov = math.degrees(2 * math.atan(0.5 * size / f))
        if not FOV_RANGE_DEG[0] <= fov <= FOV_RANGE_DEG[1]:
            raise fail(
                f"camera.{key}",
                f"is {f:.6g} px, a field of view of {fov:.4g} deg over {size} px; expected "
                f"{FOV_RANGE_DEG[0]:g} to {FOV_RANGE_DEG[1]:g} deg",
            )
    for key, size in (("cx", cam.width), ("cy", cam.height)):
        c = getattr(cam, key)
        if not _finite(c) or not 0 <= c <= size:
            raise fail(
                f"camera.{key}", f"is {c!r}, expected a principal point inside the image, 0 to {size} px"
            )
    for key in ("near", "far"):
        v = getattr(cam, key)
        if not _finite(v) or not CLIP_RANGE[0] <= v <= CLIP_RANGE[1]:
            raise fail(f"camera.{key}", f"is {v!r}, expected {CLIP_RANGE[0]:g} to {CLIP_RANGE[1]:g} m")
    if cam.far <= cam.near:
        raise fail("camera.far", f"is {cam.far}, expected more than near={cam.near}")
    eye = np.asarray(cam.T_world_cam.position, dtype=float)
    if not np.isfinite(eye).all() or float(np.linalg.norm(eye)) > CAMERA_RADIUS:
        raise fail(
            "camera.position",
            f"is {[round(float(v), 6) for v in eye]}, {float(np.linalg.norm(eye)):.4g} m from the world "
            f"origin; expected within {CAMERA_RADIUS:g} m",
        )


def _check_poses(scene: Scene, fail: Any) -> None:
    """Every object's origin on the table (within the ranges) and no two at the same place."""
    positions = []
    for i, o in enumerate(scene.objects):
        p = np.asarray(o.pose.position, dtype=float)
        where = f"objects[{i}].pose.position"
        if p.shape != (3,) or not np.isfinite(p).all():
            raise fail(where, f"is {list(o.pose.position)!r}, expected 3 finite numbers (m)")
        shown = [round(float(v), 6) for v in p]
        radius = float(np.hypot(p[0], p[1]))
        if radius > SCENE_RADIUS:
            raise fail(
                where,
                f"is {shown}: {o.name!r} is {radius:.4g} m from the world origin along the table, "
                f"expected within {SCENE_RADIUS:g} m",
            )
        dz = float(p[2] - scene.table_height)
        if not -MAX_OBJECT_SIZE <= dz <= MAX_OBJECT_SIZE:
            side = "under" if dz < 0 else "above"
            raise fail(
                where,
                f"is {shown}: {o.name!r} is {abs(dz):.4g} m {side} the table top (z={scene.table_height:g}), "
                f"expected within {MAX_OBJECT_SIZE:g} m of it (an object is at most {MAX_OBJECT_SIZE:g} m across)",
            )
        for j, q in enumerate(positions):
            gap = float(np.linalg.norm(p - q))
            if gap < MIN_OBJECT_SEPARATION:
                raise fail(
                    where,
                    f"is {shown}, {1000 * gap:.3g} mm from objects[{j}] {scene.objects[j].name!r}: two "
                    f"objects at the same place; expected origins at least {1000 * MIN_OBJECT_SEPARATION:g} mm apart",
                )
        positions.append(p)
