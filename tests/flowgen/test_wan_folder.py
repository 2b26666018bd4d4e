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


# -- malformed folders: each refused before any weight loads, in one line naming file and value --
def _json_edit(rel: str, **changes):
    def edit(folder):
        path = folder / rel
        doc = json.loads(path.read_text())
        doc.update(changes)
        path.write_text(json.dumps(doc))

    return edit


def _write(rel: str, data: bytes | str):
    def edit(folder):
        path = folder / rel
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return edit


VAE_WEIGHTS = "vae/diffusion_pytorch_model.safetensors"
T1_WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


def _transform_weights(rel: str, fn):
    def edit(folder):
        path = folder / rel
        path.write_bytes(fn(path.read_bytes()))

    return edit


def _with_header(fn):
    """Rewrite a safetensors file's JSON header through ``fn(header) -> header`` (data kept)."""

    def rewrite(data: bytes) -> bytes:
        n = int.from_bytes(data[:8], "little")
        header = fn(json.loads(data[8 : 8 + n]))
        raw = json.dumps(header).encode()
        return len(raw).to_bytes(8, "little") + raw + data[8 + n :]

    return rewrite


def _first_tensor(header: dict) -> str:
    return next(k for k in header if k != "__metadata__")


def _set_first(key, value):
    def fn(header):
        header[_first_tensor(header)][key] = value
        return header

    return fn


def _shard_index(name: str | int):
    """transformer/ weights behind an index whose one shard is ``name``."""

    def edit(folder):
        sub = folder / "transformer"
        (sub / "diffusion_pytorch_model.safetensors").rename(sub / "shard-00001.safetensors")
        index = {"metadata": {}, "weight_map": {"patch_embedding.weight": name}}
        (sub / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))

    return edit


def _torch_save(folder):
    import torch

    torch.save({"weight": torch.zeros(2)}, folder / VAE_WEIGHTS)


def _raw_pickle(folder):
    import pickle

    (folder / VAE_WEIGHTS).write_bytes(pickle.dumps({"weight": [0.0, 0.0]}, protocol=4))


def _channels_and_weights_disagree(folder):
    """A VAE of z_dim 8 and transformers declaring the matching 20/8: the weights still take 36."""
    _json_edit("vae/config.json", z_dim=8)(folder)
    for sub in ("transformer", "transformer_2"):
        _json_edit(f"{sub}/config.json", in_channels=20, out_channels=8)(folder)


def _two_problems(folder):
    _json_edit("scheduler/scheduler_config.json", num_train_timesteps=0)(folder)
    _write("vae/config.json", "{oops")(folder)


WAN_CASES = [
    ("in_channels_20", _json_edit("transformer/config.json", in_channels=20), "transformer/config.json: in/out_channels are 20/16, expected 36/16 for i2v-a14b with the VAE's z_dim=16"),
    ("out_channels_8", _json_edit("transformer_2/config.json", out_channels=8), "transformer_2/config.json: in/out_channels are 36/8, expected 36/16"),
    ("in_channels_a_string", _json_edit("transformer/config.json", in_channels="36"), "transformer/config.json: in/out_channels are '36'/16, expected positive integers"),
    ("channels_and_weights_disagree", _channels_and_weights_disagree, "transformer/config.json: in_channels is 20, but the weights' patch_embedding takes 36"),
    ("vae_config_not_json", _write("vae/config.json", "{not json"), "vae/config.json: is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    ("vae_config_a_list", _write("vae/config.json", "[1, 2]"), "vae/config.json: holds a JSON list, expected an object"),
    ("vae_config_nested_100000_deep", _write("vae/config.json", "[" * 100_000 + "]" * 100_000), "vae/config.json: is JSON nested too deeply to read"),
    ("vae_config_not_utf8", _write("vae/config.json", b"\xff\xfe{}"), "vae/config.json: is not UTF-8 text, expected JSON"),
    ("z_dim_a_word", _json_edit("vae/config.json", z_dim="x"), "vae/config.json: z_dim is 'x', expected a positive integer (16 for A14B, 48 for TI2V-5B)"),
    ("z_dim_zero", _json_edit("vae/config.json", z_dim=0), "vae/config.json: z_dim is 0, expected a positive integer"),
    ("torch_save_renamed", _torch_save, f"{VAE_WEIGHTS}: is a zip archive (a torch.save checkpoint, which unpickles code), not safetensors; refused"),
    ("raw_pickle_renamed", _raw_pickle, f"{VAE_WEIGHTS}: is a Python pickle (unpickling can run code), not safetensors; refused"),
    ("truncated", _transform_weights(VAE_WEIGHTS, lambda b: b[: len(b) // 2]), ", but the file holds"),
    ("huge_header", _transform_weights(VAE_WEIGHTS, lambda b: (10**15).to_bytes(8, "little") + b[8:]), f"{VAE_WEIGHTS}: declares a 1,000,000,000,000,000-byte header, expected at most 100,000,000: not a safetensors file"),
    ("header_past_the_end", _transform_weights(VAE_WEIGHTS, lambda b: (10**6).to_bytes(8, "little") + b[8:]), "declares a 1,000,000-byte header but the file is"),
    ("header_not_json", _transform_weights(VAE_WEIGHTS, lambda b: (10).to_bytes(8, "little") + b"not json!!"), f"{VAE_WEIGHTS}: has a header that is not valid JSON (JSONDecodeError): not a safetensors file"),
    ("header_a_list", _transform_weights(VAE_WEIGHTS, lambda b: (2).to_bytes(8, "little") + b"[]"), f"{VAE_WEIGHTS}: has a header holding a JSON list, expected an object"),
    ("shorter_than_8_bytes", _write(VAE_WEIGHTS, b"\x01\x02"), f"{VAE_WEIGHTS}: is 2 bytes, too short for a safetensors file"),
    ("unknown_dtype", _transform_weights(VAE_WEIGHTS, _with_header(_set_first("dtype", "Q99"))), "dtype is 'Q99', expected one of"),
    ("shape_and_offsets_disagree", _transform_weights(T1_WEIGHTS, _with_header(lambda h: h["patch_embedding.weight"].update(shape=[24, 36, 1, 2, 3]) or h)), "tensor 'patch_embedding.weight': 13,824 bytes for shape [24, 36, 1, 2, 3] of F32, expected 20,736"),
    ("offsets_reversed", _transform_weights(VAE_WEIGHTS, _with_header(_set_first("data_offsets", [10, 2]))), "expected [begin, end] with 0 <= begin <= end"),
    ("trailing_bytes", _transform_weights(VAE_WEIGHTS, lambda b: b + b"\0" * 64), f"{VAE_WEIGHTS}: holds 64 bytes after its last tensor (damaged or not safetensors)"),
    ("not_a_transformer", lambda f: shutil.copy(f / VAE_WEIGHTS, f / T1_WEIGHTS), f"{T1_WEIGHTS}: has no tensor 'patch_embedding.weight': these are not the weights of a Wan transformer"),
    ("shard_dotdot", _shard_index("../../outside.safetensors"), "transformer/diffusion_pytorch_model.safetensors.index.json: weight_map names the shard '../../outside.safetensors', expected a plain file name inside transformer/ (a path out of the folder is never followed)"),
    ("shard_absolute", _shard_index("/etc/passwd"), "weight_map names the shard '/etc/passwd', expected a plain file name inside transformer/"),
    ("shard_in_a_subfolder", _shard_index("sub/shard.safetensors"), "weight_map names the shard 'sub/shard.safetensors', expected a plain file name"),
    ("shard_a_number", _shard_index(42), "transformer/diffusion_pytorch_model.safetensors.index.json: weight_map: every value must be a shard file name"),
    ("index_without_weight_map", lambda f: _shard_index("shard-00001.safetensors")(f) or _write("transformer/diffusion_pytorch_model.safetensors.index.json", "{}")(f), "index.json: has no weight_map (a mapping of tensor names to shard files)"),
    ("index_not_json", lambda f: _shard_index("shard-00001.safetensors")(f) or _write("transformer/diffusion_pytorch_model.safetensors.index.json", "{")(f), "index.json: is not valid JSON"),
    ("num_train_timesteps_0", _json_edit("scheduler/scheduler_config.json", num_train_timesteps=0), "scheduler/scheduler_config.json: num_train_timesteps is 0, expected an integer from 1 to 100,000"),
    ("num_train_timesteps_a_string", _json_edit("scheduler/scheduler_config.json", num_train_timesteps="1000"), "num_train_timesteps is '1000', expected an integer"),
    ("num_train_timesteps_1e9", _json_edit("scheduler/scheduler_config.json", num_train_timesteps=10**9), "num_train_timesteps is 1000000000, expected an integer from 1 to 100,000"),
    ("scheduler_config_not_json", _write("scheduler/scheduler_config.json", "num_train_timesteps: 1000"), "scheduler/scheduler_config.json: is not valid JSON"),
    ("boundary_ratio_5", _json_edit("model_index.json", boundary_ratio=5.0), "model_index.json: boundary_ratio is 5.0, expected a number in (0, 1]"),
    ("boundary_ratio_a_word", _json_edit("model_index.json", boundary_ratio="high"), "model_index.json: boundary_ratio is 'high', expected a number in (0, 1]"),
    ("model_index_corrupt", _write("model_index.json", "{{{"), "model_index.json: is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    ("model_index_a_list", _write("model_index.json", "[]"), "model_index.json: holds a JSON list, expected an object"),
    ("tokenizer_json_corrupt", _write("tokenizer/tokenizer.json", "{"), "tokenizer/tokenizer.json: is not valid JSON"),
    ("text_encoder_config_corrupt", _write("text_encoder/config.json", "]"), "text_encoder/config.json: is not valid JSON"),
    ("text_encoder_weights_truncated", _transform_weights("text_encoder/model.safetensors", lambda b: b[:-100]), "text_encoder/model.safetensors: tensor"),
    ("two_problems_at_once", _two_problems, "has 2 problem(s): scheduler/scheduler_config.json: num_train_timesteps is 0, expected an integer from 1 to 100,000; vae/config.json: is not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "needle"), [c[1:] for c in WAN_CASES], ids=[c[0] for c in WAN_CASES])
def test_a_malformed_folder_is_refused_before_loading_in_one_line(a14b, tmp_path, edit, needle):
    copy = shutil.copytree(a14b, tmp_path / "m")
    edit(copy)
    with pytest.raises(ChordError) as e:
        validate_model_folder(copy)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"Wan model folder {copy}")
    assert needle in message


def test_the_malformed_folder_corpus_has_at_least_25_cases():
    assert len(WAN_CASES) >= 25 and len({c[0] for c in WAN_CASES}) == len(WAN_CASES)


def test_a_file_given_as_the_model_folder_says_it_is_not_a_folder(a14b):
    with pytest.raises(ChordError, match="Wan model folder .*model_index.json is a file, not a folder"):
        validate_model_folder(a14b / "model_index.json")
    with pytest.raises(ChordError, match="Wan model folder .*nope does not exist"):
        validate_model_folder(a14b / "nope")


def test_a_shard_path_out_of_the_folder_is_never_read(a14b, tmp_path, monkeypatch):
    """The index names ../../outside.safetensors, which exists and is valid: still refused, unread."""
    import builtins

    copy = shutil.copytree(a14b, tmp_path / "m")
    shutil.copy(copy / T1_WEIGHTS, tmp_path / "outside.safetensors")
    _shard_index("../../outside.safetensors")(copy)
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    with pytest.raises(ChordError, match="a path out of the folder is never followed"):
        validate_model_folder(copy)
    assert not any("outside" in f for f in opened)


def test_weights_of_another_model_are_refused_at_load_not_run_as_noise(a14b, tmp_path):
    """What the header check cannot see (a VAE's weights where the transformer's belong, the
    sentinel tensor present): diffusers would leave the missing tensors random; refused instead."""
    from safetensors.numpy import load_file, save_file

    from flowgen.wan.folder import WanFolder
    from flowgen.wan.models import load_wan_components

    copy = shutil.copytree(a14b, tmp_path / "m")
    vae = load_file(copy / VAE_WEIGHTS)
    vae["patch_embedding.weight"] = load_file(copy / T1_WEIGHTS)["patch_embedding.weight"]
    save_file(vae, copy / T1_WEIGHTS)
    folder = validate_model_folder(copy)  # passes: headers fine, sentinel present
    with pytest.raises(
        ChordError,
        match=r"the transformer weights do not fit transformer/config.json: \d+ tensor\(s\) missing",
    ):
        load_wan_components(folder, "cpu", "float32", "float32")
    assert isinstance(folder, WanFolder) and folder.num_train_timesteps == 1000


def test_chord_flow_refuses_a_malformed_folder_in_one_line_before_any_work(
    a14b, pick_banana_scene, tmp_path, capsys
):
    from chord.cli.main import main

    copy = shutil.copytree(a14b, tmp_path / "m")
    _json_edit("scheduler/scheduler_config.json", num_train_timesteps=0)(copy)
    for model_dir, needle in (
        (copy, "num_train_timesteps is 0, expected an integer from 1 to 100,000"),
        (copy / "model_index.json", "is a file, not a folder"),
    ):
        out = tmp_path / "run"
        rc = main(["flow", str(pick_banana_scene), "--prior", "wan", "--model-dir", str(model_dir),
                   "--out", str(out), "--device", "cpu"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 1 and "Traceback" not in err
        lines = [ln for ln in err.splitlines() if ": error: " in ln]
        assert len(lines) == 1 and lines[0].startswith("chord flow: error: ") and needle in lines[0]
        assert not out.exists()
