"""Planning flows for ``chord bench --full``: each task's flow generated once by ``chord flow``.

The full benchmark plans method "ours" (and the "rigid" ablation) from a flow distilled by the
flow stage instead of the task's reference flow, so the table measures the whole chain. Each task's
run lives in ``OUT/flows/<task>/`` (the ``chord flow`` run folder): a finished ``flow.npz`` there is
reused, a killed run (config.json without flow.npz) is resumed from its newest checkpoint, so an
interrupted benchmark is cheap to run again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from core.errors import ChordError
from flowgen.config import FlowConfig

log = logging.getLogger(__name__)


def _check_recorded(run_dir: Path, config: FlowConfig, model_dir: Path | None = None) -> None:
    """Raise ChordError when the run in ``run_dir`` was made with other optimisation settings, or
    with other prior settings (e.g. the video fit's loss weights) than this version's defaults."""
    record = run_dir / "config.json"
    try:
        recorded = json.loads(record.read_text())
        old = FlowConfig.from_dict(recorded["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ChordError(f"bench --full: {record} is unreadable ({e}); remove {run_dir} to regenerate") from e
    # Unset fields of the request resolve as they did for the recorded run (the video's size).
    old = old.resolved(old.width or 1, old.height or 1)
    new = config.resolved(old.width or 1, old.height or 1)
    if old.optimisation_hash() != new.optimisation_hash():
        changed = sorted(k for k, v in new.to_dict().items() if old.to_dict().get(k) != v)
        raise ChordError(
            f"bench --full: the flow in {run_dir} was made with other settings ({changed}); "
            f"remove {run_dir} to regenerate it, or choose another --out"
        )
    settings = recorded.get("prior_settings")
    if settings is not None:  # runs from before prior settings were recorded cannot be compared
        from chord.cli.flow import default_prior_settings

        now = default_prior_settings(new, model_dir)
        changed = sorted(k for k in set(settings) | set(now) if settings.get(k) != now.get(k))
        if changed:
            raise ChordError(
                f"bench --full: the flow in {run_dir} was made with other {new.prior} prior settings "
                f"({changed}: recorded {[settings.get(k) for k in changed]}, now {[now.get(k) for k in changed]}); "
                f"remove {run_dir} to regenerate it, or choose another --out"
            )


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


def generated_flows(
    scenes: list[Path],  # task scene.yaml files
    root: Path,  # OUT/flows: one chord flow run folder per task
    config: FlowConfig = FlowConfig(),  # the flow optimisation (chord flow's defaults: the video-fit prior)
    model_dir: Path | None = None,  # Wan 2.2 diffusers folder, for config.prior == "wan"
) -> dict[tuple[str, str], Path]:
    """Generate (or reuse, or resume) each task's flow; returns {(task, "ours"): flow.npz}.

    Each flow is made by the ``chord flow`` command function on the scene's own reference video,
    as ``chord run`` does. Raises chord.run.StageError (one line naming the stage and task) when a
    flow fails, and ChordError when a finished flow was made with other settings.
    """
    from chord.cli.flow import flow
    from chord.run import run_stage
    from core.scene import Scene

    flows: dict[tuple[str, str], Path] = {}
    seconds: dict[str, float] = {}
    for sp in scenes:
        task = Scene.load(sp).name
        run_dir = root / task
        stage = f"flow {task}"
        if (run_dir / "flow.npz").is_file():
            _check_recorded(run_dir, config, model_dir)
            log.info("bench --full: reusing the finished flow %s", run_dir / "flow.npz")
        elif (run_dir / "config.json").is_file():
            _check_recorded(run_dir, config, model_dir)
            log.info("bench --full: resuming the flow run in %s", run_dir)
            run_stage(stage, seconds, flow, resume=run_dir)
        else:
            log.info("bench --full: generating the flow of %s in %s", task, run_dir)
            run_stage(stage, seconds, flow, sp, out=run_dir, config=config, model_dir=model_dir)
        flows[(task, "ours")] = run_dir / "flow.npz"
    if seconds:
        log.info("bench --full: flow seconds %s", {k: round(v, 1) for k, v in seconds.items()})
    return flows
