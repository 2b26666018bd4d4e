"""Every malformed file in the corpus fails with its own clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ContractError
from core.flow import ObjectFlow
from core.plan import Plan
from core.scene import Scene
from tests.core.make_corpus import CASES, CORPUS

LOADERS = {"flow": ObjectFlow.load, "plan": Plan.load, "scene": Scene.load}


def test_corpus_is_large_and_messages_are_distinct():
    assert len(CASES) >= 15
    assert len({expected for _, expected, _ in CASES}) == len(CASES)
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(name for name, _, _ in CASES)


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, e, _ in CASES])
def test_malformed_file_is_rejected_with_its_message(name: str, expected: str):
    path = CORPUS / name
    loader = LOADERS[name.split("_")[0]]
    with pytest.raises(ContractError) as info:
        loader(path)
    message = str(info.value)
    assert expected in message, message
    # Every message names the file it is about.
    assert str(path) in message


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, e, _ in CASES if "wrong_schema" not in n])
def test_cli_check_reports_the_same_message(name: str, expected: str, capsys):
    from chord.cli.main import main

    assert main(["check", str(CORPUS / name)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chord check: error: ")
    assert expected in err
    assert "Traceback" not in err


def test_cli_check_reads_an_npz_by_its_declared_schema(capsys):
    """A flow file that claims to be a plan is read as a plan, and fails as one."""
    from chord.cli.main import main

    assert main(["check", str(CORPUS / "flow_wrong_schema.npz")]) == 1
    assert "t: missing from the chord.plan file" in capsys.readouterr().err


def test_corpus_generator_reproduces_the_committed_files(tmp_path: Path, monkeypatch):
    """The committed corpus is what the generator writes (same rejection for a fresh copy)."""
    import tests.core.make_corpus as mc

    monkeypatch.setattr(mc, "CORPUS", tmp_path / "corpus")
    mc.main()
    for name, expected, _ in CASES:
        with pytest.raises(ContractError, match=None) as info:
            LOADERS[name.split("_")[0]](tmp_path / "corpus" / name)
        assert expected in str(info.value)
