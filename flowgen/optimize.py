"""The 4D optimisation of ``chord flow``: prior loss + regularisers, the seed's schedules, resumable.

One run writes into its output folder::

    config.json          the run record (core.record.RunRecord): resolved FlowConfig, scene, prior
    run.log              one JSON line per logged iteration (losses, learning rates, seconds)
    checkpoints/         atomic checkpoints every `checkpoint_every` iterations + latest.json
    flow.npz             the dense object flow (written last, atomically)
    preview.mp4          the static snapshot, then the optimised motion (GIF without ffmpeg)
    .chord.lock          while the run runs (core.lock): a second run on the folder is refused

``--resume`` reloads the newest checkpoint (parameters, Adam moments, RNG state) and continues;
on a CPU the result equals an uninterrupted run's bit for bit. Taking the folder's lock removes
the temporary files a killed run left (``.flow.npz.*.tmp``, ``checkpoints/.ckpt_*.tmp``), and a
resume drops the log lines past the checkpoint it resumes from (all of them without one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from core import __version__
from core.atomic import write_text_atomic
from core.errors import ChordError, ContractError
from core.flow import ObjectFlow
from core.lock import run_lock
from core.record import RunRecord
from core.scene import Scene
from flowgen import distributed
from flowgen.checkpoint import Checkpoint, load_latest_checkpoint, save_checkpoint
from flowgen.config import FlowConfig
from flowgen.prior import MotionPrior, PriorContext
from flowgen.scene4d import Scene4D

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    flow: ObjectFlow
    out_dir: Path
    iterations: int  # iterations completed in total (including before a resume)
    seconds: float  # wall time of this process's part of the run
    last_logs: dict[str, float]  # the final iteration's loss terms


def resolve_device(name: str) -> torch.device:
    """The torch device of a ``--device`` setting: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".

    Raises ChordError naming the value for anything else (``tpu:7``, ``mps``), for CUDA on a
    machine without it, and for a GPU index this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = "expected auto, cpu, cuda or cuda:N"
    if not isinstance(name, str):
        raise ChordError(f"device is {name!r}, {expected}")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:  # torch: "Expected one of cpu, cuda, ... device type"
        raise ChordError(f"device is {name!r}, {expected}") from e
    if device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index is not None):
        raise ChordError(f"device is {name!r}, {expected}: flowgen runs on the CPU or a CUDA GPU")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ChordError(f"device {name!r} asked for, but CUDA is not available here (use --device cpu)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ChordError(
                f"device is {name!r}, but this machine has {count} GPU(s): cuda:0 to cuda:{count - 1}"
            )
    return device


def run_flow(
    scene: Scene,
    prior: MotionPrior,
    config: FlowConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    provenance: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,  # the prior's input files etc., recorded for --resume
) -> RunResult:
    """Optimise the scene's 4D motion under ``prior`` and write the run folder (module docstring).

    Raises ChordError before any long work for: an output folder holding another run (without
    ``resume``), a resume whose config differs, a scene with no movable object, and whatever the
    prior's ``prepare`` rejects (e.g. a video that does not match the scene).

    Inside a torchrun job (``flowgen.distributed``) every rank runs this; the prior's draws are
    split over the ranks, the gradients summed, and rank 0 alone writes the run folder, holding
    its lock (core.lock; FolderBusyError names another process that holds it).
    """
    out = Path(out_dir)
    ctx = distributed.current()
    main = ctx is None or ctx.main
    lock = run_lock(out, "chord flow", sweep=RUN_FOLDERS) if main else contextlib.nullcontext()
    with lock:
        return _run_flow(scene, prior, config, out, ctx, resume, provenance, inputs)


# The run folder and its sub-folder that the flow stage writes: swept of a killed run's temporaries.
RUN_FOLDERS = ("", "checkpoints")


def _run_flow(
    scene: Scene,
    prior: MotionPrior,
    config: FlowConfig,
    out: Path,
    ctx: distributed.DistContext | None,
    resume: bool,
    provenance: dict[str, Any] | None,
    inputs: dict[str, Any] | None,
) -> RunResult:
    main = ctx is None or ctx.main
    ckpt_dir = out / "checkpoints"
    config = config.resolved(scene.camera.width, scene.camera.height)
    _check_out_dir(out, config, resume)
    if resume:
        _check_prior_settings(out, prior)
    if not scene.movable_objects:
        raise ChordError(f"scene {scene.name!r} has no movable object: nothing for the prior to move")
    device = resolve_device(config.device)
    width, height = config.width, config.height
    if ctx is not None:
        if not hasattr(prior, "set_shard"):
            raise ChordError(
                f"--prior {prior.name} does not run in several processes (its frames are cheap): "
                "run it without torchrun"
            )
        prior.set_shard(ctx.rank, ctx.world)

    torch.manual_seed(config.seed)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    log.info("building Gaussians and control points for %d object(s)", len(scene.objects))
    model = Scene4D.build(scene, config, device=device)
    camera = scene.camera.resized(width, height)
    with torch.no_grad():
        first_frame = model.render_rest(camera).rgb[0]
    prior.prepare(
        PriorContext(
            first_frame=first_frame,
            prompt=scene.prompt,
            negative_prompt=scene.negative_prompt,
            fps=scene.fps,
            num_frames=scene.frames,
            height=height,
            width=width,
        )
    )

    optimizer = torch.optim.Adam(model.param_groups(config.schedule), eps=1e-15)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if ctx is not None:
        d = model.deformation
        sums = [model.gaussians.means.double().sum(), d.positions.double().sum()]
        distributed.check_same(ctx, "Gaussians and control points", torch.stack(sums))
        distributed.sync_parameters(ctx, params)
    start, fresh = 0, True
    if resume:
        ckpt = load_latest_checkpoint(ckpt_dir)
        if ckpt is not None:
            start, fresh = _restore(ckpt, model, optimizer, generator), False
            log.info("resuming %s from iteration %d", out, start)
        else:
            log.info("resuming %s from the start: it was stopped before its first checkpoint", out)
        if main:  # the lines past the checkpoint (all, without one) are about to be logged again
            _trim_run_log(out / "run.log", start)
    initialise = getattr(prior, "initialise", None)
    if fresh and initialise is not None:  # a prior that can place the parts before the first step
        initialise(model)
    end = config.iterations
    if model.motion_held():
        # The steps fit only what moves the objects (deformation, joint values) and the control
        # points' covariances, which blend motions that are one rigid motion per held part: they
        # cannot change the flow. (On a CPU, minutes of steps for nothing.)
        log.info(
            "every movable object's motion is held where its depth start put it: the %d steps "
            "could not change the flow, so none is taken", end - start,
        )  # fmt: skip
        end = start
    record = RunRecord(
        scene=Path(str(scene.path)),
        prior=prior.name,
        config=config.to_dict(),
        prior_settings=prior_settings(prior),
        inputs=inputs or {},
        processes=1 if ctx is None else ctx.world,
        chord_version=__version__,
    )
    if main:
        out.mkdir(parents=True, exist_ok=True)
        record.save(out)
        if end == start and fresh:  # what the start decided: a resumed run neither redoes nor steps it
            save_checkpoint(ckpt_dir, _snapshot(start, model, optimizer, generator, config))

    logs: dict[str, float] = {}
    t0 = time.perf_counter()
    bar = tqdm(
        range(start, end),
        initial=start,
        total=end,
        desc="chord flow",
        disable=not main,
    )
    log_file = (out / "run.log").open("a", encoding="utf-8") if main else contextlib.nullcontext()
    with log_file as run_log:
        for it in bar:
            progress = it / max(config.iterations - 1, 1)
            lrs = model.set_learning_rates(optimizer, config.schedule, progress)
            split_frame = config.split_frame_for(scene.frames)
            if it == config.split_iteration and split_frame < scene.frames - 1:
                model.split(split_frame, optimizer)
                log.info("iteration %d: frames after %d reset to frame %d", it, split_frame, split_frame)
            logs = _step(model, prior, optimizer, config, camera, progress, generator, ctx, params)
            logs.update(lrs)
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in _SHOWN})
            done = it + 1
            if main:
                if it % 10 == 0 or it + 1 == config.iterations:
                    run_log.write(json.dumps({"iteration": it, **logs}) + "\n")
                    run_log.flush()
                if done % config.checkpoint_every == 0 or done == config.iterations:
                    save_checkpoint(ckpt_dir, _snapshot(done, model, optimizer, generator, config))
                if config.preview_every and done % config.preview_every == 0 and done != config.iterations:
                    model.write_preview(out / f"preview_{done:06d}.mp4", camera, scene.fps)

    kin = getattr(model, "kinematics", None)
    if kin is not None and main:
        kin.log_values(scene.object_names)
    flow = model.export_flow(
        scene, prior.name, config.flow_points_per_object, provenance or {}, config.flow_min_points_per_part
    )
    if main:
        flow.save(out / "flow.npz")
        model.write_preview(out / "preview.mp4", camera, scene.fps)
    if ctx is not None:
        distributed.barrier(ctx)  # the others return once rank 0's outputs are complete
    return RunResult(flow, out, end, time.perf_counter() - t0, logs)


_SHOWN = ("loss", "prior", "temporal", "spatial", "ground")


def _step(
    model: Scene4D,
    prior: MotionPrior,
    optimizer: torch.optim.Optimizer,
    config: FlowConfig,
    camera,
    progress: float,
    generator: torch.Generator,
    ctx: distributed.DistContext | None = None,
    params: list[torch.Tensor] | None = None,  # the optimised tensors (all-reduced across ranks)
) -> dict[str, float]:
    sched = config.schedule
    if prior.name == "video":
        # The video fit needs no whole videos: `batch` random frames a step keep a CPU step short.
        frames = torch.randint(0, model.num_frames, (1, config.batch), generator=generator)
    else:
        frames = torch.arange(model.num_frames).unsqueeze(0)
    background = getattr(prior, "render_background", (1.0, 1.0, 1.0))
    extra, deformed = {}, None
    if getattr(prior, "wants_points", False):  # priors with a 3D term see the deformed Gaussians too
        deformed = model.deformed_gaussians(frames.flatten())
        means = deformed[0]
        extra = {
            "points": means.reshape(*frames.shape, *means.shape[1:]),  # [B, T', N, 3] world metres
            "point_object": model.gaussians.object_index,  # [N] object of each Gaussian
        }
    rendered = model.render_frames(frames.flatten(), camera, background, deformed=deformed)
    shape = (*frames.shape, *rendered.rgb.shape[1:])
    prior_loss = prior.loss(
        rendered.rgb.reshape(shape),
        progress=progress,
        generator=generator,
        masks=rendered.object_masks.reshape(*frames.shape, *rendered.object_masks.shape[1:]),
        frame_indices=frames.to(rendered.rgb.device),
        depth=rendered.depth.reshape(*frames.shape, *rendered.depth.shape[1:]),
        **extra,
    )
    reg = model.regularisers()
    w_t, w_s = sched.temporal_weight.at(progress), sched.spatial_weight.at(progress)
    reg_total = w_t * reg["temporal"] + w_s * reg["spatial"] + sched.ground_weight * reg["ground"]
    # Ranks sum their gradients: the prior's share is already scaled by the whole batch, the
    # regularisers (the same on every rank) count once in total.
    ranks = 1 if ctx is None else ctx.world
    total = prior_loss.loss + reg_total / ranks
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    loss_value, prior_value = float(total.detach()), float(prior_loss.loss.detach())
    if ctx is not None:
        distributed.all_reduce_gradients(ctx, params)
        loss_value, prior_value = distributed.sum_scalars(ctx, [loss_value, prior_value], total.device)
    optimizer.step()
    return {
        "loss": loss_value,
        "prior": prior_value,
        **{k: float(v.detach()) for k, v in reg.items()},
        **prior_loss.logs,
        "w_temporal": w_t,
        "w_spatial": w_s,
    }


def prior_settings(prior: MotionPrior) -> dict[str, Any]:
    """The prior's own settings (its ``config`` dataclass) as JSON values, recorded for --resume."""
    import dataclasses

    cfg = getattr(prior, "config", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return {}
    return settings_dict(cfg)


def settings_dict(cfg: Any) -> dict[str, Any]:
    """A prior's config dataclass as the JSON values config.json records (paths as strings)."""
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _recorded(out: Path) -> RunRecord:
    try:
        return RunRecord.load(out)
    except ContractError as e:
        raise ChordError(f"--resume: {e}") from e


def _check_prior_settings(out: Path, prior: MotionPrior) -> None:
    """A resumed run must use the prior settings it started with (e.g. a changed video-fit default)."""
    recorded = _recorded(out).prior_settings
    now = prior_settings(prior)
    changed = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    if changed:
        raise ChordError(
            f"--resume: the {prior.name} prior's settings differ from the run in {str(out)!r} in {changed} "
            f"(recorded {[recorded.get(k) for k in changed]}, now {[now.get(k) for k in changed]}); "
            "resume with the same version and settings, or start a new --out"
        )


def _check_out_dir(out: Path, config: FlowConfig, resume: bool) -> None:
    if resume:
        if not RunRecord.exists(out):
            raise ChordError(
                f"--resume: {str(out)!r} holds no run (no config.json); start it without --resume"
            )
        try:
            old = FlowConfig.from_dict(_recorded(out).config)
        except (ValueError, TypeError) as e:
            raise ChordError(f"--resume: {out / 'config.json'} holds an unreadable flow config ({e})") from e
        old = old.resolved(old.width or config.width, old.height or config.height)
        if old.optimisation_hash() != config.optimisation_hash():
            changed = sorted(k for k, v in config.to_dict().items() if old.to_dict().get(k) != v)
            raise ChordError(
                f"--resume: the config differs from the run in {str(out)!r} in {changed}; "
                "resume with the same settings, or start a new --out"
            )
        return
    if (out / "flow.npz").exists() or (out / "checkpoints").exists():
        raise ChordError(
            f"{str(out)!r} already holds a run; pass --resume to continue it, or choose another --out"
        )


def _snapshot(
    done: int,
    model: Scene4D,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    config: FlowConfig,
) -> Checkpoint:
    tensors = {f"model.{k}": v for k, v in model.state_tensors().items()}
    state = optimizer.state_dict()
    for idx, s in state["state"].items():
        for k, v in s.items():
            tensors[f"adam.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng"] = generator.get_state()
    meta = {"config_hash": config.optimisation_hash(), "adam_groups": _jsonable_groups(state["param_groups"])}
    return Checkpoint(done, tensors, meta)


def _restore(
    ckpt: Checkpoint, model: Scene4D, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> int:
    model.load_state_tensors({k[6:]: v for k, v in ckpt.tensors.items() if k.startswith("model.")})
    state: dict[str, Any] = {"state": {}, "param_groups": ckpt.meta["adam_groups"]}
    for k, v in ckpt.tensors.items():
        if k.startswith("adam."):
            _, idx, name = k.split(".", 2)
            state["state"].setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict(state)
    generator.set_state(ckpt.tensors["rng"])
    return ckpt.iteration


def _trim_run_log(path: Path, start: int) -> None:
    """Drop the lines a killed run logged past its last checkpoint: they are about to be redone."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["iteration"] < start:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            break  # a line torn by the kill ends what can be trusted
    write_text_atomic(path, "".join(f"{line}\n" for line in kept))


def _jsonable_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adam's param groups as JSON: every setting kept (tuples such as betas become lists)."""
    out = []
    for g in groups:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
        bad = [k for k, v in d.items() if not isinstance(v, (int, float, str, bool, list, type(None)))]
        if bad:
            raise TypeError(f"optimizer group settings {bad} cannot be checkpointed as JSON")
        out.append(d)
    return out
