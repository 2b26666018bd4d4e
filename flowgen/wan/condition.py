"""Video <-> Wan latents, and the image-to-video condition built exactly as diffusers builds it.

Mirrors ``WanImageToVideoPipeline.prepare_latents`` (diffusers 0.35-0.42): pixels in [-1, 1], the
latent *mode* (never a sample), normalised per channel as ``(mu - latents_mean) / latents_std``.

- A14B: condition = cat(mask [4 ch], latent of [first frame, T-1 zero frames] [C=16 ch]) -> 20 ch;
  the transformer input is cat(z_tau [16], condition [20]) = 36 channels.
- TI2V-5B (``expand_timesteps``): condition = latent of the first frame alone [C=48, 1 latent frame];
  the input is ``(1 - m) * condition + m * z_tau`` with m = 0 on latent frame 0, and the per-token
  timestep is ``m * t`` (frame-0 tokens see t = 0: they are clean).
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import Tensor

VAE_TEMPORAL_CHUNK = 4  # frames per encoder step after the first (AutoencoderKLWan._encode)


def video_to_vae_input(video: Tensor) -> Tensor:  # [B, T, H, W, 3] in [0, 1] -> [B, 3, T, H, W] in [-1, 1]
    """Rearrange a rendered video into the VAE's layout and range (the VideoProcessor's 2x - 1)."""
    if video.ndim != 5 or video.shape[-1] != 3:
        raise ValueError(f"video has shape {tuple(video.shape)}, expected [B, T, H, W, 3]")
    return video.permute(0, 4, 1, 2, 3) * 2.0 - 1.0


def latent_stats(vae, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """(latents_mean, 1 / latents_std), each [1, C, 1, 1, 1] float32, as the pipeline computes them."""
    c = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, c, 1, 1, 1).to(device, torch.float32)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, c, 1, 1, 1).to(device, torch.float32)
    return mean, inv_std


def _encoder_chunk(encoder, x: Tensor, cache: list) -> tuple[Tensor, list]:
    cache = list(cache)  # the caller's list is the checkpoint's saved input: never mutate it
    out = encoder(x, feat_cache=cache, feat_idx=[0])
    return out, cache


def encoder_mode_checkpointed(vae, x: Tensor) -> Tensor:  # [B, 3, T, H, W] -> [B, C, F, h, w]
    """The latent mode of ``x`` with each 4-frame encoder step recomputed in backward.

    The same computation as ``vae.encode(x).latent_dist.mode()`` (``AutoencoderKLWan._encode``,
    untiled), but autograd keeps only each step's input and its causal-conv cache instead of every
    activation of all 41 frames: the 92 GiB encoder backward at 832x464 falls to one step's worth.
    """
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, patchify

    if vae.config.patch_size is not None:
        x = patchify(x, patch_size=vae.config.patch_size)
    n = x.shape[2]
    steps = 1 + (n - 1) // VAE_TEMPORAL_CHUNK
    cache: list = [None] * sum(isinstance(m, WanCausalConv3d) for m in vae.encoder.modules())
    outs = []
    for i in range(steps):
        xi = x[:, :, :1] if i == 0 else x[:, :, 1 + 4 * (i - 1) : 1 + 4 * i]
        if torch.is_grad_enabled() and xi.requires_grad:
            out, cache = torch.utils.checkpoint.checkpoint(
                _encoder_chunk, vae.encoder, xi, cache, use_reentrant=False
            )
        else:
            out, cache = _encoder_chunk(vae.encoder, xi, cache)
        outs.append(out)
    h = vae.quant_conv(torch.cat(outs, dim=2))
    return h[:, : vae.config.z_dim]  # DiagonalGaussianDistribution: mean first, then logvar


def encode_video(
    vae,
    x: Tensor,
    checkpoint: bool = False,
    keep_caches: bool = False,
    channels_last: bool = False,
) -> Tensor:
    """Normalised float32 latent mode of ``x`` ([B, 3, T, H, W] in [-1, 1]) -> [B, C, F, h, w].

    ``checkpoint`` runs the videos one at a time through ``encoder_mode_checkpointed`` (same values,
    far less memory in backward); otherwise ``vae.encode`` exactly as the pipeline calls it.
    ``keep_caches`` (with ``checkpoint``) drops the outer, per-video level of recomputation: autograd
    keeps every 4-frame step's input and causal-conv caches, and backward runs the encoder forward
    once less (-0.5 s at 41x832x464; the peak, set by one step's backward, stayed at 21 GiB).
    ``channels_last`` hands the encoder its input in ``torch.channels_last_3d`` (the encoder's conv
    weights must already be in it: ``vae_channels_last``); cuDNN's conv3d kernels prefer that layout.
    """
    x = x.to(vae.dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    if checkpoint and torch.is_grad_enabled() and x.requires_grad and not keep_caches:
        # Two levels: autograd keeps only each video's input (the causal-conv caches of one video,
        # ~1 GiB per 4-frame step at 832x464, exist only while that video is back-propagated), and
        # inside it only each step's input and caches.
        mu = torch.cat(
            [
                torch.utils.checkpoint.checkpoint(encoder_mode_checkpointed, vae, xb, use_reentrant=False)
                for xb in x.split(1)
            ],
            dim=0,
        )
    elif checkpoint:
        mu = torch.cat([encoder_mode_checkpointed(vae, xb) for xb in x.split(1)], dim=0)
    else:
        mu = vae.encode(x).latent_dist.mode()
    mean, inv_std = latent_stats(vae, mu.device)
    return (mu.float() - mean) * inv_std


def vae_channels_last(vae) -> None:
    """Put the VAE encoder's (and quant conv's) conv3d weights in ``torch.channels_last_3d``, in place
    (``Module.to(memory_format=)`` cannot: the encoder also holds 4-D conv2d weights)."""
    set_conv3d_layout(vae, torch.channels_last_3d)


def set_conv3d_layout(vae, memory_format: torch.memory_format) -> None:
    """Lay out every conv3d weight of the VAE's encoder and quant conv in ``memory_format``."""
    for part in (vae.encoder, vae.quant_conv):
        for m in part.modules():
            if isinstance(m, torch.nn.Conv3d):
                m.weight.data = m.weight.data.contiguous(memory_format=memory_format)


def i2v_condition(vae, image: Tensor, num_frames: int) -> Tensor:  # image [1, 3, H, W] in [-1, 1]
    """The A14B condition [1, 4 + C, F, h, w]: 4 mask channels, then the first-frame video latent.

    Latent frame 0's mask is 1 on all four channels (the four "sub-frames" of the first latent
    frame, as ``vae_scale_factor_temporal`` repeats it); every later frame is 0.
    """
    _, _, height, width = image.shape
    s_t = vae.config.scale_factor_temporal
    s_s = vae.config.scale_factor_spatial
    frames = (num_frames - 1) // s_t + 1
    lh, lw = height // s_s, width // s_s
    video = torch.cat(
        [image.unsqueeze(2), image.new_zeros(1, image.shape[1], num_frames - 1, height, width)], dim=2
    )
    with torch.no_grad():
        latent = vae.encode(video.to(vae.dtype)).latent_dist.mode()
    mean, inv_std = latent_stats(vae, latent.device)
    latent = (latent.float() - mean) * inv_std
    mask = torch.zeros(1, 1, num_frames, lh, lw, device=latent.device)
    mask[:, :, 0] = 1
    first = torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=s_t)
    mask = torch.cat([first, mask[:, :, 1:]], dim=2)
    mask = mask.view(1, -1, s_t, lh, lw).transpose(1, 2)  # [1, s_t, F, lh, lw]
    if mask.shape[2] != frames:
        raise AssertionError(f"mask has {mask.shape[2]} latent frames, expected {frames}")
    return torch.cat([mask, latent], dim=1)


def ti2v_condition(vae, image: Tensor, num_frames: int) -> tuple[Tensor, Tensor]:  # image [1, 3, H, W]
    """The TI2V-5B condition: (first-frame latent [1, C, 1, h, w], mask m [1, 1, F, h, w]; 0 on frame 0)."""
    _, _, height, width = image.shape
    s_t = vae.config.scale_factor_temporal
    s_s = vae.config.scale_factor_spatial
    frames = (num_frames - 1) // s_t + 1
    with torch.no_grad():
        latent = vae.encode(image.unsqueeze(2).to(vae.dtype)).latent_dist.mode()
    mean, inv_std = latent_stats(vae, latent.device)
    latent = (latent.float() - mean) * inv_std
    mask = torch.ones(1, 1, frames, height // s_s, width // s_s, device=latent.device)
    mask[:, :, 0] = 0
    return latent, mask
