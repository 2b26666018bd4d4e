"""Benchmark: Fenwick deformation + skinning, forward and backward (issue 3).

Default case: 100k Gaussians over 3 objects, 41 frames, 60 control points per object, k = 4
nearest control points. Prints ms per forward+backward and peak memory.

    PYTHONPATH=. python benchmarks/deform_skin.py --device cpu
    PYTHONPATH=. python benchmarks/deform_skin.py --device cuda
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from flowgen.fenwick import Deformation
from flowgen.rotations import normalize_quat
from flowgen.skinning import bind, skin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--gaussians", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=41)
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--control-points", type=int, default=60, help="per object")
    ap.add_argument("--knn", type=int, default=4)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    m, k = args.objects, args.control_points
    centres = torch.rand(m, 3, generator=gen) * 0.5
    cp = centres.repeat_interleave(k, 0) + 0.05 * torch.randn(m * k, 3, generator=gen)
    cp_obj = torch.arange(m).repeat_interleave(k)
    # grouped by object, as gaussians_from_meshes makes them
    obj = torch.randint(0, m, (args.gaussians,), generator=gen).sort().values
    means = centres[obj] + 0.05 * torch.randn(args.gaussians, 3, generator=gen)
    quats = normalize_quat(torch.randn(args.gaussians, 4, generator=gen))

    d = Deformation(cp, cp_obj, torch.full((m * k,), 0.03), args.frames).to(dev)
    with torch.no_grad():
        d.rot_nodes.normal_(0, 0.05, generator=None)
        d.trans_nodes.normal_(0, 0.01)
    t0 = time.perf_counter()
    b = bind(means.to(dev), obj.to(dev), d.positions, d.object_index, args.knn)
    bind_ms = (time.perf_counter() - t0) * 1e3
    quats = quats.to(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        d.zero_grad(set_to_none=True)
        pos, rot = skin(d, b, quats)
        loss = pos.square().sum() + rot[..., 0].sum()
        loss.backward()

    step()  # warm-up
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    if dev.type == "cuda":
        peak = f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    else:
        peak = f"peak process RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    print(
        f"device={dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}), "
        f"threads={torch.get_num_threads()}, torch {torch.__version__}\n"
        f"{args.gaussians} Gaussians, {m} objects x {k} control points, {args.frames} frames, "
        f"k={args.knn}\n"
        f"bind (once): {bind_ms:.1f} ms\n"
        f"deform+skin fwd+bwd: median {times[len(times) // 2]:.1f} ms, min {times[0]:.1f} ms "
        f"over {args.iters} runs; {peak}"
    )


if __name__ == "__main__":
    main()
