"""Session fixtures shared by every test package: task scenes built once, read-only.

Tests that change a scene copy its folder first (``shutil.copytree(scene.parent, ...)``).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _build(tmp_path_factory, task: str) -> Path:
    from assets.tasks import build_task

    return build_task(task, tmp_path_factory.mktemp(task) / task)


@pytest.fixture(scope="session")
def pick_banana_scene(tmp_path_factory) -> Path:
    """scene.yaml of the pick-banana task at the defaults of `chord assets tasks` (208x116 reference)."""
    return _build(tmp_path_factory, "pick_banana")


@pytest.fixture(scope="session")
def close_laptop_scene(tmp_path_factory) -> Path:
    """scene.yaml of the close-laptop task at the defaults of `chord assets tasks`."""
    return _build(tmp_path_factory, "close_laptop")
