"""FP8 self-attention of the fast mode: quantisation, the processor against diffusers', the emulation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flowgen.wan.fp8 import E4M3_MAX, Float8Linear, linears_to_fp8
from flowgen.wan.fp8_attention import (
    FP8SelfAttnProcessor,
    attention_fp8,
    quantize_tensor,
    self_attention_to_fp8,
)
from tests.flowgen.wan_tiny import tiny_transformer


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def _run(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 36, 3, 8, 8, generator=g)
    text = torch.randn(2, 12, 32, generator=g)
    with torch.no_grad():
        return model(hidden_states=x, timestep=torch.tensor([500.0, 950.0]), encoder_hidden_states=text,
                     return_dict=False)[0]  # fmt: skip


def _qkv(seed=0, b=2, s=96, h=2, d=32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, s, h, d, generator=g) * 2.0 for _ in range(3)]


def _sdpa(q, k, v):  # [B, S, H, D]
    return torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    ).transpose(1, 2)


def test_tensor_quantisation_maps_the_largest_magnitude_just_under_448():
    x = torch.randn(3, 40, 2, 16) * 7.0
    q, descale = quantize_tensor(x)
    assert q.dtype == torch.float8_e4m3fn and descale.shape == (1, 1, 1, 1)
    top = q.float().abs().max()
    assert 0.98 * E4M3_MAX <= top <= E4M3_MAX
    back = q.float() * descale
    assert float((back - x).abs().max() / x.abs().max()) < 2**-4
    z, dz = quantize_tensor(torch.zeros(4, 4))  # an all-zero tensor gets a finite scale, no NaN
    assert torch.isfinite(dz).all() and (z.float() == 0).all()


def test_emulated_fp8_attention_is_close_to_exact_attention_and_keeps_the_output_in_range():
    q, k, v = _qkv()
    ref = _sdpa(q, k, v)
    o8, descale = attention_fp8(q, k, v, "emulated")
    assert o8.dtype == torch.float8_e4m3fn and o8.shape == q.shape
    out = o8.float() * descale.reshape(())
    assert o8.float().abs().max() <= E4M3_MAX * 0.875 * 1.07  # the headroom left for P's rounding
    cos = _cos(out, ref)
    assert 0.995 < cos < 1.0, cos
    # a wrong softmax scale (1 instead of 1/sqrt(d)) would be caught by the same bound
    wrong = _sdpa(q * math.sqrt(q.shape[-1]), k, v)
    assert _cos(out, wrong) < 0.99
    with pytest.raises(ValueError, match="kernel is 'flash'"):
        attention_fp8(q, k, v, "flash")


def test_peaked_attention_survives_the_fp8_softmax():
    """One key much closer than the rest: P rounds to 1 for it and ~0 elsewhere, O ~ that value."""
    q, k, v = _qkv(1, b=1, s=64, h=1, d=32)
    k[:, 7] = q[:, 5] * 4.0  # query 5 attends almost only to key 7
    o8, descale = attention_fp8(q, k, v, "emulated")
    out = o8.float() * descale.reshape(())
    ref = _sdpa(q, k, v)
    assert float((out[0, 5] - ref[0, 5]).norm() / ref[0, 5].norm()) < 0.06
    assert _cos(out[0, 5], v[0, 7]) > 0.99


class _ExactKernel(FP8SelfAttnProcessor):
    """The processor with bf16/fp32 attention in place of FP8: isolates projections, norms and RoPE."""

    def attend(self, q, k, v):
        out = _sdpa(q, k, v)
        return out, torch.ones(1, 1, 1, 1)


def test_the_processor_reproduces_diffusers_self_attention_exactly_apart_from_the_kernel():
    model = tiny_transformer("i2v-a14b", 0, head_dim=16, ffn_dim=64)
    ref = _run(model)
    for block in model.blocks:
        block.attn1.processor = _ExactKernel("emulated")
    out = _run(model)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # and the comparison has teeth: a processor that skips the rotary embedding is caught
    for block in model.blocks:
        block.attn1.processor = _NoRope("emulated")
    assert not torch.allclose(_run(model), ref, rtol=1e-3, atol=1e-3)


class _NoRope(_ExactKernel):
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, None)


def test_fp8_self_attention_in_a_wan_transformer_stays_close_and_touches_only_attn1():
    model = tiny_transformer("i2v-a14b", 0, head_dim=16, ffn_dim=64)
    ref = _run(model)
    cross = model.blocks[0].attn2.processor
    assert self_attention_to_fp8(model, "emulated") == len(model.blocks)
    assert all(isinstance(b.attn1.processor, FP8SelfAttnProcessor) for b in model.blocks)
    assert model.blocks[0].attn2.processor is cross  # cross-attention untouched
    out = _run(model)
    cos = _cos(out, ref)
    assert 0.99 < cos < 1.0, cos
    # with the linears in FP8 as well (the fast mode): the output projection takes O in FP8 as is
    linears_to_fp8(model)
    assert isinstance(model.blocks[0].attn1.to_out[0], Float8Linear)
    both = _run(model)
    assert 0.98 < _cos(both, ref) < 1.0
    with pytest.raises(ValueError, match="has no .blocks"):
        self_attention_to_fp8(nn.Linear(4, 4))


def test_float8_linear_takes_a_shared_or_an_already_fp8_input():
    g = torch.Generator().manual_seed(2)
    layers = tuple(Float8Linear(nn.Linear(64, 32)) for _ in range(3))
    x = torch.randn(5, 64, generator=g)  # 5 rows: padded inside
    shared = Float8Linear.shared_input(x, layers)
    for y, layer in zip(shared, layers, strict=True):
        torch.testing.assert_close(y, layer(x))
    with pytest.raises(ValueError, match="take"):
        Float8Linear.shared_input(torch.randn(5, 48), layers)
    x8, descale = quantize_tensor(x)
    y = layers[0].from_fp8(x8, descale.reshape(()), torch.float32)
    dense = layers[0](x8.float() * descale.reshape(()))
    assert y.shape == (5, 32) and _cos(y, dense) > 0.999
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        layers[0].from_fp8(x, descale, torch.float32)


def test_cudnn_fp8_attention_is_refused_off_a_cuda_device_with_the_way_out():
    from flowgen.wan.fp8_attention import check_cudnn_fp8

    with pytest.raises(ValueError, match="needs a CUDA device, got cpu"):
        check_cudnn_fp8("cpu")
