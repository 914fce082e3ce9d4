"""``pose3d project``, ``pose3d synth``, ``pose3d evaluate-video``, ``pose3d evaluate-tracking`` and
``pose3d build-detections``: mocap filmed, rendered, measured, and run through the 2D stage for training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer

from pipeline.cli.ui import console, progress_bar
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.evaluation.detections import (
    DetectionsConfig,
    build_detections,
    format_scores,
    prepare_folder,
    score_detections,
)
from pipeline.evaluation.skate import evaluate_skate, format_skate
from pipeline.evaluation.synth import SynthConfig, save_ground_truth, synthesize, write_clip
from pipeline.evaluation.synth_group import GroupConfig, pick_motions, save_group_truth, synthesize_group
from pipeline.evaluation.tracking import evaluate_groups, format_tracking
from pipeline.evaluation.video import evaluate_videos, format_rows, slice_motion
from pipeline.io.export import atomic_save_npz
from pipeline.io.outputs import folders_for
from pipeline.lifting.lifter import Lifter
from pipeline.run import load_run_config, with_choices
from pipeline.training.cameras import film
from pipeline.training.config import CameraConfig, TrainConfig
from pipeline.training.mocap import Motion, load_dataset, load_motion, resample

# Options several commands share.
TRAIN_CONFIG = typer.Option(None, "--config", "-c", help="Training YAML: data and held-out subjects.")
MOCAP_FOLDER = typer.Option(None, help="Mocap folder.")
HELD_OUT = typer.Option(None, help="Comma-separated subjects (default: the config's test subjects).")
BACKEND = typer.Option(None, help="2D backend: auto, offline, mediapipe or yolo-mmpose (default: the run settings').")
CLIP_SECONDS = typer.Option(4.0, help="Length of each clip, seconds.")
CLIP_SEED = typer.Option(0, help="Seed of the first clip's look and camera.")
LIFTER_WEIGHTS = typer.Option(None, help="Lifter checkpoint (default: the shipped weights).")
DEVICE = typer.Option("auto", help="auto, cpu or cuda.")
RUN_SETTINGS = typer.Option(None, "--run-config", help="Settings of the runs, configs/run.yaml style (default: the "
                            "shipped ones), e.g. another keypoint model or detector tiles.")


def project_command(
    mocap: Path = typer.Argument(..., help="Mocap file (.bvh, .amc; gzipped or plain)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz of 2D keypoints (the `pose3d lift` input format)."),
    gt: Optional[Path] = typer.Option(None, help="Also write the camera-frame 3D ground truth (.npz)."),
    fps: float = typer.Option(30.0, help="Frame rate of the output track, Hz."),
    seed: int = typer.Option(0, help="Seed of the random virtual camera."),
) -> None:
    """Film a mocap motion with a random virtual camera: 2D keypoints (+ 3D ground truth) for testing `lift`."""
    motion = resample(load_motion(mocap), fps)
    shot = film(motion.joints, CameraConfig(), torch.Generator().manual_seed(seed))
    cam = shot.camera
    atomic_save_npz(out, keypoints=shot.keypoints.astype(np.float32), width=np.int64(cam.width),
                    height=np.int64(cam.height), fps=np.float64(fps), format=np.array("h36m17"))
    if gt:
        atomic_save_npz(gt, poses3d=(shot.poses3d - shot.poses3d[:, :1]).astype(np.float32),
                        poses3d_absolute=shot.poses3d.astype(np.float32), rotation=cam.rotation,
                        position=cam.position, focal=np.float64(cam.focal), center=cam.center)
    console.print(f"{motion.name}: {len(motion.joints)} frames at {fps:g} fps, camera {cam.width}x{cam.height} "
                  f"f={cam.focal:.0f}px -> {out}")


def synth_command(
    mocap: list[Path] = typer.Argument(..., help="Mocap file(s) (.bvh, .amc; gzipped or plain); with --people, "
                                       "the motions to draw the people from."),
    out: Path = typer.Option(..., "--out", "-o", help="Rendered clip (.mp4, H.264)."),
    gt: Optional[Path] = typer.Option(None, help="Ground truth .npz (3D camera frame, 2D pixels, camera; with "
                                      "--people also ids, boxes and visibility)."),
    start: float = typer.Option(0.0, help="Start of the slice, seconds into the motion (one person)."),
    duration: Optional[float] = typer.Option(None, help="Length of the clip, seconds (default: the motion's "
                                             "length; 6 with --people)."),
    people: int = typer.Option(0, help="Render this many people at once on crossing, leaving and staying "
                               "paths (0: one person framed by a random camera)."),
    distance: float = typer.Option(7.0, help="With --people: camera to the scene's centre, metres."),
    width: int = typer.Option(960, help="Image width, pixels."),
    height: int = typer.Option(540, help="Image height, pixels."),
    fps: float = typer.Option(30.0, help="Frame rate, Hz."),
    seed: int = typer.Option(0, help="Seeds the people's looks, the camera and the scene (and with --people "
                             "which motion each person gets)."),
) -> None:
    """Render mocap as shaded humanoids from a virtual camera, with exact 3D/2D ground truth."""
    motions = [load_motion(path) for path in mocap]
    synth = SynthConfig(width=width, height=height, fps=fps, seed=seed)
    with progress_bar() as bar:
        task = bar.add_task("rendering", total=None, info="")
        report = lambda d, t: bar.update(task, completed=d, total=t)  # noqa: E731
        if people:
            config = GroupConfig(people=people, seconds=duration or GroupConfig.seconds, distance=distance,
                                 synth=synth)
            clip = synthesize_group(pick_motions(motions, people, np.random.default_rng(seed)), config, report)
        else:
            motion = motions[0]
            if start or duration:
                motion = slice_motion(motion, start, duration if duration else len(motion.joints) / motion.fps)
            clip = synthesize(motion, synth, progress=report)
        write_clip(clip, out)
    if gt:
        (save_group_truth if people else save_ground_truth)(gt, clip)
    who = " + ".join(clip.names) if people else motions[0].name
    console.print(f"{who}: {clip.num_frames} frames at {fps:g} fps, {width}x{height} -> {out}"
                  + (f" (+ ground truth {gt})" if gt else ""), highlight=False)


def _held_out(config: Optional[Path], data: Optional[str], subjects: Optional[str], seconds: float
              ) -> tuple[list[Motion], set[str]]:
    """Motions of the held-out subjects (default: the training config's test subjects) at 30 fps."""
    cfg = load_config(TrainConfig, config, {"data": data})
    wanted = {s.strip() for s in subjects.split(",")} if subjects else set(cfg.test_subjects)
    return [m for m in load_dataset(cfg.data, fps=30.0, subjects=wanted) if len(m.joints) >= 30 * seconds], wanted


def evaluate_video_command(
    config: Optional[Path] = TRAIN_CONFIG,
    data: Optional[str] = MOCAP_FOLDER,
    subjects: Optional[str] = HELD_OUT,
    clips: int = typer.Option(8, help="Number of rendered clips (motions spread over the subjects)."),
    small_clips: int = typer.Option(4, help="Number of extra clips with a small figure (about 60-120 px tall at "
                                    "960x540), scored on their own."),
    seconds: float = CLIP_SECONDS,
    seed: int = CLIP_SEED,
    weights: Optional[Path] = LIFTER_WEIGHTS,
    device: str = DEVICE,
    backend: Optional[str] = BACKEND,
    run_config: Optional[Path] = RUN_SETTINGS,
    distance: Optional[str] = typer.Option(None, help="MIN,MAX camera distance of the regular clips, as a multiple "
                                           "of the closest that frames the person (default: the renderer's)."),
) -> None:
    """Whole-pipeline MPJPE / P-MPJPE on rendered clips of held-out subjects."""
    settings = with_choices(load_run_config(run_config), backend=backend)
    synth = SynthConfig(seed=seed)
    if distance:
        synth = replace(synth, camera=replace(synth.camera, distance_scale=_range(distance)))
    motions, wanted = _held_out(config, data, subjects, seconds)
    lifter = Lifter.load(weights, device)
    sliced = _spread(motions, clips, seconds)
    # The small figures take other motions (offset by half a step) and other seeds than the regular clips.
    count = min(small_clips, len(motions))
    small = [_middle(motions[int((k + 0.5) * len(motions) / count)], seconds) for k in range(count)]
    far = replace(synth, seed=seed + 1000, camera=replace(synth.camera, distance_scale=SMALL_FIGURE_DISTANCE))
    with progress_bar() as bar:
        task = bar.add_task("clips", total=len(sliced) + len(small), info=f"subjects {','.join(sorted(wanted))}")
        rows = evaluate_videos(sliced, lifter, synth=synth, run_config=settings,
                               progress=lambda d, t: bar.update(task, completed=d))
        small_rows = evaluate_videos(small, lifter, synth=far, run_config=settings,
                                     progress=lambda d, t: bar.update(task, completed=len(sliced) + d))
    typer.echo(format_rows(rows))
    if small:
        typer.echo(f"\nSmall figures (camera {SMALL_FIGURE_DISTANCE[0]:g}-{SMALL_FIGURE_DISTANCE[1]:g}x farther "
                   "than the closest framing):\n" + format_rows(small_rows))


# Camera distance, as a multiple of the closest that frames the person, giving figures about 60-120 px tall at
# 960 x 540 (measured on the validation subjects: docs/twod.md).
SMALL_FIGURE_DISTANCE = (2.5, 4.0)


def evaluate_tracking_command(
    config: Optional[Path] = TRAIN_CONFIG,
    data: Optional[str] = MOCAP_FOLDER,
    subjects: Optional[str] = HELD_OUT,
    clips: int = typer.Option(6, help="Number of rendered group clips."),
    people: int = typer.Option(4, help="People in each clip."),
    seconds: float = typer.Option(6.0, help="Length of each clip, seconds."),
    distance: float = typer.Option(7.0, help="Camera to the scene's centre, metres (farther: smaller people)."),
    width: int = typer.Option(960, help="Image width, pixels."),
    height: int = typer.Option(540, help="Image height, pixels."),
    seed: int = typer.Option(0, help="Seed of the first clip (people, looks, scene)."),
    backend: Optional[str] = BACKEND,
    run_config: Optional[Path] = RUN_SETTINGS,
) -> None:
    """Detection recall, id switches and IDF1 on rendered clips of several held-out people at once."""
    settings = with_choices(load_run_config(run_config), backend=backend)
    group = GroupConfig(people=people, seconds=seconds, distance=distance,
                        synth=SynthConfig(width=width, height=height, seed=seed))
    motions, wanted = _held_out(config, data, subjects, 1.0)
    with progress_bar() as bar:
        task = bar.add_task("clips", total=clips, info=f"subjects {','.join(sorted(wanted))}")
        rows = evaluate_groups(motions, clips=clips, config=group, run_config=settings,
                               progress=lambda d, t: bar.update(task, completed=d))
    typer.echo(format_tracking(rows))


def build_detections_command(
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (clips already there are kept: resumable)."),
    config: Optional[Path] = TRAIN_CONFIG,
    data: Optional[str] = MOCAP_FOLDER,
    clips: int = typer.Option(1000, help="Clips in the dataset."),
    seconds: float = CLIP_SECONDS,
    small_share: float = typer.Option(0.25, help="Fraction of clips with a small figure (about 60-120 px tall)."),
    seed: int = typer.Option(0, help="Seed of the first clip (clip i uses seed + i)."),
    subjects: Optional[str] = typer.Option(None, help="Comma-separated subjects to render instead of the training "
                                           "subjects: 3,7,12 makes a validation set for evaluate-detections "
                                           "(pose3d train refuses a folder holding held-out subjects)."),
    run_config: Optional[Path] = RUN_SETTINGS,
) -> None:
    """Render training-subject mocap, run it through the 2D stage and clean-up, and store it with its 3D truth."""
    settings = DetectionsConfig(clips=clips, seconds=seconds, small_share=small_share, seed=seed)
    # A folder this command creates goes again if it fails before writing a clip (bad mocap folder, subjects).
    with folders_for([out / "clip"]):
        prepare_folder(out)
        cfg = load_config(TrainConfig, config, {"data": data})
        held_out = set(cfg.test_subjects) | set(cfg.val_subjects)
        wanted = {s.strip() for s in subjects.split(",")} if subjects else None
        motions = [m for m in load_dataset(cfg.data, fps=30.0, subjects=wanted) if wanted or m.subject not in held_out]
        if not motions:
            raise ConfigError(f"no motions of subjects {subjects} in {cfg.data}")
        with progress_bar() as bar:
            task = bar.add_task("clips", total=clips, info=str(out))
            summary = build_detections(motions, out, settings, load_run_config(run_config),
                                       progress=lambda d, t: bar.update(task, completed=d))
    console.print(f"{summary.made} clips made ({summary.frames} frames of tracks), {summary.kept} already there, "
                  f"in {summary.seconds / 60:.1f} min -> {out}", highlight=False)


def evaluate_contacts_command(
    config: Optional[Path] = TRAIN_CONFIG,
    data: Optional[str] = MOCAP_FOLDER,
    subjects: Optional[str] = HELD_OUT,
    clips: int = typer.Option(8, help="Number of rendered clips (motions spread over the subjects)."),
    seconds: float = CLIP_SECONDS,
    seed: int = CLIP_SEED,
    weights: Optional[Path] = LIFTER_WEIGHTS,
    device: str = DEVICE,
    run_config: Optional[Path] = RUN_SETTINGS,
) -> None:
    """Foot skate with and without foot locking, and contact precision/recall, on rendered held-out clips."""
    settings = load_run_config(run_config)
    if not settings.lift.fit.enabled:
        raise ConfigError("evaluate-contacts measures the fitted skeleton: lift.fit.enabled is off")
    motions, wanted = _held_out(config, data, subjects, seconds)
    sliced = _spread(motions, clips, seconds)
    lifter = Lifter.load(weights, device)
    with progress_bar() as bar:
        task = bar.add_task("clips", total=len(sliced), info=f"subjects {','.join(sorted(wanted))}")
        rows = evaluate_skate(sliced, lifter, synth=SynthConfig(seed=seed), run_config=settings,
                              progress=lambda d, t: bar.update(task, completed=d))
    typer.echo(format_skate(rows))


def evaluate_detections_command(
    folder: Path = typer.Argument(..., help="A build-detections folder of held-out subjects (--subjects 3,7,12)."),
    weights: Optional[Path] = LIFTER_WEIGHTS,
    device: str = DEVICE,
    config: Optional[Path] = TRAIN_CONFIG,
) -> None:
    """A lifter's MPJPE / P-MPJPE / MPJVE on stored 2D-stage tracks (seconds per lifter, same 2D for all)."""
    cfg = load_config(TrainConfig, config, {})
    rows = score_detections(folder, Lifter.load(weights, device), cfg.val_subjects + cfg.test_subjects)
    typer.echo(format_scores(rows))


def _spread(motions: list[Motion], clips: int, seconds: float) -> list[Motion]:
    """``clips`` motions spread over the list (and so over subjects and actions), each cut from its middle."""
    picks = [motions[int(i)] for i in np.linspace(0, len(motions) - 1, min(clips, len(motions)))] if motions else []
    return [_middle(m, seconds) for m in picks]


def _middle(motion: Motion, seconds: float) -> Motion:
    """The ``seconds`` in the middle of a motion."""
    return slice_motion(motion, max(0.0, (len(motion.joints) / motion.fps - seconds) / 2), seconds)


def _range(text: str) -> tuple[float, float]:
    """MIN,MAX from the command line."""
    try:
        near, far = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--distance must be MIN,MAX like 2.5,4; got {text!r}") from None
    return near, far
