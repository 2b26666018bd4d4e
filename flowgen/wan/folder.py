"""The local Wan 2.2 model folder: what must be in it, which variant it is, what videos it accepts.

Torch-free and cheap: every check here runs before a single weight is read, so a missing file, a
bad config or a damaged weight file fails in milliseconds with a message that lists everything
wrong at once. Besides the files' presence, :func:`validate_model_folder` parses every JSON file
(configs, indexes, tokenizer), checks the values the prior relies on against their ranges (the
constants below), the transformers' channels against the VAE's, each shard name of an index (a
plain file name inside its component folder: a path is never followed out of the folder), and
the header of every ``.safetensors`` file (read and size-checked against the file, not loaded).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ChordError

VAE_TEMPORAL = 4  # frames per latent frame after the first (both Wan 2.1 and 2.2 VAEs)
SIZE_MULTIPLE = {"i2v-a14b": 16, "ti2v-5b": 32}  # VAE stride x transformer patch (8x2, 16x2)
DEFAULT_BOUNDARY = 0.9  # Wan 2.2 I2V A14B: high-noise expert for tau >= 0.9

# Weight files a component folder may hold: one file, or an index naming shards.
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"

# -- ranges of what the folder declares (each refusal names the file, the value and the range) --
# The expert switch is a noise level tau in (0, 1]: 0 would never use the high-noise expert's
# range and above 1 never the low-noise one (Wan 2.2 ships 0.9).
BOUNDARY_RANGE = (0.0, 1.0)  # open below, closed above
# The transformer's timestep is tau * num_train_timesteps; Wan trains with 1000. Zero makes every
# timestep 0 (and the expert switch meaningless); a million is not a diffusion schedule.
NUM_TRAIN_TIMESTEPS_RANGE = (1, 100_000)
# A safetensors header is JSON of the tensors' names, dtypes, shapes and offsets: ~100 kB for a
# 5 GB shard. The safetensors library refuses headers over 100 MB; so does this check, before
# reading one.
MAX_HEADER_BYTES = 100_000_000
# Config, index and tokenizer JSON files: UMT5's tokenizer.json is 16 MB, the rest are kB.
MAX_JSON_BYTES = 64 << 20
# Bytes per element of the safetensors dtypes a checkpoint may hold.
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


class ModelFolderError(ChordError, FileNotFoundError):
    """The model folder lacks files; ``missing`` lists every one, relative to the folder."""

    def __init__(self, folder: Path, missing: list[str]):
        self.folder = folder
        self.missing = missing
        super().__init__(
            f"Wan model folder {folder} is incomplete; missing {len(missing)} item(s): {'; '.join(missing)}. "
            "Expected the layout of the Hub repo Wan-AI/Wan2.2-I2V-A14B-Diffusers (see docs/wan_prior.md)."
        )


class ModelFolderContentError(ChordError, ValueError):
    """Files of the model folder are present but wrong; ``problems`` lists every one, each
    naming the file (relative to the folder), the value and what was expected."""

    def __init__(self, folder: Path, problems: list[str]):
        self.folder = folder
        self.problems = problems
        super().__init__(f"Wan model folder {folder} has {len(problems)} problem(s): " + "; ".join(problems))


@dataclass(frozen=True)
class WanFolder:
    """A validated model folder."""

    path: Path
    variant: str  # "i2v-a14b" or "ti2v-5b"
    boundary_ratio: float | None  # tau of the expert switch (A14B); None for the single-expert TI2V-5B
    num_train_timesteps: int = 1000  # the scheduler's: a transformer timestep is tau * this

    @property
    def size_multiple(self) -> int:
        return SIZE_MULTIPLE[self.variant]

    @property
    def components(self) -> tuple[str, ...]:
        base = ("scheduler", "tokenizer", "text_encoder", "vae", "transformer")
        return (*base, "transformer_2") if self.variant == "i2v-a14b" else base


class _BadFileError(Exception):
    """One problem with one file (collected into ModelFolderContentError)."""


def _parse_json(path: Path) -> dict:
    """A JSON object from ``path``; raises _BadFileError saying why not (size, encoding, syntax, type)."""
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise _BadFileError(f"is {size:,} bytes, expected a JSON file of at most {MAX_JSON_BYTES:,}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise _BadFileError(f"is not UTF-8 text, expected JSON ({e.reason} at byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise _BadFileError(f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
    except RecursionError as e:
        raise _BadFileError("is JSON nested too deeply to read") from e
    if not isinstance(data, dict):
        raise _BadFileError(f"holds a JSON {type(data).__name__}, expected an object")
    return data


def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable (variant detection)."""
    try:
        return _parse_json(path) if path.is_file() else None
    except (OSError, _BadFileError):
        return None


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a ``.safetensors`` file, checked against the file before any tensor is read.

    Layout: 8 bytes little-endian header length n, n bytes of JSON ``{name: {dtype, shape,
    data_offsets}}``, then the tensors' bytes. Refused (ChordError naming the file): a file too
    short, a zip or pickle (``torch.save``; unpickling can run code), a header over
    MAX_HEADER_BYTES or past the end of the file, a header that is not a JSON object, an unknown
    dtype, a shape or offsets that disagree with each other or reach past the end of the file,
    and bytes no tensor covers.
    """
    try:
        return _safetensors_header(path)
    except _BadFileError as e:
        raise ChordError(f"{path}: {e}") from e


def _safetensors_header(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _BadFileError(
                f"is {size} bytes, too short for a safetensors file (8-byte header length first)"
            )
        if head.startswith(b"PK"):
            raise _BadFileError(
                "is a zip archive (a torch.save checkpoint, which unpickles code), not safetensors; refused"
            )
        if head[:1] == b"\x80":
            raise _BadFileError("is a Python pickle (unpickling can run code), not safetensors; refused")
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER_BYTES:
            raise _BadFileError(
                f"declares a {n:,}-byte header, expected at most {MAX_HEADER_BYTES:,}: not a safetensors file"
            )
        if 8 + n > size:
            raise _BadFileError(
                f"declares a {n:,}-byte header but the file is {size:,} bytes: truncated, or not safetensors"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _BadFileError(
            f"has a header that is not valid JSON ({type(e).__name__}): not a safetensors file"
        ) from e
    if not isinstance(header, dict):
        raise _BadFileError(f"has a header holding a JSON {type(header).__name__}, expected an object")
    data = size - 8 - n
    covered = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"tensor {name[:80]!r}"
        if not isinstance(info, dict):
            raise _BadFileError(
                f"{where}: header entry is {type(info).__name__}, expected {{dtype, shape, data_offsets}}"
            )
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPES:
            raise _BadFileError(
                f"{where}: dtype is {str(dtype)[:20]!r}, expected one of {sorted(SAFETENSORS_DTYPES)}"
            )
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _BadFileError(f"{where}: shape is {str(shape)[:40]}, expected a list of sizes >= 0")
        ok = isinstance(offsets, list) and len(offsets) == 2
        ok = ok and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        if not ok or not 0 <= offsets[0] <= offsets[1]:
            raise _BadFileError(
                f"{where}: data_offsets is {str(offsets)[:40]}, expected [begin, end] with 0 <= begin <= end"
            )
        if offsets[1] > data:
            raise _BadFileError(
                f"{where}: ends at byte {offsets[1]:,} of the data, but the file holds {data:,}: truncated"
            )
        want = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if offsets[1] - offsets[0] != want:
            raise _BadFileError(
                f"{where}: {offsets[1] - offsets[0]:,} bytes for shape {shape} of {dtype}, expected {want:,}"
            )
        covered = max(covered, offsets[1])
    if covered != data:
        raise _BadFileError(
            f"holds {data - covered:,} bytes after its last tensor (damaged or not safetensors)"
        )
    return header


def _weight_files(folder: Path, sub: str, name: str) -> list[str]:
    """The weight files of ``sub`` (relative to the folder): the single file, or the index's shards.

    Raises _BadFileError for an unreadable index, or a shard name that is not a plain file name in
    ``sub`` (``..``, ``/``, an absolute path: never followed out of the folder).
    """
    if (folder / sub / name).is_file():
        return [f"{sub}/{name}"]
    index = folder / sub / f"{name}.index.json"
    data = _parse_json(index)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise _BadFileError("has no weight_map (a mapping of tensor names to shard files)")
    if not all(isinstance(v, str) for v in weight_map.values()):
        raise _BadFileError("weight_map: every value must be a shard file name")
    shards = []
    for shard in sorted(set(weight_map.values())):
        plain = (
            shard
            and "/" not in shard
            and "\\" not in shard
            and shard not in (".", "..")
            and "\0" not in shard
        )
        if not plain or Path(shard).is_absolute():
            raise _BadFileError(
                f"weight_map names the shard {shard[:80]!r}, expected a plain file name inside {sub}/ "
                "(a path out of the folder is never followed)"
            )
        shards.append(f"{sub}/{shard}")
    return shards


def _missing_weights(folder: Path, sub: str, name: str) -> list[str]:
    """What is missing of ``sub``'s weights: the single file, or the shards an index names."""
    single = folder / sub / name
    index = folder / sub / f"{name}.index.json"
    if single.is_file():
        return []
    if index.is_file():
        try:
            files = _weight_files(folder, sub, name)
        except (OSError, _BadFileError):
            return []  # present but wrong: the content check names the problem
        return [f for f in files if not (folder / f).is_file()]
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


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    """Collects the content problems of one folder, each naming its file."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.problems: list[str] = []

    def add(self, rel: str, message: str) -> None:
        self.problems.append(f"{rel}: {message}")

    def json(self, rel: str) -> dict | None:
        path = self.folder / rel
        if not path.is_file():
            return None
        try:
            return _parse_json(path)
        except (_BadFileError, OSError) as e:
            self.add(rel, str(e))
            return None

    def weights(self, sub: str, name: str) -> dict[str, Any]:
        """Check every weight file of ``sub``; returns the tensors' headers merged (name -> entry)."""
        try:
            files = _weight_files(self.folder, sub, name)
        except (_BadFileError, OSError) as e:
            self.add(f"{sub}/{name}.index.json", str(e))
            return {}
        tensors: dict[str, Any] = {}
        for rel in files:
            try:
                tensors.update(_safetensors_header(self.folder / rel))
            except (_BadFileError, OSError) as e:
                self.add(rel, str(e))
        return tensors


def _check_contents(folder: Path, variant: str, index: dict | None) -> int:
    """Check what the present files hold; returns num_train_timesteps. Raises
    ModelFolderContentError listing every problem."""
    c = _Checker(folder)
    if index is None:
        c.json("model_index.json")  # says why it could not be read
    else:
        ratio = index.get("boundary_ratio")
        lo, hi = BOUNDARY_RANGE
        if ratio is not None and not (
            isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and lo < ratio <= hi
        ):
            c.add("model_index.json", f"boundary_ratio is {ratio!r}, expected a number in ({lo:g}, {hi:g}]")
    steps = 1000
    scheduler = c.json("scheduler/scheduler_config.json")
    if scheduler is not None:
        steps = scheduler.get("num_train_timesteps", 1000)
        lo, hi = NUM_TRAIN_TIMESTEPS_RANGE
        if not (_integer(steps) and lo <= steps <= hi):
            c.add(
                "scheduler/scheduler_config.json",
                f"num_train_timesteps is {steps!r}, expected an integer from {lo} to {hi:,}",
            )
            steps = 1000
    for rel in ("tokenizer/tokenizer_config.json", "tokenizer/tokenizer.json", "text_encoder/config.json"):
        c.json(rel)
    c.weights("text_encoder", TRANSFORMERS_WEIGHTS)
    vae = c.json("vae/config.json")
    z = vae.get("z_dim") if vae is not None else None
    if vae is not None and not (_integer(z) and z > 0):
        c.add("vae/config.json", f"z_dim is {z!r}, expected a positive integer (16 for A14B, 48 for TI2V-5B)")
        z = None
    c.weights("vae", DIFFUSERS_WEIGHTS)
    experts = ("transformer", "transformer_2") if variant == "i2v-a14b" else ("transformer",)
    for sub in experts:
        cfg = c.json(f"{sub}/config.json")
        tensors = c.weights(sub, DIFFUSERS_WEIGHTS)
        if cfg is None:
            continue
        cin, cout = cfg.get("in_channels"), cfg.get("out_channels")
        if not (_integer(cin) and cin > 0 and _integer(cout) and cout > 0):
            c.add(f"{sub}/config.json", f"in/out_channels are {cin!r}/{cout!r}, expected positive integers")
            continue
        if z is not None:
            # A14B's input stacks noise, mask and the condition (2 z + 4), TI2V-5B's is the latent.
            want = (2 * z + 4, z) if variant == "i2v-a14b" else (z, z)
            if (cin, cout) != want:
                c.add(
                    f"{sub}/config.json",
                    f"in/out_channels are {cin}/{cout}, expected {want[0]}/{want[1]} for {variant} with "
                    f"the VAE's z_dim={z}",
                )
                continue
        patch = tensors.get("patch_embedding.weight")
        if tensors and patch is None:
            c.add(
                f"{sub}/{DIFFUSERS_WEIGHTS}",
                "has no tensor 'patch_embedding.weight': these are not the weights of a Wan transformer",
            )
        elif isinstance(patch, dict) and isinstance(patch.get("shape"), list) and len(patch["shape"]) >= 2:
            if patch["shape"][1] != cin:
                c.add(
                    f"{sub}/config.json",
                    f"in_channels is {cin}, but the weights' patch_embedding takes {patch['shape'][1]}",
                )
    if c.problems:
        raise ModelFolderContentError(folder, c.problems)
    return int(steps)


def validate_model_folder(
    path: str | Path, variant: str = "auto", boundary_ratio: float | None = None
) -> WanFolder:
    """Check the folder holds every file ``variant`` needs, and that they hold what the prior
    reads, and return what it is; reads JSON and safetensors headers only (milliseconds).

    Raises ChordError when the folder does not exist or is a file, or its variant cannot be told /
    contradicts ``variant``; ModelFolderError listing every missing file at once;
    ModelFolderContentError listing every bad file at once (module docstring).
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ChordError(f"Wan model folder {folder} does not exist (expected a local diffusers folder)")
    if not folder.is_dir():
        raise ChordError(
            f"Wan model folder {folder} is a file, not a folder (expected a local diffusers folder)"
        )
    index = _read_json(folder / "model_index.json")
    found = _detect_variant(folder, index)
    if variant == "auto":
        if found is None:
            # Report against the full A14B layout: that is what the seed uses.
            missing = _missing_in(folder, "i2v-a14b")
            if missing:
                raise ModelFolderError(folder, missing)
            _check_contents(folder, "i2v-a14b", index)  # a corrupt model_index.json says so
            raise ChordError(
                f"Wan model folder {folder}: cannot tell whether it is i2v-a14b or ti2v-5b; set variant"
            )
        variant = found
    elif variant not in SIZE_MULTIPLE:
        raise ChordError(f"Wan variant is {variant!r}, expected 'auto', 'i2v-a14b' or 'ti2v-5b'")
    elif found is not None and found != variant:
        raise ChordError(
            f"Wan model folder {folder} looks like {found}, but variant {variant!r} was asked for"
        )
    missing = _missing_in(folder, variant)
    if missing:
        raise ModelFolderError(folder, missing)
    steps = _check_contents(folder, variant, index)
    if variant == "ti2v-5b":
        return WanFolder(folder, variant, None, steps)
    if boundary_ratio is None:
        from_index = index.get("boundary_ratio") if index is not None else None
        boundary_ratio = float(from_index) if from_index is not None else DEFAULT_BOUNDARY
    return WanFolder(folder, variant, boundary_ratio, steps)


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
