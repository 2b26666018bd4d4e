"""Speed of flowgen.render: CPU path per frame, gsplat for a training step's worth of images.

CPU (``--device cpu``, the default): ms per frame at 208x116 and 416x232 for 20k Gaussians,
forward and forward + backward, rendering ``--frames`` frames per call (torch threads as set by
``--threads``). GPU (``--device cuda``): ms for 4 x 41 images at 832x464 (batch 4 of a 41-frame
video), forward and forward + backward, with gsplat. Prints a table.

The scene is synthetic and tabletop-sized: Gaussians on the surfaces of three objects 0.4-0.6 m
in front of the default camera, 2-8 mm scales, like Gaussians initialised from meshes.

    PYTHONPATH=. python benchmarks/render.py                 # CPU table
    PYTHONPATH=. python benchmarks/render.py --device cuda   # GPU table (gsplat)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from core.scene import Camera
from flowgen.render import render


def tabletop_gaussians(n: int, seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    """``n`` Gaussians on a sphere, a box and a cylinder on a table (world metres, z up)."""
    g = torch.Generator().manual_seed(seed)
    k = n // 3
    sizes = [k, k, n - 2 * k]
    # sphere r=6 cm at (0.5, -0.12, 0.06)
    d = torch.randn(sizes[0], 3, generator=g)
    sphere = 0.06 * d / d.norm(dim=1, keepdim=True) + torch.tensor([0.5, -0.12, 0.06])
    # box 10 x 6 x 8 cm at (0.55, 0.05, 0.04): points on its faces
    u = torch.rand(sizes[1], 3, generator=g) - 0.5
    axis = torch.randint(0, 3, (sizes[1],), generator=g)
    u[torch.arange(sizes[1]), axis] = torch.sign(u[torch.arange(sizes[1]), axis]) * 0.5
    box = u * torch.tensor([0.10, 0.06, 0.08]) + torch.tensor([0.55, 0.05, 0.04])
    # cylinder r=3 cm, h=15 cm at (0.42, 0.15, 0)
    t = torch.rand(sizes[2], generator=g) * 2 * math.pi
    h = torch.rand(sizes[2], generator=g) * 0.15
    cyl = torch.stack([0.42 + 0.03 * t.cos(), 0.15 + 0.03 * t.sin(), h], dim=1)
    means = torch.cat([sphere, box, cyl])
    quats = torch.randn(n, 4, generator=g)
    quats = quats / quats.norm(dim=1, keepdim=True)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.002), math.log(0.008), generator=g))
    opacities = torch.empty(n).uniform_(0.3, 0.99, generator=g)
    colors = torch.rand(n, 3, generator=g)
    object_index = torch.cat([torch.full((s,), i, dtype=torch.long) for i, s in enumerate(sizes)])
    out = dict(
        means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
        object_index=object_index,
    )  # fmt: skip
    return {key: v.to(device) for key, v in out.items()}


def default_camera() -> Camera:
    """The scene spec's example camera (832x464, 40 degrees vertical field of view)."""
    return Camera.from_look_at(eye=(1.0, 0.0, 0.6), target=(0.5, 0.0, 0.05), fov_y_deg=40.0)


def moving_frames(means: torch.Tensor, frames: int) -> torch.Tensor:
    """[frames, N, 3]: the objects slide 10 cm along y over the clip (a stand-in deformation)."""
    shift = torch.linspace(0.0, 0.1, frames, device=means.device)
    off = torch.zeros(frames, 1, 3, device=means.device)
    off[:, 0, 1] = shift
    return means[None] + off


def time_call(fn, repeats: int, sync) -> tuple[float, float]:
    """(median wall seconds, median process CPU seconds) of ``fn`` over ``repeats`` runs.

    One warm-up run first. CPU seconds (all threads) help read a run on a shared machine, where
    wall time also counts the waits for cores other processes hold.
    """
    fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def bench(
    g: dict[str, torch.Tensor], frames: int, width: int, height: int, backend: str, repeats: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """((wall s, CPU s) forward, (wall s, CPU s) forward + backward) for one call of ``frames``."""
    cam = default_camera()
    means = moving_frames(g["means"], frames)
    device = means.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    params = {k: g[k].clone().requires_grad_(True) for k in ("quats", "scales", "opacities", "colors")}
    means = means.clone().requires_grad_(True)

    def call():
        return render(
            means, params["quats"], params["scales"], params["opacities"], params["colors"],
            g["object_index"], 3, cam, width, height, backend=backend,
        )  # fmt: skip

    def fwd():
        with torch.no_grad():
            call()

    def fwd_bwd():
        out = call()
        loss = out.rgb.square().mean() + out.depth.mean() + out.object_masks.mean()
        loss.backward()

    return time_call(fwd, repeats, sync), time_call(fwd_bwd, repeats, sync)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--gaussians", type=int, default=20_000)
    ap.add_argument("--frames", type=int, default=4, help="frames per render call (CPU)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"flowgen.render benchmark: {a.gaussians} Gaussians, median of {a.repeats} calls")
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
        g = tabletop_gaussians(a.gaussians)
        print(f"CPU, torch {torch.__version__}, {a.threads} threads, {a.frames} frames per call")
        print(f"{'size':>9} {'fwd ms/frame':>13} {'(cpu ms)':>9} {'fwd+bwd ms/frame':>17} {'(cpu ms)':>9}")
        for w, h in ((208, 116), (416, 232)):
            (f, fc), (fb, fbc) = bench(g, a.frames, w, h, "torch", a.repeats)
            n = a.frames
            print(
                f"{f'{w}x{h}':>9} {f * 1e3 / n:>13.1f} {fc * 1e3 / n:>9.1f} {fb * 1e3 / n:>17.1f} {fbc * 1e3 / n:>9.1f}"
            )
    else:
        g = tabletop_gaussians(a.gaussians, device="cuda")
        n = 4 * 41
        (f, _), (fb, _) = bench(g, n, 832, 464, "gsplat", a.repeats)
        print(f"{torch.cuda.get_device_name()}, gsplat, torch {torch.__version__}")
        print(f"{'size':>9} {'images':>7} {'fwd ms':>9} {'fwd+bwd ms':>11} {'peak GiB':>9}")
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"{'832x464':>9} {n:>7} {f * 1e3:>9.1f} {fb * 1e3:>11.1f} {peak:>9.2f}")


if __name__ == "__main__":
    main()
