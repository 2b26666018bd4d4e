"""Atomic, resumable checkpoints of a flow run: parameters, optimiser state and RNG state.

A checkpoint is one safetensors file (every tensor: parameters, Adam moments, the torch RNG
state) whose metadata holds a JSON document (iteration, scalar optimiser state, config hash).
``latest.json`` names the newest complete checkpoint; it is rewritten atomically after the
checkpoint file is in place, so a run killed at any moment resumes from a whole checkpoint.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_write, write_text_atomic
from core.contract import load_json_text, read_json_file
from core.errors import ChordError, ContractError
from core.names import safe_child

LATEST = "latest.json"
_CHECKPOINT_NAME = re.compile(r"^ckpt_\d{6,}\.safetensors$")  # what save_checkpoint writes
MAX_POINTER_BYTES = 64 * 1024  # latest.json is a line of JSON
# A flow run's checkpoint holds the deformation's parameters and their Adam moments: megabytes.
MAX_CHECKPOINT_BYTES = 2 * 1024**3
MAX_HEADER_BYTES = 16 * 1024**2  # a checkpoint's safetensors header: tensor names, shapes, metadata


@dataclass
class Checkpoint:
    iteration: int  # iterations completed
    tensors: dict[str, torch.Tensor]  # name -> tensor (CPU, contiguous)
    meta: dict[str, Any]  # JSON-able


def save_checkpoint(folder: str | Path, ckpt: Checkpoint, keep: int = 2) -> Path:
    """Write ``folder/ckpt_{iteration:06d}.safetensors`` atomically, then point latest.json at it.

    Keeps the newest ``keep`` checkpoint files and deletes older ones.
    """
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"ckpt_{ckpt.iteration:06d}.safetensors"
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in ckpt.tensors.items()}
    blob = save(tensors, metadata={"chord": json.dumps({"iteration": ckpt.iteration, **ckpt.meta})})
    with atomic_write(folder / name) as f:
        f.write(blob)
    write_text_atomic(folder / LATEST, json.dumps({"checkpoint": name, "iteration": ckpt.iteration}))
    for old in sorted(folder.glob("ckpt_*.safetensors"))[:-keep]:
        old.unlink()
    return folder / name


def load_latest_checkpoint(folder: str | Path) -> Checkpoint | None:
    """The checkpoint latest.json names, or None if the folder has none; ChordError if it is damaged.

    Nothing is trusted before it is checked: latest.json must be a small regular JSON file naming
    a ``ckpt_NNNNNN.safetensors`` file of this folder (not a path: ``/dev/zero`` or ``../x`` are
    refused), that file a regular file of at most ``MAX_CHECKPOINT_BYTES`` whose header is read and
    size-checked before its tensors are loaded.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    pointer = folder / LATEST
    if not pointer.exists() and not pointer.is_symlink():
        return None
    try:
        doc = read_json_file(pointer, max_bytes=MAX_POINTER_BYTES, what="a checkpoint pointer")
    except ContractError as e:
        raise ChordError(f"checkpoint pointer {str(pointer)!r} is unreadable ({e})") from e
    name = doc.get("checkpoint") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not _CHECKPOINT_NAME.match(name):
        raise ChordError(
            f"checkpoint pointer {str(pointer)!r} names {name!r}, expected a file "
            f"ckpt_NNNNNN.safetensors in {str(folder)!r}"
        )
    path = safe_child(folder, name)
    try:
        info = path.stat()
    except OSError as e:
        raise ChordError(
            f"checkpoint {str(path)!r} named by {LATEST} cannot be read ({e.strerror or e})"
        ) from e
    if not stat.S_ISREG(info.st_mode):
        raise ChordError(f"checkpoint {str(path)!r} is not a regular file")
    if info.st_size > MAX_CHECKPOINT_BYTES:
        raise ChordError(
            f"checkpoint {str(path)!r} is {info.st_size} bytes, more than the {MAX_CHECKPOINT_BYTES} a flow "
            "run's checkpoint takes; refused before reading it"
        )
    meta = _metadata(path, info.st_size)
    try:
        tensors = load_file(path)
    except (SafetensorError, ValueError, OSError) as e:
        raise ChordError(f"checkpoint {str(path)!r} is damaged ({e})") from e
    iteration = meta.pop("iteration", None)
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise ChordError(
            f"checkpoint {str(path)!r} records iteration {iteration!r}, expected an integer >= 0"
        )
    return Checkpoint(iteration=iteration, tensors=tensors, meta=meta)


def _metadata(path: Path, size: int) -> dict[str, Any]:
    """The chord metadata of a checkpoint file, from its header alone (sizes checked first).

    Safetensors layout: an 8-byte little-endian header length, then a JSON header whose
    ``__metadata__`` holds string values; ours keeps a JSON document under ``chord``.
    """
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
            raise ChordError(
                f"checkpoint {str(path)!r} is damaged (its header claims {n} bytes of a {size}-byte file)"
            )
        raw = f.read(n)
    try:
        header = load_json_text(raw.decode("utf-8"), "header", path, max_chars=MAX_HEADER_BYTES)
        chord = header["__metadata__"]["chord"]
        meta = load_json_text(chord, "__metadata__.chord", path)
    except (ContractError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ChordError(f"checkpoint {str(path)!r} is damaged ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict):
        raise ChordError(f"checkpoint {str(path)!r} is damaged (its metadata is not a JSON object)")
    return meta
