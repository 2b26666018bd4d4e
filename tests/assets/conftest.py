"""The three task scenes built once per session, at a reference resolution of their own."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def task_scenes(tmp_path_factory):
    """The three task scenes at 208x116 with 1500 points per object: {task name: scene.yaml}."""
    from assets.tasks import TASKS, build_task

    root = tmp_path_factory.mktemp("scenes")
    return {name: build_task(name, root / name, (208, 116), points_per_object=1500) for name in TASKS}
