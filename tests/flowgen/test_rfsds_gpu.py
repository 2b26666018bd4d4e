"""The Wan RF-SDS prior on CUDA in bf16 (tiny random folder): dtypes, expert residency, gradients."""

from __future__ import annotations

import pytest
import torch

from flowgen.prior import PriorContext
from flowgen.rfsds import make_wan_prior
from flowgen.wan import WanPriorConfig
from flowgen.wan.condition import encode_video, video_to_vae_input
from tests.flowgen.wan_tiny import save_tiny_wan

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "a14b", "i2v-a14b")


def test_bf16_on_cuda_one_resident_expert(folder, tmp_path):
    cfg = WanPriorConfig(
        model_dir=folder, cache_dir=tmp_path, experts_resident="one", tau_schedule="annealed"
    )
    prior = make_wan_prior(cfg, "cuda", (9, 32, 32))
    t = prior.c.transformer
    assert t.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert t.scale_shift_table.dtype == torch.float32  # diffusers keeps it in fp32 under torch_dtype=bf16
    assert prior.c.vae.dtype == torch.bfloat16
    g = torch.Generator().manual_seed(0)
    prior.prepare(
        PriorContext(
            first_frame=torch.rand(32, 32, 3, generator=g),
            prompt="a box moves",
            num_frames=9,
            height=32,
            width=32,
        )
    )
    assert prior.c.text_encoder is None and prior._prompt.is_cuda
    video = torch.rand(2, 9, 32, 32, 3, generator=g, device="cpu").cuda().requires_grad_(True)
    out = prior.loss(video, progress=0.0, generator=g)  # annealed: tau ~0.95, high-noise expert
    out.loss.backward()
    assert out.logs["expert"] == 0.0 and prior.c.transformer.device.type == "cuda"
    assert torch.isfinite(video.grad).all() and video.grad.abs().sum() > 0
    prior.loss(video, progress=1.0, generator=g)  # low-noise expert: the other one leaves the GPU
    assert prior.c.transformer_2.device.type == "cuda" and prior.c.transformer.device.type == "cpu"
    assert prior.experts.swaps == 2


def test_checkpointed_encoder_matches_plain_on_cuda(folder, tmp_path):
    prior = make_wan_prior(WanPriorConfig(model_dir=folder, cache_dir=tmp_path), "cuda")
    x = video_to_vae_input(torch.rand(1, 9, 32, 32, 3, device="cuda")).requires_grad_(True)
    a = encode_video(prior.c.vae, x)
    (ga,) = torch.autograd.grad(a.sum(), x)
    b = encode_video(prior.c.vae, x, checkpoint=True)
    (gb,) = torch.autograd.grad(b.sum(), x)
    torch.testing.assert_close(b, a, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(gb, ga, rtol=2e-2, atol=2e-2)
