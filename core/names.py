"""Names that become paths, and the output paths commands write to: one validation layer.

A name read from a file or an option (a scene's name, an object's, a part's, a task's) often
becomes a file or folder name: ``OUT/flows/<scene>/``, ``links/<part>.ply``. One rule decides
which names are legal, so that no name can leave its folder (``../x``, ``/abs/elsewhere``), hide
(``.x``), look like an option (``-x``) or be empty:

- :func:`check_name` / :func:`name_problem`: letters, digits, ``_ . -``; not starting with ``.`` or
  ``-``; at most ``MAX_NAME_LENGTH`` characters.
- :func:`safe_child`: ``parent / name``, refusing anything that resolves outside ``parent`` (also
  through a symbolic link), whatever the name.
- :func:`check_output_dir` / :func:`check_output_file`: an output path a command is about to write
  can be written (not a file where a folder is wanted, not a folder where a file is, the nearest
  existing folder writable), checked before any work so the error comes first, not last.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from core.errors import ChordError

# Letters, digits, '_', '.', '-'; the first is a letter, digit or '_': never '.' (hidden, '..') or
# '-' (read as an option by other tools). ASCII only, so a name is the same file on every system.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # used with fullmatch (no "\n" after $)
# File systems allow 255 bytes per path component; a name also gets suffixes (".config.json",
# the temporary files' ".<random>.tmp"), so leave room.
MAX_NAME_LENGTH = 100
NAME_RULE = (
    "letters, digits, '_', '.' and '-' (no spaces or '/'), not starting with '.' or '-', "
    f"at most {MAX_NAME_LENGTH} characters"
)


def name_problem(value: Any) -> str | None:
    """Why ``value`` is not a legal name (a phrase to follow "is <value>; "), or None if it is."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}, expected a name of {NAME_RULE}"
    if not value:
        return f"empty, expected a name of {NAME_RULE}"
    if len(value) > MAX_NAME_LENGTH:
        return f"{len(value)} characters long, expected a name of {NAME_RULE}"
    if not NAME_PATTERN.fullmatch(value):
        return f"not a name: use {NAME_RULE}"
    return None


def check_name(kind: str, value: Any) -> str:
    """Return ``value`` if it is a legal name; else raise ChordError naming ``kind`` and the value.

    ``kind`` says what the name is for, e.g. ``"scene name"`` or ``"parts[2].name"``.
    """
    problem = name_problem(value)
    if problem is not None:
        raise ChordError(f"{kind} is {_show(value)}: {problem}")
    return value


def safe_child(parent: str | Path, *names: str) -> Path:
    """``parent / names...``, refusing a result that resolves outside ``parent``.

    Each name must be a single relative path component ('a/b' is refused: join them as separate
    names); an absolute name, '..', and a symbolic link inside ``parent`` that points outside it
    are all refused with a ChordError naming the name and the folder. ``parent`` need not exist.
    """
    parent = Path(parent)
    child = parent
    for name in names:
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ChordError(
                f"{_show(name)} cannot name a file in {str(parent)!r}: expected one path component"
            )
        if os.sep != "/" and os.sep in name:  # pragma: no cover - POSIX only in CI
            raise ChordError(f"{_show(name)} cannot name a file in {str(parent)!r}")
        child = child / name
    root = parent.resolve()
    resolved = child.resolve()
    if resolved != root and root not in resolved.parents:
        raise ChordError(
            f"{str(child)!r} resolves to {str(resolved)!r}, outside {str(root)!r}: refusing to use it"
        )
    return child


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Raise ChordError unless the folder ``path`` exists or can be created, and can be written.

    Checked before any work: an existing file at ``path``, a file where one of its parents should
    be, a folder that is not writable (permissions, a read-only mount), or, for a folder still to
    be made, a nearest existing folder where nothing can be created (also as root, and on virtual
    file systems such as /proc): that is tried by creating and removing one empty probe file there.
    An existing folder is never written to (a second process on a locked run folder writes
    nothing). Returns ``path``.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ChordError(
                f"{option} {str(path)!r} is a file, expected a folder (it is created if missing)"
            )
        _check_writable(path, option, path)
        return path
    _probe_nearest(path, option, path)
    return path


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """Raise ChordError unless the file ``path`` can be written (replaced atomically); returns it.

    Refused: a folder at ``path``, something other than a regular file there (a device such as
    /dev/null, which an atomic replace would destroy, a FIFO), a parent that is a file, and a
    folder where the file's temporary sibling cannot be created (tried with an empty probe file
    that is removed at once).
    """
    path = Path(path)
    if path.is_dir():
        raise ChordError(f"{option} {str(path)!r} is a folder, expected a file name")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise ChordError(f"{option} {str(path)!r} exists and is not a regular file; refusing to replace it")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ChordError(f"{option} {str(path)!r}: its folder {str(parent)!r} is a file")
    _probe_nearest(parent, option, path)
    return path


def _check_writable(folder: Path, option: str, target: Path) -> None:
    """Permissions and read-only mounts, without writing (root passes permissions)."""
    read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    if read_only or not os.access(folder, os.W_OK | os.X_OK):
        why = "a read-only file system" if read_only else "permission denied"
        raise ChordError(
            f"{option} {str(target)!r} cannot be written: {str(folder)!r} is not writable ({why})"
        )


def _probe_nearest(folder: Path, option: str, target: Path) -> None:
    """Create and remove a probe file in the nearest existing folder of ``folder``."""
    existing = folder.absolute()
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ChordError(
            f"{option} {str(target)!r} cannot be created: {str(existing)!r} is a file, not a folder"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".chord-probe.", suffix=".tmp", dir=existing)
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise ChordError(
            f"{option} {str(target)!r} cannot be written: {str(existing)!r} is not writable ({why})"
        ) from e
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _show(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 80 else s[:77] + "..."
