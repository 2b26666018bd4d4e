"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from core.errors import ChordError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit, fsync it and rename it over ``path``.

    If the body raises, the temporary file is removed and ``path`` is untouched. The parent
    folder is created if needed; ChordError (naming ``path``) if it or the temporary file cannot be. A process killed inside the body leaves the temporary file,
    ``.<name>.<random>.tmp``; ``core.lock.sweep_debris`` removes it when the folder is next locked.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # nothing was written yet: one line naming the file, not a traceback
        raise ChordError(f"cannot write {str(path)!r}: {e.strerror or e}") from e
    try:
        # mkstemp makes the file 0600; give it the mode any new file gets under the umask.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on a clean exit it replaces ``path``.

    If the body raises, the temporary folder is removed and ``path`` is untouched. A folder
    already at ``path`` is removed just before the rename (POSIX cannot rename over a non-empty
    folder), so a reader sees the old folder, briefly none, then the new one, never half of one.
    The folder gets the mode any new folder gets under the umask, not mkdtemp's 0700. Its name,
    ``.<name>.<random>.tmp``, is what ``core.lock.sweep_debris`` removes after a kill.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise ChordError(f"cannot write {str(path)!r}: {e.strerror or e}") from e
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)
