"""Semi-supervised back-projection training (paper 002, section 4): unlabelled 2D tracks teach the lifter too.

Paper 002 trains a pose network and a trajectory network jointly. Labelled windows give the usual losses
(MPJPE for the pose, inverse-depth weighted WMPJPE for the trajectory). For unlabelled windows -- 2D only --
the predicted pose is placed at the predicted trajectory, projected back through the camera intrinsics and
compared with the input 2D; a bone-length L2 term keeps the unlabelled predictions' mean bone lengths at the
labelled batch's, so the pose cannot shrink or stretch to fit the projection. Only intrinsics are needed.

Here the labelled data are the mocap subjects in ``semi.labeled_subjects``; the other training subjects are
filmed by the same random cameras and then used as 2D (with the detector-like noise of training) and their
intrinsics only -- their 3D is never read. ``semi.unlabeled_weight: 0`` trains the supervised baseline on
the same labelled data with the same code, which is the comparison the paper makes.

Our adaptation: the 2D error is measured on camera rays and multiplied by the predicted depth (held
constant), i.e. in metres at the person, so its weight reads on the scale of MPJPE whatever the distance;
the paper uses pixels.

Writes ``best.pt`` (the pose lifter, chosen on the validation subjects' MPJPE) and ``trajectory.pt`` (the
trajectory network of the same epoch), both in the project's checkpoint format. These runs are short
comparisons and do not resume: an interrupted one starts again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from pipeline.camera import normalize_screen
from pipeline.config import to_dict
from pipeline.errors import ConfigError, InputError
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.model import TemporalModel
from pipeline.lifting.trajectory import to_rays
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import PoseWindows
from pipeline.training.losses import bone_lengths, mpjpe
from pipeline.training.objective import TrainProgress, TrainResult, validate, validation_batch
from pipeline.training.trajectory import strided_roots, wmpjpe


@dataclass(frozen=True)
class SemiTerms:
    """One step's loss terms (scalars): the total and each unweighted part (metres; WMPJPE dimensionless)."""

    total: torch.Tensor
    pose: torch.Tensor
    trajectory: torch.Tensor
    projection: torch.Tensor
    bone: torch.Tensor


class BackProjection:
    """The two networks and the losses of one training step.

    Args:
        config: Training configuration with ``semi`` set.
        device: Torch device.
    """

    def __init__(self, config: TrainConfig, device: str) -> None:
        if config.semi.trajectory.receptive_field != config.lifter.receptive_field:
            raise ConfigError("semi.trajectory needs the pose lifter's receptive field (both see the same windows)")
        self.config, self.device = config, device
        self.pose = TemporalModel(config.lifter).to(device)
        self.trajectory = TemporalModel(config.semi.trajectory).to(device)
        first = config.lifter.receptive_field - 1 if config.lifter.causal else config.lifter.receptive_field // 2
        self.first = first

    def parameters(self):
        return [*self.pose.parameters(), *self.trajectory.parameters()]

    def _predict(self, shot) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pose (B, 1, 17, 3), root (B, 1, 3), input rays (B, L, 17, 2)) for filmed windows."""
        screen = normalize_screen(shot.uv, shot.size[:, 0, None, None], shot.size[:, 1, None, None]).to(self.device)
        rays = to_rays(shot.uv, shot.focal[:, None, None, None], shot.center[:, None, None]).to(self.device)
        return self.pose.forward_strided(screen), strided_roots(self.trajectory, rays, self.first), rays

    def step(self, labeled, unlabeled=None) -> SemiTerms:
        """Losses of a labelled batch and, when given, an unlabelled one (:class:`FilmedWindows`)."""
        pose, root, _ = self._predict(labeled)
        truth = labeled.cam3d[:, self.first: self.first + 1].to(self.device)
        pose_loss = mpjpe(pose, truth - truth[:, :, :1])
        traj_loss = wmpjpe(root[:, 0], truth[:, 0, 0])
        zero = torch.zeros((), device=self.device)
        projection = bone = zero
        if unlabeled is not None:
            u_pose, u_root, rays = self._predict(unlabeled)
            placed = u_pose + u_root[:, :, None]
            depth = placed[..., 2:].clamp_min(0.1)
            # Ray error times depth = metres at the person: comparable with MPJPE at any distance.
            projection = ((placed[..., :2] / depth - rays[:, self.first: self.first + 1]) * depth.detach()).norm(dim=-1).mean()
            target = bone_lengths(truth - truth[:, :, :1]).mean(dim=(0, 1))
            bone = (bone_lengths(u_pose).mean(dim=(0, 1)) - target).norm()
        semi = self.config.semi
        total = pose_loss + traj_loss + semi.unlabeled_weight * projection + semi.bone_weight * bone
        return SemiTerms(total, pose_loss, traj_loss, projection, bone)


def _windows(clips, config: TrainConfig) -> PoseWindows | None:
    lifter = config.lifter
    return PoseWindows(clips, lifter.receptive_field, 1, lifter.causal, config.camera, config.augment) if clips else None


def train_semi(config: TrainConfig, out_dir: str | Path, split, device: str = "cpu",
               progress: Callable | None = None):
    """Train pose + trajectory networks with back-projection on the unlabelled training subjects.

    Args:
        config: Training configuration; ``semi.labeled_subjects`` must name training subjects.
        out_dir: Folder for ``best.pt`` and ``trajectory.pt``.
        split: The subject split (:class:`pipeline.training.split.Split`).
        device: Torch device.
        progress: Called with :class:`pipeline.training.objective.TrainProgress` after each step and epoch.

    Returns:
        A :class:`pipeline.training.objective.TrainResult`.
    """
    labeled = [c for c in split.train if c.subject in config.semi.labeled_subjects]
    if not labeled:
        raise InputError(f"semi.labeled_subjects {list(config.semi.labeled_subjects)} name no training subject")
    unlabeled = [c for c in split.train if c.subject not in config.semi.labeled_subjects]
    lab, unl = _windows(labeled, config), _windows(unlabeled, config) if config.semi.unlabeled_weight > 0 else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    nets = BackProjection(config, device)
    optimizer = torch.optim.Adam(nets.parameters(), lr=config.lr, amsgrad=True)
    val_batch, best = validation_batch(split.val or labeled, config), math.inf
    steps = max(1, config.samples_per_epoch // config.batch_size)
    for epoch in range(config.epochs):
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        lr = config.learning_rate(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        nets.pose.train(), nets.trajectory.train()
        t0 = time.perf_counter()
        for step in range(steps):
            use_unl = unl is not None and epoch >= config.semi.warmup_epochs
            terms = nets.step(lab.film(config.batch_size, gen), unl.film(config.batch_size, gen) if use_unl else None)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            if progress:
                rate = (step + 1) * config.batch_size / (time.perf_counter() - t0)
                progress(TrainProgress(epoch, config.epochs, step, steps, terms.total.item(), terms.pose.item() * 1000,
                                       lr, rate))
        val = validate(nets.pose, val_batch, device)
        if val < best:
            best = val
            meta = {"epoch": epoch, "val_mpjpe_mm": val, "config": to_dict(config), "semi_supervised": True}
            for name, net in (("best.pt", nets.pose), ("trajectory.pt", nets.trajectory)):
                save_checkpoint(out / name, net, train_fps=config.fps,
                                torso_from_limbs=config.augment.torso_from_limbs, extra=meta)
        if progress:
            progress(TrainProgress(epoch, config.epochs, steps - 1, steps, terms.total.item(), terms.pose.item() * 1000,
                                   lr, 0.0, val_mpjpe_mm=val))
    return TrainResult(out / "best.pt", out / "best.pt", best, config.epochs)
