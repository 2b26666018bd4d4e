"""UMT5 prompt embeddings, computed once per (prompt, negative prompt, model) and cached on disk.

The encoding mirrors ``WanImageToVideoPipeline._get_t5_prompt_embeds``: clean the text, tokenize to
``text_len`` tokens, encode with the attention mask, keep the real tokens and zero-pad to
``text_len`` (the transformer was trained on zeros there, not on the encoder's pad outputs).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.atomic import atomic_write

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the encoding changes, so stale files are never read


def clean_prompt(text: str) -> str:
    """The pipeline's ``prompt_clean``: ftfy (when installed), HTML unescape twice, squeeze whitespace."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass  # ftfy only repairs mojibake; plain prompts encode identically without it
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


@torch.no_grad()
def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: list[str], text_len: int = 512) -> Tensor:
    """UMT5 embeddings [N, text_len, D] in the encoder's dtype, zero past each prompt's real tokens."""
    inputs = tokenizer(
        [clean_prompt(p) for p in prompts],
        padding="max_length",
        max_length=text_len,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids, mask = inputs.input_ids, inputs.attention_mask
    device = next(text_encoder.parameters()).device
    hidden = text_encoder(ids.to(device), mask.to(device)).last_hidden_state
    lengths = mask.gt(0).sum(dim=1).tolist()
    out = torch.zeros_like(hidden)
    for i, n in enumerate(lengths):
        out[i, :n] = hidden[i, :n]
    return out


def prompt_cache_key(prompt: str, negative_prompt: str, text_len: int, model_identity: str) -> str:
    """Hex digest naming one cache entry: the texts, the length and the text encoder's identity."""
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "prompt": prompt,
            "negative": negative_prompt,
            "len": text_len,
            "model": model_identity,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chord" / "wan_prompts"


class PromptCache:
    """safetensors files ``wan_prompt_<key>.safetensors`` holding ``prompt`` and ``negative`` [1, L, D]."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"wan_prompt_{key[:32]}.safetensors"

    def load(self, key: str) -> tuple[Tensor, Tensor] | None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError) as e:
            log.warning("ignoring unreadable prompt cache %s (%s)", path, e)
            return None
        if set(tensors) != {"prompt", "negative"}:
            log.warning("ignoring prompt cache %s: unexpected tensors %s", path, sorted(tensors))
            return None
        return tensors["prompt"], tensors["negative"]

    def save(self, key: str, prompt: Tensor, negative: Tensor, texts: tuple[str, str]) -> Path:
        from safetensors.torch import save

        data = save(
            {"prompt": prompt.detach().cpu().contiguous(), "negative": negative.detach().cpu().contiguous()},
            metadata={"prompt": texts[0], "negative_prompt": texts[1], "key": key},
        )
        path = self.path(key)
        with atomic_write(path, "wb") as f:
            f.write(data)
        return path
