"""The Wan RF-SDS prior's configuration: one frozen dataclass, torch-free, so a CLI can build it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("auto", "i2v-a14b", "ti2v-5b")
TAU_SCHEDULES = ("uniform", "annealed")
WEIGHTINGS = ("uniform", "tau")
REDUCTIONS = ("sum", "mean")
RESIDENCY = ("both", "one")
DTYPES = ("bfloat16", "float16", "float32")
ATTENTION = ("auto", "cudnn", "flash", "efficient", "math")
LINEAR_PRECISIONS = ("native", "fp8")
ATTENTION_PRECISIONS = ("native", "fp8")


@dataclass(frozen=True)
class WanPriorConfig:
    """How ``chord flow --prior wan`` distils motion from Wan 2.2 (docs/wan_prior.md explains each choice).

    tau is the rectified-flow noise level (dimensionless, 0 = clean latent, 1 = pure noise); the
    timestep handed to the transformer is ``tau * 1000``. ``progress`` = iteration / total in [0, 1].
    """

    model_dir: Path  # local diffusers folder laid out like Wan-AI/Wan2.2-I2V-A14B-Diffusers
    variant: str = "auto"  # "auto" (read from model_index.json), "i2v-a14b" or "ti2v-5b"
    boundary_ratio: float | None = (
        None  # tau at/above which the high-noise expert runs; None: model_index.json, else 0.9
    )
    tau_schedule: str = "uniform"  # "uniform": tau ~ U(tau_min, tau_max); "annealed": tau falls with progress
    tau_min: float = 0.02  # lowest tau drawn (dimensionless)
    tau_max: float = 0.98  # highest tau drawn (dimensionless)
    anneal_jitter: float = 0.05  # annealed only: half-width of the uniform window around the scheduled tau
    samples_per_video: int = 4  # (tau, eps) draws per rendered video, one VAE encode (seed: batch 4)
    shared_tau: bool = (
        True  # one tau per step for the whole batch (one expert per step); False: one per video
    )
    weighting: str = (
        "uniform"  # w(tau): "uniform" (w = 1, the seed's eq. 3 literally) or "tau" (w = tau: x0-space)
    )
    cfg_start: float = 25.0  # classifier-free guidance scale at progress 0 (seed A.1)
    cfg_end: float = 12.0  # CFG scale at progress 1; linear in between
    reduction: str = (
        "sum"  # surrogate loss: "sum" over latent elements / B (grad = g / B), or "mean" (grad = g / numel)
    )
    text_len: int = 512  # tokens; UMT5 embeddings are zero-padded to this length as the pipeline does
    dtype: str = "bfloat16"  # weights of text encoder and transformers (loaded with torch_dtype=)
    vae_dtype: str = "bfloat16"  # weights of the VAE (its encoder is differentiated)
    experts_resident: str = (
        "both"  # A14B: "both" experts on the GPU (57 GiB), or "one" (the idle one waits on CPU)
    )
    vae_checkpoint: bool = True  # recompute the VAE encoder per 4-frame chunk in backward (memory plan)
    vae_keep_caches: bool = False  # with vae_checkpoint: keep each chunk's input + caches instead of
    # also recomputing the whole video: one encoder forward less per step (-0.5 s; same peak)
    vae_channels_last: bool = False  # VAE encoder weights and input in torch.channels_last_3d
    transformer_batch: int = 0  # most videos per transformer forward (CFG pair counts 2); 0: all at once
    attention: str = (
        "auto"  # scaled-dot-product kernel of the experts: "auto" (torch picks), "cudnn", "flash", ...
    )
    compile_blocks: bool = False  # torch.compile each expert's transformer blocks (once, on the first step)
    linear_precision: str = "native"  # experts' linear layers: "native" (their dtype) or "fp8" (fast mode)
    attention_precision: str = "native"  # experts' self-attention: "native" or "fp8" (cuDNN, Hopper)
    cache_dir: Path | None = None  # prompt-embedding cache; None: $XDG_CACHE_HOME/chord/wan_prompts

    def __post_init__(self) -> None:
        def one_of(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"WanPriorConfig.{name} is {value!r}, expected one of {allowed}")

        one_of("variant", VARIANTS)
        one_of("tau_schedule", TAU_SCHEDULES)
        one_of("weighting", WEIGHTINGS)
        one_of("reduction", REDUCTIONS)
        one_of("experts_resident", RESIDENCY)
        one_of("dtype", DTYPES)
        one_of("vae_dtype", DTYPES)
        one_of("attention", ATTENTION)
        one_of("linear_precision", LINEAR_PRECISIONS)
        one_of("attention_precision", ATTENTION_PRECISIONS)
        if not 0.0 < self.tau_min < self.tau_max < 1.0:
            raise ValueError(
                f"WanPriorConfig: need 0 < tau_min < tau_max < 1, got tau_min={self.tau_min}, tau_max={self.tau_max}"
            )
        if self.boundary_ratio is not None and not 0.0 < self.boundary_ratio <= 1.0:
            raise ValueError(f"WanPriorConfig.boundary_ratio is {self.boundary_ratio}, expected in (0, 1]")
        if not 0.0 <= self.anneal_jitter < 0.5:
            raise ValueError(f"WanPriorConfig.anneal_jitter is {self.anneal_jitter}, expected in [0, 0.5)")
        if self.cfg_start < 1.0 or self.cfg_end < 1.0:
            raise ValueError(
                f"WanPriorConfig: CFG scales must be >= 1, got cfg_start={self.cfg_start}, cfg_end={self.cfg_end}"
            )
        if self.text_len < 1:
            raise ValueError(f"WanPriorConfig.text_len is {self.text_len}, expected a positive token count")
        if (
            isinstance(self.samples_per_video, bool)
            or not isinstance(self.samples_per_video, int)
            or self.samples_per_video < 1
        ):
            raise ValueError(
                f"WanPriorConfig.samples_per_video is {self.samples_per_video!r}, expected an integer >= 1"
            )
        if self.transformer_batch < 0:
            raise ValueError(f"WanPriorConfig.transformer_batch is {self.transformer_batch}, expected >= 0")


# The two speed modes of the RF-SDS step; benchmarks/RESULTS.md has the measurements behind them.
# "exact": the seed's computation in bf16 with the full VAE-encoder backward (recomputed per 4-frame
# step, channels-last), compiled expert blocks, one expert on the GPU and the other in pinned
# host memory (fits an 80 GB card).
# "fast": exact plus the experts' block linears in FP8 (both experts fit on the GPU at 15 GiB each);
# checked against exact by the cosine of the SDS gradient (GUARD_MIN_COS). FP8 self-attention
# (attention_precision="fp8") is faster still but fails that guard, so it is opt-in.
MODES: dict[str, dict[str, object]] = {
    "exact": {
        "linear_precision": "native",
        "attention_precision": "native",
        "vae_checkpoint": True,
        "vae_keep_caches": True,
        "vae_channels_last": True,
        "compile_blocks": True,
        "experts_resident": "one",
    },
    "fast": {
        "linear_precision": "fp8",
        "attention_precision": "native",  # FP8 attention: -0.93 s but below the guard (RESULTS.md)
        "vae_checkpoint": True,
        "vae_keep_caches": True,
        "vae_channels_last": True,
        "compile_blocks": True,
        "experts_resident": "both",
    },
}
# Quality guard of a fast path: cosine of its SDS gradient with exact mode's on the same video and
# draw, in latent space (g) and on the pixels (d loss / d video). The bf16 rounding of two exact
# kernels (eager vs compiled) alone gives 0.993 / 0.998 at the seed's shape with random weights:
# classifier-free guidance (scale 12-25) amplifies any difference between the two branches.
GUARD_MIN_COS = {"g": 0.95, "video_grad": 0.98}


def mode_settings(mode: str) -> dict[str, object]:
    """The WanPriorConfig fields a speed mode sets ("exact" or "fast")."""
    if mode not in MODES:
        raise ValueError(f"Wan speed mode is {mode!r}, expected one of {tuple(MODES)}")
    return dict(MODES[mode])
