"""Full-size smoke run of the Wan 2.2 RF-SDS prior at random weights: shapes, dtypes, time, memory.

Builds the TRUE architectures (Wan2.2-I2V-A14B: two 40-layer 5120-wide experts, UMT5-XXL text
encoder, Wan 2.1 VAE; or Wan2.2-TI2V-5B with the Wan 2.2 VAE) with parameters on the meta device,
materialises every parameter directly on the GPU in bf16 (diffusers' fp32-kept modules in fp32),
then runs ``RFSDSPrior.prepare`` (UMT5 encodes the prompt, is freed) and ``--steps`` RF-SDS steps on
a random differentiable video, annealed from tau ~0.95 (high-noise expert) to ~0.05 (low-noise), so
both experts run. Prints per-step time per phase and ``torch.cuda.max_memory_allocated``.
Timing does not depend on weight values; the numbers of a random model are not meaningful.

Memory plan (docs/wan_prior.md): both experts 57 GiB resident (or ``--experts-resident one``:
28.5 GiB, the idle expert on CPU), the text encoder gone before the first step, the VAE encoder
recomputed per 4-frame chunk in backward (``--no-vae-checkpoint`` shows the 92 GiB plain backward),
the CFG pair run in one batch of 2B rows (``--transformer-batch`` caps rows per forward).

    PYTHONPATH=. python benchmarks/wan_smoke.py                                  # 41x464x832, A14B
    PYTHONPATH=. python benchmarks/wan_smoke.py --experts-resident one --batch 4
    PYTHONPATH=. python benchmarks/wan_smoke.py --variant ti2v-5b --height 480 --width 832
    PYTHONPATH=. python benchmarks/wan_smoke.py --tiny --device cpu             # CPU check of the script
"""

from __future__ import annotations

import argparse
import atexit
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from flowgen.prior import PriorContext
from flowgen.rfsds import RFSDSPrior
from flowgen.wan import WanPriorConfig, check_video_shape
from flowgen.wan.models import WanComponents

A14B_TRANSFORMER = dict(  # scripts/convert_wan_to_diffusers.py, "Wan2.2-I2V-14B-720p"
    patch_size=(1, 2, 2),
    num_attention_heads=40,
    attention_head_dim=128,
    in_channels=36,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=13824,
    num_layers=40,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    image_dim=None,
    added_kv_proj_dim=None,
)
TI2V_TRANSFORMER = {
    **A14B_TRANSFORMER,
    "num_attention_heads": 24,
    "ffn_dim": 14336,
    "num_layers": 30,
    "in_channels": 48,
    "out_channels": 48,
}
VAE21: dict = {}  # AutoencoderKLWan() defaults are the Wan 2.1 VAE (z_dim 16, base_dim 96)
VAE22 = dict(  # vae22_diffusers_config (statistics replaced: values do not matter at random weights)
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    is_residual=True,
    in_channels=12,
    out_channels=12,
    scale_factor_temporal=4,
    scale_factor_spatial=16,
    patch_size=2,
    latents_mean=[0.0] * 48,
    latents_std=[1.0] * 48,
)
UMT5_XXL = dict(  # google/umt5-xxl, as in Wan-AI/Wan2.2-I2V-A14B-Diffusers/text_encoder/config.json
    vocab_size=256384,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6,
    tie_word_embeddings=False,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)


def _scratch(prefix: str) -> Path:
    """A temporary folder removed when the process exits (the prompt cache of a smoke run)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def materialise(
    model: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int
) -> torch.nn.Module:
    """Give every meta parameter a random value made on ``device``: normal(0, 1/sqrt(fan_in)) for
    matrices/kernels, 1 for norm scales, 0 for biases; parameters of ``_keep_in_fp32_modules`` in fp32
    (as from_pretrained(torch_dtype=bf16) leaves them). Buffers (RoPE tables) move as they are."""
    from accelerate.utils import set_module_tensor_to_device

    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    g = torch.Generator(device=device).manual_seed(seed)
    for name, p in list(model.named_parameters()):
        parts = name.split(".")
        dt = torch.float32 if any(k in parts for k in keep) else dtype
        if p.ndim >= 2:
            fan_in = math.prod(p.shape[1:])
            value = torch.empty(p.shape, device=device, dtype=dt).normal_(0.0, fan_in**-0.5, generator=g)
        elif parts[-1] == "bias":
            value = torch.zeros(p.shape, device=device, dtype=dt)
        elif parts[-1] in ("weight", "gamma"):
            value = torch.ones(p.shape, device=device, dtype=dt)
        else:
            value = torch.empty(p.shape, device=device, dtype=dt).normal_(0.0, 0.02, generator=g)
        set_module_tensor_to_device(model, name, device, value=value, dtype=dt)  # else it casts to fp32
    return model.to(device).requires_grad_(False).eval()


def build(variant: str, tiny: bool, device: torch.device, resident: str) -> tuple[WanComponents, dict]:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from tests.flowgen.wan_tiny import tiny_tokenizer

    times = {}
    if tiny:
        from tests.flowgen import wan_tiny

        tcfg = {k: v for k, v in wan_tiny.tiny_transformer(variant).config.items() if not k.startswith("_")}
        vcfg = {k: v for k, v in wan_tiny.tiny_vae(variant).config.items() if not k.startswith("_")}
        ucfg = wan_tiny.tiny_text_encoder().config.to_dict()
        dtype = torch.float32
    else:
        tcfg = A14B_TRANSFORMER if variant == "i2v-a14b" else TI2V_TRANSFORMER
        vcfg = VAE21 if variant == "i2v-a14b" else VAE22
        ucfg = UMT5_XXL
        dtype = torch.bfloat16

    def timed(key, fn):
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times[key] = time.perf_counter() - t0
        return out

    def expert(seed):
        with init_empty_weights():
            m = WanTransformer3DModel(**tcfg)
        return materialise(m, device, dtype, seed)

    experts = []
    if variant == "i2v-a14b":
        # Low-noise first: with one resident it goes to CPU before the high-noise one is made.
        low = timed("init transformer_2 (s)", lambda: expert(2))
        if resident == "one":
            timed("transformer_2 -> cpu (s)", lambda: low.to("cpu"))
        experts = [timed("init transformer (s)", lambda: expert(1)), low]
    else:
        experts = [timed("init transformer (s)", lambda: expert(1))]

    def vae():
        with init_empty_weights():
            m = AutoencoderKLWan(**vcfg)
        return materialise(m, device, dtype, 3)

    def text():
        with init_empty_weights():
            m = UMT5EncoderModel(UMT5Config(**ucfg))
        return materialise(m, device, dtype, 4)

    v = timed("init vae (s)", vae)
    te = timed("init umt5 (s)", text)
    params = {
        "transformer params (B)": sum(p.numel() for p in experts[0].parameters()) / 1e9,
        "umt5 params (B)": sum(p.numel() for p in te.parameters()) / 1e9,
        "vae params (M)": sum(p.numel() for p in v.parameters()) / 1e6,
    }
    comps = WanComponents(
        variant=variant,
        vae=v,
        transformer=experts[0],
        transformer_2=experts[1] if len(experts) > 1 else None,
        boundary_ratio=0.9 if variant == "i2v-a14b" else None,
        tokenizer=tiny_tokenizer(),
        text_encoder=te,
        text_identity=f"random-init-{variant}-{'tiny' if tiny else 'full'}",
    )
    return comps, {**times, **params}


def gib(x: int) -> float:
    return x / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=("i2v-a14b", "ti2v-5b"), default="i2v-a14b")
    ap.add_argument("--frames", type=int, default=41)
    ap.add_argument("--height", type=int, default=464)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--batch", type=int, default=1, help="rendered videos per step")
    ap.add_argument(
        "--samples", type=int, default=4, help="(tau, eps) draws per video, one VAE encode (seed batch: 4)"
    )
    ap.add_argument("--steps", type=int, default=3, help="RF-SDS steps, progress 0 .. 1 (annealed tau)")
    ap.add_argument("--experts-resident", choices=("both", "one"), default="both")
    ap.add_argument(
        "--no-vae-checkpoint", action="store_true", help="plain VAE encoder backward (92 GiB at 41x464x832)"
    )
    ap.add_argument(
        "--transformer-batch",
        type=int,
        default=0,
        help="rows per transformer forward (0: all 2 x B x samples)",
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny configs (checks the script on CPU)")
    args = ap.parse_args()
    check_video_shape(args.variant, args.frames, args.height, args.width)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def peak_reset():
        if cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak() -> float:
        return gib(torch.cuda.max_memory_allocated()) if cuda else float("nan")

    comps, info = build(args.variant, args.tiny, device, args.experts_resident)
    for k, v in info.items():
        print(f"{k:32s} {v:10.2f}")
    if cuda:
        print(f"{'allocated after init (GiB)':32s} {gib(torch.cuda.memory_allocated()):10.2f}")
    dtype = "float32" if args.tiny else "bfloat16"
    cfg = WanPriorConfig(
        model_dir=Path("<random-init>"),
        tau_schedule="annealed",
        experts_resident=args.experts_resident,
        vae_checkpoint=not args.no_vae_checkpoint,
        transformer_batch=args.transformer_batch,
        samples_per_video=args.samples,
        dtype=dtype,
        vae_dtype=dtype,
        cache_dir=_scratch("wan_smoke_cache_"),
    )
    prior = RFSDSPrior(cfg, comps, device)
    g = torch.Generator(device="cpu").manual_seed(0)
    first = torch.rand(args.height, args.width, 3, generator=g)
    ctx = PriorContext(
        first_frame=first,
        prompt="a hand picks up the banana",
        negative_prompt="blurry, static, low quality",
        num_frames=args.frames,
        height=args.height,
        width=args.width,
    )
    peak_reset()
    t0 = time.perf_counter()
    prior.prepare(ctx)
    sync()
    print(f"{'prepare: UMT5 + condition (s)':32s} {time.perf_counter() - t0:10.2f}   peak {peak():.2f} GiB")
    assert comps.text_encoder is None, "text encoder not freed"
    if cuda:
        print(f"{'allocated after prepare (GiB)':32s} {gib(torch.cuda.memory_allocated()):10.2f}")

    video = (
        torch.rand(args.batch, args.frames, args.height, args.width, 3, generator=g)
        .to(device)
        .requires_grad_(True)
    )
    print(
        f"\nstep  progress  tau    expert  encode_s  transformer_s  backward_s  total_s  peak_GiB  "
        f"[B={args.batch} T={args.frames} {args.height}x{args.width} {args.variant} resident={args.experts_resident} "
        f"vae_ckpt={not args.no_vae_checkpoint}]"
    )
    for i in range(args.steps):
        progress = i / max(args.steps - 1, 1)
        video.grad = None
        peak_reset()
        sync()
        t0 = time.perf_counter()
        # The body of RFSDSPrior.loss, split to time each phase.
        z = prior.draws(prior.encode(video))
        sync()
        t1 = time.perf_counter()
        step = prior.sds_gradient(z, progress, g)
        sync()
        t2 = time.perf_counter()
        loss = prior._surrogate(z, step.g)
        loss.backward()
        sync()
        t3 = time.perf_counter()
        finite = bool(torch.isfinite(step.g).all()) and bool(torch.isfinite(video.grad).all())
        print(
            f"{i:4d}  {progress:8.2f}  {float(step.tau[0]):.3f}  {int(step.expert[0]):6d}  {t1 - t0:8.2f}  "
            f"{t2 - t1:13.2f}  {t3 - t2:10.2f}  {t3 - t0:7.2f}  {peak():8.2f}  "
            f"z={tuple(z.shape)} {z.dtype} finite={finite} |grad|={float(video.grad.abs().mean()):.3e}"
        )
    by_dtype: dict[str, float] = {}
    for p in comps.transformer.parameters():
        by_dtype[str(p.dtype)] = by_dtype.get(str(p.dtype), 0.0) + p.numel() / 1e9
    dtypes = ", ".join(f"{k} {v:.2f}B" for k, v in sorted(by_dtype.items()))
    print(f"\nexpert swaps: {prior.experts.swaps}   latent: {tuple(z.shape)}   transformer params: {dtypes}")


if __name__ == "__main__":
    main()
