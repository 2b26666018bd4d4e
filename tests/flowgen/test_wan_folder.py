"""The Wan model folder and video-shape checks: everything wrong is reported before any weight loads."""

from __future__ import annotations

import json
import shutil

import pytest

from core.errors import ChordError
from flowgen.wan import ModelFolderError, WanPriorConfig, check_video_shape, validate_model_folder
from tests.flowgen.wan_tiny import save_tiny_wan


@pytest.fixture(scope="module")
def a14b(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "a14b", "i2v-a14b", boundary_ratio=0.875)


@pytest.fixture(scope="module")
def ti2v(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "ti2v", "ti2v-5b")


def test_variant_and_boundary_come_from_the_folder(a14b, ti2v):
    f = validate_model_folder(a14b)
    assert (f.variant, f.boundary_ratio, f.size_multiple) == ("i2v-a14b", 0.875, 16)
    assert "transformer_2" in f.components
    assert validate_model_folder(a14b, boundary_ratio=0.9).boundary_ratio == 0.9  # config wins
    g = validate_model_folder(ti2v)
    assert (g.variant, g.boundary_ratio, g.size_multiple) == ("ti2v-5b", None, 32)
    assert "transformer_2" not in g.components


def test_boundary_defaults_to_0_9_when_the_index_has_none(a14b, tmp_path):
    copy = shutil.copytree(a14b, tmp_path / "m")
    index = json.loads((copy / "model_index.json").read_text())
    del index["boundary_ratio"]
    (copy / "model_index.json").write_text(json.dumps(index))
    assert validate_model_folder(copy).boundary_ratio == 0.9


def test_missing_files_are_all_listed_at_once(a14b, tmp_path):
    copy = shutil.copytree(a14b, tmp_path / "m")
    (copy / "transformer_2" / "diffusion_pytorch_model.safetensors").unlink()
    (copy / "tokenizer" / "tokenizer.json").unlink()
    (copy / "vae" / "config.json").unlink()
    shutil.rmtree(copy / "scheduler")
    with pytest.raises(ModelFolderError) as e:
        validate_model_folder(copy)
    assert set(e.value.missing) == {
        "transformer_2/diffusion_pytorch_model.safetensors (or diffusion_pytorch_model.safetensors.index.json with its shards)",
        "tokenizer/tokenizer.json (or tokenizer/spiece.model)",
        "vae/config.json",
        "scheduler/scheduler_config.json",
    }
    for m in e.value.missing:
        assert m in str(e.value)


def test_missing_shards_of_an_index_are_listed(a14b, tmp_path):
    copy = shutil.copytree(a14b, tmp_path / "m")
    weights = copy / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.rename(copy / "transformer" / "diffusion_pytorch_model-00001-of-00002.safetensors")
    index = {
        "metadata": {},
        "weight_map": {
            "a": "diffusion_pytorch_model-00001-of-00002.safetensors",
            "b": "diffusion_pytorch_model-00002-of-00002.safetensors",
        },
    }
    (copy / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError) as e:
        validate_model_folder(copy)
    assert e.value.missing == ["transformer/diffusion_pytorch_model-00002-of-00002.safetensors"]


def test_an_empty_folder_lists_the_whole_a14b_layout(tmp_path):
    with pytest.raises(ModelFolderError) as e:
        validate_model_folder(tmp_path)
    subs = {m.split("/")[0].split(" ")[0] for m in e.value.missing}
    assert subs == {
        "model_index.json",
        "scheduler",
        "tokenizer",
        "text_encoder",
        "vae",
        "transformer",
        "transformer_2",
    }
    with pytest.raises(ChordError, match="does not exist"):
        validate_model_folder(tmp_path / "nope")


def test_asking_for_the_wrong_variant_is_an_error(ti2v):
    with pytest.raises(ChordError, match="looks like ti2v-5b"):
        validate_model_folder(ti2v, variant="i2v-a14b")


@pytest.mark.parametrize(
    ("variant", "t", "h", "w", "needle"),
    [
        ("i2v-a14b", 40, 464, 832, "num_frames is 40, expected 4k+1 with k >= 1 (e.g. 37 or 41)"),
        ("i2v-a14b", 1, 464, 832, "num_frames is 1"),
        (
            "i2v-a14b",
            41,
            470,
            832,
            "height is 470 px, expected a positive multiple of 16 for i2v-a14b (e.g. 464 or 480)",
        ),
        (
            "ti2v-5b",
            41,
            464,
            832,
            "height is 464 px, expected a positive multiple of 32 for ti2v-5b (e.g. 448 or 480)",
        ),
        ("ti2v-5b", 41, 704, 1272, "width is 1272 px"),
    ],
)
def test_bad_video_shapes(variant, t, h, w, needle):
    with pytest.raises(ValueError) as e:
        check_video_shape(variant, t, h, w)
    assert needle in str(e.value)


def test_good_video_shapes_pass():
    check_video_shape("i2v-a14b", 41, 464, 832)
    check_video_shape("ti2v-5b", 41, 704, 1280)
    check_video_shape("i2v-a14b", 5, 16, 16)


def test_make_wan_prior_rejects_before_loading(a14b, tmp_path, monkeypatch):
    import flowgen.rfsds as rfsds

    def boom(*a, **k):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(rfsds, "load_wan_components", boom)
    with pytest.raises(ValueError, match="num_frames is 40"):
        rfsds.make_wan_prior(WanPriorConfig(model_dir=a14b), "cpu", video_shape=(40, 464, 832))
    with pytest.raises(ModelFolderError):
        rfsds.make_wan_prior(WanPriorConfig(model_dir=tmp_path), "cpu", video_shape=(41, 464, 832))


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("tau_schedule", "cosine", "tau_schedule is 'cosine'"),
        ("tau_min", 0.0, "0 < tau_min < tau_max < 1"),
        ("weighting", "snr", "weighting is 'snr'"),
        ("cfg_end", 0.5, "CFG scales must be >= 1"),
        ("experts_resident", "two", "experts_resident"),
        ("boundary_ratio", 1.5, "boundary_ratio is 1.5"),
    ],
)
def test_config_rejects_bad_values(tmp_path, field, value, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        WanPriorConfig(model_dir=tmp_path, **{field: value})
