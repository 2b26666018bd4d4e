"""One process at a time in a run folder, and no debris left by the ones that were killed.

:func:`run_lock` takes ``FOLDER/.chord.lock`` for the duration of a command that writes the folder
(``chord flow``, ``chord run``, ``chord bench``, the task scenes). A second process asking for
it gets :class:`FolderBusyError`, one line naming the holder (command, pid, host, start time),
and writes nothing. The lock is an ``flock`` on the file (released by the kernel when the
holder dies, however it dies) plus the holder's identity written inside; a lock file left by a
process that no longer runs on this host is taken over with a warning. A lock file written on
another host is never taken over: chord cannot tell whether that process still runs.

When a process takes a folder's lock, it removes the temporary files and folders that killed
writers left there (:func:`sweep_debris`: ``core.atomic``'s ``.<name>.<random>.tmp`` files and
folders and the other temporary names chord uses) in the folder and the sub-folders the caller
names (``checkpoints``, ...). Nothing else is searched: an output folder may be any folder of the
user's. Only the holder may do this: another writer's temporary file would be in use.

The lock is re-entrant within a process: ``chord run`` holds OUT and the flow stage it calls takes
the same folder again (sweeping the sub-folders it names that were not swept yet).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import ChordError

log = logging.getLogger(__name__)

LOCK_FILE = ".chord.lock"
_MAX_LOCK_BYTES = 4096  # a lock file holds a few hundred bytes of JSON; more is not ours

# Temporary names chord's writers use, so a killed writer's leftovers can be recognised:
#   core.atomic.atomic_write      .<name>.<8 random>.tmp                 (file)
#   core.atomic.atomic_dir        .<name>.<8 random>.tmp, before: .<name>.<8 random>   (folder)
#   flowgen.preview               .<name>.<8 random>                     (folder)
#   chord.viz.record              .<name>.<8 random>.tmp.rrd             (file)
#   assets.reference              .<name>.tmp.mp4, sim.bench before: .<name>.tmp.png   (file)
#   core.names (output probes)    .chord-probe.<8 random>.tmp            (file)
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's alphabet and length
_DEBRIS_FILE = re.compile(rf"^\..+\.(?:{_RANDOM}\.tmp(?:\.rrd)?|tmp\.(?:mp4|png))$")
# Folders: atomic_dir's (".tmp"), and flowgen.preview's frame folders (".preview*.mp4.<random>").
_DEBRIS_DIR = re.compile(rf"^\.(?:.+\.{_RANDOM}\.tmp|preview[^/]*\.(?:mp4|gif)\.{_RANDOM})$")


class FolderBusyError(ChordError):
    """Another process holds the folder's lock; the message names it."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lock: written into the lock file as JSON."""

    command: str  # e.g. "chord flow"
    pid: int
    host: str
    started: str  # ISO 8601 local time with offset, seconds
    process_start: int | None = None  # the process's start time in clock ticks since boot (Linux)

    def describe(self) -> str:
        return f"{self.command} (pid {self.pid} on host {self.host}, started {self.started})"

    @classmethod
    def current(cls, command: str) -> Holder:
        now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        return cls(command, os.getpid(), socket.gethostname(), now, _own_start())

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            doc = json.loads(text)
            return cls(
                str(doc["command"]), int(doc["pid"]), str(doc["host"]), str(doc["started"]),
                None if doc.get("process_start") is None else int(doc["process_start"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, RecursionError):
            return None

    def alive(self) -> bool:
        """Whether this holder still runs: only answerable on its own host (else assumed alive)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # a process of another user: it exists
        stat = _proc_stat(self.pid)
        if stat is None:
            return True  # no /proc to ask: it exists
        state, start = stat
        if state in ("Z", "X"):
            return False  # killed, not yet reaped by its parent
        # A different start time: the pid was reused by a later process.
        return self.process_start is None or start == self.process_start


@dataclass
class _Held:
    fd: int  # the open, flocked lock file
    depth: int  # nested run_lock calls on the folder in this process
    swept: set[str]  # sub-folders already swept


# The locks this process holds, by resolved folder, for re-entry.
_HELD: dict[Path, _Held] = {}


@contextlib.contextmanager
def run_lock(folder: str | Path, command: str, sweep: tuple[str, ...] = ("",)) -> Iterator[Path]:
    """Hold ``folder``'s lock for the body; create the folder if needed. Yields the folder.

    ``command`` names the holder in other processes' messages (e.g. ``"chord flow"``); ``sweep``
    lists the sub-folders (relative, ``""`` the folder itself) whose debris is removed once the
    lock is held (:func:`sweep_debris`).

    Raises FolderBusyError (one line naming the holder) when another live process holds it, and
    ChordError when ``folder`` is a file or cannot be created. A stale lock file is taken over
    with a warning. On release the lock file is removed, and so is the folder if this call
    created it and nothing was written into it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ChordError(f"{str(folder)!r} is a file, expected a folder for {command}'s outputs")
    key = folder.resolve()
    held = _HELD.get(key)
    if held is not None:
        held.depth += 1
        try:
            _sweep_new(folder, held, sweep)
            yield folder
        finally:
            held.depth -= 1
        return
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ChordError(f"{str(folder)!r} cannot be created ({e.strerror or e})") from e
    try:
        fd = _acquire(folder / LOCK_FILE, command)
    except BaseException:
        if created:
            _remove_empty(folder)
        raise
    held = _HELD[key] = _Held(fd, 1, set())
    try:
        _sweep_new(folder, held, sweep)
        yield folder
    finally:
        del _HELD[key]
        _release(folder / LOCK_FILE, fd)
        if created:
            _remove_empty(folder)


def _sweep_new(folder: Path, held: _Held, sweep: tuple[str, ...]) -> None:
    todo = [s for s in sweep if s not in held.swept]
    held.swept.update(todo)
    if todo:
        sweep_debris(folder, todo)


def holds(folder: str | Path) -> bool:
    """Whether this process holds ``folder``'s lock."""
    return Path(folder).resolve() in _HELD


def _acquire(path: Path, command: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ChordError(f"cannot open the lock file {str(path)!r} ({e.strerror or e})") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    # A file system without locks (some network mounts): the holder's identity
                    # below still refuses a live holder, only two exact simultaneous starts race.
                    log.debug("%s: no flock on this file system (%s)", path, e.strerror)
                elif e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise _busy(path, _wait_for_holder(fd)) from None
                else:
                    raise ChordError(f"cannot lock {str(path)!r} ({e.strerror or e})") from e
            # The file may have been removed (and maybe re-created) by its last holder between our
            # open and our flock: then we hold a lock on a file nobody else sees. Start over.
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_holder(fd)
            if previous is not None:
                if previous.alive():
                    # The flock was free, yet the holder runs: a file system without flock, or a
                    # holder on another host. Never take a live (or unknowable) run's folder.
                    raise _busy(path, previous)
                log.warning(
                    "%s: taking over the lock of %s, which no longer runs (it was killed or crashed)",
                    path.parent,
                    previous.describe(),
                )
            me = Holder.current(command)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me.__dict__) + "\n").encode(), 0)
            os.fsync(fd)
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise


def _busy(path: Path, holder: Holder | None) -> FolderBusyError:
    folder = str(path.parent)
    if holder is None:
        return FolderBusyError(
            f"{folder!r} is in use by another chord process (lock file {str(path)!r}); wait for it to "
            "end, or choose another output folder"
        )
    hint = "wait for it to end, or choose another output folder"
    if holder.host != socket.gethostname():
        hint += f"; if it no longer runs on {holder.host}, delete {str(path)!r}"
    return FolderBusyError(f"{folder!r} is in use by {holder.describe()}; {hint}")


def _wait_for_holder(fd: int, patience_s: float = 1.0) -> Holder | None:
    """The holder of a lock just found taken; it writes its name right after taking the lock."""
    deadline = time.monotonic() + patience_s
    while (holder := _read_holder(fd)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder


def _read_holder(fd: int) -> Holder | None:
    try:
        return Holder.parse(os.pread(fd, _MAX_LOCK_BYTES, 0).decode("utf-8", "replace"))
    except OSError:
        return None


def _release(path: Path, fd: int) -> None:
    try:
        # Remove the file while still holding it, and only if it is still ours.
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def sweep_debris(
    folder: str | Path, subfolders: list[str] | tuple[str, ...] = ("",), old_names: tuple[str, ...] = ()
) -> list[Path]:
    """Remove killed writers' temporary files and folders from ``folder``'s ``subfolders``.

    Only the named folders are searched (not their sub-folders), only chord's temporary names
    match, and symbolic links are left alone. ``old_names`` also matches the folders atomic_dir
    made for those names before its temporaries ended in ``.tmp`` (``.<name>.<random>``). Call it
    only while holding ``folder``'s lock. Returns what was removed.
    """
    root = Path(folder)
    old = (
        re.compile(rf"^\.(?:{'|'.join(re.escape(n) for n in old_names)})\.{_RANDOM}$") if old_names else None
    )
    removed: list[Path] = []
    for sub in subfolders:
        here = root / sub if sub else root
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue  # not there (yet): nothing to sweep
        for entry in entries:
            p = Path(entry.path)
            if entry.is_symlink() or entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and (_DEBRIS_DIR.match(entry.name) or (old and old.match(entry.name))):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
            elif entry.is_file() and _DEBRIS_FILE.match(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    if removed:
        shown = ", ".join(str(p.relative_to(root)) for p in removed[:5]) + (
            " ..." if len(removed) > 5 else ""
        )
        log.info("%s: removed %d temporary file(s) left by an interrupted run: %s", root, len(removed), shown)
    return removed


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and start time in clock ticks since boot (/proc/PID/stat), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        fields = text[text.rindex(")") + 2 :].split()
        return fields[0], int(fields[19])
    except (ValueError, IndexError):
        return None


def _own_start() -> int | None:
    stat = _proc_stat(os.getpid())
    return None if stat is None else stat[1]


def describe_holder(folder: str | Path) -> Holder | None:
    """The holder recorded in ``folder``'s lock file (None without a readable one)."""
    path = Path(folder) / LOCK_FILE
    try:
        return Holder.parse(path.read_text(encoding="utf-8", errors="replace")[:_MAX_LOCK_BYTES])
    except OSError:
        return None
