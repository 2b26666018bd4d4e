"""The kernels under one RF-SDS step, timed alone on the GPU: what each speed idea can buy (issue 13).

At the seed's shape (41 frames 832x464 -> 16,588 tokens; 4 draws x CFG pair = 8 rows):
  gemm       the expert's three linear shapes at M = 8 x 16,588 rows: bf16, FP8 per-tensor and FP8
             row-wise (``torch._scaled_mm``), plus the cost of quantising the activation
  attention  scaled-dot-product attention [8, 40 heads, 16,588, 128] under each SDPA kernel
  attention-fp8  cuDNN's fused FP8 attention (flowgen.wan.fp8_attention) at that shape: time with and
             without the per-tensor quantisation of q, k, v, and its output against bf16 SDPA (and
             against the float32 emulation at a small shape)
  layers     a Wan A14B expert cut to --layers blocks (true width), eager vs ``torch.compile``d blocks,
             bf16 vs FP8 linears vs FP8 linears + FP8 self-attention; per block x 40 projects a whole
             expert forward
  vae        the Wan 2.1 VAE encoder on one 41x464x832 video, forward then backward, as the prior runs
             it: recomputed per video and per 4-frame step, or per step only (keep_caches), with the
             activations in the default or the channels-last-3d layout; peak memory and the gradient's
             cosine against the default

    PYTHONPATH=. python benchmarks/sds_kernels.py
    PYTHONPATH=. python benchmarks/sds_kernels.py --sections gemm,attention
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.wan_smoke import A14B_TRANSFORMER, materialise  # noqa: E402
from flowgen.wan.fp8 import Float8Linear, linears_to_fp8, quantize_rows  # noqa: E402
from flowgen.wan.models import attention_context, compile_blocks  # noqa: E402

TOKENS = 11 * 29 * 52  # latent frames x (464/16) x (832/16)
ROWS = 8


def bench(fn, warmup: int = 2, iters: int = 5) -> float:
    """Median seconds of ``fn()`` on the GPU."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def gemm() -> None:
    m = ROWS * TOKENS
    m16 = m + (-m) % 16
    print(f"\n[gemm] M = {m} rows (padded {m16})")
    print(f"{'K x N':>14s} {'bf16 ms':>8s} {'TF/s':>6s} {'fp8-tensor':>10s} {'TF/s':>6s} {'fp8-row':>8s} "
          f"{'TF/s':>6s} {'quant ms':>8s} {'quant-c':>8s} {'Float8Linear':>12s}")  # fmt: skip
    qc = torch.compile(quantize_rows)
    for k, n in ((5120, 5120), (5120, 13824), (13824, 5120)):
        g = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(m16, k, device="cuda", dtype=torch.bfloat16, generator=g)
        lin = torch.nn.Linear(k, n, bias=True, device="cuda", dtype=torch.bfloat16)
        w = lin.weight.detach()
        flops = 2 * m16 * k * n
        t_bf = bench(lambda a=a, w=w: a @ w.t())
        qa, sa = quantize_rows(a)
        qw, sw = quantize_rows(w)
        one = torch.ones((), device="cuda")
        t_t = bench(lambda qa=qa, qw=qw, one=one: torch._scaled_mm(qa, qw.t(), scale_a=one, scale_b=one,
                    out_dtype=torch.bfloat16, use_fast_accum=True))  # fmt: skip
        swr = sw.reshape(1, -1).contiguous()
        t_r = bench(lambda qa=qa, qw=qw, sa=sa, swr=swr: torch._scaled_mm(qa, qw.t(), scale_a=sa, scale_b=swr,
                    out_dtype=torch.bfloat16, use_fast_accum=True))  # fmt: skip
        t_q = bench(lambda a=a: quantize_rows(a))
        t_qc = bench(lambda a=a: qc(a))
        f8 = Float8Linear(lin)
        t_f8 = bench(lambda a=a, f8=f8: f8(a))
        print(f"{k:6d} x {n:5d} {t_bf * 1e3:8.2f} {flops / t_bf / 1e12:6.0f} {t_t * 1e3:10.2f} "
              f"{flops / t_t / 1e12:6.0f} {t_r * 1e3:8.2f} {flops / t_r / 1e12:6.0f} {t_q * 1e3:8.2f} "
              f"{t_qc * 1e3:8.2f} {t_f8 * 1e3:12.2f}", flush=True)  # fmt: skip
        del a, lin, w, qa, qw, f8
        torch.cuda.empty_cache()


def attention() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(ROWS, 40, TOKENS, 128, device="cuda", dtype=torch.bfloat16, generator=g)
               for _ in range(3))  # fmt: skip
    flops = 4 * ROWS * 40 * TOKENS * TOKENS * 128
    print(f"\n[attention] [{ROWS}, 40, {TOKENS}, 128] bf16, {flops / 1e12:.0f} TFLOP")
    ref = None
    for name in ("auto", "cudnn", "flash", "efficient"):
        try:
            with attention_context(name):
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                t = bench(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), 1, 3)
            diff = 0.0 if ref is None else float((out - ref).abs().max())
            ref = out if ref is None else ref
            print(f"  {name:10s} {t * 1e3:8.1f} ms  {flops / t / 1e12:5.0f} TFLOP/s  max|diff vs auto| {diff:.2e}",
                  flush=True)  # fmt: skip
        except RuntimeError as e:
            print(f"  {name:10s} unavailable: {str(e).splitlines()[0][:100]}")


def attention_fp8() -> None:
    from flowgen.wan.fp8_attention import attention_fp8, cudnn_sdpa_fp8, output_scale, quantize_tensor

    g = torch.Generator(device="cuda").manual_seed(0)
    # [B, S, H, D] as the Wan processor hands them over; rows of unit-RMS q and k as after RMSNorm
    q, k, v = (torch.randn(ROWS, TOKENS, 40, 128, device="cuda", dtype=torch.bfloat16, generator=g)
               for _ in range(3))  # fmt: skip
    flops = 4 * ROWS * 40 * TOKENS * TOKENS * 128
    print(f"\n[attention-fp8] [{ROWS}, {TOKENS}, 40, 128], {flops / 1e12:.0f} TFLOP")
    t_ref = bench(lambda: torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)), 1, 3)  # fmt: skip
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    )
    ref = ref.transpose(1, 2)
    o8, d_o = attention_fp8(q, k, v, "cudnn")
    out = o8.float() * d_o.reshape(())
    (q8, dq), (k8, dk), (v8, dv) = (quantize_tensor(x) for x in (q, k, v))
    so = output_scale(dv)
    t_op = bench(lambda: cudnn_sdpa_fp8(q8, k8, v8, dq, dk, dv, so, 128**-0.5), 1, 3)
    t_all = bench(lambda: attention_fp8(q, k, v, "cudnn"), 1, 3)
    cos = float(torch.nn.functional.cosine_similarity(out.flatten().double(), ref.flatten().double(), dim=0))
    rel = float((out - ref.float()).norm() / ref.float().norm())
    print(f"  bf16 SDPA (torch default)   {t_ref * 1e3:7.1f} ms  {flops / t_ref / 1e12:5.0f} TFLOP/s")
    print(f"  cuDNN FP8 kernel            {t_op * 1e3:7.1f} ms  {flops / t_op / 1e12:5.0f} TFLOP/s")
    print(f"  + quantising q, k, v (eager) {t_all * 1e3:6.1f} ms  {flops / t_all / 1e12:5.0f} TFLOP/s")
    print(f"  vs bf16: cos {cos:.5f}  relative error {rel:.4f}", flush=True)
    # the same inputs through the float32 emulation, at a shape whose S x S scores fit in memory
    qs, ks, vs = (x[:1, :2048, :8].contiguous() for x in (q, k, v))
    a8, da = attention_fp8(qs, ks, vs, "cudnn")
    b8, db = attention_fp8(qs, ks, vs, "emulated")
    a, b = a8.float() * da.reshape(()), b8.float() * db.reshape(())
    cos_e = float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))
    print(f"  cuDNN vs float32 emulation at [1, 2048, 8, 128]: cos {cos_e:.5f}", flush=True)


def vae(frames: int = 41, height: int = 464, width: int = 832) -> None:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan

    from benchmarks.wan_smoke import VAE21
    from flowgen.wan.condition import encode_video, set_conv3d_layout

    print(f"\n[vae] Wan 2.1 VAE encoder, one {frames}x{height}x{width} video, forward + backward (bf16)")
    torch.backends.cudnn.benchmark = True
    with init_empty_weights():
        model = AutoencoderKLWan(**VAE21)
    model = materialise(model, torch.device("cuda"), torch.bfloat16, 3)
    g = torch.Generator(device="cuda").manual_seed(0)
    x0 = torch.rand(1, 3, frames, height, width, device="cuda", generator=g) * 2 - 1
    cot = None
    ref = None
    cases = (("per video + per step", False, False, False), ("per step (keep caches)", True, False, False),
             ("per step, channels-last", True, True, False), ("per step, compiled encoder", True, False, True),
             ("per step, channels-last, compiled", True, True, True))  # fmt: skip
    for name, keep, cl, compiled in cases:
        set_conv3d_layout(model, torch.channels_last_3d if cl else torch.contiguous_format)
        model.encoder._compiled_call_impl = None
        if compiled:
            model.encoder.compile()
        x = x0.clone().requires_grad_(True)

        def run(x=x, keep=keep, cl=cl):
            z = encode_video(model, x, checkpoint=True, keep_caches=keep, channels_last=cl)
            nonlocal cot
            if cot is None:
                cot = torch.randn(z.shape, device="cuda", generator=g)
            x.grad = None
            (z * cot).sum().backward()
            return z

        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                t_fwd = bench(lambda x=x, keep=keep, cl=cl: encode_video(model, x, True, keep, cl), 1, 3)
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            run()
        except Exception as e:  # a compile failure: report it, go on
            print(f"  {name:38s} failed: {str(e).splitlines()[0][:120]}", flush=True)
            continue
        first = time.perf_counter() - t0 - 4 * t_fwd
        peak = (torch.cuda.max_memory_allocated() - base) / 2**30
        t_all = bench(run, 1, 3)
        grad = x.grad.detach().float().clone()
        ref = grad if ref is None else ref
        cos = float(
            torch.nn.functional.cosine_similarity(grad.flatten().double(), ref.flatten().double(), dim=0)
        )
        print(f"  {name:38s} forward {t_fwd:5.2f} s  forward+backward {t_all:5.2f} s  peak +{peak:5.1f} GiB"
              f"  cos(grad) vs first {cos:.5f}  (first calls {first:.0f} s)", flush=True)  # fmt: skip


def layers(n_layers: int) -> None:
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    print(f"\n[layers] A14B expert cut to {n_layers} blocks, batch {ROWS} x {TOKENS} tokens")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(ROWS, 36, 11, 58, 104, device="cuda", dtype=torch.bfloat16, generator=g)
    text = torch.randn(ROWS, 512, 4096, device="cuda", dtype=torch.bfloat16, generator=g)
    t = torch.full((ROWS,), 500.0, device="cuda")

    def make():
        with init_empty_weights():
            m = WanTransformer3DModel(**{**A14B_TRANSFORMER, "num_layers": n_layers})
        return materialise(m, torch.device("cuda"), torch.bfloat16, 1)

    def fwd(m):
        with torch.no_grad():
            return m(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]

    ref = None
    from flowgen.wan.fp8_attention import self_attention_to_fp8

    for name in ("bf16", "bf16-compiled", "fp8", "fp8-compiled", "fp8+attn-compiled"):
        m = make()
        if name.startswith("fp8"):
            linears_to_fp8(m)
        if "attn" in name:
            self_attention_to_fp8(m, "cudnn")
        t0 = time.perf_counter()
        if name.endswith("compiled"):
            compile_blocks(m)
        out = fwd(m).float()
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        sec = bench(lambda m=m: fwd(m), 1, 3)
        ref = out if ref is None else ref
        cos = float(
            torch.nn.functional.cosine_similarity(out.flatten().double(), ref.flatten().double(), dim=0)
        )
        print(f"  {name:14s} {sec:6.3f} s  = {sec / n_layers * 1e3:6.1f} ms/block -> 40 blocks {sec / n_layers * 40:5.2f} s"
              f"   first call {first:5.1f} s   cos vs bf16 {cos:.5f}", flush=True)  # fmt: skip
        del m
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="gemm,attention,attention-fp8,layers,vae")
    ap.add_argument("--layers", type=int, default=4, help="blocks in the cut-down expert")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("sds_kernels.py times GPU kernels: it needs CUDA")
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    sections = args.sections.split(",")
    if "gemm" in sections:
        gemm()
    if "attention" in sections:
        attention()
    if "attention-fp8" in sections:
        attention_fp8()
        torch.cuda.empty_cache()
    if "vae" in sections:
        vae()
        torch.cuda.empty_cache()
    if "layers" in sections:
        layers(args.layers)


if __name__ == "__main__":
    main()
