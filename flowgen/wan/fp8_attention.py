"""FP8 self-attention for the Wan experts (opt-in: ``--wan-attention fp8``; see ``flowgen.wan.fp8``).

Self-attention over 16,588 tokens is half of an A14B forward at the seed's shape, and torch's best
bf16 kernel (cuDNN) runs it at 561 TFLOP/s on an H200. cuDNN's fused FP8 attention (reached through
NVIDIA's ``cudnn`` frontend package, ``pip install nvidia-cudnn-frontend``) runs Q K^T and P V on
the FP8 tensor cores. Scaling, all per tensor (e4m3 is a floating-point format: one scale only
places its range, every element keeps 3 mantissa bits):

- q, k, v: largest magnitude -> just under 448 (``quantize_tensor``);
- P (the softmax numerator exp(s - max) <= 1): times 448 before its cast (``scale_s``), so values
  down to ~4e-6 survive as subnormals and smaller ones round to 0;
- O: a convex combination of v's rows, so |O| <= amax(v): scaled by 0.875 x 448 / amax(v), the
  0.875 leaving room for P's rounding. On Hopper cuDNN writes O in FP8; the output projection
  (a ``Float8Linear`` in fast mode) takes it as is, with O's scale as every row's scale.

Measured (H200, 41x832x464, benchmarks/RESULTS.md): the kernel runs at 825 TFLOP/s against bf16's
568, which takes the fast step from 8.33 to 7.40 s; but the SDS gradient's cosine against exact mode
falls to 0.952 in latent space and 0.9755 on the video, below the fast mode's video bound (0.98),
so neither mode turns it on.

Only self-attention (``attn1``) changes: cross-attention to 512 text tokens is 3% of the FLOPs.
``FP8SelfAttnProcessor`` reproduces diffusers' ``WanAttnProcessor`` for self-attention (fused or
separate q/k/v projections, RMS-normed q and k, interleaved rotary embedding) with the attention
itself swapped; tests/flowgen/test_fp8_attention.py checks it against diffusers' processor. Where
cuDNN is not available (CPU tests) ``sdpa_fp8_emulated`` computes the same quantisation in float32.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor

from core.errors import MissingDependencyError
from flowgen.wan.fp8 import E4M3, E4M3_MAX, Float8Linear

log = logging.getLogger(__name__)

KERNELS = ("cudnn", "emulated")
P_SCALE = E4M3_MAX  # softmax numerator (<= 1) -> FP8
O_HEADROOM = 0.875  # |O| <= amax(v); the rest absorbs the rounding of P
_TINY = 1e-12


def quantize_tensor(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-tensor FP8: ``x`` scaled so its largest magnitude maps just under 448, cast to e4m3.

    Returns (fp8 tensor like ``x``, float32 descale of shape [1, 1, 1, 1]) with x ~ q * descale.
    The multiplier is rounded in ``x``'s dtype and shrunk by 2^-7 first so rounding cannot push the
    maximum past 448 (e4m3fn has no infinity: an overflow would be NaN).
    """
    amax = x.abs().amax().float().clamp_min(_TINY)
    inv = (E4M3_MAX * (1.0 - 2.0**-7) / amax).to(x.dtype)
    return (x * inv).to(E4M3), (1.0 / inv.float()).reshape(1, 1, 1, 1)


def output_scale(descale_v: Tensor) -> Tensor:
    """scale_o for O = softmax(.) v: 0.875 x 448 / amax(v) (float32 [1, 1, 1, 1])."""
    return O_HEADROOM * (1.0 - 2.0**-7) / descale_v


def sdpa_fp8_emulated(
    q: Tensor, k: Tensor, v: Tensor, descale_q: Tensor, descale_k: Tensor, descale_v: Tensor,
    scale_o: Tensor, attn_scale: float,
) -> Tensor:  # fmt: skip
    """What the fused FP8 kernel computes, in float32: [B, S, H, D] e4m3 inputs -> O [B, S, H, D] e4m3.

    P is the softmax numerator exp(s - rowmax) quantised at scale 448; the row sum uses the
    unquantised numerator, as a flash-attention kernel keeps it in float32. (The kernel's running
    max is per key block, so its P rounds at slightly different points: expect agreement to FP8
    precision, not bit for bit.)
    """
    qf = (q.float() * descale_q.reshape(())).transpose(1, 2)  # [B, H, S, D]
    kf = (k.float() * descale_k.reshape(())).transpose(1, 2)
    vf = (v.float() * descale_v.reshape(())).transpose(1, 2)
    s = (qf @ kf.transpose(-1, -2)) * attn_scale
    e = torch.exp(s - s.amax(dim=-1, keepdim=True))
    total = e.sum(dim=-1, keepdim=True)
    e_q = (e * P_SCALE).to(E4M3).float() / P_SCALE
    o = (e_q @ vf) / total
    return (o * scale_o.reshape(())).to(E4M3).transpose(1, 2).contiguous()


# -- cuDNN ------------------------------------------------------------------------------------------


def _cudnn() -> Any:
    try:
        import cudnn
    except ImportError as e:
        raise MissingDependencyError(
            "FP8 attention needs NVIDIA's cuDNN frontend (pip install -e '.[fp8-attention]', i.e. "
            "nvidia-cudnn-frontend>=1.8); or leave it off: --wan-attention native"
        ) from e
    return cudnn


_HANDLES: dict[int, Any] = {}
_GRAPHS: dict[tuple, tuple] = {}
_CONSTANTS: dict[int, tuple[Tensor, Tensor]] = {}


def _graph(b: int, s: int, h: int, d: int, device: torch.device, attn_scale: float) -> tuple:
    """A built cuDNN FP8 attention graph for [B, S, H, D] tensors (cached per shape and device)."""
    key = (b, s, h, d, device.index, attn_scale)
    if key in _GRAPHS:
        return _GRAPHS[key]
    cudnn = _cudnn()
    if device.index not in _HANDLES:
        _HANDLES[device.index] = cudnn.create_handle()
    handle = _HANDLES[device.index]
    e4m3, f32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
    graph = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=f32, compute_data_type=f32, handle=handle)
    dims, strides = (b, h, s, d), (s * h * d, d, h * d, 1)  # a [B, S, H, D] tensor seen as [B, H, S, D]
    tq, tk, tv = (graph.tensor(name=n, dim=dims, stride=strides, data_type=e4m3) for n in ("q", "k", "v"))
    one = {"dim": (1, 1, 1, 1), "stride": (1, 1, 1, 1), "data_type": f32}
    names = ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o")
    scalars = {n: graph.tensor(name=n, **one) for n in names}
    o, _, amax_s, amax_o = graph.sdpa_fp8(
        q=tq, k=tk, v=tv, **scalars, generate_stats=False, attn_scale=attn_scale, use_causal_mask=False,
        name="wan_self_attention",
    )  # fmt: skip
    o.set_output(True).set_dim(dims).set_stride(strides).set_data_type(e4m3)
    for amax in (amax_s, amax_o):
        amax.set_output(True).set_dim((1, 1, 1, 1)).set_stride((1, 1, 1, 1)).set_data_type(f32)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.check_support()
    graph.build_plans()
    tensors = {"q": tq, "k": tk, "v": tv, "o": o, "amax_s": amax_s, "amax_o": amax_o, **scalars}
    entry = (graph, tensors, graph.get_workspace_size(), handle)
    _GRAPHS[key] = entry
    log.info("built cuDNN FP8 attention for [%d, %d, %d, %d] (workspace %d B)", b, s, h, d, entry[2])
    return entry


def _constants(device: torch.device) -> tuple[Tensor, Tensor]:
    if device.index not in _CONSTANTS:
        one = torch.ones((1, 1, 1, 1), device=device, dtype=torch.float32)
        _CONSTANTS[device.index] = (one / P_SCALE, one * P_SCALE)  # descale_s, scale_s
    return _CONSTANTS[device.index]


@torch.library.custom_op("chord::cudnn_sdpa_fp8", mutates_args=(), device_types="cuda")
def cudnn_sdpa_fp8(
    q: Tensor, k: Tensor, v: Tensor, descale_q: Tensor, descale_k: Tensor, descale_v: Tensor,
    scale_o: Tensor, attn_scale: float,
) -> Tensor:  # fmt: skip
    """cuDNN's fused FP8 attention: contiguous [B, S, H, D] e4m3 q, k, v -> O [B, S, H, D] e4m3."""
    b, s, h, d = q.shape
    graph, t, workspace_size, handle = _graph(b, s, h, d, q.device, attn_scale)
    cudnn = _cudnn()
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(q.device).cuda_stream)
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    amax = torch.empty(2, device=q.device, dtype=torch.float32)
    descale_s, scale_s = _constants(q.device)
    pack = {
        t["q"]: q, t["k"]: k, t["v"]: v, t["o"]: out, t["amax_s"]: amax[0:1], t["amax_o"]: amax[1:2],
        t["descale_q"]: descale_q, t["descale_k"]: descale_k, t["descale_v"]: descale_v,
        t["descale_s"]: descale_s, t["scale_s"]: scale_s, t["scale_o"]: scale_o,
    }  # fmt: skip
    workspace = torch.empty(max(workspace_size, 1), device=q.device, dtype=torch.uint8)
    graph.execute(pack, workspace, handle=handle)
    return out


@cudnn_sdpa_fp8.register_fake
def _(q, k, v, descale_q, descale_k, descale_v, scale_o, attn_scale):
    return torch.empty_like(q, memory_format=torch.contiguous_format)


def check_cudnn_fp8(device: torch.device | str) -> None:
    """Raise a clear error unless cuDNN's FP8 attention can run on ``device`` (a Hopper GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"FP8 attention through cuDNN needs a CUDA device, got {device}")
    major, minor = torch.cuda.get_device_capability(device)
    if major != 9:
        raise ValueError(
            f"cuDNN's FP8 attention is used on Hopper (compute capability 9.x); this GPU is {major}.{minor}: "
            "leave it off: --wan-attention native"
        )
    _cudnn()


# -- the processor ----------------------------------------------------------------------------------


def attention_fp8(q: Tensor, k: Tensor, v: Tensor, kernel: str) -> tuple[Tensor, Tensor]:
    """[B, S, H, D] q, k, v (bf16/fp32) -> (O [B, S, H, D] e4m3, its float32 descale [1, 1, 1, 1])."""
    if kernel not in KERNELS:
        raise ValueError(f"FP8 attention kernel is {kernel!r}, expected one of {KERNELS}")
    (q8, dq), (k8, dk), (v8, dv) = (quantize_tensor(x) for x in (q, k, v))
    scale_o = output_scale(dv)
    attn_scale = 1.0 / math.sqrt(q.shape[-1])
    run = cudnn_sdpa_fp8 if kernel == "cudnn" else sdpa_fp8_emulated
    o8 = run(q8.contiguous(), k8.contiguous(), v8.contiguous(), dq, dk, dv, scale_o, attn_scale)
    return o8, 1.0 / scale_o


def _rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Interleaved rotary embedding of [B, S, H, D] (pairs (0, 1), (2, 3), ...), as Wan applies it."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2).to(x.dtype)


def _project_qkv(attn: Any, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    if getattr(attn, "fused_projections", False):
        return attn.to_qkv(x).chunk(3, dim=-1)
    if all(isinstance(m, Float8Linear) for m in (attn.to_q, attn.to_k, attn.to_v)):
        return Float8Linear.shared_input(x, (attn.to_q, attn.to_k, attn.to_v))  # x quantised once
    return attn.to_q(x), attn.to_k(x), attn.to_v(x)


class FP8SelfAttnProcessor:
    """diffusers' Wan self-attention with the attention product in FP8 (``kernel``: cudnn | emulated)."""

    def __init__(self, kernel: str = "cudnn"):
        if kernel not in KERNELS:
            raise ValueError(f"FP8 attention kernel is {kernel!r}, expected one of {KERNELS}")
        self.kernel = kernel

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return attention_fp8(q, k, v, self.kernel)

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        rotary_emb: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("FP8SelfAttnProcessor serves self-attention only (no context, no mask)")
        q, k, v = _project_qkv(attn, hidden_states)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))
        if rotary_emb is not None:
            q, k = _rotary(q, *rotary_emb), _rotary(k, *rotary_emb)
        o8, descale_o = self.attend(q, k, v)
        o8 = o8.flatten(2)
        out = attn.to_out[0]
        if isinstance(out, Float8Linear):
            y = out.from_fp8(o8, descale_o.reshape(()), hidden_states.dtype)
        else:
            y = out((o8.float() * descale_o.reshape(())).to(hidden_states.dtype))
        return attn.to_out[1](y)


def self_attention_to_fp8(model: Any, kernel: str = "cudnn") -> int:
    """Give every block's self-attention (``blocks[i].attn1``) an ``FP8SelfAttnProcessor``; returns how many."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} has no .blocks whose attention could run in FP8")
    processor = FP8SelfAttnProcessor(kernel)
    for block in blocks:
        block.attn1.processor = processor
    log.info("self-attention of %d blocks of %s in FP8 (%s)", len(blocks), type(model).__name__, kernel)
    return len(blocks)
