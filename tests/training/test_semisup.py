"""Semi-supervised back-projection (pipeline/training/semisup.py): the loss terms and a tiny training run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from pipeline.lifting.checkpoint import load_checkpoint
from pipeline.lifting.model import LifterConfig
from pipeline.lifting.trajectory import to_rays
from pipeline.training.config import SemiSupervisedConfig, TrainConfig
from pipeline.training.dataset import Clip, PoseWindows
from pipeline.training.semisup import BackProjection
from pipeline.training.split import Split
from pipeline.training.train import train
from tests.support.synth import moving_person

SMALL = LifterConfig(filter_widths=(3, 3), channels=16, input_norm="pelvis_scale_pos")
SEMI = SemiSupervisedConfig(labeled_subjects=("1",), trajectory=LifterConfig(
    filter_widths=(3, 3), channels=16, input_norm="pelvis_scale_pos_size", target="trajectory"), warmup_epochs=0)
CONFIG = TrainConfig(lifter=SMALL, semi=SEMI, epochs=1, samples_per_epoch=64, batch_size=32)


def _clip(subject: str, seed: int, frames: int = 120) -> Clip:
    return Clip(torch.from_numpy(moving_person(frames, seed=seed).astype(np.float32)), f"s{subject}", subject, "walk")


def _shot():
    windows = PoseWindows([_clip("1", 0)], 9, 1, False, CONFIG.camera, CONFIG.augment)
    return windows.film(8, torch.Generator().manual_seed(0), noisy=False)


def test_perfect_predictions_cost_nothing_and_wrong_sizes_do():
    nets = BackProjection(CONFIG, "cpu")
    shot = _shot()
    truth = shot.cam3d[:, 4:5]
    rays = to_rays(shot.uv, shot.focal[:, None, None, None], shot.center[:, None, None])
    nets._predict = lambda s, scale=1.0: ((truth - truth[:, :, :1]) * scale, truth[:, :, 0], rays)
    terms = nets.step(shot, shot)
    assert terms.pose.item() < 1e-6 and terms.trajectory.item() < 1e-6
    assert terms.projection.item() < 1e-5 and terms.bone.item() < 1e-6
    nets._predict = lambda s: ((truth - truth[:, :, :1]) * 1.2, truth[:, :, 0], rays)
    wrong = nets.step(shot, shot)
    assert wrong.projection.item() > 0.01 and wrong.bone.item() > 0.01


def test_semi_supervised_training_writes_both_networks(tmp_path):
    split = Split([_clip("1", 0), _clip("5", 1)], [_clip("3", 2)], [])
    result = train(CONFIG, tmp_path, split=split)
    pose, meta = load_checkpoint(result.best)
    traj, _ = load_checkpoint(tmp_path / "trajectory.pt")
    assert pose.config.target == "pose" and traj.config.target == "trajectory" and meta["extra"]["semi_supervised"]


def test_supervised_baseline_never_films_the_unlabelled_subjects(tmp_path, monkeypatch):
    filmed = []
    real = PoseWindows.film
    monkeypatch.setattr(PoseWindows, "film", lambda self, *a, **k: filmed.append(len(self)) or real(self, *a, **k))
    split = Split([_clip("1", 0), _clip("5", 1, frames=150)], [_clip("3", 2, frames=90)], [])
    train(replace(CONFIG, semi=replace(SEMI, unlabeled_weight=0.0)), tmp_path, split=split)
    assert 120 in filmed and 150 not in filmed  # labelled (and validation) windows only
    filmed.clear()
    train(CONFIG, tmp_path / "semi", split=split)
    assert 150 in filmed
