"""``pose3d train`` and ``pose3d evaluate``: fit a lifter (or trajectory model) on mocap and measure it.

Registered on the main app by :mod:`pipeline.cli.app`, which wraps each in
:func:`pipeline.cli.ui.handle_errors`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.ui import console, progress_bar
from pipeline.config import load_config
from pipeline.evaluation.evaluate import evaluate as run_eval
from pipeline.evaluation.evaluate import format_report
from pipeline.evaluation.trajectory import evaluate_trajectory
from pipeline.lifting.fit import FitConfig
from pipeline.lifting.lifter import Lifter, resolve_device
from pipeline.skeleton import H36M_LIMB_JOINTS
from pipeline.training.config import TrainConfig
from pipeline.training.interpolate import interpolate_weights
from pipeline.training.split import load_split
from pipeline.training.train import train as run_training


def train_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML (configs/train.yaml)."),
    data: Optional[str] = typer.Option(None, help="Mocap folder (MANIFEST.tsv or .bvh/.amc files)."),
    out: Path = typer.Option(Path("runs/lifter"), help="Folder for last.pt / best.pt."),
    epochs: Optional[int] = typer.Option(None, help="Override the config's epochs."),
    resume: bool = typer.Option(True, help="Continue from OUT/last.pt when it exists."),
    init: Optional[Path] = typer.Option(None, help="Start from these weights (fine-tuning; same architecture)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Train the 2D->3D lifter on mocap projected through random virtual cameras."""
    cfg = load_config(TrainConfig, config, {"data": data, "epochs": epochs, "init": str(init) if init else None})
    dev = resolve_device(device)
    with progress_bar() as bar:
        task = bar.add_task("reading mocap", total=None, info="")
        split = load_split(cfg, progress=lambda done, total: bar.update(task, completed=done, total=total))
        bar.update(task, info=f"train {len(split.train)} / val {len(split.val)} / test {len(split.test)} motions")
        epoch_task = bar.add_task("epochs", total=cfg.epochs, info="")
        step_task = bar.add_task("steps", total=None, info="")

        def report(p):
            if p.val_mpjpe_mm is not None:
                bar.update(epoch_task, completed=p.epoch + 1, info=f"val MPJPE {p.val_mpjpe_mm:.1f} mm")
                if not console.is_terminal:  # logs (nohup, CI) get one line per epoch instead of live bars
                    console.log(f"epoch {p.epoch + 1}/{p.epochs}: train MPJPE {p.mpjpe_mm:.1f} mm, "
                                f"val MPJPE {p.val_mpjpe_mm:.1f} mm, lr {p.lr:.2e}")
                return
            bar.update(epoch_task, completed=p.epoch)
            bar.update(step_task, completed=p.step + 1, total=p.steps,
                       info=f"loss {p.loss:.4f}  MPJPE {p.mpjpe_mm:.1f} mm  lr {p.lr:.2e}  {p.samples_per_s:.0f}/s")

        result = run_training(cfg, out, split=split, resume=resume, device=dev, progress=report)
    console.print(f"best validation MPJPE {result.best_val_mpjpe_mm:.1f} mm (exact 2D); "
                  f"checkpoints: {result.best}, {result.last}")


def _evaluate_trajectory(lifter, clips, cfg, segment: int, seed: int, torso_from_limbs: bool,
                         json_out: Optional[Path], progress) -> None:
    """``pose3d evaluate`` for a trajectory checkpoint: pelvis position error on the held-out subjects."""
    r = evaluate_trajectory(lifter.model, clips, cfg.camera, segment_frames=segment, seed=seed,
                            device=lifter.device, torso_from_limbs=torso_from_limbs, progress=progress)
    lines = ["| 2D | pelvis position error (mm) | depth error (mm) | error / distance |", "|---|---:|---:|---:|"]
    lines += [f"| {p} | {r.position_mm[p]:.0f} | {r.depth_mm[p]:.0f} | {100 * r.relative[p]:.1f}% |" for p in r.position_mm]
    typer.echo("\n".join(lines))
    typer.echo(f"\nsubjects {', '.join(cfg.test_subjects)}; {r.segments} camera segments, {r.frames} frames; "
               "camera frame, true intrinsics")
    if json_out:
        json_out.write_text(json.dumps(asdict(r), indent=2))


def interpolate_command(
    base: Path = typer.Argument(..., help="The lifter fine-tuning started from (e.g. the shipped weights/lifter.pt)."),
    tuned: Path = typer.Argument(..., help="The fine-tuned lifter (pose3d train's last.pt or best.pt)."),
    alpha: float = typer.Option(..., help="Weight of the tuned lifter, 0-1 (choose it on the validation subjects)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output checkpoint."),
) -> None:
    """Average two lifters' weights (WiSE-FT): most of a fine-tune's gain, most of the original's accuracy."""
    interpolate_weights(base, tuned, alpha, out)
    typer.echo(f"{1 - alpha:g} x {base} + {alpha:g} x {tuned} -> {out}")


def evaluate_command(
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML: data, split, cameras."),
    data: Optional[str] = typer.Option(None, help="Mocap folder."),
    subjects: Optional[str] = typer.Option(None, help="Comma-separated subjects (default: the config's test subjects)."),
    all_joints: bool = typer.Option(False, help="Average over all 17 joints instead of the 13 limb joints."),
    segment: int = typer.Option(250, help="Frames per random-camera segment."),
    seed: int = typer.Option(0, help="Seed of cameras and 2D noise."),
    centred: bool = typer.Option(False, help="Keep the subject at the image centre (no off-centre camera pans)."),
    torso: str = typer.Option("auto", help="2D pelvis/spine/thorax: 'auto' (the one the lifter trained on and "
                              "gets at inference), 'mocap' (the VideoPose3D protocol's) or 'limbs' (rebuilt from "
                              "hips and shoulders, as pose3d does for a 2D model's keypoints)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    fit: bool = typer.Option(False, "--fit", help="Score the fitted skeleton's joints (constant bones, as pose3d run "
                             "exports them) instead of the lifter's raw output."),
) -> None:
    """Report MPJPE / P-MPJPE / N-MPJPE / MPJVE (mm) on held-out subjects, per action and overall."""
    if torso not in ("auto", "mocap", "limbs"):
        raise typer.BadParameter(f"--torso must be auto, mocap or limbs, got {torso!r}")
    cfg = load_config(TrainConfig, config, {"data": data})
    if subjects:
        cfg = replace(cfg, test_subjects=tuple(s.strip() for s in subjects.split(",")))
    lifter = Lifter.load(weights, device)
    torso = ("limbs" if lifter.torso_from_limbs else "mocap") if torso == "auto" else torso
    limbs = torso == "limbs"
    cfg = replace(cfg, fps=lifter.train_fps, camera=replace(cfg.camera, off_centre=not centred))
    with progress_bar() as bar:
        task = bar.add_task("reading mocap", total=None, info="")
        split = load_split(cfg, progress=lambda d, t: bar.update(task, completed=d, total=t))
        task = bar.add_task("evaluating", total=None, info=f"subjects {','.join(cfg.test_subjects)}")
        if lifter.model.config.target == "trajectory":
            _evaluate_trajectory(lifter, split.test, cfg, segment, seed, limbs, json_out,
                                 lambda d, t: bar.update(task, completed=d, total=t))
            return
        report = run_eval(lifter.model, split.test, cfg.camera, segment_frames=segment, seed=seed,
                          joints=tuple(range(17)) if all_joints else H36M_LIMB_JOINTS, device=lifter.device,
                          torso_from_limbs=limbs, fit=FitConfig() if fit else None, fps=lifter.train_fps,
                          progress=lambda d, t: bar.update(task, completed=d, total=t))
    typer.echo(format_report(report))
    typer.echo(f"\nsubjects {', '.join(report.subjects)}; {report.segments} camera segments; "
               f"{'all 17' if all_joints else '13 limb'} joints; {torso} 2D torso; "
               f"{'fitted skeleton' if fit else 'raw lifter output'}; "
               f"MPJVE in mm/frame at {lifter.train_fps:g} Hz")
    if json_out:
        json_out.write_text(json.dumps(asdict(report), indent=2))
