"""The ``chord`` command: one subcommand per pipeline stage.

Each subcommand is a plain function whose signature tyro turns into flags and whose docstring is
its ``--help``. Errors a user can fix (``ChordError``) print as one line naming the subcommand;
``--verbose`` anywhere on the line shows the traceback and debug logs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from core import __version__
from core.contract import npz_schema
from core.errors import ChordError, ContractError

log = logging.getLogger("chord")

DESCRIPTION = f"""chord {__version__}: make a robot do what a sentence says to objects it has never seen.

Stages: scene spec -> flowgen (4D object flow) -> planner (joint trajectory) -> sim -> real arm.
Add --verbose to any command for tracebacks and debug logs.

Example:
  chord check scene.yaml runs/banana/flow.npz
"""


def check(paths: tyro.conf.Positional[list[Path]]) -> None:
    """Validate scene (.yaml), flow (.npz) and plan (.npz) files against their contracts.

    Prints a one-line summary of each valid file; stops at the first invalid one with a message
    naming the file, the field and the bad value (exit status 1).

    Example: chord check scenes/pick_banana/scene.yaml runs/banana/flow.npz runs/banana/plan.npz
    """
    if not paths:
        raise ChordError("give at least one file to check, e.g. `chord check scene.yaml`")
    for path in paths:
        print(f"{path}: {describe(path)}")


def describe(path: Path) -> str:
    """Load ``path`` with the reader its contents call for and summarise it; raises ContractError."""
    from core.scene import Scene

    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        s = Scene.load(path)
        movable = [o.name for o in s.movable_objects]
        return (
            f"scene {s.name!r} v1: {len(s.objects)} object(s) {s.object_names}, movable {movable}, "
            f"{s.frames} frames at {s.camera.width}x{s.camera.height}, prompt {s.prompt!r}"
        )
    if path.suffix.lower() == ".npz":
        schema = npz_schema(path)
        if schema == "chord.flow":
            from core.flow import ObjectFlow

            f = ObjectFlow.load(path)
            moved = np.linalg.norm(f.points[-1] - f.points[0], axis=-1)
            return (
                f"flow v1: T={f.num_frames} frames over {float(f.times[-1] - f.times[0]):.2f} s, "
                f"N={f.num_points} points on {list(f.object_names)}, prior {f.prior!r}, "
                f"largest displacement {1000 * float(moved.max()):.1f} mm"
            )
        if schema == "chord.plan":
            from core.plan import Plan

            p = Plan.load(path)
            verdict = "not validated" if p.validation is None else f"validation {p.validation}"
            return (
                f"plan v1: {len(p.t)} waypoints over {p.duration:.2f} s, {p.num_joints} joints of "
                f"{p.robot!r}, task {p.task!r}, {verdict}"
            )
        raise ContractError("meta.schema", f"is {schema!r}, expected 'chord.flow' or 'chord.plan'", path)
    raise ContractError(
        "file", f"has suffix {path.suffix!r}; expected .yaml/.yml/.json (scene) or .npz", path
    )


def subcommands() -> dict[str, Callable[..., Any]]:
    """Name -> function for every stage that exists; the functions import their heavy parts lazily."""
    from chord.cli.assets import assets
    from chord.cli.flow import flow
    from chord.cli.plan import plan
    from chord.cli.real import real
    from chord.cli.run import run
    from chord.cli.sim import bench, sim
    from chord.cli.view import view

    return {
        "check": check, "assets": assets, "flow": flow, "plan": plan, "real": real, "sim": sim, "bench": bench, "view": view, "run": run,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chord`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(message)s",
    )
    name = next((a for a in argv if not a.startswith("-")), "chord")
    try:
        tyro.extras.subcommand_cli_from_dict(subcommands(), prog="chord", description=DESCRIPTION, args=argv)
    except ChordError as e:
        if verbose:
            raise
        print(f"chord {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"chord {name}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
