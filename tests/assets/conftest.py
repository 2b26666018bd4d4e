"""Shared fixtures: a private V-HACD cache, and the three task scenes built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_vhacd_cache(tmp_path_factory):
    """Keep test decompositions out of the user's ~/.cache (and start each session cold)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHORD_CACHE", str(tmp_path_factory.mktemp("chord_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def task_scenes(tmp_path_factory):
    """The three task scenes at 208x116 with 1500 points per object: {task name: scene.yaml}."""
    from assets.tasks import TASKS, build_task

    root = tmp_path_factory.mktemp("scenes")
    return {name: build_task(name, root / name, (208, 116), points_per_object=1500) for name in TASKS}
