"""`chord bench --full`: "ours" plans from flows generated once per task by the flow stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chord.cli.main import main
from core.errors import ChordError

# Tiny video-fit settings (as tests/chord/test_run.py's), passed through to `chord flow`.
SMALL = [
    "--flow-config.iterations", "40", "--flow-config.gaussians-per-object", "400",
    "--flow-config.near-surface-target", "800", "--flow-config.control-points-per-object", "8",
    "--flow-config.width", "104", "--flow-config.height", "58", "--flow-config.split-iteration", "10",
    "--flow-config.flow-points-per-object", "256", "--flow-config.device", "cpu",
]  # fmt: skip


def test_full_bench_plans_from_flows_it_generates_once_and_reuses(
    pick_banana_scene: Path, tmp_path: Path, monkeypatch, capsys
):
    import flowgen.generate
    import sim.bench
    from core.flow import ObjectFlow

    scene = pick_banana_scene
    out = tmp_path / "bench"
    handed: list[dict] = []
    real_run_bench = sim.bench.run_bench

    def spy(scenes, out, config, flows=None):
        handed.append(dict(flows or {}))
        return real_run_bench(scenes, out, config, flows=flows)

    monkeypatch.setattr(sim.bench, "run_bench", spy)
    # --no-sim-grasp: the flows are what this tests; the grasp trials have their own tests.
    args = [
        "bench",
        str(scene),
        "--full",
        "--out",
        str(out),
        "--trials",
        "1",
        "--methods",
        "ours",
        "--no-sim-grasp",
    ]
    assert main([*args, "--workers", "1", *SMALL]) == 0
    printed = capsys.readouterr().out

    run_dir = out / "flows" / "pick_banana"
    generated = run_dir / "flow.npz"
    assert handed == [{("pick_banana", "ours"): generated}]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"]["iterations"] == 40 and record["config"]["prior"] == "video"
    gen = ObjectFlow.load(generated)
    reference = ObjectFlow.load(scene.parent / "reference" / "flow.npz")
    # The generated flow (256 points for each of the scene's two objects), not the reference.
    assert gen.prior == "video" and gen.num_points == 2 * 256 != reference.num_points
    (rec,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert rec["task"] == "pick_banana" and rec["method"] == "ours"
    assert rec["planning_flow_prior"] == "video", rec
    assert "banana: error vs reference flow" in printed  # chord flow's own report
    assert "ours" in printed and "/1" in printed  # the table

    # A second run reuses the finished flow (no flow stage) and the finished trial.
    def no_flow(*a, **k):
        raise AssertionError("the flow was generated again")

    monkeypatch.setattr(flowgen.generate, "generate_flow", no_flow)
    monkeypatch.setattr(flowgen.generate, "resume_flow", no_flow)
    assert main([*args, "--workers", "1", *SMALL]) == 0
    assert handed[-1] == handed[0]

    # Other flow settings than the finished flow's, or a bench without --full in the same OUT: refused.
    with pytest.raises(ChordError, match="other settings.*iterations"):
        from chord.cli.sim import bench
        from sim.bench import BenchConfig

        bench([scene], out=out, full=True, config=BenchConfig(trials=1, methods=("ours",), workers=1))
    with pytest.raises(ChordError, match="generated .--full. flows"):
        bench([scene], out=out, config=BenchConfig(trials=1, methods=("ours",), workers=1))
    # A finished flow whose prior settings are not this version's defaults (an older video-fit
    # weight) is not reused either: its config.json names the setting.
    record["prior_settings"]["depth_weight"] = 1.0
    (run_dir / "config.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main([*args, "--workers", "1", *SMALL]) != 0
    err = capsys.readouterr().err
    assert "other video prior settings (['depth_weight']" in err and "recorded [1.0], now [10.0]" in err
