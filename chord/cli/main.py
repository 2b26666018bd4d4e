"""The ``chord`` command: one subcommand per pipeline stage.

Each subcommand is a plain function whose signature tyro turns into flags and whose docstring is
its ``--help``. Errors a user can fix (``ChordError``) print as one line naming the subcommand;
``--verbose`` anywhere on the line shows the traceback and debug logs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import tyro

from core import __version__
from core.errors import ChordError

log = logging.getLogger("chord")

DESCRIPTION = f"""chord {__version__}: make a robot do what a sentence says to objects it has never seen.

Stages: scene spec -> flowgen (4D object flow) -> planner (joint trajectory) -> sim -> real arm.
Add --verbose to any command for tracebacks and debug logs.

Example:
  chord check scene.yaml runs/banana/flow.npz
"""


def subcommands() -> dict[str, Callable[..., Any]]:
    """Name -> function for every stage that exists; the functions import their heavy parts lazily."""
    from chord.cli.assets import assets
    from chord.cli.check import check
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
    except BrokenPipeError:
        # The reader went away (`chord sim --help | head`): not an error of ours. Point stdout at
        # devnull so the interpreter's flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a pipe's writer
    return 0


if __name__ == "__main__":
    sys.exit(main())
