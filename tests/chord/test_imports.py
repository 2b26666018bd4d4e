"""The robot-side stages import without torch, gsplat or diffusers (docs/design.md "Layout")."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "gsplat", "diffusers", "transformers")


def _modules_after_import(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {line.split(".")[0] for line in out.split()}


# Every module of these packages, not only their __init__, so a stray top-level import is caught.
IMPORT_ALL = """
import importlib, pkgutil
import core, assets, chord, planner, sim, real
for pkg in (core, assets, chord, planner, sim, real):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(info.name)
import flowgen
"""


def test_planner_sim_real_and_contracts_import_without_torch():
    mods = _modules_after_import(IMPORT_ALL)
    assert {"core", "assets", "planner", "sim", "real", "chord", "flowgen"} <= mods
    for heavy in HEAVY:
        assert heavy not in mods, f"{heavy} was imported"


def test_import_check_would_see_torch():
    """Guard against a vacuous test above: importing torch does show up."""
    assert "torch" in _modules_after_import("import torch")
