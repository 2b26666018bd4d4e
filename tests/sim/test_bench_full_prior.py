"""`chord bench --full --prior wan --model-dir DIR`: the model folder is checked before any flow is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from chord.bench_full import check_flow_prior
from core.errors import ChordError
from flowgen.config import FlowConfig


def test_wan_without_a_model_dir_is_refused():
    with pytest.raises(ChordError, match="needs --model-dir"):
        check_flow_prior(FlowConfig(prior="wan"), None)


def test_a_missing_model_dir_is_named(tmp_path: Path):
    with pytest.raises(ChordError, match=r"Wan model folder .*nowhere does not exist"):
        check_flow_prior(FlowConfig(prior="wan"), tmp_path / "nowhere")


def test_an_incomplete_model_dir_lists_what_is_missing(tmp_path: Path):
    with pytest.raises(ChordError, match=r"is incomplete; missing \d+ item\(s\)(.|\n)*transformer_2"):
        check_flow_prior(FlowConfig(prior="wan"), tmp_path)


def test_a_model_dir_for_the_video_prior_is_refused(tmp_path: Path):
    with pytest.raises(ChordError, match="is for --prior wan"):
        check_flow_prior(FlowConfig(prior="video"), tmp_path)
    check_flow_prior(FlowConfig(prior="video"), None)  # the CPU default needs nothing


@pytest.mark.parametrize("flags", [["--prior", "wan"], ["--model-dir", "wan_folder"]])
def test_the_cli_refuses_prior_flags_without_full(tmp_path: Path, capsys, flags: list[str]):
    from chord.cli.main import main

    out = tmp_path / "b"
    assert main(["bench", "--out", str(out), *flags, "--tasks-dir", str(tmp_path / "tasks")]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "chord bench: error: bench: --prior and --model-dir choose how --full generates flows; add --full\n"
    )
    assert not out.exists() and not (tmp_path / "tasks").exists()  # refused before any work


def test_the_cli_checks_the_model_dir_before_generating_flows(tmp_path: Path, capsys):
    from chord.cli.main import main

    rc = main(["bench", "--full", "--prior", "wan", "--model-dir", str(tmp_path / "none"),
               "--out", str(tmp_path / "b"), "--workers", "1"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("chord bench: error: ") and f"{tmp_path / 'none'}" in err and "does not exist" in err
    )
    assert not (tmp_path / "b").exists()  # no task scene built, no flow started
    assert not (tmp_path / "b" / "flows").exists()
