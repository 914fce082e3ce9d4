"""``pose3d project``, ``pose3d synth`` and ``pose3d evaluate-video``: mocap filmed, rendered and measured."""

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
from pipeline.evaluation.synth import SynthConfig, save_ground_truth, synthesize, write_clip
from pipeline.evaluation.video import evaluate_videos, format_rows, slice_motion
from pipeline.io.export import atomic_save_npz
from pipeline.lifting.lifter import Lifter
from pipeline.run import RunConfig
from pipeline.training.cameras import film
from pipeline.training.config import CameraConfig, TrainConfig
from pipeline.training.mocap import load_dataset, load_motion, resample
from pipeline.twod.stage import TwoDConfig


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
    mocap: Path = typer.Argument(..., help="Mocap file (.bvh, .amc; gzipped or plain)."),
    out: Path = typer.Option(..., "--out", "-o", help="Rendered clip (.mp4, H.264)."),
    gt: Optional[Path] = typer.Option(None, help="Ground truth .npz (3D camera frame, 2D pixels, camera)."),
    start: float = typer.Option(0.0, help="Start of the slice, seconds into the motion."),
    duration: Optional[float] = typer.Option(None, help="Length of the slice, seconds (default: to the end)."),
    width: int = typer.Option(960, help="Image width, pixels."),
    height: int = typer.Option(540, help="Image height, pixels."),
    fps: float = typer.Option(30.0, help="Frame rate, Hz."),
    seed: int = typer.Option(0, help="Seeds the person's look, the camera and the scene."),
) -> None:
    """Render a mocap motion as a shaded humanoid from a virtual camera, with exact 3D/2D ground truth."""
    motion = load_motion(mocap)
    if start or duration:
        motion = slice_motion(motion, start, duration if duration else len(motion.joints) / motion.fps)
    with progress_bar() as bar:
        task = bar.add_task("rendering", total=None, info="")
        clip = synthesize(motion, SynthConfig(width=width, height=height, fps=fps, seed=seed),
                          progress=lambda d, t: bar.update(task, completed=d, total=t))
        write_clip(clip, out)
    if gt:
        save_ground_truth(gt, clip)
    console.print(f"{motion.name}: {clip.num_frames} frames at {fps:g} fps, {width}x{height} -> {out}"
                  + (f" (+ ground truth {gt})" if gt else ""), highlight=False)


def evaluate_video_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML: data and held-out subjects."),
    data: Optional[str] = typer.Option(None, help="Mocap folder."),
    subjects: Optional[str] = typer.Option(None, help="Comma-separated subjects (default: the config's test subjects)."),
    clips: int = typer.Option(8, help="Number of rendered clips (motions spread over the subjects)."),
    seconds: float = typer.Option(4.0, help="Length of each clip, seconds."),
    seed: int = typer.Option(0, help="Seed of the first clip's look and camera."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    backend: str = typer.Option("auto", help="2D backend: auto, offline, mediapipe or yolo-mmpose."),
    distance: Optional[str] = typer.Option(None, help="MIN,MAX camera distance as a multiple of the closest that "
                                           "frames the person (default: the renderer's); 2.5,4 gives figures "
                                           "about 100 px tall at 960x540."),
) -> None:
    """Whole-pipeline MPJPE / P-MPJPE on rendered clips of held-out subjects."""
    run_config = RunConfig(twod=TwoDConfig(backend=backend))
    synth = SynthConfig(seed=seed)
    if distance:
        try:
            near, far = (float(v) for v in distance.split(","))
        except ValueError:
            raise ConfigError(f"--distance must be MIN,MAX like 2.5,4; got {distance!r}") from None
        synth = replace(synth, camera=replace(synth.camera, distance_scale=(near, far)))
    cfg = load_config(TrainConfig, config, {"data": data})
    wanted = {s.strip() for s in subjects.split(",")} if subjects else set(cfg.test_subjects)
    lifter = Lifter.load(weights, device)
    motions = [m for m in load_dataset(cfg.data, fps=30.0, subjects=wanted) if len(m.joints) >= 30 * seconds]
    # Spread the clips over the motions (and so over subjects and actions), each from its middle.
    picks = [motions[int(i)] for i in np.linspace(0, len(motions) - 1, min(clips, len(motions)))] if motions else []
    sliced = [slice_motion(m, max(0.0, (len(m.joints) / m.fps - seconds) / 2), seconds) for m in picks]
    with progress_bar() as bar:
        task = bar.add_task("clips", total=len(sliced), info=f"subjects {','.join(sorted(wanted))}")
        rows = evaluate_videos(sliced, lifter, synth=synth, run_config=run_config,
                               progress=lambda d, t: bar.update(task, completed=d))
    typer.echo(format_rows(rows))
