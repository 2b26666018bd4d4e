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


def tiny_vae(variant: str, seed: int = 0):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    if variant == "i2v-a14b":
        # Default latents_mean/std: the real Wan 2.1 statistics, so normalisation is exercised.
        return AutoencoderKLWan(
            base_dim=3,
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


def tiny_transformer(variant: str, seed: int = 0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    cin, cout = (36, 16) if variant == "i2v-a14b" else (48, 48)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=cin,
        out_channels=cout,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).eval()


def tiny_pipeline(variant: str = "i2v-a14b", boundary_ratio: float | None = 0.9):
    """A WanImageToVideoPipeline of tiny random parts (the two A14B experts get different seeds)."""
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline

    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    a14b = variant == "i2v-a14b"
    return WanImageToVideoPipeline(
        tokenizer=tiny_tokenizer(),
        text_encoder=tiny_text_encoder(),
        vae=tiny_vae(variant),
        scheduler=scheduler,
        transformer=tiny_transformer(variant, seed=1),
        transformer_2=tiny_transformer(variant, seed=2) if a14b else None,
        boundary_ratio=boundary_ratio if a14b else None,
        expand_timesteps=not a14b,
    )


def save_tiny_wan(path: Path, variant: str = "i2v-a14b", boundary_ratio: float | None = 0.9) -> Path:
    """Write a tiny random Wan 2.2 folder (safetensors) at ``path`` and return it."""
    tiny_pipeline(variant, boundary_ratio).save_pretrained(path)
    return Path(path)
