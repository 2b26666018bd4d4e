"""FP8 (e4m3) linear layers for the Wan experts' forward pass: the "fast" mode of the RF-SDS step.

The experts run under ``torch.no_grad`` (only the VAE encoder is differentiated), so their linear
layers can run as FP8 matrix products on Hopper GPUs, twice the bf16 rate. Scaling is row-wise:
one float32 scale per output row of the weight (computed once) and one per token of the input
(computed every call), ``y = (x_q @ w_q^T) * s_x * s_w`` via ``torch._scaled_mm``. Linear layers
are 64% of an A14B forward's FLOPs at 41x832x464; attention (the rest) stays bf16.

Quality: this changes the velocity the expert returns, so the SDS gradient is checked against the
bf16 one on the same inputs (``benchmarks/sds_step.py`` prints the cosine; tests/flowgen/test_fp8.py
bounds it on a small model).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0  # largest finite float8_e4m3fn
_TINY = 1e-12  # floor on a row's amax, so an all-zero row gets a finite scale


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:  # [M, K] -> ([M, K] fp8, [M, 1] float32)
    """Row-wise FP8: each row scaled so its largest magnitude maps to (just under) 448, cast to e4m3.

    Three passes over ``x`` in its own dtype (max-abs, scale, cast): a float32 copy of a
    [8 x 16588, 13824] activation would cost more memory traffic than the FP8 product saves.
    The multiplier is rounded in ``x``'s dtype and the returned scale is its exact inverse, and it
    is shrunk by 2^-7 first so that rounding cannot push a row's maximum past 448 (e4m3fn has no
    infinity: an overflow would be NaN).
    """
    amax = torch.linalg.vector_norm(x, ord=float("inf"), dim=1, keepdim=True).float().clamp_min(_TINY)
    inv = (E4M3_MAX * (1.0 - 2.0**-7) / amax).to(x.dtype)
    q = (x * inv).to(E4M3)
    return q, 1.0 / inv.float()


class Float8Linear(nn.Module):
    """A frozen ``nn.Linear`` whose product runs in FP8 (row-wise scales), output in the input's dtype.

    The FP8 weight and its scales are buffers, so ``.to(device)`` and ``ExpertSwitch`` move them.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach()
        if w.shape[1] % 16 or w.shape[0] % 16:
            raise ValueError(f"Float8Linear needs in/out features divisible by 16, got {tuple(w.shape)}")
        q, scale = quantize_rows(w)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_fp8", q)  # [N, K] e4m3
        self.register_buffer("weight_scale", scale.reshape(1, -1).contiguous())  # [1, N] float32
        bias = linear.bias.detach() if linear.bias is not None else None
        self.register_buffer("bias", bias)  # [N] in the layer's dtype, or None

    def forward(self, x: Tensor) -> Tensor:  # [..., K] -> [..., N]
        x2, m = self._rows(x)
        q, scale = quantize_rows(x2)
        return self._product(q, scale, m, x.shape[:-1], x.dtype)

    def _rows(self, x: Tensor) -> tuple[Tensor, int]:
        """``x`` as [M padded to a multiple of 16, K] (cuBLAS FP8's rule), and M."""
        x2 = x.reshape(-1, self.in_features)
        m = x2.shape[0]
        pad = (-m) % 16
        if pad:
            x2 = torch.nn.functional.pad(x2, (0, 0, 0, pad))
        return x2, m

    def _product(self, q: Tensor, scale: Tensor, m: int, lead: torch.Size, dtype: torch.dtype) -> Tensor:
        """FP8 rows ``q`` [M', K] with float32 row scales [M', 1] -> [*lead, N] in ``dtype``."""
        out_dtype = dtype if dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
        y = torch._scaled_mm(
            q,
            self.weight_fp8.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            out_dtype=out_dtype,
            use_fast_accum=True,
        )
        if y.shape[0] != m:
            y = y[:m]
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(dtype).reshape(*lead, self.out_features)

    @staticmethod
    def shared_input(x: Tensor, layers: tuple[Float8Linear, ...]) -> tuple[Tensor, ...]:
        """Each layer applied to the same ``x``, which is quantised once (q, k and v projections)."""
        if len({layer.in_features for layer in layers}) != 1 or layers[0].in_features != x.shape[-1]:
            raise ValueError(
                f"shared_input: layers take {[layer.in_features for layer in layers]} features, x has {x.shape[-1]}"
            )
        x2, m = layers[0]._rows(x)
        q, scale = quantize_rows(x2)
        return tuple(layer._product(q, scale, m, x.shape[:-1], x.dtype) for layer in layers)

    def from_fp8(self, x8: Tensor, descale: Tensor, dtype: torch.dtype) -> Tensor:
        """The layer on an already-FP8 input ``x8`` [..., K] whose values are x8 * ``descale`` (a
        float32 scalar tensor: one scale for the whole tensor, handed to cuBLAS as every row's)."""
        if x8.dtype != E4M3 or x8.shape[-1] != self.in_features:
            raise ValueError(
                f"from_fp8 needs [..., {self.in_features}] float8_e4m3fn, got {tuple(x8.shape)} {x8.dtype}"
            )
        x2, m = self._rows(x8.view(torch.uint8))  # padding is defined for integers, not float8
        x2 = x2.view(E4M3)
        scale = descale.reshape(1, 1).float().expand(x2.shape[0], 1).contiguous()
        return self._product(x2, scale, m, x8.shape[:-1], dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3 row-wise"


def linears_to_fp8(model: nn.Module, under: str = "blocks") -> int:
    """Replace each ``nn.Linear`` inside ``model.<under>`` by a ``Float8Linear``; returns how many.

    Layers whose features are not multiples of 16 (cuBLAS FP8's rule) are left as they are.

    The transformer blocks hold nearly all FLOPs; the patch embedding, time/text embedders and the
    output projection stay in their dtype. The bf16 weights are released as each layer is replaced,
    so an expert shrinks from 28.5 GiB to about 15 GiB while it is converted in place on the GPU.
    """
    root = getattr(model, under, None)
    if root is None:
        raise ValueError(f"{type(model).__name__} has no .{under} to convert to FP8")
    targets = [(name, mod) for name, mod in root.named_modules() if isinstance(mod, nn.Linear)]
    skipped = [name for name, mod in targets if mod.in_features % 16 or mod.out_features % 16]
    if skipped:
        log.info("left %d linear layers in their dtype (features not multiples of 16)", len(skipped))
    targets = [(name, mod) for name, mod in targets if name not in skipped]
    for name, mod in targets:
        parent_name, _, child = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        setattr(parent, child, Float8Linear(mod))
        del mod
    log.info("converted %d linear layers of %s to FP8", len(targets), type(model).__name__)
    return len(targets)
