"""FP8 linears, the cuDNN attention kernel and pinned expert swaps on a CUDA GPU (run on the device)."""

from __future__ import annotations

import time

import pytest
import torch

from flowgen.wan.fp8 import linears_to_fp8
from flowgen.wan.models import ExpertSwitch, WanComponents, attention_context

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _model(seed: int, layers: int = 4):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    m = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=8, attention_head_dim=128, in_channels=36, out_channels=16,
        text_dim=512, freq_dim=256, ffn_dim=2048, num_layers=layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
    )  # fmt: skip
    return m.to("cuda", torch.bfloat16).eval().requires_grad_(False)


def _run(model, seed=3):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(2, 36, 5, 30, 52, generator=g, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(2, 64, 512, generator=g, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        return model(hidden_states=x, timestep=torch.tensor([500.0, 950.0], device="cuda"),
                     encoder_hidden_states=text, return_dict=False)[0].float()  # fmt: skip


def _cos(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def test_fp8_expert_output_stays_close_to_bf16_on_the_gpu():
    m = _model(0)
    ref = _run(m)
    linears_to_fp8(m)
    out = _run(m)
    cos = _cos(out, ref)
    print(f"\nfp8 vs bf16 transformer output cosine {cos:.5f}")
    assert 0.99 < cos < 1.0


def test_cudnn_attention_matches_the_default_kernel():
    m = _model(1)
    ref = _run(m)
    with attention_context("cudnn"):
        out = _run(m)
    cos = _cos(out, ref)
    print(f"\ncudnn vs default attention output cosine {cos:.6f}, max |diff| {(out - ref).abs().max():.3e}")
    assert cos > 0.9999


def test_pinned_one_resident_switch_on_the_gpu():
    hi, lo = _model(2), _model(3)
    ref_hi, ref_lo = _run(hi), _run(lo)
    comps = WanComponents("i2v-a14b", vae=None, transformer=hi, transformer_2=lo, boundary_ratio=0.9)
    before = torch.cuda.memory_allocated()
    sw = ExpertSwitch(comps, "cuda", "one")
    assert all(p.device.type == "cpu" and p.is_pinned() for p in lo.parameters())
    assert torch.cuda.memory_allocated() < before / 4
    torch.testing.assert_close(_run(sw.get(0)), ref_hi)
    on_one = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    out = _run(sw.get(1))
    torch.cuda.synchronize()
    print(f"\nswap + forward {time.perf_counter() - t0:.3f} s")
    torch.testing.assert_close(out, ref_lo)
    assert abs(torch.cuda.memory_allocated() - on_one) < 0.1 * on_one  # one expert resident at a time
    assert all(p.device.type == "cpu" for p in hi.parameters())


def test_cudnn_fp8_attention_matches_its_emulation_and_bf16_attention():
    from flowgen.wan.fp8_attention import attention_fp8

    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(2, 1024, 4, 128, generator=g, device="cuda", dtype=torch.bfloat16) for _ in range(3)
    )
    a8, da = attention_fp8(q, k, v, "cudnn")
    b8, db = attention_fp8(q, k, v, "emulated")
    a, b = a8.float() * da.reshape(()), b8.float() * db.reshape(())
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    ).transpose(1, 2)
    c_emul, c_bf16 = _cos(a, b), _cos(a, ref.float())
    print(f"\ncuDNN FP8 attention: cos vs emulation {c_emul:.5f}, vs bf16 SDPA {c_bf16:.5f}")
    assert c_emul > 0.999 and 0.99 < c_bf16 < 1.0


def test_fp8_attention_and_linears_compiled_stay_close_to_bf16():
    from flowgen.wan.fp8_attention import self_attention_to_fp8
    from flowgen.wan.models import compile_blocks

    m = _model(4)
    ref = _run(m)
    linears_to_fp8(m)
    self_attention_to_fp8(m, "cudnn")
    eager = _run(m)
    compile_blocks(m)
    compiled = _run(m)
    c_eager, c_comp = _cos(eager, ref), _cos(compiled, ref)
    print(f"\nFP8 linears + FP8 attention vs bf16: eager cos {c_eager:.5f}, compiled cos {c_comp:.5f}")
    assert 0.98 < c_eager < 1.0 and _cos(compiled, eager) > 0.999
