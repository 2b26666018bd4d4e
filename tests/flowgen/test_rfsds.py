"""RF-SDS from Wan 2.2 on tiny random models: the gradient is the seed's formula, bit for bit."""

from __future__ import annotations

import itertools

import pytest
import torch

import flowgen.rfsds as rfsds
from flowgen.prior import MotionPrior, PriorContext
from flowgen.rfsds import RFSDSPrior, cfg_scale, make_wan_prior, tau_window
from flowgen.wan import WanPriorConfig
from flowgen.wan.prompts import encode_prompts
from tests.flowgen.oracle import OracleVelocity
from tests.flowgen.wan_tiny import save_tiny_wan

PROMPT, NEGATIVE = "a hand picks up the banana", "blurry static low quality"


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_wan_a14b):
    return {
        "i2v-a14b": tiny_wan_a14b,
        "ti2v-5b": save_tiny_wan(tmp_path_factory.mktemp("wan") / "ti2v", "ti2v-5b"),
    }


def _config(folder, cache, **kw):
    return WanPriorConfig(model_dir=folder, cache_dir=cache, dtype="float32", vae_dtype="float32", **kw)


def _context(h, w, t=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return PriorContext(
        first_frame=torch.rand(h, w, 3, generator=g),
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_frames=t,
        height=h,
        width=w,
    )


@pytest.fixture(scope="module")
def a14b(folders, tmp_path_factory):
    prior = make_wan_prior(_config(folders["i2v-a14b"], tmp_path_factory.mktemp("cache")), "cpu", (9, 32, 32))
    prior.prepare(_context(32, 32))
    return prior


def _direct_v(prior, model, z_tau, tau, cfg):
    """The guided velocity computed here, independently of the prior's batching."""
    n = z_tau.shape[0]
    x = torch.cat([z_tau, prior._condition.expand(n, -1, -1, -1, -1)], dim=1)
    t = tau * 1000
    with torch.no_grad():
        vc = model(
            hidden_states=x,
            timestep=t,
            encoder_hidden_states=prior._prompt.expand(n, -1, -1),
            return_dict=False,
        )[0]
        vu = model(
            hidden_states=x,
            timestep=t,
            encoder_hidden_states=prior._negative.expand(n, -1, -1),
            return_dict=False,
        )[0]
    return vu + cfg * (vc - vu)


def test_the_prior_is_a_motion_prior(a14b):
    assert isinstance(a14b, MotionPrior) and a14b.name == "wan"
    assert a14b._condition.shape == (1, 20, 3, 4, 4)


def test_loss_gradient_is_exactly_w_times_v_minus_eps_minus_z(a14b):
    z = torch.randn(2, 16, 3, 4, 4, generator=torch.Generator().manual_seed(3), requires_grad=True)
    step = a14b.sds_gradient(z, progress=0.5, generator=torch.Generator().manual_seed(4))
    # v_hat is the right expert at timestep tau * 1000 with CFG 18.5, computed here from scratch.
    assert step.cfg == 18.5
    tau = step.tau
    model = a14b.c.transformer if float(tau[0]) >= 0.9 else a14b.c.transformer_2
    z_tau = (1 - tau.view(-1, 1, 1, 1, 1)) * z.detach() + tau.view(-1, 1, 1, 1, 1) * step.eps
    torch.testing.assert_close(step.v_hat, _direct_v(a14b, model, z_tau, tau, 18.5), rtol=1e-4, atol=1e-4)
    assert torch.equal(step.g, 1.0 * (step.v_hat - (step.eps - z.detach())))
    loss = a14b._surrogate(z, step.g)
    loss.backward()
    assert torch.equal(z.grad, step.g / 2)  # reduction "sum": sum over latent, mean over the batch of 2
    assert float(loss.detach()) == pytest.approx(0.5 * float((step.g**2).sum()) / 2, rel=1e-6)


def test_full_loss_backpropagates_g_through_the_vae(a14b):
    g = torch.Generator().manual_seed(5)
    video = torch.rand(2, 9, 32, 32, 3, generator=g, requires_grad=True)
    out = a14b.loss(video, progress=0.2, generator=torch.Generator().manual_seed(6))
    out.loss.backward()
    step = a14b.last
    S = a14b.config.samples_per_video  # noise draws per video, one VAE encode each video
    assert step.g.shape[0] == 2 * S
    z = a14b.encode(video)  # same computation again, to take its vector-Jacobian product
    g_per_video = step.g.view(2, S, *step.g.shape[1:]).sum(dim=1) / (2 * S)  # mean over draws, / B
    (want,) = torch.autograd.grad(z, video, grad_outputs=g_per_video)
    torch.testing.assert_close(video.grad, want, rtol=1e-5, atol=1e-7)
    assert video.grad.abs().sum() > 0
    assert set(out.logs) >= {"tau", "cfg", "expert", "grad_rms"} and out.logs["cfg"] == pytest.approx(22.4)


def test_weighting_tau_scales_g_by_tau(folders, tmp_path):
    p = RFSDSPrior(_config(folders["i2v-a14b"], tmp_path, weighting="tau"), _a14b_components(folders), "cpu")
    p.prepare(_context(32, 32))
    z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(7))
    step = p.sds_gradient(z, 0.3, torch.Generator().manual_seed(8))
    torch.testing.assert_close(
        step.g, step.tau.view(-1, 1, 1, 1, 1) * (step.v_hat - (step.eps - z)), rtol=0, atol=0
    )


def _a14b_components(folders):
    from flowgen.wan.folder import validate_model_folder
    from flowgen.wan.models import load_wan_components

    return load_wan_components(validate_model_folder(folders["i2v-a14b"]), "cpu", "float32", "float32")


def test_expert_switches_at_the_boundary(a14b):
    sw = a14b.experts
    assert [sw.index_for(t) for t in (0.98, 0.9, 0.8999, 0.5, 0.02)] == [0, 0, 1, 1, 1]
    z_tau = torch.randn(2, 16, 3, 4, 4, generator=torch.Generator().manual_seed(9))
    tau = torch.tensor([0.9, 0.8999])
    v, experts = a14b.velocity(z_tau, tau, 12.0)
    assert experts.tolist() == [0, 1]
    hi = _direct_v(a14b, a14b.c.transformer, z_tau[:1], tau[:1], 12.0)
    lo = _direct_v(a14b, a14b.c.transformer_2, z_tau[1:], tau[1:], 12.0)
    torch.testing.assert_close(v[:1], hi, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(v[1:], lo, rtol=1e-4, atol=1e-4)
    # The experts differ, so picking the wrong one would be caught.
    assert (hi - _direct_v(a14b, a14b.c.transformer_2, z_tau[:1], tau[:1], 12.0)).abs().max() > 1e-3


def test_cfg_scale_decays_linearly_from_25_to_12(tmp_path):
    cfg = WanPriorConfig(model_dir=tmp_path)
    assert [cfg_scale(cfg, p) for p in (0.0, 0.5, 1.0)] == [25.0, 18.5, 12.0]
    assert cfg_scale(cfg, 1.7) == 12.0  # clamped


def test_annealed_tau_falls_and_swaps_expert_once(tmp_path, a14b):
    cfg = WanPriorConfig(model_dir=tmp_path, tau_schedule="annealed", anneal_jitter=0.05)
    progress = [i / 200 for i in range(201)]
    windows = [tau_window(cfg, p, 0.9) for p in progress]
    assert windows[0] == pytest.approx((0.93, 0.98)) and windows[-1] == pytest.approx((0.02, 0.07))
    for (a0, b0), (a1, b1) in itertools.pairwise(windows):
        assert a1 <= a0 and b1 <= b0
    # Sampled taus stay in their window, and the expert changes exactly once (high -> low).
    p = RFSDSPrior(cfg, a14b.c, "cpu")
    gen = torch.Generator().manual_seed(10)
    experts = []
    for pr, (a, b) in zip(progress, windows, strict=True):
        tau = p.sample_tau(pr, gen, 4)
        assert float(tau.min()) >= a - 1e-7 and float(tau.max()) <= b + 1e-7
        assert len(set(tau.tolist())) == 1  # shared_tau: one expert per step
        experts.append(p.experts.index_for(float(tau[0])))
    assert experts[0] == 0 and experts[-1] == 1
    assert sum(e0 != e1 for e0, e1 in itertools.pairwise(experts)) == 1


def test_uniform_tau_covers_its_range_and_can_be_per_video(tmp_path, a14b):
    p = RFSDSPrior(WanPriorConfig(model_dir=tmp_path, shared_tau=False), a14b.c, "cpu")
    tau = p.sample_tau(0.5, torch.Generator().manual_seed(11), 4000)
    assert 0.02 <= float(tau.min()) < 0.03 and 0.97 < float(tau.max()) <= 0.98
    assert abs(float(tau.mean()) - 0.5) < 0.02


def test_prompt_embeddings_are_cached_and_the_text_encoder_freed(folders, tmp_path, monkeypatch):
    cfg = _config(folders["i2v-a14b"], tmp_path / "cache")
    first = make_wan_prior(cfg, "cpu")
    first.prepare(_context(16, 16))
    assert first.encoder_calls == 1 and first.c.text_encoder is None and first.c.tokenizer is None
    files = list((tmp_path / "cache").glob("wan_prompt_*.safetensors"))
    assert len(files) == 1
    # The pipeline's own encoding, zero-padded to 512, is what was cached.
    from diffusers import WanImageToVideoPipeline
    from transformers import AutoTokenizer, UMT5EncoderModel

    folder = folders["i2v-a14b"]
    pipe = WanImageToVideoPipeline(
        tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder=UMT5EncoderModel.from_pretrained(folder / "text_encoder"),
        vae=first.c.vae,
        scheduler=None,
        transformer=first.c.transformer,
    )
    with torch.no_grad():  # as the pipeline's __call__ runs it (grad mode picks other CPU kernels)
        want = pipe._get_t5_prompt_embeds(
            [PROMPT, NEGATIVE], max_sequence_length=512, device=torch.device("cpu")
        )
    assert torch.equal(first._prompt, want[:1]) and torch.equal(first._negative, want[1:])
    assert not want[0, 10:].any() and want[0, :6].abs().sum() > 0
    ours = encode_prompts(pipe.tokenizer, pipe.text_encoder, [PROMPT], 512)
    assert torch.equal(ours, want[:1])

    def no_encoder(*a, **k):
        raise AssertionError("the text encoder was loaded on a cache hit")

    monkeypatch.setattr(rfsds, "load_text_encoder", no_encoder)
    second = make_wan_prior(cfg, "cpu")
    second.prepare(_context(16, 16))
    assert second.encoder_calls == 0
    assert torch.equal(second._prompt, first._prompt) and torch.equal(second._negative, first._negative)
    # A different prompt misses the cache and needs the encoder.
    with pytest.raises(AssertionError, match="cache hit"):
        make_wan_prior(cfg, "cpu").prepare(
            PriorContext(
                first_frame=torch.zeros(16, 16, 3), prompt="a lamp", height=16, width=16, num_frames=9
            )
        )


def test_prepare_and_loss_check_shapes(a14b):
    with pytest.raises(ValueError, match=r"first_frame has shape \(16, 16, 3\), expected \(32, 32, 3\)"):
        a14b.prepare(
            PriorContext(first_frame=torch.zeros(16, 16, 3), prompt=PROMPT, height=32, width=32, num_frames=9)
        )
    with pytest.raises(ValueError, match="num_frames is 8"):
        a14b.prepare(
            PriorContext(first_frame=torch.zeros(32, 32, 3), prompt=PROMPT, height=32, width=32, num_frames=8)
        )
    with pytest.raises(ValueError, match=r"expected \[B, 9, 32, 32, 3\]"):
        a14b.loss(torch.zeros(1, 5, 32, 32, 3), progress=0.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="not every frame 0..8 in order"):
        a14b.loss(
            torch.zeros(1, 9, 32, 32, 3),
            progress=0.0,
            generator=torch.Generator(),
            frame_indices=torch.tensor([[0, 1, 2, 3, 4, 5, 6, 8, 7]]),
        )
    whole = torch.arange(9).unsqueeze(0)
    assert (
        a14b.loss(
            torch.zeros(1, 9, 32, 32, 3), progress=0.0, generator=torch.Generator(), frame_indices=whole
        ).loss.ndim
        == 0
    )


def test_ti2v_uses_per_token_timesteps_and_leaves_frame_0_alone(folders, tmp_path):
    prior = make_wan_prior(_config(folders["ti2v-5b"], tmp_path), "cpu", (9, 64, 32))
    prior.prepare(_context(64, 32))
    cond, mask = prior._condition, prior._mask
    assert cond.shape == (1, 48, 1, 4, 2) and mask.shape == (1, 1, 3, 4, 2)
    seen = {}
    real = prior.c.transformer

    def spy(**kw):
        seen.update(kw)
        return real(**kw)

    prior.experts.c = type(prior.c)(**{**prior.c.__dict__, "transformer": _Callable(spy, real)})
    z = torch.randn(2, 48, 3, 4, 2, generator=torch.Generator().manual_seed(12))
    step = prior.sds_gradient(z, 0.0, torch.Generator().manual_seed(13))
    ts, x = seen["timestep"], seen["hidden_states"]
    tokens_per_frame = (4 // 2) * (2 // 2)
    assert ts.shape == (4, 3 * tokens_per_frame)  # CFG pair x 2 videos, per-token
    assert not ts[:, :tokens_per_frame].any()
    torch.testing.assert_close(
        ts[:, tokens_per_frame:], (step.tau.repeat(2) * 1000).view(-1, 1).expand(4, 2 * tokens_per_frame)
    )
    assert torch.equal(x[:, :, :1], cond.expand(4, -1, -1, -1, -1))  # frame 0 is the clean first-frame latent
    assert not step.g[:, :, 0].any() and step.g[:, :, 1:].abs().sum() > 0


class _Callable(torch.nn.Module):
    def __init__(self, fn, real):
        super().__init__()
        self.fn, self.real, self.config = fn, real, real.config

    def forward(self, **kw):
        return self.fn(**kw)


def _oracle_prior(folders, tmp_path, target, size=32, **kw):
    from flowgen.wan.folder import validate_model_folder
    from flowgen.wan.models import load_wan_components

    c = load_wan_components(validate_model_folder(folders["i2v-a14b"]), "cpu", "float32", "float32")
    c.transformer = c.transformer_2 = OracleVelocity(target)
    prior = RFSDSPrior(_config(folders["i2v-a14b"], tmp_path, **kw), c, "cpu")
    prior.prepare(_context(size, size))
    return prior


def test_oracle_free_latent_converges_to_the_target(folders, tmp_path):
    target = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(14))
    prior = _oracle_prior(folders, tmp_path, target)
    z = torch.zeros(1, 16, 3, 4, 4, requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.01)
    gen = torch.Generator().manual_seed(15)
    start = float((z.detach() - target).norm())
    for i in range(300):
        opt.zero_grad()
        step = prior.sds_gradient(z, i / 300, gen)
        # g = (z - z*) / tau for every eps: the RF-SDS field of a one-point data set.
        torch.testing.assert_close(
            step.g, (z.detach() - target) / step.tau.view(-1, 1, 1, 1, 1), rtol=1e-4, atol=1e-4
        )
        prior._surrogate(z, step.g).backward()
        opt.step()
    assert float((z.detach() - target).norm()) < 1e-3 * start


def test_oracle_through_the_vae_pulls_the_video_latent_to_the_target(folders, tmp_path):
    g = torch.Generator().manual_seed(16)
    target_video = torch.rand(1, 9, 16, 16, 3, generator=g)
    prior = _oracle_prior(
        folders, tmp_path, torch.zeros(1, 16, 3, 2, 2), size=16, weighting="tau", vae_checkpoint=False
    )
    with torch.no_grad():
        target = prior.encode(target_video)
    prior.experts.c.transformer.target.copy_(target)
    logits = torch.zeros(1, 9, 16, 16, 3, requires_grad=True)  # the "renderer": video = sigmoid(logits)
    opt = torch.optim.Adam([logits], lr=0.1)
    err = []
    for i in range(30):
        opt.zero_grad()
        out = prior.loss(torch.sigmoid(logits), progress=i / 30, generator=g)
        out.loss.backward()
        opt.step()
        err.append(float((prior.last.z - target).norm()))
    # The tiny random VAE is badly conditioned, so pixels move the latent slowly; measured 0.16x after 30 steps.
    assert err[-1] < 0.3 * err[0], err[::5]


def test_the_gpu_smoke_script_runs_tiny_on_cpu():
    """benchmarks/wan_smoke.py (the device run) keeps working: tiny configs, both experts, CPU."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "benchmarks/wan_smoke.py", "--tiny", "--device", "cpu", "--frames", "5"]
    cmd += ["--height", "16", "--width", "16", "--steps", "2", "--experts-resident", "one"]
    out = subprocess.run(
        cmd,
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert [r[3] for r in rows] == ["0", "1"]  # high-noise expert first, then low-noise
    assert all("finite=True" in " ".join(r) for r in rows)
    assert "expert swaps: 2" in out.stdout
