"""FP8 linear layers of the fast mode, the attention-kernel choice, and the host-resident expert switch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from flowgen.wan.config import WanPriorConfig, mode_settings
from flowgen.wan.fp8 import E4M3_MAX, Float8Linear, linears_to_fp8, quantize_rows
from flowgen.wan.models import ExpertSwitch, WanComponents, attention_context
from tests.flowgen.wan_tiny import tiny_transformer


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(
        torch.nn.functional.cosine_similarity(
            a.detach().flatten().double(), b.detach().flatten().double(), dim=0
        )
    )


def test_row_quantisation_maps_each_rows_max_to_448_and_round_trips_within_e4m3_precision():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 96, generator=g) * torch.logspace(-3, 3, 64).unsqueeze(1)  # rows 6 decades apart
    q, scale = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert (q.float().abs().amax(1) <= E4M3_MAX).all() and (q.float().abs().amax(1) >= 0.98 * E4M3_MAX).all()
    assert torch.isfinite(q.float()).all()
    back = q.float() * scale
    rel = ((back - x).abs() / x.abs().amax(1, keepdim=True)).amax()
    assert rel < 2**-4  # e4m3 keeps 3 mantissa bits: half an ulp at the top is 1/16 of the row max
    # per-row scaling: the smallest row is as precise as the largest (a per-tensor scale would zero it)
    assert ((back[0] - x[0]).abs().max() / x[0].abs().max()) < 2**-4


def test_float8_linear_matches_the_linear_and_keeps_shape_dtype_and_bias():
    g = torch.Generator().manual_seed(1)
    lin = nn.Linear(64, 48).to(torch.bfloat16)
    with torch.no_grad():
        lin.bias.normal_(0, 1, generator=g)
    x = torch.randn(3, 7, 64, generator=g).to(torch.bfloat16)  # 21 rows: padded to 32 inside
    f8 = Float8Linear(lin)
    y, ref = f8(x), lin(x)
    assert y.shape == (3, 7, 48) and y.dtype == torch.bfloat16
    assert _cos(y.float(), ref.float()) > 0.998
    # the bias is applied: dropping it is caught
    assert _cos((y - lin.bias).float(), ref.float()) < 0.99
    with pytest.raises(ValueError, match="divisible by 16"):
        Float8Linear(nn.Linear(24, 48))


def _transformer(seed: int):
    return tiny_transformer("i2v-a14b", seed, head_dim=16, ffn_dim=64)  # FP8 needs multiples of 16


def _run(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 36, 3, 8, 8, generator=g)
    text = torch.randn(2, 12, 32, generator=g)
    with torch.no_grad():
        return model(
            hidden_states=x,
            timestep=torch.tensor([500.0, 950.0]),
            encoder_hidden_states=text,
            return_dict=False,
        )[0]


def test_a_wan_transformer_in_fp8_stays_close_to_itself_and_only_block_linears_change():
    model = _transformer(0)
    ref = _run(model)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.blocks.modules())
    assert linears_to_fp8(model) == n_linear > 0
    assert not any(isinstance(m, nn.Linear) for m in model.blocks.modules())
    assert isinstance(model.proj_out, nn.Linear)  # outside the blocks: untouched
    out = _run(model)
    assert out.shape == ref.shape
    cos = _cos(out, ref)
    assert 0.99 < cos < 1.0, cos  # close, but not the same computation


def test_fp8_config_converts_the_experts_when_the_prior_is_built(tmp_path):
    from flowgen.rfsds import RFSDSPrior

    comps = WanComponents("i2v-a14b", vae=None, transformer=_transformer(0), transformer_2=_transformer(1),
                          boundary_ratio=0.9)  # fmt: skip
    cfg = WanPriorConfig(model_dir=tmp_path, dtype="float32", vae_dtype="float32", **mode_settings("fast"))
    RFSDSPrior(cfg, comps, "cpu")
    for m in (comps.transformer, comps.transformer_2):
        assert any(isinstance(x, Float8Linear) for x in m.modules())
    with pytest.raises(ValueError, match="speed mode is 'turbo'"):
        mode_settings("turbo")
    with pytest.raises(ValueError, match="linear_precision is 'int4'"):
        WanPriorConfig(model_dir=tmp_path, linear_precision="int4")
    with pytest.raises(ValueError, match="attention is 'fa9'"):
        WanPriorConfig(model_dir=tmp_path, attention="fa9")
    with pytest.raises(ValueError, match="attention_precision is 'int8'"):
        WanPriorConfig(model_dir=tmp_path, attention_precision="int8")
    # FP8 attention is opt-in: neither mode turns it on (it fails the fast mode's guard)
    assert (
        mode_settings("fast")["attention_precision"]
        == mode_settings("exact")["attention_precision"]
        == "native"
    )


def test_attention_kernel_choice_reaches_the_transformer():
    model = _transformer(0)
    ref = _run(model)
    with attention_context("math"):
        torch.testing.assert_close(_run(model), ref, rtol=1e-4, atol=1e-5)
    # a kernel this machine lacks fails loudly rather than silently falling back
    if not torch.cuda.is_available():
        with attention_context("cudnn"), pytest.raises(RuntimeError):
            _run(model)


def test_one_resident_expert_switch_keeps_host_copies_and_swaps_without_copying_back():
    hi, lo = _transformer(0), _transformer(1)
    ref_hi, ref_lo = _run(hi), _run(lo)
    linears_to_fp8(lo)  # FP8 weights are buffers: they must move with the expert too
    ref_lo8 = _run(lo)
    comps = WanComponents("i2v-a14b", vae=None, transformer=hi, transformer_2=lo, boundary_ratio=0.9)
    sw = ExpertSwitch(comps, "cpu", "one")
    assert sw.swaps == 0
    torch.testing.assert_close(_run(sw.get(0)), ref_hi)
    torch.testing.assert_close(_run(sw.get(1)), ref_lo8)
    torch.testing.assert_close(_run(sw.get(1)), ref_lo8)
    torch.testing.assert_close(_run(sw.get(0)), ref_hi)
    assert sw.swaps == 3  # 0, 1, (1 again: no swap), 0
    assert not torch.equal(ref_lo, ref_lo8)
    sw.make_all_resident()  # both experts usable at once, no more swaps
    torch.testing.assert_close(_run(sw.get(1)), ref_lo8)
    torch.testing.assert_close(_run(sw.get(0)), ref_hi)
    assert sw.swaps == 3 and sw.resident == "both"


def _script(*args: str, torchrun: bool = False, tmp: Path | None = None):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if torchrun else []
    # One timed step and no warm-up step (a warm-up is the same step, untimed: CI's time).
    cmd = [sys.executable, *launcher, "benchmarks/sds_step.py", "--tiny", "--device", "cpu",
           "--shapes", "9x32x64", "--warmup", "0", "--iters", "1", *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    if tmp is not None:  # torchrun's agent leaves its torchelastic_* folder in TMPDIR
        env["TMPDIR"] = str(tmp)
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env, check=False)


@pytest.mark.slow
def test_the_sds_step_benchmark_runs_tiny_with_its_guard_and_under_torchrun(tmp_path):
    """benchmarks/sds_step.py (the device run) keeps working: tiny models on CPU, one process with
    the quality guard, then two gloo processes splitting the draws (the multi-GPU scaling run)."""
    out = _script("--variants", "exact-v0,fast")
    assert out.returncode == 0, out.stderr[-3000:]
    guard = [
        line for line in out.stdout.splitlines() if line.strip().startswith("fast ") and "cos(g)" in line
    ]
    assert guard and all(line.rstrip().endswith("ok") for line in guard), out.stdout
    # One variant under torchrun (the split of the draws is what it adds; CI's time).
    out = _script("--variants", "fast", torchrun=True, tmp=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 processes (gloo): each scores 2 of the 4 draws" in out.stdout
    rows = [line for line in out.stdout.splitlines() if "s/it" in line]
    assert len(rows) == 1  # rank 0 alone reports
