"""Train the lifter on mocap seen through random virtual cameras (``pose3d train``).

Training follows VideoPose3D: AMSGrad, exponentially decaying learning rate, a decaying batch-norm
momentum, strided single-frame passes, horizontal flips; plus paper 000's temporal loss terms over K
consecutive output frames. Each epoch ends with a validation pass on held-out subjects and writes
``last.pt`` (everything needed to resume) and, when validation improves, ``best.pt``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch

from pipeline.config import to_dict
from pipeline.errors import ConfigError, ModelError
from pipeline.lifting.checkpoint import load_checkpoint, save_checkpoint
from pipeline.lifting.model import TemporalModel
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import PoseWindows
from pipeline.training.detected import DetectedWindows, read_folder
from pipeline.training.grow import grow
from pipeline.training.objective import Objective, TrainProgress, TrainResult, validate, validation_batch
from pipeline.training.semisup import train_semi
from pipeline.training.split import Split, load_split


def _resume_state(path: Path, config: TrainConfig, model: TemporalModel, optimizer) -> tuple[int, float]:
    """Load ``last.pt`` into model and optimizer; return (next epoch, best validation so far)."""
    loaded, meta = load_checkpoint(path, config.lifter)
    model.load_state_dict(loaded.state_dict())
    state = meta["extra"]["train_state"]
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]) + 1, float(state["best_val"])


def _initial_weights(config: TrainConfig) -> TemporalModel:
    """The ``init`` checkpoint's lifter: the same architecture, or a shallower one grown into it."""
    source, _ = load_checkpoint(config.init)
    if source.config == config.lifter:
        return source
    if source.config.filter_widths == config.lifter.filter_widths:
        raise ModelError(f"init {config.init}: stores {source.config}, which differs from lifter: {config.lifter}")
    return grow(source, config.lifter)


def detected_windows(config: TrainConfig, frames: int) -> DetectedWindows | None:
    """The ``detected.folder`` clips as training windows (None when it is not set)."""
    if config.detected.folder is None:
        return None
    if config.lifter.target == "trajectory":
        raise ConfigError("detected: the trajectory model trains on mocap only; remove detected.folder")
    runs = read_folder(config.detected.folder, config.fps, config.detected.min_frames,
                       config.val_subjects + config.test_subjects, training=True)
    return DetectedWindows(runs, config.lifter.receptive_field, frames, config.lifter.causal, config.augment.flip)


def train(config: TrainConfig, out_dir: str | Path, *, split: Split | None = None, resume: bool = False,
          device: str = "cpu", progress: Callable[[TrainProgress], None] | None = None) -> TrainResult:
    """Train a lifter and write checkpoints to ``out_dir``.

    Args:
        config: Training configuration.
        out_dir: Folder for ``last.pt`` / ``best.pt``.
        split: Pre-loaded data (default: read ``config.data``).
        resume: Continue from ``out_dir/last.pt`` when it exists.
        device: Torch device ("cpu", "cuda").
        progress: Called after every step with a :class:`TrainProgress`.

    Returns:
        A :class:`TrainResult`.
    """
    if config.semi.labeled_subjects:
        if config.init:
            raise ConfigError("init: semi-supervised runs train both networks from scratch; remove init or semi")
        if config.detected.folder:
            raise ConfigError("detected: semi-supervised runs train on mocap only; remove detected.folder or semi")

        return train_semi(config, out_dir, split or load_split(config), device, progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    split = split or load_split(config)
    frames = 1 if config.lifter.target == "trajectory" else config.loss.frames
    detected = detected_windows(config, frames)
    windows = PoseWindows(split.train, config.lifter.receptive_field, frames, config.lifter.causal, config.camera,
                          config.augment, detected, config.detected.error_share)
    objective = Objective(windows, config, detected)
    val_batch = validation_batch(split.val or split.train, config)
    model = TemporalModel(config.lifter).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, amsgrad=True)
    start, best = 0, math.inf
    last, best_path = out / "last.pt", out / "best.pt"
    if resume and last.exists():
        start, best = _resume_state(last, config, model, optimizer)
    elif config.init:
        model.load_state_dict(_initial_weights(config).state_dict())
    torso = config.augment.torso_from_limbs
    for epoch in range(start, config.epochs):
        total, error = _train_epoch(model, optimizer, objective, epoch, device, progress)
        val = validate(model, val_batch, device, objective if objective.trajectory else None)
        state = {"epoch": epoch, "best_val": min(best, val), "optimizer": optimizer.state_dict(),
                 "config": to_dict(config)}
        save_checkpoint(last, model, train_fps=config.fps, torso_from_limbs=torso,
                        extra={"train_state": state, "val_mpjpe_mm": val})
        if val < best:
            best = val
            save_checkpoint(best_path, model, train_fps=config.fps, torso_from_limbs=torso,
                            extra={"epoch": epoch, "val_mpjpe_mm": val, "config": to_dict(config)})
        if progress:
            steps = max(1, config.samples_per_epoch // config.batch_size)
            progress(TrainProgress(epoch, config.epochs, steps - 1, steps, total, error, config.learning_rate(epoch),
                                   0.0, val_mpjpe_mm=val))
    return TrainResult(best_path, last, best, config.epochs - start)


def _train_epoch(model: TemporalModel, optimizer, objective: Objective, epoch: int, device: str,
                 progress: Callable[[TrainProgress], None] | None) -> tuple[float, float]:
    """One epoch of steps at the epoch's learning rate and batch-norm momentum.

    Returns:
        (last step's loss, its mean position error in mm).
    """
    config = objective.config
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)  # epoch-seeded: resuming repeats nothing
    lr = config.learning_rate(epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    mom0, mom1 = config.bn_momentum
    model.set_bn_momentum(mom0 * (mom1 / mom0) ** (epoch / max(1, config.epochs - 1)))
    model.train()
    steps, t0 = max(1, config.samples_per_epoch // config.batch_size), time.perf_counter()
    for step in range(steps):
        x, y = objective.batch(config.batch_size, gen)
        total, error = objective.loss(model, x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if progress:
            rate = (step + 1) * config.batch_size / (time.perf_counter() - t0)
            progress(TrainProgress(epoch, config.epochs, step, steps, total.item(), error.item() * 1000, lr, rate))
    return total.item(), error.item() * 1000
