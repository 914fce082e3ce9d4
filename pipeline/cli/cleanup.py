"""``pose3d train-ankle``, ``pose3d evaluate-cleanup`` and ``pose3d jitter``: the 2D clean-up's commands.

Registered on the main app by :mod:`pipeline.cli.app`, which wraps each in
:func:`pipeline.cli.ui.handle_errors`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import torch
import typer

from pipeline.assets import shipped_config
from pipeline.cleanup.ankle import AnkleRegressor
from pipeline.cli.ui import console, native_logs_muted, progress_bar
from pipeline.config import load_config
from pipeline.evaluation.cleanup import evaluate_cleanup as run_eval
from pipeline.evaluation.cleanup import format_cleanup_report
from pipeline.evaluation.jitter import compare_clip, format_jitter
from pipeline.lifting.lifter import Lifter
from pipeline.run import load_run_config
from pipeline.training.ankle import AnkleTrainConfig
from pipeline.training.ankle import train_ankle as fit
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import Clip
from pipeline.training.mocap import load_dataset
from pipeline.training.split import action_of, load_split


def _split_config(config: Optional[Path], data: Optional[str], subjects: Optional[str] = None):
    cfg = load_config(TrainConfig, config or shipped_config("train.yaml"), {"data": data})
    if subjects:
        cfg = replace(cfg, test_subjects=tuple(s.strip() for s in subjects.split(",")))
    return cfg


def train_ankle_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML of the lifter: data, subject "
                                          "split, cameras (default: the shipped train.yaml)."),
    ankle_config: Optional[Path] = typer.Option(None, "--ankle-config", help="Ankle training YAML: epochs, samples, "
                                                "corruption (default: the shipped train_ankle.yaml)."),
    data: Optional[str] = typer.Option(None, help="Mocap folder."),
    out: Path = typer.Option(Path("runs/ankle.pt"), "--out", "-o", help="Checkpoint to write."),
    epochs: Optional[int] = typer.Option(None, help="Override the ankle config's epochs."),
) -> None:
    """Fit the ankle regressors (paper 001's linear forms and dense nets) on mocap of the training subjects."""
    split_cfg = _split_config(config, data)
    cfg = load_config(AnkleTrainConfig, ankle_config or shipped_config("train_ankle.yaml"), {"epochs": epochs})
    with progress_bar() as bar:
        task = bar.add_task("reading mocap", total=None, info="")
        split = load_split(split_cfg, progress=lambda d, t: bar.update(task, completed=d, total=t))
        bar.update(task, info=f"train {len(split.train)} / val {len(split.val)} motions (test subjects not used)")
        epoch_task = bar.add_task("epochs", total=cfg.epochs, info="")
        step_task = bar.add_task("steps", total=None, info="")

        def report(p):
            if p.val is not None:
                bar.update(epoch_task, completed=p.epoch + 1, info=f"val error {p.val:.3f} torso lengths")
                return
            bar.update(step_task, completed=p.step + 1, total=p.steps, info=f"MSE {p.loss:.4f}")

        regressor = fit(split_cfg, cfg, split=split, progress=report)
    regressor.save(out)
    best = min(regressor.extra["history"], key=lambda h: h["net_corrupted"])
    console.print(f"validation subjects {', '.join(regressor.extra['split']['val'])}, mean ankle error in torso "
                  f"lengths on corrupted ankles: observed {best['observed_corrupted']:.3f}, linear "
                  f"{best['linear_corrupted']:.3f}, net {best['net_corrupted']:.3f} (epoch {best['epoch'] + 1}); "
                  f"shank/torso {regressor.shank_ratio:.3f}; {regressor.extra['seconds']:.0f} s -> {out}",
                  highlight=False)


def evaluate_cleanup_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML: data, held-out subjects, "
                                          "cameras (default: the shipped train.yaml)."),
    run_config: Optional[Path] = typer.Option(None, "--run-config", help="Run YAML whose `clean` section is the "
                                              "configured clean-up (default: the shipped run.yaml)."),
    data: Optional[str] = typer.Option(None, help="Mocap folder."),
    subjects: Optional[str] = typer.Option(None, help="Comma-separated subjects (default: the config's test subjects)."),
    fps: float = typer.Option(30.0, help="Frame rate the motions are filmed at, Hz (a typical video's)."),
    segment: float = typer.Option(5.0, help="Seconds per random-camera segment."),
    seed: int = typer.Option(0, help="Seed of cameras and 2D corruption."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights/lifter.pt)."),
    ankle_weights: Optional[Path] = typer.Option(None, help="Ankle checkpoint (default: the run config's, else weights/ankle.pt)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the rows as JSON."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Lifter MPJPE / P-MPJPE / MPJVE and 2D ankle error with no clean-up, each step alone, and all."""
    cfg = _split_config(config, data, subjects)
    clean = load_run_config(run_config or shipped_config("run.yaml")).clean
    lifter = Lifter.load(weights, device)
    regressor = AnkleRegressor.load(ankle_weights or clean.ankle.weights)
    with progress_bar() as bar:
        task = bar.add_task("reading mocap", total=None, info="")
        motions = load_dataset(cfg.data, fps=fps, subjects=set(cfg.test_subjects),
                               progress=lambda d, t: bar.update(task, completed=d, total=t))
        clips = [Clip(torch.from_numpy(m.joints), m.name, m.subject, action_of(m.description)) for m in motions]
        task = bar.add_task("evaluating", total=None, info=f"subjects {','.join(cfg.test_subjects)}")
        report = run_eval(lifter, regressor, clips, cfg.camera, clean, fps=fps, segment_s=segment, seed=seed,
                          progress=lambda d, t: bar.update(task, completed=d, total=t))
    typer.echo(format_cleanup_report(report))
    typer.echo(f"\nsubjects {', '.join(report.subjects)}; {report.segments} camera segments, {report.frames} frames "
               f"at {fps:g} Hz; {100 * report.ankle_wrong_fraction:.1f}% of ankle-frames corrupted; 3D errors in mm "
               f"over 13 limb joints, MPJVE in mm/frame; ankle errors in % of the person's height")
    if json_out:
        json_out.write_text(json.dumps(asdict(report), indent=2))


def jitter_command(
    videos: list[Path] = typer.Argument(..., help="Clips to measure."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run YAML: 2D stage settings, and the "
                                          "clean-up measured as 'on' (default: the shipped run.yaml)."),
    cache: Path = typer.Option(Path.home() / ".cache" / "pose3d" / "jitter", help="Folder of the cached 2D passes."),
    backend: Optional[str] = typer.Option(None, help="2D backend (default: the config's)."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (overrides the config)."),
) -> None:
    """2D and 3D jitter and bone-length variation of real clips, 2D clean-up off vs on."""
    cfg = load_run_config(config or shipped_config("run.yaml"))
    if backend:
        cfg = replace(cfg, twod=replace(cfg.twod, backend=backend))
    if device:
        cfg = replace(cfg, device=device)
    lifter = Lifter.load(weights or cfg.lift.weights, cfg.device)
    rows = []
    with native_logs_muted() as screen, progress_bar(screen) as bar:
        for video in videos:
            task = bar.add_task(f"2D {video.name}", total=None, info="")

            def report(p, task=task):
                if p.stage == "2d":
                    bar.update(task, completed=p.done, total=p.total or None)

            rows.append(compare_clip(video, cfg, lifter, cache, progress=report))
            bar.update(task, info=f"{rows[-1].off.tracks} tracks ({rows[-1].backend})")
    typer.echo(format_jitter(rows))
    typer.echo("\n2D jitter: mean |x[t+1] - 2x[t] + x[t-1]| of the COCO-17 keypoints (px/frame², and % of the "
               "person's height); 3D: of the lifted joints, mm/frame²; bone CV: std/mean of each bone's length "
               "over a track, averaged over the 16 bones")
