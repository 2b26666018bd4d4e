"""Atomic, resumable checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import ChordError
from flowgen.checkpoint import Checkpoint, load_latest_checkpoint, save_checkpoint


def test_latest_checkpoint_round_trips_tensors_rng_and_meta(tmp_path: Path):
    g = torch.Generator().manual_seed(7)
    torch.rand(5, generator=g)
    params = {"w": torch.randn(4, 3, dtype=torch.float64), "rng": g.get_state()}
    save_checkpoint(tmp_path, Checkpoint(10, params, {"config_hash": "abc", "groups": [{"lr": 0.1}]}))
    back = load_latest_checkpoint(tmp_path)
    assert back.iteration == 10 and back.meta == {"config_hash": "abc", "groups": [{"lr": 0.1}]}
    torch.testing.assert_close(back.tensors["w"], params["w"], rtol=0, atol=0)
    g2 = torch.Generator()
    g2.set_state(back.tensors["rng"])
    assert torch.equal(torch.rand(5, generator=g2), torch.rand(5, generator=g))


def test_keeps_the_newest_two_and_no_temp_files(tmp_path: Path):
    for it in (5, 10, 15):
        save_checkpoint(tmp_path, Checkpoint(it, {"x": torch.full((2,), float(it))}, {}))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt_000010.safetensors",
        "ckpt_000015.safetensors",
        "latest.json",
    ]
    assert load_latest_checkpoint(tmp_path).tensors["x"].tolist() == [15.0, 15.0]


def test_no_checkpoint_is_none_and_damage_is_an_error(tmp_path: Path):
    assert load_latest_checkpoint(tmp_path) is None
    path = save_checkpoint(tmp_path, Checkpoint(1, {"x": torch.zeros(3)}, {}))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ChordError, match="is damaged"):
        load_latest_checkpoint(tmp_path)
