"""Atomic, resumable checkpoints of a flow run: parameters, optimiser state and RNG state.

A checkpoint is one safetensors file (every tensor: parameters, Adam moments, the torch RNG
state) whose metadata holds a JSON document (iteration, scalar optimiser state, config hash).
``latest.json`` names the newest complete checkpoint; it is rewritten atomically after the
checkpoint file is in place, so a run killed at any moment resumes from a whole checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_write, write_text_atomic
from core.errors import ChordError

LATEST = "latest.json"


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
    """The checkpoint latest.json names, or None if the folder has none; ChordError if it is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(folder)
    pointer = folder / LATEST
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
        blob = (folder / name).read_bytes()
    except (json.JSONDecodeError, KeyError, OSError) as e:
        raise ChordError(f"checkpoint pointer {str(pointer)!r} is unreadable ({e})") from e
    try:
        tensors = load(blob)
    except (SafetensorError, ValueError) as e:
        raise ChordError(f"checkpoint {str(folder / name)!r} is damaged ({e})") from e
    meta = _metadata(blob)
    return Checkpoint(iteration=int(meta.pop("iteration")), tensors=tensors, meta=meta)


def _metadata(blob: bytes) -> dict[str, Any]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header with __metadata__.
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    return json.loads(header["__metadata__"]["chord"])
