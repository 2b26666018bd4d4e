"""Several processes distilling one asset: ``torchrun --nproc-per-node N -m chord flow ...``.

Each rank holds the whole model it needs (the 4D scene, and for the Wan prior the VAE and the
expert), renders the same video, and scores its own share of the step's (tau, eps) draws: the
seed's batch of 4 splits 2 + 2 or 1 + 1 + 1 + 1. Every rank draws the full batch's noise from the
same generator and keeps its rows, so the draws are the ones a single process makes. The prior's
surrogate is scaled by the whole batch and the regularisers by 1/N, so the all-reduced (summed)
gradient of the 4D parameters is the single-process gradient up to summation order. Every rank
then takes the same Adam step. Rank 0 alone writes config.json, run.log, checkpoints, flow.npz and
the preview; a resumed run reads the same checkpoint on every rank.

A rank that dies makes the others' next all-reduce fail (gloo: a closed connection; NCCL: its
watchdog timeout): they stop with one line naming the lost peer and how to resume, torchrun
returns non-zero, and nothing half-written is left (all outputs are atomic).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from core.errors import ChordError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a torchrun job."""

    rank: int  # global rank, 0 writes the outputs
    world: int  # number of processes
    local_rank: int  # GPU index on this host
    backend: str  # "nccl" (CUDA) or "gloo" (CPU)

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True inside a torchrun job of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str, timeout_s: float = 600.0) -> DistContext | None:
    """Join the torchrun job described by the environment (None when not launched by torchrun).

    ``device`` is the run's device setting ("auto", "cpu", "cuda"): CUDA ranks use NCCL and GPU
    ``LOCAL_RANK`` (made the current device, so "cuda" means it everywhere), CPU ranks use gloo.
    """
    if not launched():
        return None
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise ChordError(f"WORLD_SIZE is set but {key} is not: launch with torchrun")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise ChordError(f"device {device!r} asked for, but CUDA is not available on rank {rank}")
        if local >= torch.cuda.device_count():
            raise ChordError(
                f"rank {rank} has LOCAL_RANK {local} but this host has {torch.cuda.device_count()} GPU(s): "
                "use --nproc-per-node <= the GPU count"
            )
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    log.info("rank %d of %d (%s, local %d)", rank, world, backend, local)
    return DistContext(rank, world, local, backend)


def current() -> DistContext | None:
    """The job this process has joined, or None for a single-process run."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())


def _collective(ctx: DistContext, what: str, fn):
    try:
        return fn()
    except (RuntimeError, dist.DistBackendError) as e:  # a peer died or hung
        raise ChordError(
            f"rank {ctx.rank}: {what} failed, another rank stopped ({str(e).splitlines()[0][:120]}); "
            "the last checkpoint is intact: run the same torchrun command with --resume OUT_DIR"
        ) from e


def sync_parameters(ctx: DistContext, params: list[torch.Tensor]) -> None:
    """Give every rank rank 0's values of ``params`` (in place)."""
    for p in params:
        _collective(ctx, "broadcasting the parameters", lambda p=p: dist.broadcast(p.data, 0))


def all_reduce_gradients(ctx: DistContext, params: list[torch.Tensor]) -> None:
    """Sum the gradients of ``params`` over the ranks, in one flat buffer (in place)."""
    grads = [p.grad for p in params if p.grad is not None]
    if len(grads) != len(params):
        raise RuntimeError("every rank must have a gradient for every 4D parameter before the all-reduce")
    flat = torch.cat([g.reshape(-1) for g in grads])
    _collective(ctx, "the gradient all-reduce", lambda: dist.all_reduce(flat))
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def sum_scalars(ctx: DistContext, values: list[float], device: torch.device) -> list[float]:
    """Sum a few floats over the ranks (for logging the whole step's loss)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    _collective(ctx, "the loss all-reduce", lambda: dist.all_reduce(t))
    return t.tolist()


def check_same(ctx: DistContext, name: str, value: torch.Tensor) -> None:
    """Raise unless ``value`` (a small float tensor) is equal on every rank."""
    v = value.detach().double().reshape(-1)
    lo, hi = v.clone(), v.clone()
    _collective(ctx, f"comparing {name}", lambda: dist.all_reduce(lo, op=dist.ReduceOp.MIN))
    _collective(ctx, f"comparing {name}", lambda: dist.all_reduce(hi, op=dist.ReduceOp.MAX))
    if not torch.equal(lo, hi):
        raise ChordError(
            f"the ranks built different {name}: a distributed run needs identical inputs on every rank"
        )


def barrier(ctx: DistContext) -> None:
    _collective(ctx, "the barrier", dist.barrier)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
