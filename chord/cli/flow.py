"""``chord flow``: distil a scene's 4D object motion and write dense object flow."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from core.errors import ChordError
from flowgen.config import FlowConfig

log = logging.getLogger(__name__)


def flow(
    scene: tyro.conf.Positional[Path | None] = None,
    out: Path | None = None,
    resume: Path | None = None,
    video: Path | None = None,
    masks: Path | None = None,
    depth: Path | None = None,
    no_depth: bool = False,
    model_dir: Path | None = None,
    tau_schedule: Literal["uniform", "annealed"] = "uniform",
    wan_mode: Literal["exact", "fast"] = "exact",
    experts_resident: Literal["both", "one"] | None = None,
    wan_dtype: Literal["bfloat16", "float32"] = "bfloat16",
    wan_attention: Literal["native", "fp8"] | None = None,
    rerun: Path | None = None,
    config: Annotated[FlowConfig, tyro.conf.OmitArgPrefixes, tyro.conf.AvoidSubcommands] = FlowConfig(),
) -> None:
    """Distil the 4D motion of a scene's objects and write OUT/flow.npz (dense 3D object flow).

    Priors: `--prior video` (default, runs on a CPU) fits a given video (MP4 or a folder of PNGs;
    optional object masks and depth make it an RGB-D fit); without --video it fits the scene's own
    reference video, masks and depth. `--prior wan --model-dir DIR` distils from Wan 2.2
    image-to-video by RF-SDS (a GPU with 80+ GB for A14B). OUT also gets config.json, run.log,
    checkpoints/ and preview.mp4. A killed run continues with `chord flow --resume OUT`.
    Fields of the config left unset take the prior's defaults (the seed's settings for wan).

    Example: chord flow scenes/pick_banana/scene.yaml --out runs/pick_banana

    Args:
        scene: the scene spec (YAML); not needed with --resume.
        out: output folder for the run (must not hold another run).
        resume: continue the run in this folder from its newest checkpoint.
        video: video to fit (MP4 or a folder of PNGs); default: the scene's reference video.
        masks: object masks for the video (chord.masks .npz); default: the reference's, if any.
        depth: depth maps for the video (chord.depth .npz, metres) for an RGB-D fit; default: the reference's.
        no_depth: fit RGB (and masks) only, even when depth maps exist.
        model_dir: local Wan 2.2 diffusers folder (I2V A14B or TI2V-5B) for --prior wan.
        tau_schedule: Wan prior: noise levels drawn uniformly, or annealed from high to low.
        wan_mode: Wan prior speed: "exact" (bf16, fits an 80 GB GPU) or "fast" (expert linears in FP8,
            ~20% faster; gradient checked against exact, docs/wan_prior.md).
        wan_attention: Wan experts' self-attention: "native" (the default of both modes) or "fp8"
            (cuDNN FP8 attention on Hopper, pip install nvidia-cudnn-frontend; -1 s a step in fast mode,
            but its gradient falls below the fast mode's guard: docs/wan_prior.md).
        experts_resident: Wan A14B: keep both experts on the GPU, or one (the other waits in pinned host
            memory); default: the mode's ("one" for exact, "both" for fast).
        wan_dtype: Wan weights' dtype: "bfloat16" (the checkpoints') or "float32" (CPU tests, or to
            measure bf16's own rounding).
        rerun: also write a rerun recording of the finished run here (.rrd).
        config: the optimisation (defaults: the prior's).
    """
    from core.scene import Scene

    if resume is not None:
        if scene is not None or out is not None:
            raise ChordError("--resume DIR continues the run in DIR: give no SCENE or --out with it")
        scene, out, config, inputs = _recorded_run(resume)
        video, masks, depth, model_dir = (
            _path(inputs.get(k)) for k in ("video", "masks", "depth", "model_dir")
        )
        tau_schedule = inputs.get("tau_schedule", tau_schedule)
        experts_resident = inputs.get("experts_resident", experts_resident)
        wan_mode = inputs.get("wan_mode", wan_mode)
        wan_dtype = inputs.get("wan_dtype", wan_dtype)
        wan_attention = inputs.get("wan_attention", wan_attention)
    elif scene is None or out is None:
        raise ChordError(
            "give a SCENE and --out DIR (or --resume DIR), e.g. `chord flow scene.yaml --out runs/x`"
        )

    sc = Scene.load(scene)
    if not sc.movable_objects:
        raise ChordError(f"scene {sc.name!r} has no movable object: nothing for the prior to move")
    from flowgen import distributed

    ctx = distributed.init_from_env(config.device)  # under torchrun: join the job, pick this rank's GPU
    try:
        _flow(sc, scene, out, resume, video, masks, depth, no_depth, model_dir, tau_schedule, wan_mode,
              experts_resident, wan_dtype, wan_attention, rerun, config,
              quiet=ctx is not None and not ctx.main)  # fmt: skip
    finally:
        distributed.shutdown()


def _flow(sc, scene, out, resume, video, masks, depth, no_depth, model_dir, tau_schedule, wan_mode,
          experts_resident, wan_dtype, wan_attention, rerun, config, quiet: bool) -> None:  # fmt: skip
    inputs: dict[str, Any] = {}
    check_wan_options(config.prior, model_dir, wan_mode, wan_attention, experts_resident)
    if config.prior == "video":
        prior = _video_prior(sc, video, masks, depth, no_depth, inputs)
        w, h = prior.size
        config = config.resolved(w, h)
        prior.check(sc.frames, config.width, config.height)
    else:
        if model_dir is None:
            raise ChordError("--prior wan needs --model-dir DIR: a local Wan 2.2 diffusers folder")
        config = config.resolved(sc.camera.width, sc.camera.height)
        prior = _wan_prior(
            model_dir, config, sc, tau_schedule, wan_mode, experts_resident, wan_dtype, wan_attention
        )
        inputs.update(
            model_dir=str(model_dir),
            tau_schedule=tau_schedule,
            wan_mode=wan_mode,
            wan_dtype=wan_dtype,
            wan_attention=prior.config.attention_precision,
            experts_resident=prior.config.experts_resident,
        )

    from core import __version__
    from flowgen.optimize import run_flow

    provenance = {"chord": __version__, "scene": str(sc.path), "prior": config.prior, "inputs": inputs}
    result = run_flow(sc, prior, config, out, resume=resume is not None, provenance=provenance, inputs=inputs)
    if quiet:  # ranks other than 0 of a torchrun job: rank 0 reports
        return
    print(f"chord flow: wrote {result.out_dir / 'flow.npz'} ({result.flow.num_frames} frames, "
          f"{result.flow.num_points} points) in {result.seconds:.0f} s; preview {result.out_dir / 'preview.mp4'}")  # fmt: skip
    if sc.reference is not None and sc.reference.flow is not None:
        from core.flow import ObjectFlow
        from flowgen.evaluate import flow_error

        for e in flow_error(
            result.flow, ObjectFlow.load(sc.reference.flow), [o.name for o in sc.movable_objects]
        ):
            print(
                f"chord flow: {e.name}: error vs reference flow {e.mean_mm:.1f} mm mean, {e.final_mm:.1f} mm "
                f"at the last frame (the reference moves {e.motion_mm:.0f} mm)"
            )
    if rerun is not None:
        from chord.viz.record import open_recording
        from chord.viz.run import log_run

        with open_recording(rerun) as rec:
            log_run(rec, result.out_dir)
        print(f"chord flow: rerun recording {rerun}")


def _path(v: Any) -> Path | None:
    return None if v is None else Path(v)


def _recorded_run(folder: Path) -> tuple[Path, Path, FlowConfig, dict[str, Any]]:
    record_path = folder / "config.json"
    if not record_path.is_file():
        raise ChordError(f"--resume: {str(folder)!r} holds no run (no config.json)")
    try:
        record = json.loads(record_path.read_text())
        return (
            Path(record["scene"]),
            folder,
            FlowConfig.from_dict(record["config"]),
            dict(record.get("inputs", {})),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ChordError(f"--resume: {record_path} is unreadable ({e})") from e


def _video_prior(sc, video, masks, depth, no_depth: bool, inputs: dict[str, Any]):
    from flowgen.video_fit import VideoFitPrior

    if video is None:
        if sc.reference is None or sc.reference.video is None:
            raise ChordError(f"--prior video needs --video PATH: scene {sc.name!r} has no reference video")
        ref = sc.reference.video.parent
        video = ref / "frames" if (ref / "frames").is_dir() else sc.reference.video
        masks = masks or ((ref / "masks.npz") if (ref / "masks.npz").exists() else None)
        depth = depth or ((ref / "depth.npz") if (ref / "depth.npz").exists() else None)
    if no_depth:
        depth = None
    for what, p in (("--video", video), ("--masks", masks), ("--depth", depth)):
        if p is not None and not Path(p).exists():
            raise ChordError(f"{what} {str(p)!r} does not exist")
    inputs.update(
        video=str(video),
        masks=None if masks is None else str(masks),
        depth=None if depth is None else str(depth),
    )
    log.info("video fit: %s%s%s", video, " + masks" if masks else "", " + depth" if depth else "")
    from flowgen.parts import object_parts

    # The 3D term on movable rigid objects only: on jointed ones it costs accuracy (lamp head 1.0 ->
    # 2.2 deg off, whole-chain lamp 7/8 -> 4/8) and did not save the laptop (docs/flowgen.md).
    rigid_movable = [o.movable and object_parts(o) is None for o in sc.objects]
    return VideoFitPrior.from_files(
        video, masks, sc.object_names, depth=depth, camera=sc.camera, movable=rigid_movable
    )


def check_wan_options(
    prior: str,
    model_dir: Path | None = None,
    wan_mode: str = "exact",
    wan_attention: str | None = None,
    experts_resident: str | None = None,
) -> None:
    """Raise ChordError when Wan-only options are given with another prior (they would do nothing)."""
    if prior == "wan":
        return
    wan_only = {
        "--model-dir": model_dir is not None,
        "--wan-mode": wan_mode != "exact",
        "--wan-attention": wan_attention is not None,
        "--experts-resident": experts_resident is not None,
    }
    given = [k for k, v in wan_only.items() if v]
    if given:
        raise ChordError(f"{', '.join(given)} apply to --prior wan, not --prior {prior}")


def wan_prior_config(
    model_dir: Path,
    config: FlowConfig,
    tau_schedule: str = "uniform",
    mode: str = "exact",
    experts_resident: str | None = None,
    dtype: str = "bfloat16",
    attention: str | None = None,
):
    """The WanPriorConfig ``chord flow --prior wan`` builds from its options (no file is read)."""
    from flowgen.wan import WanPriorConfig
    from flowgen.wan.config import mode_settings

    settings = mode_settings(mode)
    if experts_resident is not None:
        settings["experts_resident"] = experts_resident
    if attention is not None:
        settings["attention_precision"] = attention
    return WanPriorConfig(
        model_dir=model_dir,
        tau_schedule=tau_schedule,
        dtype=dtype,
        vae_dtype=dtype,
        **settings,
        samples_per_video=config.batch,
        cfg_start=config.schedule.cfg_scale.start,
        cfg_end=config.schedule.cfg_scale.end,
    )


def default_prior_settings(config: FlowConfig, model_dir: Path | None = None) -> dict[str, Any]:
    """The prior settings (config.json's "prior_settings") that ``chord flow`` with no prior options
    records for ``config``: the video fit's VideoFitConfig, or the Wan prior's exact-mode config."""
    from flowgen.optimize import settings_dict

    if config.prior == "wan":
        if model_dir is None:
            raise ChordError("--prior wan needs --model-dir DIR: a local Wan 2.2 diffusers folder")
        cfg = wan_prior_config(model_dir, config.resolved(config.width or 1, config.height or 1))
    else:
        from flowgen.video_fit import VideoFitConfig

        cfg = VideoFitConfig()
    return settings_dict(cfg)


def _wan_prior(
    model_dir: Path,
    config: FlowConfig,
    sc,
    tau_schedule: str,
    mode: str,
    experts_resident: str | None,
    dtype: str = "bfloat16",
    attention: str | None = None,
):
    from flowgen.optimize import resolve_device
    from flowgen.rfsds import make_wan_prior

    wan = wan_prior_config(model_dir, config, tau_schedule, mode, experts_resident, dtype, attention)
    device = resolve_device(config.device)
    if device.type != "cuda":
        log.warning("the Wan prior on %s: expect hours per iteration; it is meant for a GPU", device)
    return make_wan_prior(wan, device, video_shape=(sc.frames, config.height, config.width))
