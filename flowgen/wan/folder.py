"""The local Wan 2.2 model folder: what must be in it, which variant it is, what videos it accepts.

Torch-free and cheap: every check here runs before a single weight is read, so a missing file or a
bad frame count fails in milliseconds with a message that lists everything wrong at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import ChordError

VAE_TEMPORAL = 4  # frames per latent frame after the first (both Wan 2.1 and 2.2 VAEs)
SIZE_MULTIPLE = {"i2v-a14b": 16, "ti2v-5b": 32}  # VAE stride x transformer patch (8x2, 16x2)
DEFAULT_BOUNDARY = 0.9  # Wan 2.2 I2V A14B: high-noise expert for tau >= 0.9

# Weight files a component folder may hold: one file, or an index naming shards.
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"


class ModelFolderError(ChordError, FileNotFoundError):
    """The model folder lacks files; ``missing`` lists every one, relative to the folder."""

    def __init__(self, folder: Path, missing: list[str]):
        self.folder = folder
        self.missing = missing
        lines = "\n".join(f"  - {m}" for m in missing)
        super().__init__(
            f"Wan model folder {folder} is incomplete; missing {len(missing)} item(s):\n{lines}\n"
            "Expected the layout of the Hub repo Wan-AI/Wan2.2-I2V-A14B-Diffusers (see docs/wan_prior.md)."
        )


@dataclass(frozen=True)
class WanFolder:
    """A validated model folder."""

    path: Path
    variant: str  # "i2v-a14b" or "ti2v-5b"
    boundary_ratio: float | None  # tau of the expert switch (A14B); None for the single-expert TI2V-5B

    @property
    def size_multiple(self) -> int:
        return SIZE_MULTIPLE[self.variant]

    @property
    def components(self) -> tuple[str, ...]:
        base = ("scheduler", "tokenizer", "text_encoder", "vae", "transformer")
        return (*base, "transformer_2") if self.variant == "i2v-a14b" else base


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _missing_weights(folder: Path, sub: str, name: str) -> list[str]:
    """What is missing of ``sub``'s weights: the single file, or the shards an index names."""
    single = folder / sub / name
    index = folder / sub / f"{name}.index.json"
    if single.is_file():
        return []
    if index.is_file():
        data = _read_json(index)
        if data is None or not isinstance(data.get("weight_map"), dict):
            return [f"{sub}/{index.name} (unreadable or without a weight_map)"]
        shards = sorted(set(data["weight_map"].values()))
        return [f"{sub}/{s}" for s in shards if not (folder / sub / s).is_file()]
    return [f"{sub}/{name} (or {name}.index.json with its shards)"]


def _missing_in(folder: Path, variant: str) -> list[str]:
    missing: list[str] = []

    def need(rel: str) -> None:
        if not (folder / rel).is_file():
            missing.append(rel)

    need("model_index.json")
    need("scheduler/scheduler_config.json")
    need("tokenizer/tokenizer_config.json")
    if not ((folder / "tokenizer/tokenizer.json").is_file() or (folder / "tokenizer/spiece.model").is_file()):
        missing.append("tokenizer/tokenizer.json (or tokenizer/spiece.model)")
    need("text_encoder/config.json")
    missing += _missing_weights(folder, "text_encoder", TRANSFORMERS_WEIGHTS)
    experts = ("transformer", "transformer_2") if variant == "i2v-a14b" else ("transformer",)
    for sub in ("vae", *experts):
        need(f"{sub}/config.json")
        missing += _missing_weights(folder, sub, DIFFUSERS_WEIGHTS)
    return missing


def _detect_variant(folder: Path, index: dict | None) -> str | None:
    """The variant the folder declares: TI2V-5B sets expand_timesteps, A14B names a second expert."""
    if index is not None:
        if index.get("expand_timesteps") is True:
            return "ti2v-5b"
        t2 = index.get("transformer_2")
        if isinstance(t2, list) and t2 and t2[0] is not None:
            return "i2v-a14b"
    if (folder / "transformer_2").is_dir():
        return "i2v-a14b"
    vae = _read_json(folder / "vae" / "config.json")
    if vae is not None and vae.get("z_dim") == 48:
        return "ti2v-5b"
    return None


def validate_model_folder(
    path: str | Path, variant: str = "auto", boundary_ratio: float | None = None
) -> WanFolder:
    """Check the folder holds every file ``variant`` needs and return what it is; reads only JSON.

    Raises ModelFolderError listing every missing file at once, ChordError when the folder does not
    exist or its variant cannot be told / contradicts ``variant``.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ChordError(f"Wan model folder {folder} does not exist (expected a local diffusers folder)")
    index = _read_json(folder / "model_index.json")
    found = _detect_variant(folder, index)
    if variant == "auto":
        if found is None:
            # Report against the full A14B layout: that is what the seed uses.
            missing = _missing_in(folder, "i2v-a14b")
            if missing:
                raise ModelFolderError(folder, missing)
            raise ChordError(
                f"Wan model folder {folder}: cannot tell whether it is i2v-a14b or ti2v-5b; set variant"
            )
        variant = found
    elif variant not in SIZE_MULTIPLE:
        raise ValueError(f"Wan variant is {variant!r}, expected 'auto', 'i2v-a14b' or 'ti2v-5b'")
    elif found is not None and found != variant:
        raise ChordError(
            f"Wan model folder {folder} looks like {found}, but variant {variant!r} was asked for"
        )
    missing = _missing_in(folder, variant)
    if missing:
        raise ModelFolderError(folder, missing)
    if variant == "ti2v-5b":
        return WanFolder(folder, variant, None)
    if boundary_ratio is None:
        from_index = index.get("boundary_ratio") if index is not None else None
        boundary_ratio = float(from_index) if from_index is not None else DEFAULT_BOUNDARY
    return WanFolder(folder, variant, boundary_ratio)


def check_video_shape(variant: str, num_frames: int, height: int, width: int) -> None:
    """Raise ValueError unless T = 4k+1 (k >= 1) and H, W are multiples of the variant's stride.

    Wan's VAE silently drops frames past the last 4k+1, and the transformer patchifies the latent
    2x2, so a 464x832 video is fine for A14B (16) but not for TI2V-5B (32).
    """
    if variant not in SIZE_MULTIPLE:
        raise ValueError(f"Wan variant is {variant!r}, expected 'i2v-a14b' or 'ti2v-5b'")
    problems = []
    if (
        isinstance(num_frames, bool)
        or not isinstance(num_frames, int)
        or num_frames < 5
        or num_frames % 4 != 1
    ):
        near = ""
        if isinstance(num_frames, int) and num_frames >= 2:
            lo = max(5, (num_frames - 1) // 4 * 4 + 1)
            near = f" (e.g. {lo} or {lo + 4})"
        problems.append(f"num_frames is {num_frames!r}, expected 4k+1 with k >= 1{near}")
    m = SIZE_MULTIPLE[variant]
    for key, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < m or v % m:
            near = f" (e.g. {max(m, v // m * m)} or {v // m * m + m})" if isinstance(v, int) and v > 0 else ""
            problems.append(f"{key} is {v!r} px, expected a positive multiple of {m} for {variant}{near}")
    if problems:
        raise ValueError(f"Wan {variant} video {num_frames}x{height}x{width}: " + "; ".join(problems))


def text_encoder_identity(folder: WanFolder) -> str:
    """A hex digest naming the text encoder + tokenizer of ``folder``: the prompt-cache key's model half.

    Hashes the folder's resolved path, the configs and tokenizer files (content) and the weight
    files (name, size and mtime: hashing 11 GB of UMT5-XXL on every run would cost more than
    encoding the prompt). Replacing or touching the weights therefore invalidates the cache.
    """
    h = hashlib.sha256(str(folder.path.resolve()).encode())
    for sub in ("tokenizer", "text_encoder"):
        for f in sorted((folder.path / sub).iterdir()):
            if not f.is_file():
                continue
            h.update(f"\0{sub}/{f.name}\0".encode())
            if f.suffix in (".json", ".model", ".txt"):
                h.update(f.read_bytes())
            else:
                st = f.stat()
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()
