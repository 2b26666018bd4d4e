"""One full RF-SDS iteration at the seed's settings, timed by phase, for each speed mode (issue 13).

An iteration is what ``chord flow --prior wan`` does per step (``flowgen.optimize._step``): render the
41-frame 832x464 video of the pick-banana scene's Gaussians (gsplat) -> VAE encode with gradient ->
4 (tau, eps) draws x CFG pair through the A14B expert without gradient -> backward through the VAE
encoder, renderer and deformation -> Adam step. The experts, VAE and Gaussians have the TRUE sizes
(Wan2.2-I2V-A14B: two 40-layer 5120-wide experts, Wan 2.1 VAE; 20k Gaussians, 60 control points) at
random weights: time and memory do not depend on weight values. The prompt embeddings are random
(UMT5 is not built: it runs once per prompt and is cached).

Variants, all timed in one process on the same scene, noise draws and expert (annealed tau at
progress 0.5, so every variant runs the low-noise expert and none swaps inside a timed step):

  baseline     the straightforward composition of the diffusers components, written as the
               pipeline's code reads: the seed's batch of 4 as 4 rendered videos, each through
               ``vae.encode(...).latent_dist.mode()`` with autograd, the cond and uncond transformer
               calls separately at batch 1, backward per video. Its plain VAE backward (~92 GiB) and two
               resident experts (57 GiB) do not fit one H200 together, so the idle expert waits on
               the host (as it must for this composition).
  exact-v0     our prior before this issue: one encode (the 4 renders are identical), 4 draws x CFG
               pair batched (8 rows), the VAE encoder recomputed per 4-frame chunk, both experts
               resident, torch's default attention kernel.
  exact        exact mode (flowgen.wan.config.MODES): bf16, the full VAE-encoder backward (recomputed
               per chunk), compiled blocks, one expert on the GPU and the other in pinned host memory
  exact-v1     exact mode as first measured (VAE recomputed per video and per step, default layout)
  exact-eager  exact without torch.compile
  exact-both   exact with both experts on the GPU
  fast-v1      fast mode as first measured: block linears in FP8, self-attention bf16, VAE as exact-v1
  fast         fast mode (flowgen.wan.config.MODES): exact's VAE plan, the experts' block linears in
               FP8 (row-wise scales) and, where set, their self-attention in FP8 (cuDNN), compiled,
               both experts resident
  fast-eager   fast without torch.compile
  fast-attn8   fast with the experts' self-attention in FP8 as well (cuDNN; opt-in: below the guard)

A quality guard follows: on one fixed rendered video and one fixed (tau, eps) draw, the cosine
between each variant's SDS gradient g (latent space) and exact-v0's (and exact's), and between the
gradients on the video pixels; below flowgen.wan.config.GUARD_MIN_COS the script exits non-zero. The seed's Table 2 is printed beside the per-iteration times (hours for 2,000
iterations: 21 frames 8.0, 41 frames 17.7, 61 frames 23.5, 240p 4.2).

    PYTHONPATH=. python benchmarks/sds_step.py                                        # 41x464x832
    PYTHONPATH=. python benchmarks/sds_step.py --shapes 21x464x832,61x464x832,41x240x416 \\
        --variants exact,fast --no-guard
    PYTHONPATH=. python benchmarks/sds_step.py --tiny --device cpu                    # CPU check
    PYTHONPATH=. torchrun --standalone --nproc-per-node 4 benchmarks/sds_step.py --variants exact,fast
                                        # multi-GPU scaling: each rank scores 1 of the 4 draws
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.wan_smoke import A14B_TRANSFORMER, VAE21, materialise  # noqa: E402
from flowgen import distributed  # noqa: E402
from flowgen.prior import PriorContext  # noqa: E402
from flowgen.rfsds import RFSDSPrior, cfg_scale  # noqa: E402
from flowgen.wan import WanPriorConfig, check_video_shape  # noqa: E402
from flowgen.wan.condition import encode_video, set_conv3d_layout, video_to_vae_input  # noqa: E402
from flowgen.wan.config import GUARD_MIN_COS, mode_settings  # noqa: E402
from flowgen.wan.models import WanComponents  # noqa: E402
from flowgen.wan.prompts import PromptCache, prompt_cache_key  # noqa: E402

PROMPT, NEGATIVE = "a hand picks up the banana", "blurry, static, low quality"
PROGRESS = 0.5  # annealed tau ~0.5 +- 0.05: the low-noise expert in every timed step
SEED_TABLE2_HOURS = {"21x464x832": 8.0, "41x464x832": 17.7, "61x464x832": 23.5, "41x240x416": 4.2}
VARIANTS = (
    "exact-v0",
    "baseline",
    "exact-v1",
    "exact",
    "exact-eager",
    "exact-both",
    "fast-v1",
    "fast",
    "fast-eager",
    "fast-attn8",
)
OPT_IN = ("fast-attn8",)  # not a mode: the guard is reported for it, not enforced
DEFAULT_VARIANTS = ("exact-v0", "baseline", "exact", "fast")
TINY_TRANSFORMER = dict(
    A14B_TRANSFORMER, num_attention_heads=2, attention_head_dim=16, text_dim=32, ffn_dim=64, num_layers=2
)
TINY_VAE = dict(base_dim=8, dim_mult=[1, 1, 1, 1], num_res_blocks=1)


def gib(x: float) -> float:
    return x / 2**30


class Clock:
    """Phase timer: each phase's seconds, synchronised with the GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.phases: dict[str, float] = {}

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def wrap(self, name: str, fn):
        def timed(*a, **k):
            self.sync()
            t0 = time.perf_counter()
            out = fn(*a, **k)
            self.sync()
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - t0
            return out

        return timed


def build_components(tiny: bool, device: torch.device) -> WanComponents:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    dtype = torch.float32 if tiny else torch.bfloat16
    tcfg = TINY_TRANSFORMER if tiny else A14B_TRANSFORMER
    experts = []
    for seed in (1, 2):
        with init_empty_weights():
            m = WanTransformer3DModel(**tcfg)
        experts.append(materialise(m, device, dtype, seed))
    with init_empty_weights():
        vae = AutoencoderKLWan(**(TINY_VAE if tiny else VAE21))
    vae = materialise(vae, device, dtype, 3)
    return WanComponents(
        variant="i2v-a14b",
        vae=vae,
        transformer=experts[0],
        transformer_2=experts[1],
        boundary_ratio=0.9,
        text_identity=f"sds-step-random-{'tiny' if tiny else 'full'}",
    )


def seed_prompt_cache(cache: Path, comps: WanComponents, text_len: int) -> None:
    """Random prompt embeddings where the prior looks for cached ones (UMT5 is not benchmarked)."""
    dim = comps.transformer.config.text_dim
    g = torch.Generator().manual_seed(7)
    emb, neg = (torch.randn(1, text_len, dim, generator=g) for _ in range(2))
    key = prompt_cache_key(PROMPT, NEGATIVE, text_len, comps.text_identity)
    PromptCache(cache).save(key, emb, neg, (PROMPT, NEGATIVE))


@dataclasses.dataclass
class Bench:
    """The scene at one video shape: Gaussians, camera, config, optimiser."""

    shape: str
    frames: int
    height: int
    width: int
    model: object  # Scene4D
    camera: object
    config: object  # FlowConfig
    optimizer: torch.optim.Optimizer
    first_frame: torch.Tensor  # [H, W, 3]


def make_bench(shape: str, device: torch.device, tiny: bool) -> Bench:
    from core.scene import Scene
    from flowgen.config import FlowConfig
    from flowgen.scene4d import Scene4D

    t, h, w = (int(x) for x in shape.split("x"))
    scene = Scene.load(ROOT / "examples" / "pick_banana.yaml")
    scene = dataclasses.replace(scene, frames=t, camera=scene.camera.resized(w, h))
    cfg = FlowConfig(
        prior="wan",
        device=str(device),
        gaussians_per_object=500 if tiny else None,
        control_points_per_object=8 if tiny else None,
    ).resolved(w, h)
    model = Scene4D.build(scene, cfg, device=device)
    with torch.no_grad():
        first = model.render_rest(scene.camera).rgb[0].detach()
    opt = torch.optim.Adam(model.param_groups(cfg.schedule), eps=1e-15)
    return Bench(shape, t, h, w, model, scene.camera, cfg, opt, first)


def make_prior(comps, settings: dict, bench: Bench, device, cache: Path, tiny: bool) -> RFSDSPrior:
    dtype = "float32" if tiny else "bfloat16"
    cfg = WanPriorConfig(
        model_dir=Path("<random-init>"),
        tau_schedule="annealed",
        samples_per_video=4,
        dtype=dtype,
        vae_dtype=dtype,
        cache_dir=cache,
        **settings,
    )
    prior = RFSDSPrior(cfg, comps, device)
    ctx = distributed.current()
    if ctx is not None:
        prior.set_shard(ctx.rank, ctx.world)
    prior.prepare(
        PriorContext(
            first_frame=bench.first_frame,
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            num_frames=bench.frames,
            height=bench.height,
            width=bench.width,
        )
    )
    return prior


def ours_step(bench: Bench, prior: RFSDSPrior, clock: Clock, seed: int) -> dict[str, float]:
    """One real ``flowgen.optimize._step``, with its phases timed by wrapping what it calls."""
    from flowgen import optimize

    model, orig_render = bench.model, bench.model.render_frames
    orig_encode, orig_velocity, orig_step = prior.encode, prior.velocity, bench.optimizer.step
    model.render_frames = clock.wrap("render", orig_render)
    prior.encode = clock.wrap("encode", orig_encode)
    prior.velocity = clock.wrap("transformer", orig_velocity)
    bench.optimizer.step = clock.wrap("adam", orig_step)
    try:
        g = torch.Generator().manual_seed(seed)
        clock.sync()
        t0 = time.perf_counter()
        params = [p for group in bench.optimizer.param_groups for p in group["params"]]
        ctx = distributed.current()
        optimize._step(model, prior, bench.optimizer, bench.config, bench.camera, PROGRESS, g, ctx, params)
        clock.sync()
        total = time.perf_counter() - t0
    finally:
        model.render_frames, prior.encode, prior.velocity = orig_render, orig_encode, orig_velocity
        bench.optimizer.step = orig_step
    p = clock.phases
    p["backward+rest"] = total - sum(p.values())
    p["total"] = total
    return p


def baseline_step(bench: Bench, prior: RFSDSPrior, clock: Clock, seed: int) -> dict[str, float]:
    """The straightforward composition (module docstring): per video encode, CFG as two calls."""
    model, c = bench.model, prior.c
    g = torch.Generator().manual_seed(seed)
    frames = torch.arange(bench.frames)
    batch = prior.config.samples_per_video
    s = cfg_scale(prior.config, PROGRESS)
    clock.sync()
    t0 = time.perf_counter()
    bench.optimizer.zero_grad(set_to_none=True)
    for _ in range(batch):
        video = clock.wrap("render", model.render_frames)(frames, bench.camera).rgb.unsqueeze(0)
        x = video_to_vae_input(video)
        z = clock.wrap("encode", lambda x: encode_video(c.vae, x, checkpoint=False))(x)
        tau = prior.sample_tau(PROGRESS, g, 1)
        eps = torch.randn(z.shape, generator=g, dtype=torch.float32).to(z.device)
        z_tau = (1 - tau.view(1, 1, 1, 1, 1)) * z.detach() + tau.view(1, 1, 1, 1, 1) * eps
        expert = prior.experts.get(prior.experts.index_for(float(tau[0])))

        def cfg_pair(z_tau=z_tau, tau=tau, expert=expert):
            with torch.no_grad():
                xin = torch.cat([z_tau, prior._condition], dim=1).to(c.vae.dtype)
                vc = expert(hidden_states=xin, timestep=tau * 1000, encoder_hidden_states=prior._prompt,
                            return_dict=False)[0].float()  # fmt: skip
                vu = expert(hidden_states=xin, timestep=tau * 1000, encoder_hidden_states=prior._negative,
                            return_dict=False)[0].float()  # fmt: skip
            return vu + s * (vc - vu)

        v_hat = clock.wrap("transformer", cfg_pair)()
        grad = v_hat - (eps - z.detach())
        loss = ((z - z.detach()) * grad).sum() / batch
        reg = model.regularisers()
        sched = bench.config.schedule
        loss = (
            loss
            + (
                sched.temporal_weight.at(PROGRESS) * reg["temporal"]
                + sched.spatial_weight.at(PROGRESS) * reg["spatial"]
                + sched.ground_weight * reg["ground"]
            )
            / batch
        )
        clock.wrap("backward", loss.backward)()
    clock.wrap("adam", bench.optimizer.step)()
    clock.sync()
    total = time.perf_counter() - t0
    p = clock.phases
    p["backward+rest"] = total - sum(v for k, v in p.items() if k != "backward")
    p.pop("backward")
    p["total"] = total
    return p


def measure(name, bench, prior, device, warmup, iters, baseline=False) -> dict:
    cuda = device.type == "cuda"
    step = baseline_step if baseline else ours_step
    for i in range(warmup):
        first = step(bench, prior, Clock(device), 100 + i)
        if i == 0:
            print(f"{name:12s} {bench.shape:11s} first step {first['total']:.1f} s (compiles, autotunes)")
    runs = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for i in range(iters):
        runs.append(step(bench, prior, Clock(device), 200 + i))
    peak = gib(torch.cuda.max_memory_allocated()) if cuda else float("nan")
    keys = list(runs[0])
    mean = {k: sum(r[k] for r in runs) / len(runs) for k in keys}
    row = {"variant": name, "shape": bench.shape, "iters": iters, "peak_gib": peak, **mean}
    phases = "  ".join(f"{k} {mean[k]:.2f}" for k in keys if k != "total")
    hours = mean["total"] * 2000 / 3600
    seed_h = SEED_TABLE2_HOURS.get(bench.shape)
    seed = f"   seed {seed_h:.1f} h = {seed_h * 3600 / 2000:.1f} s/it" if seed_h else ""
    print(
        f"{name:12s} {bench.shape:11s} {mean['total']:7.2f} s/it  peak {peak:6.1f} GiB   [{phases}]   "
        f"2000 its = {hours:.1f} h{seed}",
        flush=True,
    )
    return row


def guard_grads(bench: Bench, prior: RFSDSPrior, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, d loss / d video) for a fixed video and a fixed (tau, eps) draw."""
    v = video.detach().clone().requires_grad_(True)
    out = prior.loss(v, progress=PROGRESS, generator=torch.Generator().manual_seed(12345))
    out.loss.backward()
    return prior.last.g.detach().clone(), v.grad.detach().clone()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="41x464x832", help="comma list of FRAMESxHEIGHTxWIDTH")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma list of {VARIANTS}")
    ap.add_argument("--attention", default="auto", help="SDPA kernel for exact/fast (exact-v0: auto)")
    ap.add_argument("--no-guard", action="store_true", help="skip the quality guard (scaling runs)")
    ap.add_argument("--transformer-batch", type=int, default=0, help="rows per expert forward (0: all 8)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny models on a tiny video (checks the script)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    shapes = args.shapes.split(",")
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"--variants: {v!r} is not one of {VARIANTS}")
    for s in shapes:
        check_video_shape("i2v-a14b", *(int(x) for x in s.split("x")))
    ctx = distributed.init_from_env(args.device)  # under torchrun: this rank's share of the draws
    device = torch.device(args.device)
    if ctx is not None:
        if device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        if not ctx.main:
            sys.stdout = open(os.devnull, "w")  # rank 0 reports
        bad = [v for v in variants if v == "baseline"]
        if bad:
            raise SystemExit("under torchrun only our variants run (the baseline is one process)")
        args.no_guard = True
        print(f"{ctx.world} processes ({ctx.backend}): each scores {4 // ctx.world} of the 4 draws")
    cuda = device.type == "cuda"
    if cuda:
        print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    comps = build_components(args.tiny, device)
    cache = Path(tempfile.mkdtemp(prefix="sds_step_cache_"))
    atexit.register(shutil.rmtree, cache, ignore_errors=True)  # a scratch prompt cache: leave no debris
    seed_prompt_cache(cache, comps, 512)
    print(f"built random A14B experts + VAE in {time.perf_counter() - t0:.1f} s", flush=True)

    exact = {
        **mode_settings("exact"),
        "attention": args.attention,
        "transformer_batch": args.transformer_batch,
    }
    fast = {**mode_settings("fast"), "attention": args.attention, "transformer_batch": args.transformer_batch}
    # the two modes as the first round of this issue left them (benchmarks/RESULTS.md)
    v1 = {"vae_keep_caches": False, "vae_channels_last": False}
    settings = {
        "baseline": {"experts_resident": "one", "vae_checkpoint": False},
        "exact-v0": {"attention": "auto", "transformer_batch": 0},
        "exact-v1": {**exact, **v1},
        "exact": exact,
        "exact-eager": {**exact, "compile_blocks": False},
        "exact-both": {**exact, "experts_resident": "both"},
        "fast-v1": {**fast, **v1, "attention_precision": "native"},
        "fast": fast,
        "fast-eager": {**fast, "compile_blocks": False},
        "fast-attn8": {**fast, "attention_precision": "fp8"},
    }
    # FP8 conversion is in place and one-way: the exact variants first, over every shape.
    order = [v for v in VARIANTS if v in variants and not v.startswith("fast")]
    order += [v for v in VARIANTS if v in variants and v.startswith("fast")]
    rows, guards = [], {}
    benches: dict[str, Bench] = {}
    fixed_video: dict[str, torch.Tensor] = {}
    for name in order:
        for shape in shapes:
            if shape not in benches:
                t1 = time.perf_counter()
                benches[shape] = make_bench(shape, device, args.tiny)
                with torch.no_grad():
                    fixed_video[shape] = (
                        benches[shape]
                        .model.render_frames(torch.arange(benches[shape].frames), benches[shape].camera)
                        .rgb.unsqueeze(0)
                    )
                print(f"scene {shape}: Gaussians and control points in {time.perf_counter() - t1:.1f} s")
            bench = benches[shape]
            for expert in (comps.transformer, comps.transformer_2):
                for block in expert.blocks:  # undo an earlier variant's torch.compile
                    block._compiled_call_impl = None
            set_conv3d_layout(comps.vae, torch.contiguous_format)  # undo an earlier variant's channels-last
            prior = make_prior(comps, settings[name], bench, device, cache, args.tiny)
            # cuDNN autotuning of the VAE's conv3d (fixed shapes for a whole run) is one of the changes.
            torch.backends.cudnn.benchmark = name not in ("baseline", "exact-v0")
            if settings[name].get("experts_resident") == "one":
                sw = prior.experts
                c = Clock(device)
                for idx in (0, 1):  # time an upload from pinned memory (the swap cost)
                    c.wrap(f"swap to {idx}", sw.get)(idx)
                print(f"{name}: expert swaps from pinned host memory: "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in c.phases.items()), flush=True)  # fmt: skip
            try:
                rows.append(measure(name, bench, prior, device, args.warmup, args.iters, name == "baseline"))
            except Exception as e:  # OOM, no cuDNN attention kernel, a compile failure: report, go on
                oom = isinstance(e, torch.OutOfMemoryError)
                e = e if str(e).strip() else RuntimeError(type(e).__name__)
                print(f"{name:12s} {shape:11s} {'out of memory' if oom else 'failed'}: {str(e).splitlines()[0]}",
                      flush=True)  # fmt: skip
                rows.append({"variant": name, "shape": shape, "failed": str(e).splitlines()[0], "oom": oom})
            if name != "baseline" and shape == shapes[0] and not rows[-1].get("failed") and not args.no_guard:
                guards[name] = guard_grads(bench, prior, fixed_video[shape])
            prior.experts.make_all_resident()  # the next variant may want both experts on the GPU
            bench.optimizer.zero_grad(set_to_none=True)
            del prior
            if cuda:
                torch.cuda.empty_cache()

    failed_guard = []
    for ref_name in ("exact-v0", "exact"):
        ref = guards.get(ref_name)
        if ref is None:
            continue
        print(f"\nquality guard at {shapes[0]} (one fixed video and draw; vs {ref_name}; bounds "
              f"cos(g) > {GUARD_MIN_COS['g']}, cos(d/dvideo) > {GUARD_MIN_COS['video_grad']}):")  # fmt: skip
        for name, (g, vg) in guards.items():
            cg, cv = cosine(g, ref[0]), cosine(vg, ref[1])
            rel = float((g - ref[0]).norm() / ref[0].norm())
            ok = cg > GUARD_MIN_COS["g"] and cv > GUARD_MIN_COS["video_grad"]
            failed_guard += [] if ok or name in OPT_IN else [f"{name} vs {ref_name}"]
            print(f"  {name:12s} cos(g) {cg:.5f}  |g - g_ref|/|g_ref| {rel:.4f}  cos(d/dvideo) {cv:.5f}"
                  f"  {'ok' if ok else 'BELOW BOUND'}{' (opt-in, not a mode)' if name in OPT_IN else ''}")  # fmt: skip
            for r in rows:
                if r["variant"] == name and r["shape"] == shapes[0]:
                    r.update({f"cos_g_vs_{ref_name}": cg, f"rel_g_vs_{ref_name}": rel,
                              f"cos_video_grad_vs_{ref_name}": cv})  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if cuda:
        print(f"\nmax allocated over the run {gib(torch.cuda.max_memory_allocated()):.1f} GiB;"
              f" card {gib(torch.cuda.get_device_properties(0).total_memory):.1f} GiB")  # fmt: skip
    bad = [r for r in rows if not r.get("failed") and not math.isfinite(r["total"])]
    if bad:
        raise SystemExit(f"non-finite timings: {bad}")
    if ctx is not None:  # every rank reaches here before any tears the group down: gloo aborted a rank
        distributed.barrier(ctx)  # that destroyed it while rank 0 still reported (SIGABRT, once in CI)
    distributed.shutdown()
    if failed_guard:
        raise SystemExit(f"quality guard failed: {failed_guard}")


if __name__ == "__main__":
    main()
