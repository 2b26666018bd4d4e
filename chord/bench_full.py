"""Planning flows for ``chord bench --full``: each task's flow generated once by the flow stage.

The full benchmark plans method "ours" (and the "rigid" ablation) from a flow distilled by the
flow stage instead of the task's reference flow, so the table measures the whole chain. Each task's
run lives in ``OUT/flows/<task>/`` (the ``chord flow`` run folder): a finished ``flow.npz`` there is
reused, a killed run (config.json without flow.npz) is resumed from its newest checkpoint, so an
interrupted benchmark is cheap to run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from core.errors import ChordError
from core.names import safe_child
from core.record import RunRecord
from core.scene import Scene
from flowgen.config import FlowConfig
from flowgen.generate import FlowSummary

log = logging.getLogger(__name__)


def check_flow_prior(config: FlowConfig, model_dir: Path | None) -> None:
    """Raise ChordError, before any flow is generated, when the prior's inputs are missing or wrong.

    The Wan prior needs ``model_dir``, a complete local Wan 2.2 diffusers folder (checked from its
    JSON files only, so this is fast); the video fit takes no model folder.
    """
    if config.prior == "wan":
        if model_dir is None:
            raise ChordError(
                "bench --full --prior wan needs --model-dir DIR: a local Wan 2.2 diffusers folder"
            )
        from flowgen.wan.folder import validate_model_folder

        validate_model_folder(model_dir)  # ModelFolderError lists every missing file
    elif model_dir is not None:
        raise ChordError(
            f"bench --full: --model-dir {str(model_dir)!r} is for --prior wan; the {config.prior!r} prior "
            "fits each task's reference video and takes no model folder"
        )


@dataclass(frozen=True)
class GeneratedFlows:
    """The planning flows of a full benchmark, and the summaries of those made (not reused) this time."""

    flows: dict[tuple[str, str], Path]  # (task, "ours") -> flow.npz
    made: dict[str, FlowSummary]  # task -> the summary of the flow generated or resumed now


def generated_flows(
    scenes: list[Path],  # task scene.yaml files
    root: Path,  # OUT/flows: one chord flow run folder per task
    config: FlowConfig = FlowConfig(),  # the flow optimisation (chord flow's defaults: the video-fit prior)
    model_dir: Path | None = None,  # Wan 2.2 diffusers folder, for config.prior == "wan"
) -> GeneratedFlows:
    """Generate (or reuse, or resume) each task's flow.

    Each flow is made by ``flowgen.generate.generate_flow`` on the scene's own reference video,
    as ``chord run`` does. Raises chord.run.StageError (one line naming the stage and task) when a
    flow fails, and ChordError when a finished flow was made with other settings.
    """
    from chord.run import run_stage
    from flowgen.generate import WanOptions, check_reusable, generate_flow, resume_flow

    flows: dict[tuple[str, str], Path] = {}
    made: dict[str, FlowSummary] = {}
    seconds: dict[str, float] = {}
    for sp in scenes:
        task = Scene.load(sp).name
        run_dir = safe_child(root, task)  # a scene's name never leads out of OUT/flows
        stage = f"flow {task}"
        if (run_dir / "flow.npz").is_file():
            check_reusable(run_dir, config, model_dir)
            log.info("bench --full: reusing the finished flow %s", run_dir / "flow.npz")
        elif RunRecord.exists(run_dir):
            check_reusable(run_dir, config, model_dir)
            log.info("bench --full: resuming the flow run in %s", run_dir)
            made[task] = run_stage(stage, seconds, resume_flow, run_dir)
        else:
            log.info("bench --full: generating the flow of %s in %s", task, run_dir)
            made[task] = run_stage(
                stage, seconds, generate_flow, sp, run_dir, config, wan=WanOptions(model_dir=model_dir)
            )
        flows[(task, "ours")] = run_dir / "flow.npz"
    if seconds:
        log.info("bench --full: flow seconds %s", {k: round(v, 1) for k, v in seconds.items()})
    return GeneratedFlows(flows, made)
