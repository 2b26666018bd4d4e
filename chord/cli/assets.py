"""``chord assets ...``: build digital cousins, take in scans, and write the task scenes.

Registered as one entry ("assets") in chord/cli/main.py; this module dispatches its own nested
subcommands. Heavy parts (PyBullet, open3d) are imported when a command runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Union

import tyro

from assets.config import (
    SUITE_FRAMES,
    SUITE_PER_CATEGORY,
    SUITE_POINTS_PER_OBJECT,
    SUITE_RESOLUTION,
    IntakeConfig,
    RecordingConfig,
)
from core.asset import DEFAULT_DENSITY
from core.cousin_params import (
    COUSIN_KINDS,
    BananaParams,
    BoxParams,
    CylinderParams,
    LampParams,
    LaptopParams,
)

log = logging.getLogger(__name__)


# One flat dataclass per kind (the measurements plus the output options) so that every flag
# follows the kind on the command line: `chord assets cousin banana --length 0.19 --out DIR`.
@dataclass(frozen=True)
class BananaCommand(BananaParams):
    """A banana lying on its side, bent in the table plane (length tip to tip, curvature, thickness)."""

    out: Path = Path("assets/banana")  # output folder (replaced if it holds an asset)
    name: str = "banana"  # asset name (URDF robot name)


@dataclass(frozen=True)
class LampCommand(LampParams):
    """A desk lamp: base, lower and upper arm, conical head; revolute joints about y with limits."""

    out: Path = Path("assets/lamp")  # output folder (replaced if it holds an asset)
    name: str = "lamp"  # asset name (URDF robot name)


@dataclass(frozen=True)
class LaptopCommand(LaptopParams):
    """A laptop: base and lid on a hinge at the back edge, open at opening_deg."""

    out: Path = Path("assets/laptop")  # output folder (replaced if it holds an asset)
    name: str = "laptop"  # asset name (URDF robot name)


@dataclass(frozen=True)
class BoxCommand(BoxParams):
    """A box standing on the table (a book, a block)."""

    out: Path = Path("assets/box")  # output folder (replaced if it holds an asset)
    name: str = "box"  # asset name (URDF robot name)


@dataclass(frozen=True)
class CylinderCommand(CylinderParams):
    """An upright solid cylinder (a mug, a can)."""

    out: Path = Path("assets/cylinder")  # output folder (replaced if it holds an asset)
    name: str = "cylinder"  # asset name (URDF robot name)


_COUSIN_COMMANDS: dict[str, tuple[type, type]] = {
    "banana": (BananaCommand, BananaParams),
    "lamp": (LampCommand, LampParams),
    "laptop": (LaptopCommand, LaptopParams),
    "box": (BoxCommand, BoxParams),
    "cylinder": (CylinderCommand, CylinderParams),
}
assert set(_COUSIN_COMMANDS) == set(COUSIN_KINDS)

CousinKind = Union[  # noqa: UP007 (tyro needs a runtime Union of Annotated members)
    tuple(Annotated[c, tyro.conf.subcommand(k, prefix_name=False)] for k, (c, _) in _COUSIN_COMMANDS.items())
]


@dataclass(frozen=True)
class Cousin:
    """Build a digital cousin from measured dimensions: mesh.ply, model.urdf, asset.json.

    Examples::

      chord assets cousin banana --length 0.19 --curvature 6 --thickness 0.036 --out assets/banana
      chord assets cousin laptop --width 0.32 --depth 0.22 --opening-deg 100 --out assets/laptop
      chord assets cousin lamp --lower-arm-length 0.3 --head-limits-deg -45 120 --out assets/lamp
    """

    kind: tyro.conf.OmitArgPrefixes[CousinKind]  # type: ignore[valid-type]


@dataclass(frozen=True)
class Intake:
    """Take in a scanned mesh (OBJ/PLY/GLB): clean it, stand it on the table, write mesh + rigid URDF.

    Examples::

      chord assets intake scan.glb --out assets/mug            (units and up guessed)
      chord assets intake duck.obj --scale 0.05 --up +y --out assets/duck
    """

    scan: tyro.conf.Positional[Path]  # the mesh file
    out: Path = Path("assets/scan")  # output folder (replaced if it holds an asset)
    name: str | None = None  # asset name (default: the file's stem)
    # units, scale, up axis, table removal, decimation, density, ... (assets.intake.IntakeConfig)
    config: tyro.conf.OmitArgPrefixes[IntakeConfig] = IntakeConfig()  # type: ignore[valid-type]


@dataclass(frozen=True)
class Parts:
    """Build an articulated asset from a scan split into pieces, listed in a YAML parts file.

    The parts file names each piece's mesh and the joints between them (origin, axis, limits in
    the scan's frame); docs/assets.md has a complete example.

    Examples::

      chord assets parts laptop_parts.yaml --out assets/laptop_scan
    """

    spec: tyro.conf.Positional[Path]  # the parts file (YAML)
    out: Path = Path("assets/parts")  # output folder (replaced if it holds an asset)
    density: float = DEFAULT_DENSITY  # kg/m^3


@dataclass(frozen=True)
class Tasks:
    """Write the three task scenes (pick banana, lower lamp, close laptop) with reference flow and video.

    Each scene folder holds scene.yaml, assets/, and reference/ (flow.npz, video.mp4, frames/,
    masks.npz, motion.json). Takes a few seconds at 208x116.

    Examples::

      chord assets tasks --out scenes
      chord assets tasks --out scenes --resolution 832x464 --only pick_banana
    """

    out: Path = Path("scenes")  # parent folder; one sub-folder per task
    resolution: str = "208x116"  # reference video WIDTHxHEIGHT (the scene camera is 832x464)
    points_per_object: int = 4000  # flow points sampled on each object
    only: tuple[str, ...] = ()  # task names to build (default: all)


@dataclass(frozen=True)
class ImportRgbd:
    """Import an RGB-D recording into a scene's reference: frames, depth and automatic per-object masks.

    RECORDING holds camera.yaml (width, height, fx, fy, cx, cy, world_from_camera), frames/
    (PNG/JPG) or video.mp4, and depth/ (16-bit PNG in mm, or .npy in m), one per frame. --scene
    gives the objects' meshes and their poses at frame 0. The masks come from the meshes tracked
    through the depth (ICP), never from a simulator; docs/assets.md has the details.

    Examples::

      chord assets import-rgbd my_recording --scene my_scene.yaml --out scenes/mine
      chord flow scenes/mine/scene.yaml --out runs/mine
    """

    recording: tyro.conf.Positional[Path]  # the recording folder
    scene: Path  # scene.yaml naming the objects (meshes) and their poses at frame 0
    out: Path = Path("scenes/recording")  # the scene folder to write (replaced if it holds a scene)
    # depth tolerance, table plane fit, ICP, warning level, fps (assets.config.RecordingConfig)
    config: tyro.conf.OmitArgPrefixes[RecordingConfig] = RecordingConfig()  # type: ignore[valid-type]


@dataclass(frozen=True)
class Suite:
    """Write the code-made task suite: tasks drawn from documented ranges, split train/test.

    Seven categories (rigid, slide, lid, door, drawer, knob, chain), per_category tasks each;
    one task in three of each category is a test task (docs/assets.md "Task suite"). Each task
    folder holds scene.yaml, task.json, assets/ and reference/ (flow.npz, truth.npz, video.mp4,
    frames/, masks.npz, depth.npz); out/suite.json lists the tasks and their split.

    Examples::

      chord assets suite --out suite
      chord assets suite --out suite --split test --only door drawer --limit 1
    """

    out: Path = Path("suite")  # the suite's folder; one sub-folder per task
    split: str = "all"  # train, test or all
    only: tuple[str, ...] = ()  # categories to build (default: all)
    limit: int | None = None  # at most this many tasks of each category
    per_category: int = SUITE_PER_CATEGORY  # tasks (seeds) per category in the suite
    # reference video WIDTHxHEIGHT (the scene camera is 832x464)
    resolution: str = "{}x{}".format(*SUITE_RESOLUTION)
    points_per_object: int = SUITE_POINTS_PER_OBJECT  # flow points sampled on each object
    frames: int = SUITE_FRAMES  # frames of each reference clip


Command = Union[  # noqa: UP007
    Annotated[Cousin, tyro.conf.subcommand("cousin", prefix_name=False)],
    Annotated[Intake, tyro.conf.subcommand("intake", prefix_name=False)],
    Annotated[Parts, tyro.conf.subcommand("parts", prefix_name=False)],
    Annotated[Tasks, tyro.conf.subcommand("tasks", prefix_name=False)],
    Annotated[ImportRgbd, tyro.conf.subcommand("import-rgbd", prefix_name=False)],
    Annotated[Suite, tyro.conf.subcommand("suite", prefix_name=False)],
]


def assets(command: tyro.conf.OmitArgPrefixes[Command]) -> None:  # type: ignore[valid-type]
    """Build object assets and scenes: digital cousins, scan intake, task scenes, RGB-D recordings.

    Every asset folder holds mesh.ply (flowgen's static snapshot, vertex colours), model.urdf
    (mass/inertia from the mesh, convex collision pieces, joint limits and damping; joint value 0 is
    the rest pose of mesh.ply) and asset.json.

    Example: chord assets tasks --out scenes

    More examples::

      chord assets cousin banana --length 0.19 --curvature 6 --thickness 0.036 --out assets/banana
      chord assets intake scan.ply --units mm --out assets/mug
      chord assets parts laptop_parts.yaml --out assets/laptop_scan
      chord assets tasks --out scenes
      chord assets import-rgbd my_recording --scene my_scene.yaml --out scenes/mine
      chord assets suite --out suite --split test
    """
    from core.names import check_output_dir

    # The output folder first: a file given as --out, or an unwritable place, fails before the work.
    out = command.kind.out if isinstance(command, Cousin) else command.out
    check_output_dir(out, "--out")
    if isinstance(command, Cousin):
        _cousin(command.kind)
    elif isinstance(command, Intake):
        _intake(command)
    elif isinstance(command, Parts):
        _parts(command)
    elif isinstance(command, Tasks):
        _tasks(command)
    elif isinstance(command, ImportRgbd):
        _import_rgbd(command)
    elif isinstance(command, Suite):
        _suite(command)
    else:  # pragma: no cover - tyro only builds the members of Command
        raise TypeError(f"unknown assets command {command!r}")


def _cousin(cmd: Any) -> None:
    from assets.urdf import write_asset
    from core.cousins import build_cousin

    params_cls = next(p for c, p in _COUSIN_COMMANDS.values() if isinstance(cmd, c))
    params = params_cls(**{f.name: getattr(cmd, f.name) for f in fields(params_cls)})
    asset = build_cousin(params, cmd.name)
    files = write_asset(asset, cmd.out)
    _summary(files)


def _intake(cmd: Intake) -> None:
    from assets.intake import intake_scan
    from assets.urdf import write_asset

    asset, report = intake_scan(cmd.scan, cmd.config, cmd.name)
    print(
        f"{cmd.scan}: scale {report.scale:g} m/unit ({report.units}), table {'found' if report.table_found else 'not found'}, "
        f"{report.components_kept} piece(s) kept, {report.components_dropped} dropped, "
        f"{report.faces_in} -> {report.faces_out} faces, {'closed' if report.watertight else 'open (partial scan)'}"
    )
    if report.tipped_deg > 0:
        print(
            f"  tipped {report.tipped_deg:.1f} deg into its nearest resting pose (--no-settle keeps the file's pose)"
        )
    rows = "; ".join(" ".join(f"{v:.6g}" for v in row) for row in report.T_asset_file[:3])
    print(
        f"  file -> asset transform (rows, file units -> m; also in asset.json params.T_asset_file): {rows}"
    )
    _summary(write_asset(asset, cmd.out))


def _parts(cmd: Parts) -> None:
    from assets.intake import intake_parts
    from assets.urdf import write_asset

    _summary(write_asset(intake_parts(cmd.spec, cmd.density), cmd.out))


def _tasks(cmd: Tasks) -> None:
    from assets.tasks import TASKS, build_task, parse_resolution
    from core.errors import ChordError

    resolution = parse_resolution(cmd.resolution)
    names = list(cmd.only) or list(TASKS)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ChordError(f"--only: task {unknown[0]!r} is unknown; expected some of {sorted(TASKS)}")
    for name in names:
        scene = build_task(name, cmd.out / name, resolution, cmd.points_per_object)
        print(f"{scene}: written (reference video {cmd.resolution})")


def _import_rgbd(cmd: ImportRgbd) -> None:
    import sys

    import numpy as np

    from assets.recording import import_recording

    r = import_recording(cmd.recording, cmd.scene, cmd.out, cmd.config)
    table = (
        "no table plane found"
        if r.table is None
        else f"table plane z={r.table.height:.3f} m, tilt {r.table.tilt_deg:.1f} deg"
    )
    print(f"{r.scene}: {r.frames} frames {r.width}x{r.height}, {table}")
    for tr in r.tracks:
        seen = tr.agreement[np.isfinite(tr.agreement)]
        agree = f"min {seen.min():.2f}, mean {seen.mean():.2f}" if seen.size else "never in view"
        mm, deg = tr.first_correction
        print(
            f"  {tr.name}: mask agrees with depth {agree} over {seen.size} frame(s); "
            f"frame-0 pose refined by {mm:.1f} mm, {deg:.1f} deg"
            + (f"; lost in {len(tr.lost)} frame(s)" if tr.lost else "")
        )
    print(
        f"  per-frame agreement, mask sizes and tracked poses: {r.scene.parent / 'reference' / 'import.json'}"
    )
    for w in r.warnings:
        print(f"warning: {w}", file=sys.stderr)


def _suite(cmd: Suite) -> None:
    from assets.suite import SuiteConfig, build_suite
    from assets.tasks import parse_resolution

    config = SuiteConfig(
        split=cmd.split,
        only=tuple(cmd.only),
        per_category=cmd.per_category,
        limit=cmd.limit,
        resolution=parse_resolution(cmd.resolution),
        points_per_object=cmd.points_per_object,
        frames=cmd.frames,
    )
    result = build_suite(cmd.out, config)
    for t in result.tasks:
        print(f"{t.scene}: {t.category}, {t.split} ({t.seconds:.1f} s)")
    splits = [t.split for t in result.tasks]
    print(
        f"{result.index}: {len(result.tasks)} task(s) written, "
        f"{splits.count('train')} train, {splits.count('test')} test"
    )


def _joint_summary(j: dict[str, Any]) -> str:
    """One joint of an asset record: name, kind and its absolute limits (deg or mm)."""
    if j["type"] == "revolute":
        lo, hi = j["limits_deg_absolute"]
        return f"{j['name']} (revolute) [{lo:.0f}, {hi:.0f}] deg"
    lo, hi = (1000 * (j["rest"] + v) for v in (j["lower"], j["upper"]))
    return f"{j['name']} ({j['type']}) [{lo:.0f}, {hi:.0f}] mm"


def _summary(files: Any) -> None:
    from core.asset import read_record

    rec = read_record(files.folder)
    joints = ", ".join(_joint_summary(j) for j in rec["joints"] if j["type"] != "fixed")
    print(
        f"{files.folder}: {rec['name']!r}, {len(rec['links'])} link(s), {rec['mass']:.3f} kg"
        + (f", joints {joints}" if joints else "")
        + f"\n  mesh {files.mesh}\n  urdf {files.urdf}"
    )
