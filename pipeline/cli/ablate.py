"""``pose3d ablate``: the ablation table (methods x test-sequence intervals) on held-out mocap subjects.

Registered on the main app by :mod:`pipeline.cli.app`, which wraps it in
:func:`pipeline.cli.ui.handle_errors`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.ui import progress_bar
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.evaluation.ablate import format_ablation, methods_for, parse_model, run_ablation
from pipeline.run import load_run_config
from pipeline.skeleton import H36M_LIMB_JOINTS
from pipeline.training.config import TrainConfig
from pipeline.training.split import load_split

_MODEL_HELP = ("Row NAME=PATH: a lifter checkpoint (repeatable; NAME alone is the shipped lifter). "
               "Default: baseline = the shipped lifter.")


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated whole numbers like 1,3,5,7; got {text!r}") from None
    if any(v < 1 for v in values):
        raise ConfigError(f"{option} values must be >= 1; got {text!r}")
    return values


def ablate_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML: data, split, cameras, fps."),
    data: Optional[str] = typer.Option(None, help="Mocap folder."),
    subjects: Optional[str] = typer.Option(None, help="Comma-separated subjects (default: the config's test subjects)."),
    model: list[str] = typer.Option([], "--model", "-m", help=_MODEL_HELP),
    pose_bank: str = typer.Option("off,online,offline", "--pose-bank",
                                  help="Pose-bank modes crossed with every model (paper 003): off, online, offline."),
    run_config: Optional[Path] = typer.Option(None, "--run-config",
                                              help="Run YAML whose lift.pose_bank gives the bank settings "
                                                   "(default: the library defaults, as in configs/run.yaml)."),
    intervals: str = typer.Option("1,3,5,7", help="Test sequences keep 1 frame in N (paper 003: 1,3,5,7)."),
    segment: int = typer.Option(250, help="Lifted frames per random-camera segment."),
    seed: int = typer.Option(0, help="Seed of cameras and 2D noise (the same for every row)."),
    all_joints: bool = typer.Option(False, help="Average over all 17 joints instead of the 13 limb joints."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write every cell as JSON."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """MPJPE / P-MPJPE / MPJVE of lifter variants on held-out subjects at intervals 1, 3, 5, 7 (paper 003)."""
    cfg = load_config(TrainConfig, config, {"data": data})
    if subjects:
        cfg = replace(cfg, test_subjects=tuple(s.strip() for s in subjects.split(",")))
    bank = load_run_config(run_config).lift.pose_bank
    methods = methods_for([parse_model(m) for m in model] or [("baseline", None)],
                          [m.strip() for m in pose_bank.split(",")], bank)
    steps = _ints(intervals, "--intervals")
    with progress_bar() as bar:
        task = bar.add_task("reading mocap", total=None, info="")
        split = load_split(cfg, progress=lambda d, t: bar.update(task, completed=d, total=t))
        task = bar.add_task("evaluating", total=None, info=f"subjects {','.join(cfg.test_subjects)}")
        cells = run_ablation(methods, split.test, cfg.camera, intervals=steps, fps=cfg.fps, segment_frames=segment,
                             seed=seed, joints=tuple(range(17)) if all_joints else H36M_LIMB_JOINTS, device=device,
                             progress=lambda d, t: bar.update(task, completed=d, total=t))
    for protocol, title in (("gt", "exact 2D"), ("noisy", "detector-like noisy 2D")):
        typer.echo(f"\n{title} ({protocol}):\n{format_ablation(cells, protocol)}")
    typer.echo(f"\nsubjects {', '.join(cfg.test_subjects)}; {'all 17' if all_joints else '13 limb'} joints; mm; "
               f"MPJVE in mm per lifted frame; brackets: change against the first row of each block")
    if json_out:
        json_out.write_text(json.dumps([asdict(c) for c in cells], indent=2))
