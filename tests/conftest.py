"""Session fixtures shared by every test package: a private cache, task scenes built once (read-only).

Tests that change a scene copy its folder first (``shutil.copytree(scene.parent, ...)``): under
pytest-xdist the scenes are built once per session and read by every worker at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.built_once import build_once


@pytest.fixture(autouse=True, scope="session")
def _private_vhacd_cache(tmp_path_factory):
    """Keep test decompositions out of the user's ~/.cache (and start each session cold)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHORD_CACHE", str(tmp_path_factory.mktemp("chord_cache")))
    yield
    mp.undo()


def _build(tmp_path_factory, worker_id: str, task: str) -> Path:
    from assets.tasks import build_task

    return (
        build_once(tmp_path_factory, worker_id, task, lambda f: build_task(task, f / task))
        / task
        / "scene.yaml"
    )


@pytest.fixture(scope="session")
def pick_banana_scene(tmp_path_factory, worker_id) -> Path:
    """scene.yaml of the pick-banana task at the defaults of `chord assets tasks` (208x116 reference)."""
    return _build(tmp_path_factory, worker_id, "pick_banana")


@pytest.fixture(scope="session")
def close_laptop_scene(tmp_path_factory, worker_id) -> Path:
    """scene.yaml of the close-laptop task at the defaults of `chord assets tasks`."""
    return _build(tmp_path_factory, worker_id, "close_laptop")


@pytest.fixture(scope="session")
def tiny_wan_a14b(tmp_path_factory, worker_id) -> Path:
    """A tiny random Wan 2.2 I2V-A14B folder (tests.flowgen.wan_tiny), read-only: built once per
    session for every test that only loads it (each module built its own, 7 s apiece)."""
    from tests.flowgen.wan_tiny import save_tiny_wan

    return (
        build_once(tmp_path_factory, worker_id, "wan_a14b", lambda f: save_tiny_wan(f / "a14b", "i2v-a14b"))
        / "a14b"
    )
