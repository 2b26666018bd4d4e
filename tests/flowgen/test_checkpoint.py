"""Atomic, resumable checkpoints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from core.errors import ChordError
from flowgen.checkpoint import MAX_CHECKPOINT_BYTES, Checkpoint, load_latest_checkpoint, save_checkpoint


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


def _pointer(folder: Path, doc) -> None:
    (folder / "latest.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/dev/zero", "names '/dev/zero', expected a file ckpt_NNNNNN.safetensors in "),
        ("../../etc/passwd", "names '../../etc/passwd', expected a file ckpt_NNNNNN.safetensors"),
        (7, "names 7, expected a file ckpt_NNNNNN.safetensors"),
        ("ckpt_000009.safetensors", "ckpt_000009.safetensors' named by latest.json cannot be read"),
    ],
)
def test_latest_json_may_only_name_a_checkpoint_of_its_folder(tmp_path: Path, name, message):
    save_checkpoint(tmp_path, Checkpoint(1, {"x": torch.zeros(3)}, {}))
    _pointer(tmp_path, {"checkpoint": name, "iteration": 1})
    with pytest.raises(ChordError, match=re.escape(message)):
        load_latest_checkpoint(tmp_path)


def test_latest_json_that_is_dev_zero_or_huge_is_refused_before_reading(tmp_path: Path):
    (tmp_path / "latest.json").symlink_to("/dev/zero")
    with pytest.raises(ChordError, match="latest.json: file: is not a regular file"):
        load_latest_checkpoint(tmp_path)
    (tmp_path / "latest.json").unlink()
    with (tmp_path / "latest.json").open("w") as f:
        f.truncate(10**9)  # sparse: no disk used
    with pytest.raises(ChordError, match="is 1000000000 bytes, more than a checkpoint pointer's 65536"):
        load_latest_checkpoint(tmp_path)


def test_a_checkpoint_that_is_a_link_out_or_huge_is_refused_before_reading(tmp_path: Path):
    name = "ckpt_000001.safetensors"
    _pointer(tmp_path, {"checkpoint": name, "iteration": 1})
    (tmp_path / name).symlink_to("/dev/zero")
    with pytest.raises(ChordError, match="resolves to '/dev/zero', outside"):
        load_latest_checkpoint(tmp_path)
    (tmp_path / name).unlink()
    with (tmp_path / name).open("w") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse
    with pytest.raises(
        ChordError, match=f"is {MAX_CHECKPOINT_BYTES + 1} bytes, more than the {MAX_CHECKPOINT_BYTES}"
    ):
        load_latest_checkpoint(tmp_path)


def test_a_checkpoint_header_nested_too_deep_is_damaged_not_a_recursion_error(tmp_path: Path):
    path = save_checkpoint(tmp_path, Checkpoint(1, {"x": torch.zeros(3)}, {}))
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    header["__metadata__"]["chord"] = "[" * 100_000 + "]" * 100_000
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + n :])
    with pytest.raises(ChordError, match="is damaged .*nests 100000 levels deep"):
        load_latest_checkpoint(tmp_path)
