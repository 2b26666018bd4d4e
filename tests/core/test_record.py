"""The run records (config.json of a flow run, plan.config.json): one typed reader and writer each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ContractError
from core.record import MAX_RECORD_BYTES, PlanRecord, RunRecord, record_path


def _record(**kw) -> RunRecord:
    args = dict(
        scene=Path("scenes/pick_banana/scene.yaml"),
        prior="video",
        config={"prior": "video", "iterations": 600},
        prior_settings={"depth_weight": 10.0},
        inputs={"video": "ref/frames"},
        processes=1,
        chord_version="0.1.0",
    )
    args.update(kw)
    return RunRecord(**args)


def test_run_record_round_trips_with_schema_and_version(tmp_path):
    rec = _record(processes=2)
    path = rec.save(tmp_path)
    doc = json.loads(path.read_text())
    assert (doc["schema"], doc["version"]) == ("chord.run", 1)
    back = RunRecord.load(tmp_path)
    assert back == rec
    assert back.scene == Path("scenes/pick_banana/scene.yaml") and back.processes == 2


def _write(tmp_path: Path, doc) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(doc))
    return tmp_path


def test_a_record_from_before_versioning_gets_a_clear_message(tmp_path):
    old = {"config": {"prior": "video"}, "scene": "s.yaml", "prior": "video", "inputs": {}, "processes": 1}
    with pytest.raises(ContractError, match="written before run records were versioned"):
        RunRecord.load(_write(tmp_path, old))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"schema": "chord.flow"}, "schema: is 'chord.flow', expected 'chord.run'"),
        ({"version": 2}, "version: is 2; this reader knows chord.run version 1"),
        ({"processes": 0}, "processes: is 0, expected at least 1"),
        ({"processes": True}, "processes: is True"),
        ({"scene": 3}, "scene: is 3 .int., expected str"),
        ({"config": []}, "config: is .* expected dict"),
        ({"extra": 1}, r"unknown field\(s\) \['extra'\]"),
    ],
)
def test_bad_fields_are_named(tmp_path, change, match):
    doc = _record().to_dict()
    doc.update(change)
    with pytest.raises(ContractError, match=match):
        RunRecord.load(_write(tmp_path, doc))


def test_missing_field_is_named(tmp_path):
    doc = _record().to_dict()
    del doc["prior_settings"]
    with pytest.raises(ContractError, match="prior_settings: missing"):
        RunRecord.load(_write(tmp_path, doc))


def test_not_json_not_an_object_too_large_and_too_deep(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ContractError, match="not valid JSON"):
        RunRecord.load(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ContractError, match="holds a JSON list, expected an object"):
        RunRecord.load(tmp_path)
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ContractError, match="nests 100000 levels deep, more than the 64"):
        RunRecord.load(tmp_path)
    with (tmp_path / "config.json").open("w") as f:
        f.truncate(MAX_RECORD_BYTES + 1)
    with pytest.raises(ContractError, match="more than a run record's"):
        RunRecord.load(tmp_path)
    with pytest.raises(ContractError, match="does not exist"):
        RunRecord.load(tmp_path / "nowhere")


def test_plan_record_round_trips_beside_its_plan(tmp_path):
    plan = tmp_path / "plan.npz"
    rec = PlanRecord(config={"geometry": "mesh"}, flow=Path("flow.npz"), scene=Path("scene.yaml"))
    path = rec.save(plan)
    assert path == record_path(plan) == tmp_path / "plan.config.json"
    assert PlanRecord.load(path) == rec
    no_scene = PlanRecord(config={}, flow=Path("f.npz"))
    assert PlanRecord.load(no_scene.save(tmp_path / "p.npz")).scene is None
    doc = rec.to_dict()
    doc["schema"] = "chord.run"
    path.write_text(json.dumps(doc))
    with pytest.raises(ContractError, match="expected 'chord.plan_config'"):
        PlanRecord.load(path)
