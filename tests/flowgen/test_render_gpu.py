"""Parity of the two render paths: gsplat on CUDA against the pure-PyTorch path on CPU.

Same Gaussians, same cameras. Bounds (docs/rendering.md): mean absolute difference < 1e-2 for
RGB, alpha and object masks; cosine similarity > 0.99 between the gradients of every parameter.
Prints the figures (run with ``-s``):

    MAX_JOBS=12 TORCH_CUDA_ARCH_LIST=9.0 PYTHONPATH=. python -m pytest -m gpu \
        tests/flowgen/test_render_gpu.py -s -q
"""

from __future__ import annotations

import math

import pytest
import torch

from core.scene import Camera
from flowgen.render import render

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

PARAMS = ("means", "quats", "scales", "opacities", "colors")


def scene_gaussians(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` random Gaussians around the tabletop scene: a 0.5 m box on the table, 1-10 mm scales."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * torch.tensor([0.4, 0.5, 0.25]) + torch.tensor([0.3, -0.25, 0.0])
    return dict(
        means=means,
        quats=torch.randn(n, 4, generator=g),
        scales=torch.exp(torch.empty(n, 3).uniform_(math.log(0.001), math.log(0.01), generator=g)),
        opacities=torch.empty(n).uniform_(0.05, 0.99, generator=g),
        colors=torch.rand(n, 3, generator=g),
        object_index=torch.randint(0, 3, (n,), generator=g),
    )


def cameras() -> list[Camera]:
    """Two views of the scene: the spec's default and one from the side."""
    return [
        Camera.from_look_at(eye=(1.0, 0.0, 0.6), target=(0.5, 0.0, 0.05), fov_y_deg=40.0),
        Camera.from_look_at(eye=(0.6, -0.7, 0.5), target=(0.5, 0.0, 0.05), fov_y_deg=40.0),
    ]


def run(g: dict, device: str, backend: str, width: int, height: int, seed: int):
    """Render two images (two frames, two views) and backprop a random linear loss."""
    p = {k: g[k].to(device).clone().requires_grad_(True) for k in PARAMS}
    frames = torch.stack([p["means"], p["means"] + torch.tensor([0.0, 0.05, 0.0], device=device)])
    out = render(
        frames, p["quats"], p["scales"], p["opacities"], p["colors"], g["object_index"].to(device),
        3, cameras(), width, height, backend=backend,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(2, height, width, 8, generator=gen).to(device)
    # depth enters as depth x alpha (the accumulated depth), which stays finite where alpha -> 0
    stack = torch.cat([out.rgb, out.alpha, out.depth * out.alpha, out.object_masks], dim=-1)
    (stack * w).sum().backward()
    images = {k: getattr(out, k).detach().cpu() for k in ("rgb", "alpha", "depth", "object_masks")}
    return images, {k: p[k].grad.detach().cpu() for k in PARAMS}


@pytest.mark.parametrize(("width", "height"), [(208, 116), (832, 464)])
def test_gsplat_matches_torch_path(width, height):
    g = scene_gaussians(20_000)
    cpu_img, cpu_grad = run(g, "cpu", "torch", width, height, seed=1)
    gpu_img, gpu_grad = run(g, "cuda", "gsplat", width, height, seed=1)
    print(f"\nrender parity, 20000 Gaussians, 2 images at {width}x{height} (gsplat CUDA vs torch CPU)")
    assert cpu_img["alpha"].mean() > 0.05, "the scene must cover a good part of the image"
    for k in ("rgb", "alpha", "object_masks"):
        d = (cpu_img[k] - gpu_img[k]).abs()
        print(f"  {k:<13} mean |diff| {d.mean():.2e}   max {d.max():.2e}")
        assert d.mean() < 1e-2, k
    solid = (cpu_img["alpha"] > 0.5) & (gpu_img["alpha"] > 0.5)
    dd = (cpu_img["depth"] - gpu_img["depth"])[solid].abs()
    print(f"  depth (alpha > 0.5) mean |diff| {dd.mean():.2e} m   median {dd.median():.2e} m")
    assert dd.mean() < 1e-2
    for k in PARAMS:
        a, b = cpu_grad[k].flatten().double(), gpu_grad[k].flatten().double()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
        rel = ((a - b).norm() / a.norm()).item()
        print(f"  grad {k:<10} cosine {cos:.5f}   |diff|/|cpu| {rel:.2e}   |cpu| {a.norm():.3e}")
        assert a.norm() > 0, k
        assert cos > 0.99, k
