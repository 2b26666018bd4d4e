"""An oracle denoiser for RF-SDS tests: the exact rectified-flow velocity toward one known latent.

For data concentrated on a single point z*, the rectified-flow velocity at z_tau is
v(z_tau, tau) = (z_tau - z*) / tau (noise minus data, with eps = (z_tau - (1 - tau) z*) / tau).
Plugged into the prior in place of a Wan expert, RF-SDS then pushes z by
g = w(tau) (v - (eps - z)) = w(tau) (z - z*) / tau for any eps: gradient descent must reach z*.
Issue 6 reuses it to check that ``chord flow`` recovers a known motion.
"""

from __future__ import annotations

import torch
from torch import nn


class OracleVelocity(nn.Module):
    """Stands in for ``WanTransformer3DModel``: same call signature, velocity toward ``target``.

    ``target`` [1 or B, C, F, h, w] is a normalised latent. The first C input channels are z_tau
    (A14B: the other 20 are the condition; TI2V-5B: all C, frame 0 replaced by the condition).
    ``timestep`` is tau * num_train_timesteps, [n] or per token [n, seq] (TI2V: frame 0 is 0; the
    token count per latent frame gives tau of the others). Text is ignored, so CFG changes nothing.
    """

    def __init__(self, target: torch.Tensor, num_train_timesteps: int = 1000, patch_size=(1, 2, 2)):
        super().__init__()
        self.register_buffer("target", target.detach().float().clone())
        self._anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # gives the module a dtype
        self.num_train_timesteps = num_train_timesteps
        self.config = type("Cfg", (), {"patch_size": tuple(patch_size), "text_dim": None})()
        self.calls = 0

    def forward(self, hidden_states, timestep, encoder_hidden_states=None, return_dict=False, **_):
        self.calls += 1
        c = self.target.shape[1]
        z_tau = hidden_states[:, :c].float()
        t = timestep.float()
        if t.ndim == 2:
            t = t.max(dim=1).values  # per-token (TI2V): the generated tokens carry tau
        tau = (t / self.num_train_timesteps).view(-1, 1, 1, 1, 1)
        return ((z_tau - self.target) / tau,)
