"""Train the lifter on mocap seen through random virtual cameras (``pose3d train``).

Training follows VideoPose3D: AMSGrad, exponentially decaying learning rate, a decaying batch-norm
momentum, strided single-frame passes, horizontal flips; plus paper 000's temporal loss terms over K
consecutive output frames. Each epoch ends with a validation pass on held-out subjects and writes
``last.pt`` (everything needed to resume) and, when validation improves, ``best.pt``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.config import TrainConfig, to_dict
from pipeline.dataset import Clip, PoseWindows
from pipeline.errors import ConfigError, InputError, ModelError
from pipeline.lift import TemporalModel, grow
from pipeline.losses import mpjpe, total_loss


@dataclass(frozen=True)
class Split:
    """Clips per split: ``train`` (fitted), ``val`` (model selection), ``test`` (final figures only)."""

    train: list[Clip]
    val: list[Clip]
    test: list[Clip]


def action_of(description: str) -> str:
    """Short action label from a CMU description ('basketball - forward dribble' -> 'basketball')."""
    head = description.split(" - ")[0].split(",")[0].strip().lower()
    return head or "unknown"


def load_split(config: TrainConfig, progress: Callable[[int, int], None] | None = None) -> Split:
    """Read the mocap folder at the training rate and split it by subject.

    Args:
        config: Uses ``data``, ``fps``, ``test_subjects`` and ``val_subjects``.
        progress: Called with (files done, files total) while reading.

    Returns:
        A :class:`Split`; no subject appears in two parts.
    """
    from pipeline.mocap import load_dataset

    root = Path(config.data)
    if not root.exists():
        raise InputError(f"mocap folder or manifest not found: {root} (pass --data or set `data:` in the config)")
    motions = load_dataset(root, fps=config.fps, progress=progress)
    parts: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for m in motions:
        part = "test" if m.subject in config.test_subjects else "val" if m.subject in config.val_subjects else "train"
        parts[part].append(Clip(torch.from_numpy(m.joints), m.name, m.subject, action_of(m.description)))
    return Split(**parts)


@dataclass(frozen=True)
class TrainProgress:
    """What the trainer reports after each step (``val_mpjpe_mm`` is set at epoch ends)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    mpjpe_mm: float
    lr: float
    samples_per_s: float
    val_mpjpe_mm: float | None = None


@dataclass(frozen=True)
class TrainResult:
    """Paths of the written checkpoints and the best validation MPJPE (mm, exact 2D)."""

    best: Path
    last: Path
    best_val_mpjpe_mm: float
    epochs_run: int


class Objective:
    """What a training step draws and minimises, for pose lifters and trajectory models alike.

    Args:
        windows: Training windows (cameras and augmentation included).
        config: Uses ``lifter.target`` and ``loss``.
    """

    def __init__(self, windows: PoseWindows, config: TrainConfig) -> None:
        self.windows, self.config = windows, config
        self.trajectory = config.lifter.target == "trajectory"

    def batch(self, n: int, gen: torch.Generator, noisy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y): screen 2D + pelvis-relative joints for poses; rays + pelvis positions for trajectories."""
        if not self.trajectory:
            return self.windows.sample(n, gen, noisy)
        from pipeline.trajectory import training_pair

        return training_pair(self.windows.film(n, gen, noisy), self.windows.first_output)

    def loss(self, model: TemporalModel, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, mean position error in metres) of one batch."""
        if not self.trajectory:
            terms = total_loss(_strided_k(model, x, self.config.loss.frames), y, self.config.loss)
            return terms.total, terms.mpjpe
        from pipeline.trajectory import strided_roots, wmpjpe

        roots = strided_roots(model, x, self.windows.first_output)[:, 0]
        return wmpjpe(roots, y[:, 0]), (roots - y[:, 0]).norm(dim=-1).mean()


def _validation_batch(clips: list[Clip], config: TrainConfig, n: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of exact-2D validation windows (same cameras every epoch, so epochs compare)."""
    windows = PoseWindows(clips, config.lifter.receptive_field, 1, config.lifter.causal, config.camera,
                          replace(config.augment, flip=0.0, bone_scale=0.0, global_scale=0.0, rate_prob=0.0,
                                  evolve=replace(config.augment.evolve, fraction=0.0)))
    return Objective(windows, replace(config, loss=replace(config.loss, frames=1))).batch(
        n, torch.Generator().manual_seed(1234), noisy=False)


@torch.no_grad()
def validate(model: TemporalModel, batch: tuple[torch.Tensor, torch.Tensor], device: str,
             objective: Objective | None = None) -> float:
    """Mean position error in mm of the strided model on a fixed validation batch.

    Poses: MPJPE of the single output frame. Trajectories (pass their ``objective``): pelvis position error.
    """
    model.eval()
    x, y = batch
    if objective is None:
        errors = [mpjpe(model.forward_strided(xb.to(device)).cpu(), yb) * len(xb)
                  for xb, yb in zip(x.split(1024), y.split(1024))]
    else:
        errors = [objective.loss(model, xb.to(device), yb.to(device))[1].cpu() * len(xb)
                  for xb, yb in zip(x.split(1024), y.split(1024))]
    return float(sum(errors) / len(x) * 1000.0)


def _strided_k(model: TemporalModel, x: torch.Tensor, k: int) -> torch.Tensor:
    """Run the strided model on the K overlapping windows of x (B, RF+K-1, J, 2) -> (B, K, J, 3)."""
    rf = model.receptive_field
    windows = x.unfold(1, rf, 1).permute(0, 1, 4, 2, 3).reshape(-1, rf, *x.shape[2:])
    return model.forward_strided(windows).reshape(x.shape[0], k, *x.shape[2:3], 3)


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
        from pipeline.semisup import train_semi

        if config.init:
            raise ConfigError("init: semi-supervised runs train both networks from scratch; remove init or semi")

        return train_semi(config, out_dir, split or load_split(config), device, progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    split = split or load_split(config)
    frames = 1 if config.lifter.target == "trajectory" else config.loss.frames
    objective = Objective(PoseWindows(split.train, config.lifter.receptive_field, frames, config.lifter.causal,
                                      config.camera, config.augment), config)
    val_batch = _validation_batch(split.val or split.train, config)
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
