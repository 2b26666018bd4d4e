"""``chord flow``: distil a scene's 4D object motion and write dense object flow (flowgen.generate)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import tyro

from core.errors import ChordError
from core.names import check_output_dir, check_output_file
from flowgen.config import FlowConfig
from flowgen.generate import FlowSummary, VideoInputs, WanOptions

log = logging.getLogger(__name__)

Flat = tyro.conf.OmitArgPrefixes


def flow(
    scene: tyro.conf.Positional[Path | None] = None,
    out: Path | None = None,
    resume: Path | None = None,
    rerun: Path | None = None,
    video: Annotated[VideoInputs, Flat, tyro.conf.AvoidSubcommands] = VideoInputs(),
    wan: Annotated[WanOptions, Flat, tyro.conf.AvoidSubcommands] = WanOptions(),
    config: Annotated[FlowConfig, Flat, tyro.conf.AvoidSubcommands] = FlowConfig(),
) -> None:
    """Distil the 4D motion of a scene's objects and write OUT/flow.npz (dense 3D object flow).

    Priors: `--prior video` (default, runs on a CPU) fits a given video (MP4 or a folder of PNGs;
    optional object masks and depth make it an RGB-D fit); without --video it fits the scene's own
    reference video, masks and depth. `--prior wan --model-dir DIR` distils from Wan 2.2
    image-to-video by RF-SDS (a GPU with 80+ GB for A14B). OUT also gets config.json (the run
    record), run.log, checkpoints/ and preview.mp4. A killed run continues with `chord flow --resume OUT`.
    Fields of the config left unset take the prior's defaults (the seed's settings for wan).

    Example: chord flow scenes/pick_banana/scene.yaml --out runs/pick_banana

    Args:
        scene: the scene spec (YAML); not needed with --resume.
        out: output folder for the run (must not hold another run).
        resume: continue the run in this folder from its newest checkpoint (with its recorded settings).
        rerun: also write a rerun recording of the finished run here (.rrd).
        video: the video the video-fit prior fits (default: the scene's reference RGB-D video).
        wan: the Wan 2.2 prior's model folder and speed options (--prior wan only).
        config: the optimisation (defaults: the prior's).
    """
    from flowgen.generate import generate_flow, resume_flow

    # Outputs first: a file given as --out, or an unwritable place, fails now, not after the work.
    if rerun is not None:
        check_output_file(rerun, "--rerun")
    if resume is not None:
        given = [name for name, v in (("SCENE", scene), ("--out", out)) if v is not None]
        if given or video != VideoInputs() or wan.given() or config != FlowConfig():
            raise ChordError(
                "--resume DIR continues the run in DIR with the settings it was started with: "
                "give no SCENE, --out or other option with it"
            )
        summary = resume_flow(resume)
    elif scene is None or out is None:
        raise ChordError(
            "give a SCENE and --out DIR (or --resume DIR), e.g. `chord flow scene.yaml --out runs/x`"
        )
    else:
        check_output_dir(out, "--out")
        summary = generate_flow(scene, out, config, video, wan)
    if not summary.reporting:  # ranks other than 0 of a torchrun job: rank 0 reports
        return
    for line in summary_lines(summary):
        print(line)
    if rerun is not None:
        from chord.viz.record import open_recording
        from chord.viz.run import log_run

        with open_recording(rerun) as rec:
            log_run(rec, summary.out_dir)
        print(f"chord flow: rerun recording {rerun}")


def summary_lines(s: FlowSummary) -> list[str]:
    """What ``chord flow`` prints about a finished run: the files, and the error per movable object."""
    preview = f"; preview {s.preview}" if s.preview is not None else ""
    lines = [
        f"chord flow: wrote {s.flow_path} ({s.frames} frames, {s.points} points) in {s.seconds:.0f} s{preview}"
    ]
    for e in s.errors:
        if e.static_points == 0:
            lines.append(
                f"chord flow: {e.name}: error vs reference flow {e.mean_mm:.1f} mm mean, {e.final_mm:.1f} mm "
                f"at the last frame (the reference moves {e.motion_mm:.0f} mm)"
            )
            continue
        # A jointed object: its moving and static parts apart (an average hides a drifting frame).
        moving = (
            f"moving parts {e.moving_mean_mm:.1f} mm mean, {e.moving_final_mm:.1f} mm at the last frame"
            if e.moving_mean_mm is not None
            else "no moving part"
        )
        lines.append(
            f"chord flow: {e.name}: error vs reference flow: {moving}; static parts drift "
            f"{e.static_mean_mm:.1f} mm mean, {e.static_final_mm:.1f} mm at the last frame "
            f"(the reference moves {e.motion_mm:.0f} mm)"
        )
    return lines
