"""Where FP8 attention's error comes from: each rounding of the fused FP8 kernel alone (CPU, float32).

cuDNN's FP8 attention rounds q and k, v, the softmax numerator P and the output O to e4m3 (per-tensor
scales, flowgen.wan.fp8_attention). This script emulates them one at a time on random [B, S, H, D]
inputs and prints each one's relative error against exact attention, as the logits' spread grows;
then the effect of subtracting k's and v's token means first (exact in math: softmax ignores a
constant added to every logit of a row, and P's rows sum to 1), with and without a channel offset
shared by all tokens.

    PYTHONPATH=. python benchmarks/fp8_attention_error.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flowgen.wan.fp8 import E4M3, E4M3_MAX  # noqa: E402
from flowgen.wan.fp8_attention import attention_fp8  # noqa: E402


def _round(x: torch.Tensor) -> torch.Tensor:
    scale = E4M3_MAX * (1 - 2**-7) / x.abs().max()
    return (x * scale).to(E4M3).float() / scale


def emulate(q, k, v, qk=True, vv=True, p=True, o=True) -> torch.Tensor:  # [B, S, H, D] float32
    qf, kf, vf = ((_round(t) if flag else t).transpose(1, 2) for t, flag in ((q, qk), (k, qk), (v, vv)))
    s = qf @ kf.transpose(-1, -2) / q.shape[-1] ** 0.5
    e = torch.exp(s - s.amax(-1, keepdim=True))
    total = e.sum(-1, keepdim=True)
    if p:
        e = (e * E4M3_MAX).to(E4M3).float() / E4M3_MAX
    out = (e @ vf) / total
    return (_round(out) if o else out).transpose(1, 2)


def exact(q, k, v) -> torch.Tensor:
    t = (x.transpose(1, 2) for x in (q, k, v))
    return torch.nn.functional.scaled_dot_product_attention(*t).transpose(1, 2)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main() -> None:
    g = torch.Generator().manual_seed(0)
    q0, k0, v = (torch.randn(2, 96, 2, 32, generator=g) for _ in range(3))
    print("relative error of each FP8 rounding alone (random q, k, v; S = 96, D = 32)")
    print(f"{'q, k std':>9s} {'all':>7s} {'q, k':>7s} {'v':>7s} {'P':>7s} {'O':>7s}")
    for std in (1.0, 2.0, 4.0):
        q, k = q0 * std, k0 * std
        ref = exact(q, k, v)
        cols = [
            rel(emulate(q, k, v), ref),
            rel(emulate(q, k, v, vv=False, p=False, o=False), ref),
            rel(emulate(q, k, v, qk=False, p=False, o=False), ref),
            rel(emulate(q, k, v, qk=False, vv=False, o=False), ref),
            rel(emulate(q, k, v, qk=False, vv=False, p=False), ref),
        ]
        print(f"{std:9.1f} " + " ".join(f"{c * 100:6.1f}%" for c in cols))

    print("\nsubtracting k's and v's token means before the FP8 kernel (q, k std 2; emulated kernel)")
    for offset in (0.0, 1.0, 3.0):
        q, k, vo = q0 * 2, k0 * 2, v.clone()
        shift = torch.Generator().manual_seed(1)
        k = k + offset * torch.randn(1, 1, 2, 32, generator=shift)
        vo = vo + offset * torch.randn(1, 1, 2, 32, generator=shift)
        ref = exact(q, k, vo)
        o8, d = attention_fp8(q, k, vo, "emulated")
        plain = o8.float() * d.reshape(())
        vm = vo.mean(1, keepdim=True)
        o8, d = attention_fp8(q, k - k.mean(1, keepdim=True), vo - vm, "emulated")
        smooth = o8.float() * d.reshape(()) + vm
        print(f"  channel offset {offset:.0f} sigma: plain {rel(plain, ref) * 100:5.1f}%  "
              f"mean-subtracted {rel(smooth, ref) * 100:5.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
