"""What a training step draws and minimises, and the fixed validation pass, for every trainer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pipeline.lifting.model import TemporalModel
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import Clip, PoseWindows
from pipeline.training.detected import DetectedWindows
from pipeline.training.losses import mpjpe, total_loss
from pipeline.training.trajectory import strided_roots, training_pair, wmpjpe


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
        config: Uses ``lifter.target``, ``loss`` and ``detected.share``.
        detected: Windows of the 2D stage's own output; ``detected.share`` of each noisy pose batch comes from
            them.
    """

    def __init__(self, windows: PoseWindows, config: TrainConfig, detected: DetectedWindows | None = None) -> None:
        self.windows, self.config, self.detected = windows, config, detected
        self.trajectory = config.lifter.target == "trajectory"

    def batch(self, n: int, gen: torch.Generator, noisy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y): screen 2D + pelvis-relative joints for poses; rays + pelvis positions for trajectories."""
        if not self.trajectory:
            n_detected = round(n * self.config.detected.share) if noisy and self.detected is not None else 0
            x, y = self.windows.sample(n - n_detected, gen, noisy)
            if n_detected == 0:
                return x, y
            xd, yd = self.detected.sample(n_detected, gen)
            return torch.cat([x, xd]), torch.cat([y, yd])

        return training_pair(self.windows.film(n, gen, noisy), self.windows.first_output)

    def loss(self, model: TemporalModel, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, mean position error in metres) of one batch."""
        if not self.trajectory:
            terms = total_loss(strided_k(model, x, self.config.loss.frames), y, self.config.loss)
            return terms.total, terms.mpjpe

        roots = strided_roots(model, x, self.windows.first_output)[:, 0]
        return wmpjpe(roots, y[:, 0]), (roots - y[:, 0]).norm(dim=-1).mean()


def validation_batch(clips: list[Clip], config: TrainConfig, n: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
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


def strided_k(model: TemporalModel, x: torch.Tensor, k: int) -> torch.Tensor:
    """Run the strided model on the K overlapping windows of x (B, RF+K-1, J, 2) -> (B, K, J, 3)."""
    rf = model.receptive_field
    windows = x.unfold(1, rf, 1).permute(0, 1, 4, 2, 3).reshape(-1, rf, *x.shape[2:])
    return model.forward_strided(windows).reshape(x.shape[0], k, *x.shape[2:3], 3)
