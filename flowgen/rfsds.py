"""RF-SDS (seed section B): motion supervision distilled from Wan 2.2 image-to-video.

For the latent z of each rendered video (VAE mode, normalised), draw tau and eps ~ N(0, I), form
z_tau = (1 - tau) z + tau eps, ask the expert for tau (high-noise for tau >= boundary, else
low-noise; timestep tau * 1000) for the classifier-free-guided velocity
v_hat = v_uncond + s (v_cond - v_uncond), s linear from 25 to 12 over progress, and push z along

    g = w(tau) * (v_hat - (eps - z))

through the VAE encoder and the renderer only: the transformers run under ``torch.no_grad``.
The returned loss is the target-trick surrogate ``0.5 ||z - stopgrad(z - g)||^2 / B`` (reduction
"sum"), written so that its gradient is g / B bit for bit (see ``_surrogate``).
docs/wan_prior.md lists the schedules and the GPU memory plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from core.errors import ChordError
from flowgen.prior import PriorContext, PriorLoss
from flowgen.schedules import linear
from flowgen.wan.condition import encode_video, i2v_condition, ti2v_condition, video_to_vae_input
from flowgen.wan.config import WanPriorConfig
from flowgen.wan.folder import check_video_shape, validate_model_folder
from flowgen.wan.models import (
    ExpertSwitch,
    WanComponents,
    attention_context,
    compile_blocks,
    load_text_encoder,
    load_wan_components,
    torch_dtype,
)
from flowgen.wan.prompts import PromptCache, default_cache_dir, encode_prompts, prompt_cache_key

log = logging.getLogger(__name__)


@dataclass
class SDSStep:
    """The tensors of the last step (for logging and tests), all float32, detached."""

    tau: Tensor  # [B] noise level of each video
    eps: Tensor  # [B, C, F, h, w] the noise drawn
    z: Tensor  # [B, C, F, h, w] the clean latent
    v_hat: Tensor  # [B, C, F, h, w] guided velocity
    g: Tensor  # [B, C, F, h, w] w(tau) (v_hat - (eps - z)), frame 0 zeroed for TI2V-5B
    expert: Tensor  # [B] int: 0 high-noise transformer, 1 low-noise transformer_2
    cfg: float  # guidance scale used


def cfg_scale(config: WanPriorConfig, progress: float) -> float:
    """Classifier-free guidance scale: linear from ``cfg_start`` (progress 0) to ``cfg_end`` (1)."""
    return linear(config.cfg_start, config.cfg_end, progress)


def tau_window(config: WanPriorConfig, progress: float, boundary: float | None) -> tuple[float, float]:
    """The interval tau is drawn from uniformly at ``progress``.

    "uniform": [tau_min, tau_max] throughout. "annealed": centre falls linearly from tau_max to
    tau_min, half-width ``anneal_jitter``, clipped to [tau_min, tau_max] and to the centre's side of
    the expert boundary, so the expert is a monotone function of progress (one swap per run).
    """
    lo, hi = config.tau_min, config.tau_max
    if config.tau_schedule == "uniform":
        return lo, hi
    p = min(max(progress, 0.0), 1.0)
    c = hi - (hi - lo) * p
    a, b = max(lo, c - config.anneal_jitter), min(hi, c + config.anneal_jitter)
    if boundary is not None and a < boundary <= b:
        if c >= boundary:
            a = boundary
        else:
            b = boundary - 1e-6  # taus are float32 (ulp 6e-8 at 0.9): stay clearly below
    return a, b


class RFSDSPrior:
    """The Wan 2.2 RF-SDS motion prior (``flowgen.prior.MotionPrior``)."""

    name = "wan"

    def __init__(self, config: WanPriorConfig, components: WanComponents, device: torch.device | str):
        self.config = config
        self.c = components
        self.device = torch.device(device)
        if config.linear_precision == "fp8":
            from flowgen.wan.fp8 import linears_to_fp8

            for model in (components.transformer, components.transformer_2):
                if model is not None:
                    linears_to_fp8(model)
        if config.attention_precision == "fp8":
            from flowgen.wan.fp8_attention import check_cudnn_fp8, self_attention_to_fp8

            if self.device.type == "cuda":
                check_cudnn_fp8(self.device)
            kernel = "cudnn" if self.device.type == "cuda" else "emulated"  # CPU: tests
            for model in (components.transformer, components.transformer_2):
                if model is not None:
                    self_attention_to_fp8(model, kernel)
        if config.vae_channels_last and components.vae is not None:
            from flowgen.wan.condition import vae_channels_last

            vae_channels_last(components.vae)
        if config.compile_blocks and self.device.type == "cuda":  # CPU runs are tests: no compiler needed
            for model in (components.transformer, components.transformer_2):
                if model is not None:
                    compile_blocks(model)
        self.experts = ExpertSwitch(components, self.device, config.experts_resident)
        self.last: SDSStep | None = None
        self._prompt: Tensor | None = None  # [1, L, D] transformer dtype
        self._negative: Tensor | None = None  # [1, L, D]
        self._condition: Tensor | None = None  # A14B [1, 4 + C, F, h, w]; TI2V [1, C, 1, h, w]
        self._mask: Tensor | None = None  # TI2V [1, 1, F, h, w]
        self._shape: tuple[int, int, int] | None = None  # (T, H, W) prepared for
        self.encoder_calls = 0  # text-encoder runs by this prior (0 on a cache hit)
        self.shard = (0, 1)  # (rank, ranks): this process scores draws rank::ranks of each step

    def set_shard(self, rank: int, ranks: int) -> None:
        """Score only this rank's share of every step's draws (flowgen.distributed).

        Raises ChordError when the step's draws do not split evenly over ``ranks``.
        """
        n = self.config.samples_per_video
        if ranks < 1 or not 0 <= rank < ranks or n % ranks:
            raise ChordError(
                f"{n} (tau, eps) draws per step do not split over {ranks} processes: use a process count "
                f"that divides {n} (or --batch a multiple of the process count)"
            )
        self.shard = (rank, ranks)

    # -- set-up ---------------------------------------------------------------------------------

    def prepare(self, context: PriorContext) -> None:
        """Check the video shape, get the prompt embeddings (cache or UMT5), build the I2V condition."""
        t, h, w = context.num_frames, context.height, context.width
        check_video_shape(self.c.variant, t, h, w)
        ff = context.first_frame
        if ff.ndim != 3 or tuple(ff.shape) != (h, w, 3):
            raise ValueError(f"PriorContext.first_frame has shape {tuple(ff.shape)}, expected ({h}, {w}, 3)")
        self._encode_text(context.prompt, context.negative_prompt)
        image = ff.detach().to(self.device, torch.float32).permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0
        vae = self.c.vae
        if self.c.variant == "i2v-a14b":
            self._condition = i2v_condition(vae, image, t)
        else:
            self._condition, self._mask = ti2v_condition(vae, image, t)
        self._shape = (t, h, w)
        if self.device.type == "cuda":
            # The VAE encoder's conv3d shapes are fixed for the whole run: cuDNN autotuning pays once.
            torch.backends.cudnn.benchmark = True

    def _encode_text(self, prompt: str, negative: str) -> None:
        cfg = self.config
        key = prompt_cache_key(prompt, negative, cfg.text_len, self.c.text_identity)
        cache = PromptCache(cfg.cache_dir if cfg.cache_dir is not None else default_cache_dir())
        hit = cache.load(key)
        if hit is not None:
            emb, neg = hit
            log.info("prompt embeddings from cache %s", cache.path(key))
        else:
            if self.c.text_encoder is None:
                if self.c.folder is None:
                    raise ValueError(
                        "prompt embeddings are not cached and these Wan components have no text encoder"
                    )
                self.c.tokenizer, self.c.text_encoder = load_text_encoder(
                    self.c.folder, self.device, cfg.dtype
                )
            both = encode_prompts(self.c.tokenizer, self.c.text_encoder, [prompt, negative], cfg.text_len)
            self.encoder_calls += 1
            emb, neg = both[0:1], both[1:2]
            log.info("cached prompt embeddings at %s", cache.save(key, emb, neg, (prompt, negative)))
        self.c.free_text_encoder()
        text_dim = getattr(self.c.transformer.config, "text_dim", None) or emb.shape[-1]
        if emb.shape != (1, cfg.text_len, text_dim) or neg.shape != emb.shape:
            raise ValueError(
                f"prompt embeddings have shape {tuple(emb.shape)}, expected (1, {cfg.text_len}, {text_dim}) "
                "(text_len x the transformer's text_dim)"
            )
        wdtype = torch_dtype(cfg.dtype)
        self._prompt, self._negative = emb.to(self.device, wdtype), neg.to(self.device, wdtype)

    # -- one step -------------------------------------------------------------------------------

    def sample_tau(self, progress: float, generator: torch.Generator, batch: int) -> Tensor:
        """Noise levels [batch] float32 on the prior's device (one shared value if ``shared_tau``)."""
        lo, hi = tau_window(
            self.config, progress, self.c.boundary_ratio if self.c.transformer_2 is not None else None
        )
        n = 1 if self.config.shared_tau else batch
        u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
        tau = (lo + (hi - lo) * u).expand(batch)
        return tau.to(self.device, torch.float32)

    def weight(self, tau: Tensor) -> Tensor:  # [B] -> [B]
        """w(tau): 1 ("uniform") or tau ("tau")."""
        return torch.ones_like(tau) if self.config.weighting == "uniform" else tau

    @torch.no_grad()
    def velocity(self, z_tau: Tensor, tau: Tensor, cfg: float) -> tuple[Tensor, Tensor]:
        """Guided velocity [B, C, F, h, w] float32 and the expert index [B] used for each video."""
        experts = torch.tensor([self.experts.index_for(float(x)) for x in tau], device=tau.device)
        v = torch.empty_like(z_tau)
        for idx in experts.unique().tolist():
            rows = (experts == idx).nonzero().flatten()
            v[rows] = self._guided(self.experts.get(idx), z_tau[rows], tau[rows], cfg)
        return v, experts

    def _guided(self, model, z_tau: Tensor, tau: Tensor, cfg: float) -> Tensor:
        n = z_tau.shape[0]
        # ModelMixin.dtype skips the fp32-kept modules (as the pipeline's transformer_dtype does).
        dtype = getattr(model, "dtype", None) or next(model.parameters()).dtype
        t = tau * self.c.num_train_timesteps
        if self.c.variant == "i2v-a14b":
            x = torch.cat([z_tau, self._condition.expand(n, -1, -1, -1, -1)], dim=1)
            timestep = t
        else:
            m = self._mask
            x = (1 - m) * self._condition + m * z_tau
            ph, pw = model.config.patch_size[1:]
            timestep = (
                m[0, 0][:, ::ph, ::pw].flatten().unsqueeze(0) * t.unsqueeze(1)
            ).contiguous()  # [n, seq]
        x = x.to(dtype)
        xs = torch.cat([x, x])  # conditional rows first, then unconditional
        ts = torch.cat([timestep, timestep])
        text = torch.cat([self._prompt.expand(n, -1, -1), self._negative.expand(n, -1, -1)])
        chunk = self.config.transformer_batch or 2 * n
        with attention_context(self.config.attention):
            outs = [
                model(
                    hidden_states=xs[i : i + chunk],
                    timestep=ts[i : i + chunk],
                    encoder_hidden_states=text[i : i + chunk],
                    encoder_hidden_states_image=None,
                    return_dict=False,
                )[0].float()
                for i in range(0, 2 * n, chunk)
            ]
        out = torch.cat(outs)
        v_cond, v_uncond = out[:n], out[n:]
        return v_uncond + cfg * (v_cond - v_uncond)

    @torch.no_grad()
    def sds_gradient(
        self, z: Tensor, progress: float, generator: torch.Generator, rows: slice | None = None
    ) -> SDSStep:
        """One RF-SDS draw for clean latents z [B, C, F, h, w] (float32): tau, eps, v_hat and g.

        With ``rows`` only those draws are scored, but the noise of all B is drawn (in the same
        order), so ranks sharing a generator split exactly the draws of a single process.
        """
        z = z.detach().float()
        s = cfg_scale(self.config, progress)
        tau = self.sample_tau(progress, generator, z.shape[0])
        eps = torch.randn(z.shape, generator=generator, device=generator.device, dtype=torch.float32).to(
            z.device
        )
        if rows is not None:
            z, tau, eps = z[rows], tau[rows], eps[rows]
        b = z.shape[0]
        tb = tau.view(b, 1, 1, 1, 1)
        z_tau = (1 - tb) * z + tb * eps
        v_hat, experts = self.velocity(z_tau, tau, s)
        g = self.weight(tau).view(b, 1, 1, 1, 1) * (v_hat - (eps - z))
        if self.c.variant == "ti2v-5b":
            g[:, :, 0] = 0  # frame 0 is the given first frame, not generated: no gradient there
        return SDSStep(tau=tau, eps=eps, z=z, v_hat=v_hat, g=g, expert=experts, cfg=s)

    def _surrogate(self, z: Tensor, g: Tensor, total: tuple[int, int] | None = None) -> Tensor:
        """0.5 ||z - sg(z - g)||^2, scaled by the reduction, with gradient exactly g x scale.

        ``total`` = (rows, elements) of the whole step when z is one rank's share of it.

        Written as <z - sg(z), g> + 0.5 ||g||^2: the same value (the first term is exactly 0) and
        the same gradient in exact arithmetic, but autograd's z - (z - g) would round g's low bits
        away in float32 wherever |g| << |z|.
        """
        rows, elements = total if total is not None else (z.shape[0], z.numel())
        scale = 1.0 / rows if self.config.reduction == "sum" else 1.0 / elements
        return scale * (((z - z.detach()) * g).sum() + 0.5 * (g * g).sum())

    def encode(self, video: Tensor) -> Tensor:  # [B, T, H, W, 3] in [0, 1] -> [B, C, F, h, w]
        """Normalised latent mode of rendered videos (differentiable through the VAE encoder)."""
        if self._shape is None:
            raise RuntimeError("RFSDSPrior.prepare() must run before loss()/encode()")
        if video.ndim != 5 or tuple(video.shape[1:]) != (*self._shape, 3):
            t, h, w = self._shape
            raise ValueError(
                f"video has shape {tuple(video.shape)}, expected [B, {t}, {h}, {w}, 3] as prepared"
            )
        cfg = self.config
        return encode_video(
            self.c.vae,
            video_to_vae_input(video.to(self.device)),
            cfg.vae_checkpoint,
            keep_caches=cfg.vae_keep_caches,
            channels_last=cfg.vae_channels_last,
        )

    def draws(self, z: Tensor) -> Tensor:
        """[B, ...] latents -> [B * samples_per_video, ...]: one VAE encode per rendered video, and
        the seed's batch as several (tau, eps) draws of it (the surrogate then averages them)."""
        return z.repeat_interleave(self.config.samples_per_video, dim=0)

    def loss(
        self,
        video: Tensor,  # [B, T, H, W, 3] float in [0, 1], rendered, differentiable
        *,
        progress: float,  # iteration / total in [0, 1]: CFG scale and annealed tau
        generator: torch.Generator,  # the run's RNG: tau and eps come from it
        masks: Tensor | None = None,  # [B, T, H, W, O]; unused: the video model sees whole frames
        frame_indices: Tensor | None = None,  # [B, T] must be 0..T-1 in order: Wan needs whole videos
        depth: Tensor | None = None,  # [B, T, H, W, 1]; unused: the video model sees RGB only
    ) -> PriorLoss:
        """The RF-SDS surrogate for a batch of rendered videos; ``backward()`` gives g through the VAE.

        Raises ValueError for a video not of the prepared [B, T, H, W, 3], or ``frame_indices`` that
        are not every frame in order.
        """
        if frame_indices is not None:
            t = video.shape[1] if video.ndim == 5 else -1
            whole = torch.arange(t, device=frame_indices.device).expand(video.shape[0], -1)
            if tuple(frame_indices.shape) != tuple(whole.shape) or not torch.equal(
                frame_indices.long(), whole
            ):
                raise ValueError(
                    f"frame_indices {frame_indices.tolist()} is not every frame 0..{t - 1} in order "
                    "for each video: the Wan prior scores whole videos"
                )
        z = self.draws(self.encode(video))
        rank, ranks = self.shard
        rows = None
        if ranks > 1:
            per = z.shape[0] // ranks
            rows = slice(rank * per, (rank + 1) * per)
        step = self.sds_gradient(z, progress, generator, rows)
        self.last = step
        loss = self._surrogate(z if rows is None else z[rows], step.g, (z.shape[0], z.numel()))
        logs = {
            "tau": float(step.tau.mean()),
            "cfg": step.cfg,
            "expert": float(step.expert.float().mean()),
            "grad_rms": float(step.g.pow(2).mean().sqrt()),
            "expert_swaps": float(self.experts.swaps),
        }
        return PriorLoss(loss=loss, logs=logs)


def make_wan_prior(
    config: WanPriorConfig,
    device: torch.device | str,
    video_shape: tuple[int, int, int] | None = None,  # (T, H, W) to check before loading anything
) -> RFSDSPrior:
    """Validate the folder (and the video shape), load VAE + experts in ``config.dtype``, build the prior.

    Raises ModelFolderError listing every missing file, ValueError for a bad T/H/W, both before any
    weight is read. The text encoder is loaded only in ``prepare`` and only on a prompt-cache miss.
    """
    folder = validate_model_folder(config.model_dir, config.variant, config.boundary_ratio)
    if video_shape is not None:
        check_video_shape(folder.variant, *video_shape)
    components = load_wan_components(folder, device, config.dtype, config.vae_dtype, config.experts_resident)
    return RFSDSPrior(config, components, device)
