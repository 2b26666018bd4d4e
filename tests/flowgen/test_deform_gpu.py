"""Deformation + skinning on CUDA match the CPU path (run on the GPU machine, never in CI)."""

from __future__ import annotations

import pytest
import torch

from flowgen.fenwick import Deformation
from flowgen.rotations import normalize_quat
from flowgen.skinning import bind, skin

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_forward_and_gradients():
    gen = torch.Generator().manual_seed(0)
    k, n, frames = 40, 3000, 41
    pos = torch.randn(k, 3, generator=gen) * 0.05
    obj = torch.tensor([0] * 25 + [1] * 15)
    pobj = torch.randint(0, 2, (n,), generator=gen)
    pts = pos[torch.nonzero(obj == 0)[0]] + 0.05 * torch.randn(n, 3, generator=gen)
    gq = normalize_quat(torch.randn(n, 4, generator=gen))
    nodes = [0.1 * torch.randn(frames - 1, k, 3, generator=gen) for _ in range(2)]
    results = []
    for dev in ("cpu", "cuda"):
        d = Deformation(pos, obj, torch.full((k,), 0.04), frames).to(dev)
        with torch.no_grad():
            d.rot_nodes.copy_(nodes[0])
            d.trans_nodes.copy_(nodes[1])
        b = bind(pts.to(dev), pobj.to(dev), d.positions, d.object_index, k=4)
        means, quats = skin(d, b, gq.to(dev))
        (means.square().sum() + quats[..., 1].sum()).backward()
        grads = [p.grad.cpu() for p in (d.rot_nodes, d.trans_nodes, d.cov_log_scales)]
        results.append((means.detach().cpu(), quats.detach().cpu(), *grads))
    for a, c in zip(*results, strict=True):
        torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-4)
