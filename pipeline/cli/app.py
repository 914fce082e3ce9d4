"""The ``pose3d`` command line: parses arguments, draws progress, and calls the library.

Errors of the project's own types become one line on stderr and their exit code; ``--verbose`` shows the
traceback.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from pipeline import __version__
from pipeline.cli import ablate, batch, cleanup, data, train, ui, weights
from pipeline.errors import ConfigError
from pipeline.io.export import load_keypoints_npz, save_poses_npz
from pipeline.io.outputs import check_outputs
from pipeline.keypoints import fill_gaps, to_h36m
from pipeline.lifting.bank import PoseBankConfig
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig
from pipeline.lifting.trajectory import focal_from_fov
from pipeline.run import LiftStageConfig, check_run_files, load_run_config, load_trajectory, run_video, with_choices
from pipeline.twod.stage import resolve_backend

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Video of people in, tracked 2D and 3D skeletons out.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pose3d {__version__}")
        raise typer.Exit()


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
         version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """pose3d: 2D and 3D human pose from ordinary video."""
    ui.state["verbose"] = verbose


_TRAJECTORY_HELP = ("Also estimate where the person is: the pelvis's camera-frame path (paper 002's trajectory "
                    "network, weights/trajectory.pt).")
_FOV_HELP = ("Camera field of view across the longer image side, degrees, for the trajectory's metric depth "
             "(default: 55; depth scales with the error of this guess).")
_POSE_BANK_HELP = ("Long-term pose bank fused into the lifter's windows (paper 003): off, online (past frames "
                   "only) or offline (the whole track).")


def _lifter_config(arch: Optional[str], channels: int, causal: bool):
    if arch is None:
        return None
    try:
        widths = tuple(int(v) for v in arch.split(","))
    except ValueError:
        raise ConfigError(f"--arch must be comma-separated kernel widths like 3,3,3,3,3; got {arch!r}") from None
    return LifterConfig(filter_widths=widths, channels=channels, causal=causal)


@app.command()
@ui.handle_errors
def run(
    video: Path = typer.Argument(..., help="Input video (mp4/mov/avi/mkv/webm...)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Rendered MP4 (H.264 + the input's audio)."),
    export: list[Path] = typer.Option([], "--export", "-e", help="Data file(s): .json, .npz, .csv, NAME_angles.csv "
                                      "(joint angles) or .bvh (one NAME_track<ID>.bvh per person); repeatable."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run YAML (configs/run.yaml)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (overrides the config)."),
    backend: Optional[str] = typer.Option(
        None, help="2D backend: auto (YOLO + mmpose when their weights are present or downloadable, else "
                   "offline), yolo-mmpose, offline (the bundled NanoDet detector + BlazePose on each person), or "
                   "mediapipe (BlazePose alone, a few large people). Default: the config's (auto)."),
    layout: Optional[str] = typer.Option(None, help="side (video | 3D view), pip (3D inset) or overlay."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", envvar="POSE3D_WEIGHTS_DIR",
                                               help="Folder of the YOLO / mmpose weight files."),
    pose_bank: Optional[str] = typer.Option(None, "--pose-bank", help=_POSE_BANK_HELP + " Default: the config's (off)."),
    trajectory: Optional[bool] = typer.Option(None, help=_TRAJECTORY_HELP + " Default: the config's."),
    fov: Optional[float] = typer.Option(None, help=_FOV_HELP),
    fit: Optional[bool] = typer.Option(None, "--fit/--no-fit", help="One constant-bone skeleton per person (joint "
                                       "rotations, contacts, BVH); --no-fit exports the lifter's raw joints. "
                                       "Default: the config's (on)."),
    trust_weights: bool = typer.Option(False, "--trust-weights", help=(
        "Load YOLO / mmpose weight files whose complete SHA-256 pose3d does not know, although loading them can "
        "run code from the file: only for files of your own.")),
) -> None:
    """Video in; tracked 2D skeletons drawn on it, 3D skeletons beside it, and the data exported."""
    if out is None and not export:
        raise ConfigError("nothing to write: give --out OUT.mp4 and/or --export FILE")
    cfg = with_choices(load_run_config(config), backend=backend, weights_dir=weights_dir, device=device,
                       weights=weights, layout=layout, pose_bank=pose_bank, trajectory=trajectory, fov_deg=fov,
                       fit=fit, trust_weights=trust_weights)
    check_run_files(video, out, export)
    t0 = time.perf_counter()
    with ui.progress_bar() as bar:
        task = bar.add_task("weights", total=None, info="", visible=False)
        twod, notice = resolve_backend(cfg.twod, cfg.weights_dir, cfg.fetch_weights, lambda name, done, total: bar.update(
            task, description=f"download {name}", completed=done, total=total, visible=True))
    if notice:
        ui.console.print(notice, highlight=False, markup=False)
    cfg = replace(cfg, twod=twod)
    with ui.native_logs_muted() as screen, ui.progress_bar(screen) as bar:
        tasks: dict[str, int] = {}
        names = {"2d": "2D people + keypoints", "lift": "lift to 3D", "fit": "fit skeletons",
                 "render": "render + encode", "export": "export"}

        def report(p):
            if p.stage not in tasks:
                tasks[p.stage] = bar.add_task(names.get(p.stage, p.stage), total=p.total or None, info="")
            task = bar.tasks[tasks[p.stage]]
            rate = p.done / task.elapsed if task.elapsed else 0.0
            unit = "tracks" if p.stage in ("lift", "fit", "export") else "fps"
            bar.update(tasks[p.stage], completed=p.done, total=max(p.total, p.done) or None,
                       info=f"{rate:.1f} {unit}" if unit == "fps" else "")

        result = run_video(video, out, cfg, export, progress=report)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    outputs = [str(p) for p in ([result.output] if result.output else []) + result.exports]
    people = f"{len(result.tracks)} {'person' if len(result.tracks) == 1 else 'people'}"
    ui.console.print(f"{result.frames} frames ({result.video.width}x{result.video.height}, {result.video.fps:.2f} fps), "
                     f"{people} tracked ({result.backend}); {stages}; total {time.perf_counter() - t0:.1f} s. "
                     f"Wrote {', '.join(outputs)}.", highlight=False)
    for line in result.notices:
        ui.console.print(line, highlight=False, markup=False)


@app.command()
@ui.handle_errors
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
    t0 = time.perf_counter()
    # Everything is checked, and every model loaded, before any work.
    check_outputs([keypoints], [("--out", out, (".npz",))])
    if focal is not None and not focal > 0:
        raise ConfigError(f"--focal must be a positive number of pixels, got {focal}")
    stage = LiftStageConfig(trajectory=trajectory or bool(trajectory_weights), fov_deg=fov,
                            trajectory_weights=str(trajectory_weights) if trajectory_weights else None)
    track = load_keypoints_npz(keypoints, fps)
    lifter = Lifter.load(weights, device, _lifter_config(arch, channels, causal))
    mover = load_trajectory(stage, device)
    kp = fill_gaps(to_h36m(track.keypoints, track.scores, track.format)[0])
    poses = lifter.lift(kp, track.width, track.height, track.fps, flip=flip, bank=PoseBankConfig(mode=pose_bank))
    focal = focal or (focal_from_fov(track.width, track.height, fov) if fov is not None else None)
    roots = None if mover is None else mover.lift(kp, track.width, track.height, track.fps, focal=focal, flip=flip)
    save_poses_npz(out, poses, track.fps, kp, roots)
    ui.console.print(f"lifted {len(poses)} frames ({track.format}, {track.fps:g} fps) on {lifter.device} "
                     f"in {time.perf_counter() - t0:.2f} s -> {out}")


app.command("train")(ui.handle_errors(train.train_command))
app.command("evaluate")(ui.handle_errors(train.evaluate_command))
app.command("interpolate")(ui.handle_errors(train.interpolate_command))
app.add_typer(weights.weights_app, name="weights")
app.command("ablate")(ui.handle_errors(ablate.ablate_command))
app.command("train-ankle")(ui.handle_errors(cleanup.train_ankle_command))
app.command("evaluate-cleanup")(ui.handle_errors(cleanup.evaluate_cleanup_command))
app.command("jitter")(ui.handle_errors(cleanup.jitter_command))
app.command("project")(ui.handle_errors(data.project_command))
app.command("synth")(ui.handle_errors(data.synth_command))
app.command("evaluate-video")(ui.handle_errors(data.evaluate_video_command))
app.command("evaluate-tracking")(ui.handle_errors(data.evaluate_tracking_command))
app.command("build-detections")(ui.handle_errors(data.build_detections_command))
app.command("evaluate-detections")(ui.handle_errors(data.evaluate_detections_command))
app.command("evaluate-contacts")(ui.handle_errors(data.evaluate_contacts_command))
app.command("batch")(batch.batch_command)  # handles its own errors (interrupts write the summary first)
