"""The I2V condition and the latents match what diffusers' WanImageToVideoPipeline builds."""

from __future__ import annotations

import pytest
import torch

from flowgen.wan.condition import (
    encode_video,
    encoder_mode_checkpointed,
    i2v_condition,
    latent_stats,
    ti2v_condition,
    video_to_vae_input,
)
from tests.flowgen.wan_tiny import tiny_pipeline


@pytest.fixture(scope="module")
def pipes():
    return {v: tiny_pipeline(v) for v in ("i2v-a14b", "ti2v-5b")}


def _image(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g) * 2 - 1  # what VideoProcessor.preprocess gives: [-1, 1]


def test_a14b_condition_is_the_pipelines(pipes):
    pipe = pipes["i2v-a14b"]
    image = _image(32, 48)
    _, want = pipe.prepare_latents(
        image, 1, 16, 32, 48, 9, torch.float32, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    got = i2v_condition(pipe.vae, image, 9)
    assert got.shape == (1, 20, 3, 4, 6)
    assert torch.equal(got, want)
    assert torch.equal(got[:, :4, 0], torch.ones(1, 4, 4, 6)) and not got[:, :4, 1:].any()


def test_ti2v_condition_is_the_pipelines(pipes):
    pipe = pipes["ti2v-5b"]
    image = _image(32, 64)
    _, want, want_mask = pipe.prepare_latents(
        image, 1, 48, 32, 64, 9, torch.float32, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    got, mask = ti2v_condition(pipe.vae, image, 9)
    assert got.shape == (1, 48, 1, 2, 4) and mask.shape == (1, 1, 3, 2, 4)
    assert torch.equal(got, want)
    assert torch.equal(mask, want_mask)


@pytest.mark.parametrize("variant", ["i2v-a14b", "ti2v-5b"])
def test_checkpointed_encoder_equals_vae_encode_in_value_and_gradient(pipes, variant):
    vae = pipes[variant].vae
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 3, 9, 32, 32, generator=g) * 2 - 1).requires_grad_(True)
    ref = vae.encode(x).latent_dist.mode()
    out = encoder_mode_checkpointed(vae, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    w = torch.randn(ref.shape, generator=g)
    (gref,) = torch.autograd.grad((ref * w).sum(), x)
    (gout,) = torch.autograd.grad((out * w).sum(), x)
    torch.testing.assert_close(gout, gref, rtol=1e-5, atol=1e-6)
    assert gref.abs().sum() > 0


def test_encode_video_is_the_normalised_mode(pipes):
    vae = pipes["i2v-a14b"].vae
    g = torch.Generator().manual_seed(2)
    video = torch.rand(2, 9, 16, 16, 3, generator=g)  # [B, T, H, W, 3] in [0, 1]
    x = video_to_vae_input(video)
    assert x.shape == (2, 3, 9, 16, 16)
    assert torch.equal(x[1, :, 4], video[1, 4].permute(2, 0, 1) * 2 - 1)
    mode = vae.encode(x).latent_dist.mode()
    mean, inv_std = latent_stats(vae, "cpu")
    z = encode_video(vae, x)
    torch.testing.assert_close(z / inv_std + mean, mode, rtol=1e-5, atol=1e-5)
    assert float(mean.abs().max()) > 0.1  # the real Wan 2.1 statistics: normalisation is not identity
    torch.testing.assert_close(encode_video(vae, x, checkpoint=True), z, rtol=0, atol=1e-6)


def test_checkpointed_encode_video_has_the_plain_gradient(pipes):
    vae = pipes["i2v-a14b"].vae
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(2, 3, 9, 16, 16, generator=g) * 2 - 1).requires_grad_(True)
    w = torch.randn(2, 16, 3, 2, 2, generator=g)
    (plain,) = torch.autograd.grad((encode_video(vae, x) * w).sum(), x)
    (ckpt,) = torch.autograd.grad((encode_video(vae, x, checkpoint=True) * w).sum(), x)
    torch.testing.assert_close(ckpt, plain, rtol=1e-4, atol=1e-6)  # batch-1 vs batch-2 kernels: ~2e-7
    assert plain[1].abs().sum() > 0 and plain[0].abs().sum() > 0


def test_keeping_the_caches_and_channels_last_give_the_same_latent_and_gradient():
    """The VAE memory plans of the speed modes change what autograd keeps and the memory layout,
    not the values: latent and vector-Jacobian product match the plain encode."""
    from diffusers import AutoencoderKLWan

    from flowgen.wan.condition import encode_video, set_conv3d_layout, vae_channels_last

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=8, dim_mult=[1, 1, 1, 1], num_res_blocks=1).eval().requires_grad_(False)
    x0 = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    cot = torch.randn(2, 16, 3, 2, 2)

    def run(**kw):
        x = x0.clone().requires_grad_(True)
        z = encode_video(vae, x, **kw)
        (z * cot).sum().backward()
        return z.detach(), x.grad

    z_ref, g_ref = run(checkpoint=False)
    for kw in ({"checkpoint": True}, {"checkpoint": True, "keep_caches": True}):
        z, g = run(**kw)
        torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6)
    vae_channels_last(vae)
    conv = next(m for m in vae.encoder.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    z, g = run(checkpoint=True, keep_caches=True, channels_last=True)
    torch.testing.assert_close(z, z_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g, g_ref, rtol=1e-3, atol=1e-6)
    set_conv3d_layout(vae, torch.contiguous_format)
    assert conv.weight.is_contiguous()
