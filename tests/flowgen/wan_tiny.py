"""Tiny random Wan 2.2 model folders for CPU tests (no download: every part is built here).

``save_tiny_wan(path, variant)`` writes a folder laid out like the Hub's
Wan-AI/Wan2.2-I2V-A14B-Diffusers (or Wan2.2-TI2V-5B-Diffusers) through the real
``WanImageToVideoPipeline.save_pretrained``, so tests load it through the same code as real weights.
Configs follow diffusers' tests/pipelines/wan/test_wan_22_image_to_video.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_DIM = 32  # tiny UMT5 d_model == transformer text_dim
WORDS = "a hand picks up the banana lamp lowers its head box moves blurry static low quality".split()


def tiny_tokenizer():
    """A T5 tokenizer over a 16-word unigram vocabulary (pad 0, eos 1, unk 2), built in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -1.0 - 0.01 * i) for i, w in enumerate(WORDS)]
    pieces += [(c, -10.0) for c in "abcdefghijklmnopqrstuvwxyz"] + [("▁", -5.0)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


def tiny_text_encoder(seed: int = 0):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    cfg = UMT5Config(
        vocab_size=48,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=40,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return UMT5EncoderModel(cfg).eval()


def tiny_vae(variant: str, seed: int = 0, base_dim: int = 3):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    if variant == "i2v-a14b":
        # Default latents_mean/std: the real Wan 2.1 statistics, so normalisation is exercised.
        return AutoencoderKLWan(
            base_dim=base_dim,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )
    z = 48
    return AutoencoderKLWan(
        base_dim=3,
        z_dim=z,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.01 * i - 0.2 for i in range(z)],
        latents_std=[0.5 + 0.02 * i for i in range(z)],
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )


def content_vae(seed: int = 0, residual_scale: float = 0.1):
    """A tiny A14B ``AutoencoderKLWan`` whose encoder is initialised to keep the video's content.

    A randomly initialised tiny encoder maps a rendered video to a latent that barely depends on
    where an object is (moving a box 10 cm changes the normalised latent by 0.1 % of its norm, and
    not monotonically), so no optimiser can recover motion through it. Here the real architecture
    (channels 4 -> 12 -> 36 over the two temporal downsamplings) starts as a blur-and-downsample
    that keeps every frame: conv_in copies RGB plus one constant channel (so the RMS norms keep
    brightness), residual shortcuts embed their input channels, each spatial downsampling conv is
    a per-channel [1, 2, 1]^2 blur, each temporal one writes its three input frames into three
    channel groups (instead of averaging them away), conv_out mixes the features into the 16
    latent channels with fixed random weights and a blur (logvar 0), quant_conv is the identity.
    The residual branches and the mid-block attention keep random weights scaled by
    ``residual_scale``, so every module stays on the differentiated path. The decoder stays
    random: RF-SDS never decodes.
    """
    from diffusers import AutoencoderKLWan
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanResample, WanResidualBlock

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=4,
        z_dim=16,
        dim_mult=[1, 3, 9, 9],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    enc = vae.encoder
    blur = torch.tensor([1.0, 2.0, 1.0])
    blur = torch.outer(blur, blur) / 16  # [3, 3], sums to 1

    def embed(out_c: int, in_c: int) -> torch.Tensor:  # [out_c, in_c]: input channel j -> j
        return torch.eye(out_c, in_c)

    with torch.no_grad():
        w = torch.zeros_like(enc.conv_in.weight)  # [4, 3, kt, kh, kw]; causal: last kt tap = now
        w[:3, :, -1, 1, 1] = torch.eye(3)
        enc.conv_in.weight.copy_(w)
        enc.conv_in.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))
        for m in enc.modules():
            if isinstance(m, WanResidualBlock):
                m.conv2.weight.mul_(residual_scale)
                m.conv2.bias.zero_()
                sc = m.conv_shortcut
                if isinstance(sc, torch.nn.Module) and hasattr(sc, "weight"):
                    sc.weight.copy_(embed(*sc.weight.shape[:2])[:, :, None, None, None])
                    sc.bias.zero_()
            elif isinstance(m, WanResample):
                conv = m.resample[1]
                c = conv.weight.shape[0]
                conv.weight.copy_(torch.eye(c)[:, :, None, None] * blur)
                conv.bias.zero_()
                if hasattr(m, "time_conv"):
                    g = c // 3  # the channels that carry content; tap k goes to group k
                    tw = torch.zeros_like(m.time_conv.weight)  # [c, c, 3, 1, 1]
                    for k in range(3):
                        tw[k * g : (k + 1) * g, :g, k, 0, 0] = torch.eye(g)
                    m.time_conv.weight.copy_(tw)
                    m.time_conv.bias.zero_()
        attn = enc.mid_block.attentions[0]
        attn.proj.weight.mul_(residual_scale)
        attn.proj.bias.zero_()
        z, c = vae.config.z_dim, enc.conv_out.weight.shape[1]
        mix = torch.randn(z, c) / c**0.5
        w = torch.zeros_like(enc.conv_out.weight)  # [2z, c, kt, kh, kw]: means, then logvars
        w[:z, :, -1] = mix[:, :, None, None] * blur
        enc.conv_out.weight.copy_(w)
        enc.conv_out.bias.zero_()
        vae.quant_conv.weight.copy_(torch.eye(2 * z)[:, :, None, None, None])
        vae.quant_conv.bias.zero_()
    return vae


def tiny_transformer(variant: str, seed: int = 0, head_dim: int = 12, ffn_dim: int = 32):
    """A 2-layer, 2-head Wan transformer; ``head_dim``/``ffn_dim`` multiples of 16 suit FP8 tests."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    cin, cout = (36, 16) if variant == "i2v-a14b" else (48, 48)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=head_dim,
        in_channels=cin,
        out_channels=cout,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=ffn_dim,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).eval()


def tiny_pipeline(variant: str = "i2v-a14b", boundary_ratio: float | None = 0.9, vae=None):
    """A WanImageToVideoPipeline of tiny random parts (the two A14B experts get different seeds);
    ``vae`` replaces the random VAE (e.g. ``content_vae()``)."""
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline

    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    a14b = variant == "i2v-a14b"
    return WanImageToVideoPipeline(
        tokenizer=tiny_tokenizer(),
        text_encoder=tiny_text_encoder(),
        vae=tiny_vae(variant) if vae is None else vae,
        scheduler=scheduler,
        transformer=tiny_transformer(variant, seed=1),
        transformer_2=tiny_transformer(variant, seed=2) if a14b else None,
        boundary_ratio=boundary_ratio if a14b else None,
        expand_timesteps=not a14b,
    )


def save_tiny_wan(
    path: Path, variant: str = "i2v-a14b", boundary_ratio: float | None = 0.9, vae=None
) -> Path:
    """Write a tiny random Wan 2.2 folder (safetensors) at ``path`` and return it (``vae`` as in
    ``tiny_pipeline``)."""
    tiny_pipeline(variant, boundary_ratio, vae).save_pretrained(path)
    return Path(path)
