"""Inputs built once per test session and shared by the pytest-xdist workers (:func:`build_once`)."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable
from pathlib import Path


def build_once(tmp_path_factory, worker_id: str, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that ``build(folder)`` fills, built once per test session and shared, read-only, by
    every pytest-xdist worker (each would otherwise build its own copy of the same inputs: the
    hostile corpus's valid inputs take 17 s a worker). The first worker to ask builds it under a
    lock in the session's temporary root; the others wait for it. A build that raised leaves no
    marker, so the next worker to ask builds it again (and raises the same error itself)."""
    if worker_id == "master":  # no xdist: this session's own folder
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent / "built_once"  # the session's root, not a worker's
    root.mkdir(exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a build that raised left
            folder.mkdir()
            build(folder)
            done.write_text("")
    return folder
