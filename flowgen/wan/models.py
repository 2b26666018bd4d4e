"""Loading Wan 2.2 components from a validated local folder, and keeping the right expert on the GPU.

Every weight is loaded with ``torch_dtype=`` (diffusers) / ``dtype=`` (transformers), never cast
afterwards with ``.to(dtype)``: the checkpoint is bf16 and a float32 detour doubles host memory.
``.to(device)`` only moves. The text encoder is loaded separately and only when the prompt cache
misses (flowgen.wan.prompts), because UMT5-XXL is 11 GB that the optimisation never needs again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import ChordError, MissingDependencyError
from flowgen.wan.folder import WanFolder

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def attention_context(name: str):
    """A context that makes ``scaled_dot_product_attention`` use the named kernel ("auto": torch's pick).

    diffusers' default attention backend for Wan calls torch SDPA, so this reaches the experts.
    """
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }
    if name not in backends:
        raise ValueError(f"attention kernel is {name!r}, expected 'auto' or one of {tuple(backends)}")
    return sdpa_kernel([backends[name]])


def compile_blocks(model: Any) -> None:
    """``torch.compile`` each transformer block in place (one compiled graph serves all 40: the
    blocks are identical). Compilation happens on the first forward; nothing runs here."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} has no .blocks to compile")
    for block in blocks:
        block.compile()
    log.info("compiling %d blocks of %s on first use", len(blocks), type(model).__name__)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a config string ("bfloat16", "float16", "float32")."""
    if name not in DTYPES:
        raise ValueError(f"dtype is {name!r}, expected one of {tuple(DTYPES)}")
    return DTYPES[name]


def _diffusers():
    try:
        import diffusers
    except ImportError as e:
        raise MissingDependencyError(
            "the Wan prior needs diffusers>=0.35 (pip install 'diffusers>=0.35')"
        ) from e
    return diffusers


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError(
            "the Wan prior needs transformers>=4.51 (pip install 'transformers>=4.51')"
        ) from e
    return transformers


@dataclass
class WanComponents:
    """The parts of a Wan 2.2 pipeline the prior uses (no scheduler object: tau is drawn by us)."""

    variant: str  # "i2v-a14b" or "ti2v-5b"
    vae: Any  # AutoencoderKLWan
    transformer: Any  # WanTransformer3DModel: the high-noise expert (A14B) or the only one (TI2V-5B)
    transformer_2: Any | None  # the low-noise expert (A14B), None for TI2V-5B
    boundary_ratio: float | None  # tau >= boundary -> transformer, else transformer_2
    num_train_timesteps: int = 1000  # the transformer's timestep is tau * num_train_timesteps
    tokenizer: Any | None = None  # present only while prompts still need encoding
    text_encoder: Any | None = None  # UMT5EncoderModel; freed after the prompts are encoded
    text_identity: str = ""  # hex digest naming tokenizer + text encoder (prompt-cache key)
    folder: WanFolder | None = None  # where to load the text encoder from on a cache miss

    def free_text_encoder(self) -> None:
        """Drop the text encoder and tokenizer and return their memory (CPU and GPU)."""
        had = self.text_encoder is not None
        self.text_encoder = None
        self.tokenizer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if had:
            log.info("freed the text encoder")


def read_num_train_timesteps(folder: WanFolder) -> int:
    """The scheduler's num_train_timesteps, as ``validate_model_folder`` read and checked it."""
    return folder.num_train_timesteps


@contextlib.contextmanager
def _loading(folder: WanFolder, what: str) -> Iterator[None]:
    """Turn a library's refusal to load ``what`` into one ChordError naming the folder and part.

    ``validate_model_folder`` checks every config, index and safetensors header first; this
    catches what only loading finds (tensor names or shapes that do not fit the config).
    """
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ChordError(
            f"Wan model folder {folder.path}: cannot load {what} ({type(e).__name__}: {first[:300]})"
        ) from e


def _from_pretrained(cls: Any, folder: WanFolder, what: str, *args: Any, **kwargs: Any) -> Any:
    """``cls.from_pretrained(*args, **kwargs)``, refusing weights that do not fit the config.

    diffusers and transformers only warn about tensors the checkpoint lacks and leave them
    random (or on the meta device): a folder holding another model's weights would run as noise.
    """
    with _loading(folder, what):
        model, info = cls.from_pretrained(*args, output_loading_info=True, **kwargs)
    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        raise ChordError(
            f"Wan model folder {folder.path}: the {what} weights do not fit {what}/config.json: "
            f"{len(missing)} tensor(s) missing (e.g. {missing[:3]}), {len(mismatched)} of another shape"
        )
    return model


def load_wan_components(
    folder: WanFolder,
    device: torch.device | str,
    dtype: str = "bfloat16",
    vae_dtype: str = "bfloat16",
    experts_resident: str = "both",
) -> WanComponents:
    """Load the VAE and the transformer(s) of a validated folder (not the text encoder).

    With ``experts_resident="one"`` both experts are loaded to CPU and ``ExpertSwitch`` moves the
    one in use to ``device``; with ``"both"`` both go to ``device`` now.
    """
    diffusers = _diffusers()
    device = torch.device(device)
    wdtype, vdtype = torch_dtype(dtype), torch_dtype(vae_dtype)
    from flowgen.wan.folder import text_encoder_identity

    log.info("loading Wan %s VAE from %s", folder.variant, folder.path)
    vae = _from_pretrained(
        diffusers.AutoencoderKLWan, folder, "vae", folder.path, subfolder="vae", torch_dtype=vdtype
    )
    vae.requires_grad_(False).eval().to(device)
    experts = []
    for sub in ("transformer", "transformer_2")[: 2 if folder.variant == "i2v-a14b" else 1]:
        log.info("loading %s (%s)", sub, dtype)
        model = _from_pretrained(
            diffusers.WanTransformer3DModel, folder, sub, folder.path, subfolder=sub, torch_dtype=wdtype
        )
        model.requires_grad_(False).eval()
        if experts_resident == "both":
            model.to(device)
        experts.append(model)
    _check_channels(folder.variant, vae, experts)
    return WanComponents(
        variant=folder.variant,
        vae=vae,
        transformer=experts[0],
        transformer_2=experts[1] if len(experts) > 1 else None,
        boundary_ratio=folder.boundary_ratio,
        num_train_timesteps=read_num_train_timesteps(folder),
        text_identity=text_encoder_identity(folder),
        folder=folder,
    )


def _check_channels(variant: str, vae: Any, experts: list[Any]) -> None:
    """The transformer must take what the VAE gives: A14B 2C + 4 (noise, mask, condition), TI2V C."""
    z = vae.config.z_dim
    want_in = 2 * z + 4 if variant == "i2v-a14b" else z
    for i, m in enumerate(experts):
        cin, cout = m.config.in_channels, m.config.out_channels
        if cin != want_in or cout != z:
            raise ChordError(
                f"Wan {variant}: transformer{'_2' if i else ''} has in/out channels {cin}/{cout}, expected "
                f"{want_in}/{z} for a VAE with z_dim={z}"
            )


def load_text_encoder(
    folder: WanFolder, device: torch.device | str, dtype: str = "bfloat16"
) -> tuple[Any, Any]:
    """Load (tokenizer, UMT5 text encoder) of a validated folder onto ``device``."""
    transformers = _transformers()
    with _loading(folder, "tokenizer"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder.path / "tokenizer")
    # transformers >= 4.56 renamed torch_dtype to dtype (and warns on the old name).
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    kw = {"dtype": torch_dtype(dtype)} if (major, minor) >= (4, 56) else {"torch_dtype": torch_dtype(dtype)}
    text_encoder = _from_pretrained(
        transformers.UMT5EncoderModel, folder, "text_encoder", folder.path / "text_encoder", **kw
    )
    text_encoder.requires_grad_(False).eval().to(device)
    return tokenizer, text_encoder


class ExpertSwitch:
    """Hands out the expert for a tau, keeping one or both on the device.

    With ``resident="one"`` each expert's weights live in pinned host memory and only the active
    expert has a device copy: a swap drops the old copy (the weights are frozen, nothing is copied
    back) and uploads the new one from pinned memory (about 1 s for 28.5 GiB at PCIe 5 rates,
    instead of ~29 s for two pageable ``.to()`` moves). The annealed tau schedule makes one swap per
    run; the uniform one can swap within a step.
    """

    def __init__(self, components: WanComponents, device: torch.device | str, resident: str = "both"):
        self.c = components
        self.device = torch.device(device)
        self.resident = resident
        self.swaps = 0  # number of uploads so far (logged; a uniform schedule makes many)
        self._on_device: int | None = None
        self._host: dict[int, list[torch.Tensor]] = {}  # expert index -> host copies, in _tensors order
        if resident == "one" and components.transformer_2 is not None:
            for index in (0, 1):
                self._host[index] = [self._to_host(t.data) for t in _tensors(self._model(index))]
                self._point(index, on_device=False)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _to_host(self, t: torch.Tensor) -> torch.Tensor:
        host = t.to("cpu")
        if self.device.type == "cuda" and torch.cuda.is_available():
            host = host.pin_memory()
        return host

    def _model(self, index: int) -> Any:
        return self.c.transformer if index == 0 else self.c.transformer_2

    def _point(self, index: int, on_device: bool) -> None:
        """Make expert ``index`` use its host copies, or fresh device copies uploaded from them."""
        for t, h in zip(_tensors(self._model(index)), self._host[index], strict=True):
            t.data = h.to(self.device, non_blocking=True) if on_device else h

    def index_for(self, tau: float) -> int:
        """0 (high-noise ``transformer``) when tau >= boundary, else 1 (``transformer_2``).

        Compared as the pipeline does, ``t >= boundary_ratio * num_train_timesteps``, on the float32
        timestep that is actually passed (float32(0.9) * 1000 is exactly 900: the high expert).
        """
        if self.c.transformer_2 is None or self.c.boundary_ratio is None:
            return 0
        t = float(torch.tensor(tau, dtype=torch.float32) * self.c.num_train_timesteps)
        return 0 if t >= self.c.boundary_ratio * self.c.num_train_timesteps else 1

    def get(self, index: int) -> Any:
        if self._host and self._on_device != index:
            if self._on_device is not None:  # drop the old device copy first: the peak stays one expert
                self._point(self._on_device, on_device=False)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            self._point(index, on_device=True)
            self._on_device = index
            self.swaps += 1
        return self._model(index)

    def make_all_resident(self) -> None:
        """Upload every expert and stop swapping (as if built with ``resident="both"``)."""
        for index in self._host:
            if index != self._on_device:
                self._point(index, on_device=True)
        self._host.clear()
        self._on_device = None
        self.resident = "both"


def _tensors(model: Any) -> list[torch.Tensor]:
    """Every parameter and buffer of ``model`` (FP8 layers keep their weights as buffers)."""
    return [*model.parameters(), *(b for b in model.buffers() if b is not None)]
