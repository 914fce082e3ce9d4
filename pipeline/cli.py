"""The ``pose3d`` command line: parses arguments, draws progress, and calls the library.

Errors of the project's own types become one line on stderr and their exit code; ``--verbose`` shows the
traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.errors import Pose3DError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Video of people in, tracked 2D and 3D skeletons out.")
console = Console(stderr=True)
_state = {"verbose": False}


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors.")) -> None:
    """pose3d: 2D and 3D human pose from ordinary video."""
    _state["verbose"] = verbose


def handle_errors(fn: Callable) -> Callable:
    """Turn the project's exceptions into one line and an exit code (traceback with --verbose)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Pose3DError as exc:
            if _state["verbose"]:
                console.print_exception()
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def _progress(on: Console | None = None) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=on or console, transient=False)


@contextlib.contextmanager
def _native_logs_muted():
    """Yield a console for progress while file descriptor 2 goes to /dev/null.

    MediaPipe's C++ graph writes INFO/WARNING lines straight to fd 2 as it starts and runs, over the progress
    bars. The bars are drawn on a duplicate of fd 2 meanwhile. Nothing is muted with --verbose, or when
    stderr is not a real file (tests, pipes).
    """
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real or _state["verbose"]:
        yield console
        return
    from pipeline.keypoints_mediapipe import native_stderr_silenced

    sys.stderr.flush()
    with os.fdopen(os.dup(2), "w") as out, native_stderr_silenced():
        yield Console(file=out, force_terminal=console.is_terminal)


_TRAJECTORY_HELP = ("Also estimate where the person is: the pelvis's camera-frame path (paper 002's trajectory "
                    "network, weights/trajectory.pt).")
_FOV_HELP = ("Camera field of view across the longer image side, degrees, for the trajectory's metric depth "
             "(default: 55; depth scales with the error of this guess).")
_POSE_BANK_HELP = ("Long-term pose bank fused into the lifter's windows (paper 003): off, online (past frames "
                   "only) or offline (the whole track).")


def _lifter_config(arch: Optional[str], channels: int, causal: bool):
    from pipeline.config import LifterConfig

    if arch is None:
        return None
    try:
        widths = tuple(int(v) for v in arch.split(","))
    except ValueError:
        from pipeline.errors import ConfigError

        raise ConfigError(f"--arch must be comma-separated kernel widths like 3,3,3,3,3; got {arch!r}") from None
    return LifterConfig(filter_widths=widths, channels=channels, causal=causal)


@app.command()
@handle_errors
def run(
    video: Path = typer.Argument(..., help="Input video (mp4/mov/avi/mkv/webm...)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Rendered MP4 (H.264 + the input's audio)."),
    export: list[Path] = typer.Option([], "--export", "-e", help="Data file(s): .json, .npz or .csv (repeatable)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run YAML (configs/run.yaml)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (overrides the config)."),
    backend: Optional[str] = typer.Option(
        None, help="2D backend: auto (YOLO + mmpose when their weights are present or downloadable, else "
                   "MediaPipe), yolo-mmpose, or mediapipe (bundled, offline). Default: the config's (auto)."),
    layout: Optional[str] = typer.Option(None, help="side (video | 3D view), pip (3D inset) or overlay."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", envvar="POSE3D_WEIGHTS_DIR",
                                               help="Folder of the YOLO / mmpose weight files."),
    pose_bank: Optional[str] = typer.Option(None, "--pose-bank", help=_POSE_BANK_HELP + " Default: the config's (off)."),
    trajectory: Optional[bool] = typer.Option(None, help=_TRAJECTORY_HELP + " Default: the config's."),
    fov: Optional[float] = typer.Option(None, help=_FOV_HELP),
) -> None:
    """Video in; tracked 2D skeletons drawn on it, 3D skeletons beside it, and the data exported."""
    from dataclasses import replace

    from pipeline.errors import ConfigError
    from pipeline.run import load_run_config, run_video, with_choices
    from pipeline.twod import resolve_backend

    if out is None and not export:
        raise ConfigError("nothing to write: give --out OUT.mp4 and/or --export FILE")
    cfg = with_choices(load_run_config(config), backend=backend, weights_dir=weights_dir, device=device,
                       weights=weights, layout=layout, pose_bank=pose_bank, trajectory=trajectory, fov_deg=fov)
    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("weights", total=None, info="", visible=False)
        twod, notice = resolve_backend(cfg.twod, cfg.weights_dir, cfg.fetch_weights, lambda name, done, total: bar.update(
            task, description=f"download {name}", completed=done, total=total, visible=True))
    if notice:
        console.print(notice, highlight=False, markup=False)
    cfg = replace(cfg, twod=twod)
    with _native_logs_muted() as screen, _progress(screen) as bar:
        tasks: dict[str, int] = {}
        names = {"2d": "2D people + keypoints", "lift": "lift to 3D", "render": "render + encode", "export": "export"}

        def report(p):
            if p.stage not in tasks:
                tasks[p.stage] = bar.add_task(names.get(p.stage, p.stage), total=p.total or None, info="")
            task = bar.tasks[tasks[p.stage]]
            rate = p.done / task.elapsed if task.elapsed else 0.0
            unit = "tracks" if p.stage in ("lift", "export") else "fps"
            bar.update(tasks[p.stage], completed=p.done, total=max(p.total, p.done) or None,
                       info=f"{rate:.1f} {unit}" if unit == "fps" else "")

        result = run_video(video, out, cfg, export, progress=report)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    outputs = [str(p) for p in ([result.output] if result.output else []) + result.exports]
    console.print(f"{result.frames} frames ({result.video.width}x{result.video.height}, {result.video.fps:.2f} fps), "
                  f"{len(result.tracks)} {'person' if len(result.tracks) == 1 else 'people'} tracked ({result.backend}); {stages}; total {time.perf_counter() - t0:.1f} s. "
                  f"Wrote {', '.join(outputs)}.", highlight=False)


@app.command()
@handle_errors
def lift(
    keypoints: Path = typer.Argument(..., help="Input .npz: keypoints (T,J,2) px, scores, width, height, fps, format."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz with poses3d (T,17,3) metres."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    fps: Optional[float] = typer.Option(None, help="Override the input's frame rate."),
    flip: bool = typer.Option(True, help="Flip test-time augmentation."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    arch: Optional[str] = typer.Option(None, help="Kernel widths for official VideoPose3D checkpoints, e.g. 3,3,3,3,3."),
    channels: int = typer.Option(1024, help="Channels for official VideoPose3D checkpoints."),
    causal: bool = typer.Option(False, help="Causal architecture (official checkpoints)."),
    pose_bank: str = typer.Option("off", "--pose-bank", help=_POSE_BANK_HELP),
    trajectory: bool = typer.Option(False, help=_TRAJECTORY_HELP),
    trajectory_weights: Optional[Path] = typer.Option(None, help="Trajectory checkpoint (default: weights/trajectory.pt)."),
    fov: Optional[float] = typer.Option(None, help=_FOV_HELP),
    focal: Optional[float] = typer.Option(None, help="Focal length in pixels (instead of --fov)."),
) -> None:
    """Lift a 2D keypoint track (.npz) to 3D poses (.npz)."""
    from pipeline.bank import PoseBankConfig
    from pipeline.export import load_keypoints_npz, save_poses_npz
    from pipeline.keypoints import fill_gaps, to_h36m
    from pipeline.lift import Lifter
    from pipeline.run import LiftStageConfig, load_trajectory
    from pipeline.trajectory import focal_from_fov

    t0 = time.perf_counter()
    track = load_keypoints_npz(keypoints, fps)
    lifter = Lifter.load(weights, device, _lifter_config(arch, channels, causal))
    kp, _ = to_h36m(track.keypoints, track.scores, track.format)
    kp = fill_gaps(kp)
    poses = lifter.lift(kp, track.width, track.height, track.fps, flip=flip, bank=PoseBankConfig(mode=pose_bank))
    mover = load_trajectory(LiftStageConfig(trajectory=trajectory or bool(trajectory_weights),
                                            trajectory_weights=str(trajectory_weights) if trajectory_weights else None),
                            device)
    focal = focal or (focal_from_fov(track.width, track.height, fov) if fov else None)
    roots = None if mover is None else mover.lift(kp, track.width, track.height, track.fps, focal=focal, flip=flip)
    save_poses_npz(out, poses, track.fps, kp, roots)
    console.print(f"lifted {len(poses)} frames ({track.format}, {track.fps:g} fps) on {lifter.device} "
                  f"in {time.perf_counter() - t0:.2f} s -> {out}")





@app.command()
@handle_errors
def project(
    mocap: Path = typer.Argument(..., help="Mocap file (.bvh, .amc; gzipped or plain)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz of 2D keypoints (the `pose3d lift` input format)."),
    gt: Optional[Path] = typer.Option(None, help="Also write the camera-frame 3D ground truth (.npz)."),
    fps: float = typer.Option(30.0, help="Frame rate of the output track, Hz."),
    seed: int = typer.Option(0, help="Seed of the random virtual camera."),
) -> None:
    """Film a mocap motion with a random virtual camera: 2D keypoints (+ 3D ground truth) for testing `lift`."""
    import numpy as np
    import torch

    from pipeline.cameras import film
    from pipeline.config import CameraConfig
    from pipeline.export import atomic_save_npz
    from pipeline.mocap import load_motion, resample

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


@app.command()
@handle_errors
def synth(
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
    from pipeline.evaluate_video import slice_motion
    from pipeline.mocap import load_motion
    from pipeline.synth import SynthConfig, save_ground_truth, synthesize, write_clip

    motion = load_motion(mocap)
    if start or duration:
        motion = slice_motion(motion, start, duration if duration else len(motion.joints) / motion.fps)
    with _progress() as bar:
        task = bar.add_task("rendering", total=None, info="")
        clip = synthesize(motion, SynthConfig(width=width, height=height, fps=fps, seed=seed),
                          progress=lambda d, t: bar.update(task, completed=d, total=t))
        write_clip(clip, out)
    if gt:
        save_ground_truth(gt, clip)
    console.print(f"{motion.name}: {clip.num_frames} frames at {fps:g} fps, {width}x{height} -> {out}"
                  + (f" (+ ground truth {gt})" if gt else ""), highlight=False)


@app.command("evaluate-video")
@handle_errors
def evaluate_video(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML: data and held-out subjects."),
    data: Optional[str] = typer.Option(None, help="Mocap folder."),
    subjects: Optional[str] = typer.Option(None, help="Comma-separated subjects (default: the config's test subjects)."),
    clips: int = typer.Option(8, help="Number of rendered clips (motions spread over the subjects)."),
    seconds: float = typer.Option(4.0, help="Length of each clip, seconds."),
    seed: int = typer.Option(0, help="Seed of the first clip's look and camera."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Whole-pipeline MPJPE / P-MPJPE on rendered clips of held-out subjects."""
    from pipeline.config import TrainConfig, load_config
    from pipeline.evaluate_video import evaluate_videos, format_rows, slice_motion
    from pipeline.lift import Lifter
    from pipeline.mocap import load_dataset
    from pipeline.synth import SynthConfig

    cfg = load_config(TrainConfig, config, {"data": data})
    wanted = {s.strip() for s in subjects.split(",")} if subjects else set(cfg.test_subjects)
    lifter = Lifter.load(weights, device)
    motions = [m for m in load_dataset(cfg.data, fps=30.0, subjects=wanted) if len(m.joints) >= 30 * seconds]
    # Spread the clips over the motions (and so over subjects and actions), each from its middle.
    picks = [motions[int(i)] for i in np.linspace(0, len(motions) - 1, min(clips, len(motions)))] if motions else []
    sliced = [slice_motion(m, max(0.0, (len(m.joints) / m.fps - seconds) / 2), seconds) for m in picks]
    with _progress() as bar:
        task = bar.add_task("clips", total=len(sliced), info=f"subjects {','.join(sorted(wanted))}")
        rows = evaluate_videos(sliced, lifter, synth=SynthConfig(seed=seed),
                               progress=lambda d, t: bar.update(task, completed=d))
    typer.echo(format_rows(rows))

from pipeline.cli_train import evaluate, train  # noqa: E402 -- training and evaluation on mocap

app.command()(handle_errors(train))
app.command()(handle_errors(evaluate))

from pipeline.cli_weights import weights_app  # noqa: E402 -- mounted after the commands it sits beside

app.add_typer(weights_app, name="weights")

from pipeline.cli_ablate import ablate  # noqa: E402 -- its own module keeps this one short

app.command()(handle_errors(ablate))

from pipeline.cli_cleanup import evaluate_cleanup, jitter, train_ankle  # noqa: E402 -- the 2D clean-up's commands

app.command("train-ankle")(handle_errors(train_ankle))
app.command("evaluate-cleanup")(handle_errors(evaluate_cleanup))
app.command()(handle_errors(jitter))

from pipeline.cli_batch import batch  # noqa: E402 -- folders of clips (errors handled there)

app.command("batch")(batch)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
