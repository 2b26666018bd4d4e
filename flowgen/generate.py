"""The flow stage's library entry: a scene in, a finished run folder and its summary out.

``chord flow`` and ``chord run`` call these; so can a Python user, with the same behaviour::

    from flowgen.generate import generate_flow
    summary = generate_flow("scenes/pick_banana/scene.yaml", "runs/banana")   # video fit, CPU
    print(summary.flow_path, [e.mean_mm for e in summary.errors])

- :func:`generate_flow` builds the motion prior from a :class:`FlowConfig`, :class:`VideoInputs`
  (the video fit) or :class:`WanOptions` (RF-SDS from Wan 2.2), runs the optimisation
  (:func:`flowgen.optimize.run_flow`) and scores the flow against the scene's reference flow.
- :func:`resume_flow` continues a killed run from its run record (``core.record.RunRecord``).
- :func:`check_reusable` says whether a finished or killed run folder was made with the settings
  asked for now (``chord bench --full`` reuses such runs).

Imports torch only inside the functions that run the optimisation.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core import __version__
from core.errors import ChordError, ContractError
from core.flow import ObjectFlow
from core.lock import run_lock
from core.record import RunRecord
from core.scene import Scene
from flowgen.config import FlowConfig
from flowgen.evaluate import ObjectFlowError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInputs:
    """What the video-fit prior fits; left unset, the scene's own reference RGB-D video."""

    video: Path | None = None  # MP4 or a folder of PNG frames; None: the scene's reference video
    masks: Path | None = None  # object masks (chord.masks .npz); None: the reference's, if any
    depth: Path | None = None  # depth maps (chord.depth .npz, metres); None: the reference's, if any
    no_depth: bool = False  # fit RGB (and masks) only, even when depth maps exist


@dataclass(frozen=True)
class WanOptions:
    """How the Wan 2.2 prior (``--prior wan``) is loaded and run; ignored by no other prior (refused)."""

    model_dir: Path | None = None  # local Wan 2.2 diffusers folder (I2V A14B or TI2V-5B)
    # Noise levels drawn uniformly, or annealed from high to low.
    tau_schedule: Literal["uniform", "annealed"] = "uniform"
    # "exact" (bf16, fits an 80 GB GPU) or "fast" (expert linears in FP8, ~20% faster; gradient
    # checked against exact, docs/wan_prior.md).
    wan_mode: Literal["exact", "fast"] = "exact"
    # A14B: keep both experts on the GPU, or one (the other waits in pinned host memory); None: the
    # mode's ("one" for exact, "both" for fast).
    experts_resident: Literal["both", "one"] | None = None
    # Weights' dtype: "bfloat16" (the checkpoints') or "float32" (CPU tests, or to measure bf16's rounding).
    wan_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    # Experts' self-attention: None (the mode's: native), "native", or the opt-in "fp8" (cuDNN FP8 on
    # Hopper; its gradient falls below the fast mode's guard, docs/wan_prior.md).
    wan_attention: Literal["native", "fp8"] | None = None

    def given(self) -> list[str]:
        """The options set away from their defaults, as command-line flags."""
        default = WanOptions()
        return [
            "--" + name.replace("_", "-")
            for name in (
                "model_dir",
                "tau_schedule",
                "wan_mode",
                "experts_resident",
                "wan_dtype",
                "wan_attention",
            )
            if getattr(self, name) != getattr(default, name)
        ]


@dataclass(frozen=True)
class FlowSummary:
    """What a finished ``chord flow`` run produced."""

    out_dir: Path  # the run folder
    flow_path: Path  # out_dir / flow.npz
    preview: Path | None  # the preview video (MP4, or GIF without ffmpeg); None if not written
    prior: str  # the motion prior's name
    frames: int  # T
    points: int  # N
    iterations: int  # optimisation steps in total (including those before a resume)
    seconds: float  # wall time of this process's part of the run
    # Per movable object, the flow's error against the scene's reference flow ([] without one).
    errors: list[ObjectFlowError] = field(default_factory=list)
    reporting: bool = True  # False on ranks other than 0 of a torchrun job (rank 0 reports)


def check_prior_options(prior: str, wan: WanOptions) -> None:
    """Raise ChordError when Wan-only options are given with another prior (they would do nothing)."""
    if prior == "wan":
        return
    given = wan.given()
    if given:
        raise ChordError(f"{', '.join(given)} apply to --prior wan, not --prior {prior}")


def generate_flow(
    scene_path: str | Path,
    out: str | Path,
    config: FlowConfig = FlowConfig(),
    video: VideoInputs = VideoInputs(),
    wan: WanOptions = WanOptions(),
) -> FlowSummary:
    """Distil the scene's 4D object motion into ``out`` (flow.npz, config.json, run.log, checkpoints/, preview).

    Raises ChordError before any long work for: Wan options with another prior, a missing model
    folder or video, a scene with no movable object, an output folder holding another run.
    Under torchrun every rank calls this; rank 0 writes the folder and its summary reports.
    """
    scene = Scene.load(scene_path)
    check_prior_options(config.prior, wan)
    return _run(scene, Path(out), config, video, wan, resume=False)


def resume_flow(out: str | Path) -> FlowSummary:
    """Continue the run in ``out`` from its newest checkpoint, with the settings its record holds.

    Raises ChordError when ``out`` holds no run, its record is unreadable or from an older
    version, or the prior's settings changed since the run began.
    """
    out = Path(out)
    if not RunRecord.exists(out):
        raise ChordError(f"--resume: {str(out)!r} holds no run (no config.json)")
    record = _load_record(out, "--resume")
    try:
        config = FlowConfig.from_dict(record.config)
    except (ValueError, TypeError) as e:
        raise ChordError(f"--resume: {out / 'config.json'} holds an unreadable flow config ({e})") from e
    inputs = record.inputs
    video = VideoInputs(*(_path(inputs.get(k)) for k in ("video", "masks", "depth")))
    wan = WanOptions(
        model_dir=_path(inputs.get("model_dir")),
        **{
            k: inputs[k]
            for k in ("tau_schedule", "wan_mode", "experts_resident", "wan_dtype", "wan_attention")
            if k in inputs
        },
    )
    scene = Scene.load(record.scene)
    return _run(scene, out, config, video, wan, resume=True)


def _load_record(folder: Path, what: str) -> RunRecord:
    try:
        return RunRecord.load(folder)
    except ContractError as e:
        raise ChordError(f"{what}: {e}") from e


def _path(v: Any) -> Path | None:
    return None if v is None else Path(v)


def _run(
    scene: Scene, out: Path, config: FlowConfig, video: VideoInputs, wan: WanOptions, resume: bool
) -> FlowSummary:
    if not scene.movable_objects:
        raise ChordError(f"scene {scene.name!r} has no movable object: nothing for the prior to move")
    reference = check_inputs(scene, config)
    from flowgen import distributed

    ctx = distributed.init_from_env(config.device)  # under torchrun: join the job, pick this rank's GPU
    try:
        from flowgen.optimize import RUN_FOLDERS, run_flow

        # The run folder's lock before the prior loads (seconds, minutes for Wan): a second run on
        # OUT is refused at once. Rank 0 alone writes the folder.
        main = ctx is None or ctx.main
        with run_lock(out, "chord flow", sweep=RUN_FOLDERS) if main else contextlib.nullcontext():
            inputs: dict[str, Any] = {}
            prior, config = make_prior(scene, config, video, wan, inputs)
            provenance = {
                "chord": __version__,
                "scene": str(scene.path),
                "prior": config.prior,
                "inputs": inputs,
            }
            result = run_flow(scene, prior, config, out, resume=resume, provenance=provenance, inputs=inputs)
    finally:
        distributed.shutdown()
    errors = []
    if reference is not None:
        from flowgen.evaluate import flow_error

        errors = flow_error(result.flow, reference, [o.name for o in scene.movable_objects])
    preview = next((p for p in (out / "preview.mp4", out / "preview.gif") if p.is_file()), None)
    return FlowSummary(
        out_dir=result.out_dir,
        flow_path=result.out_dir / "flow.npz",
        preview=preview,
        prior=config.prior,
        frames=result.flow.num_frames,
        points=result.flow.num_points,
        iterations=result.iterations,
        seconds=result.seconds,
        errors=errors,
        reporting=ctx is None or ctx.main,
    )


def check_inputs(scene: Scene, config: FlowConfig) -> ObjectFlow | None:
    """Check what the run will read before any long work; returns the scene's reference flow (or None).

    Raises ChordError for a device this machine does not have (``--device tpu:7``), objects
    under the table or a camera inside one (``core.mesh.check_scene_geometry``, which also loads
    every mesh: the model build reuses them), and a reference flow that is not a chord.flow file,
    lacks a movable object or has another frame count than the scene (each would otherwise fail
    only after the optimisation, with the flow written).
    """
    from core.mesh import check_scene_geometry
    from flowgen.optimize import resolve_device

    resolve_device(config.device)
    check_scene_geometry(scene)
    if scene.reference is None or scene.reference.flow is None:
        return None
    path = scene.reference.flow
    try:
        reference = ObjectFlow.load(path)
    except ContractError as e:
        raise ContractError("reference.flow", str(e), scene.path) from e
    missing = [o.name for o in scene.movable_objects if o.name not in reference.object_names]
    if missing:
        raise ContractError(
            "reference.flow",
            f"{path} has no points of the movable object(s) {missing}; its objects are "
            f"{list(reference.object_names)}",
            scene.path,
        )
    if reference.num_frames != scene.frames:
        raise ContractError(
            "reference.flow",
            f"{path} has {reference.num_frames} frames, the scene {scene.frames}; expected the same",
            scene.path,
        )
    return reference


def make_prior(
    scene: Scene,
    config: FlowConfig,
    video: VideoInputs = VideoInputs(),
    wan: WanOptions = WanOptions(),
    inputs: dict[str, Any] | None = None,  # filled with what the run record keeps for --resume
) -> tuple[Any, FlowConfig]:
    """The motion prior ``config.prior`` names, and the config resolved against it (sizes filled in)."""
    inputs = {} if inputs is None else inputs
    if config.prior == "video":
        from flowgen.video_fit import VideoFitPrior

        prior = VideoFitPrior.for_scene(
            scene, video.video, video.masks, video.depth, use_depth=not video.no_depth
        )
        inputs.update(prior.inputs)
        w, h = prior.size
        config = config.resolved(w, h)
        prior.check(scene.frames, config.width, config.height)
        return prior, config
    if wan.model_dir is None:
        raise ChordError("--prior wan needs --model-dir DIR: a local Wan 2.2 diffusers folder")
    config = config.resolved(scene.camera.width, scene.camera.height)
    from flowgen.optimize import resolve_device
    from flowgen.rfsds import make_wan_prior

    cfg = wan_prior_config(wan, config)
    device = resolve_device(config.device)
    if device.type != "cuda":
        log.warning("the Wan prior on %s: expect hours per iteration; it is meant for a GPU", device)
    prior = make_wan_prior(cfg, device, video_shape=(scene.frames, config.height, config.width))
    inputs.update(
        model_dir=str(wan.model_dir),
        tau_schedule=wan.tau_schedule,
        wan_mode=wan.wan_mode,
        wan_dtype=wan.wan_dtype,
        wan_attention=prior.config.attention_precision,
        experts_resident=prior.config.experts_resident,
    )
    return prior, config


def wan_prior_config(wan: WanOptions, config: FlowConfig):
    """The WanPriorConfig the Wan options and a resolved FlowConfig make (no file is read)."""
    from flowgen.wan import WanPriorConfig
    from flowgen.wan.config import mode_settings

    if wan.model_dir is None:
        raise ChordError("--prior wan needs --model-dir DIR: a local Wan 2.2 diffusers folder")
    settings = mode_settings(wan.wan_mode)
    if wan.experts_resident is not None:
        settings["experts_resident"] = wan.experts_resident
    if wan.wan_attention is not None:
        settings["attention_precision"] = wan.wan_attention
    return WanPriorConfig(
        model_dir=wan.model_dir,
        tau_schedule=wan.tau_schedule,
        dtype=wan.wan_dtype,
        vae_dtype=wan.wan_dtype,
        **settings,
        samples_per_video=config.batch,
        cfg_start=config.schedule.cfg_scale.start,
        cfg_end=config.schedule.cfg_scale.end,
    )


def default_prior_settings(config: FlowConfig, model_dir: Path | None = None) -> dict[str, Any]:
    """The prior settings a run of ``config`` with no prior options records (the run record's
    ``prior_settings``): the video fit's VideoFitConfig, or the Wan prior's exact-mode config."""
    from flowgen.optimize import settings_dict

    if config.prior == "wan":
        resolved = config.resolved(config.width or 1, config.height or 1)
        return settings_dict(wan_prior_config(WanOptions(model_dir=model_dir), resolved))
    from flowgen.video_fit import VideoFitConfig

    return settings_dict(VideoFitConfig())


def check_reusable(run_dir: str | Path, config: FlowConfig, model_dir: Path | None = None) -> None:
    """Raise ChordError when the run in ``run_dir`` was made with other optimisation settings than
    ``config``, or other prior settings than this version's defaults (e.g. a video-fit loss weight)."""
    run_dir = Path(run_dir)
    what = f"the flow in {run_dir}"
    record = _load_record(run_dir, "bench --full")
    try:
        old = FlowConfig.from_dict(record.config)
    except (ValueError, TypeError) as e:
        raise ChordError(
            f"bench --full: {run_dir / 'config.json'} holds an unreadable flow config ({e})"
        ) from e
    # Unset fields of the request resolve as they did for the recorded run (the video's size).
    old = old.resolved(old.width or 1, old.height or 1)
    new = config.resolved(old.width or 1, old.height or 1)
    if old.optimisation_hash() != new.optimisation_hash():
        changed = sorted(k for k, v in new.to_dict().items() if old.to_dict().get(k) != v)
        raise ChordError(
            f"bench --full: {what} was made with other settings ({changed}); "
            f"remove {run_dir} to regenerate it, or choose another --out"
        )
    now = default_prior_settings(new, model_dir)
    settings = record.prior_settings
    changed = sorted(k for k in set(settings) | set(now) if settings.get(k) != now.get(k))
    if changed:
        raise ChordError(
            f"bench --full: {what} was made with other {new.prior} prior settings "
            f"({changed}: recorded {[settings.get(k) for k in changed]}, now {[now.get(k) for k in changed]}); "
            f"remove {run_dir} to regenerate it, or choose another --out"
        )
