"""Fit the ankle regressors (``pose3d train-ankle``) on CMU mocap seen through random virtual cameras.

Training pairs come from the lifter's own data path (:class:`pipeline.training.dataset.PoseWindows`: random bone
lengths, random cameras, flips) on the training subjects of ``configs/train.yaml``; the validation
subjects pick the best epoch; the test subjects, and ``held_out_subjects``, are never trained on. Each
window of ``window`` frames is one "track": exact H36M-17 2D is mapped to the COCO leg points
(:func:`pipeline.keypoints.h36m_to_coco`), jittered like a detector, and its ankles are corrupted the way
2D models fail (:func:`corrupt_ankles`).
The dense networks learn the true ankles from those inputs (MSE); paper 001's linear forms are fitted by
least squares on the uncorrupted frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from pipeline.cleanup.ankle import (
    ANKLES,
    KNEES,
    L_HIP,
    L_SHOULDER,
    LINEAR_INPUTS,
    R_HIP,
    R_SHOULDER,
    TARGETS,
    AnkleNet,
    AnkleNetConfig,
    AnkleRegressor,
    leg_features,
)
from pipeline.config import to_dict
from pipeline.errors import ConfigError, InputError
from pipeline.keypoints import h36m_to_coco
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import PoseWindows
from pipeline.training.split import load_split


@dataclass(frozen=True)
class AnkleCorruption:
    """How often and how a 2D model gets an ankle wrong, per ankle and frame (``train-ankle`` data).

    Probabilities of the ankle kinds, the remainder being a correct ankle with a high score:

    Attributes:
        unsure: Correct but scored low (occluded, blurred).
        swap: Both ankles exchanged (the frame's two ankles, counted once per frame).
        to_knee: Pulled toward its knee (a fraction 0-0.7 of the shank left).
        elsewhere: Moved by 5-50% of the body height in a random direction.
        lost: Anywhere within 30% of the height around the knee, scored very low.
        other_foot: On the other ankle (both ankles on one foot).
        jitter: Range of the Gaussian jitter of every joint, fraction of the body height.
    """

    unsure: float = 0.10
    swap: float = 0.08
    to_knee: float = 0.12
    elsewhere: float = 0.12
    lost: float = 0.08
    other_foot: float = 0.05
    jitter: tuple[float, float] = (0.0, 0.02)

    def __post_init__(self) -> None:
        total = self.unsure + self.swap + self.to_knee + self.elsewhere + self.lost + self.other_foot
        if min(self.unsure, self.swap, self.to_knee, self.elsewhere, self.lost, self.other_foot) < 0 or total > 1:
            raise ConfigError(f"ankle corruption probabilities must be >= 0 and sum to <= 1, got {total:.3f}")


@dataclass(frozen=True)
class AnkleTrainConfig:
    """Settings of ``pose3d train-ankle`` (``configs/train_ankle.yaml``).

    Attributes:
        held_out_subjects: Never trained on, whatever the split says: the lifter's original test subjects,
            so the regressor's figures on them stay held out.
        epochs: Passes; each draws ``samples_per_epoch`` fresh frames.
        samples_per_epoch: Frames per epoch (``window`` frames per random camera).
        window: Frames per filmed window: one torso-length median, like a short track.
        batch_size: Frames per optimisation step.
        lr, lr_decay: Adam learning rate and its per-epoch factor.
        val_samples: Validation frames (fixed cameras and corruption), from the validation subjects.
        seed: Random seed.
        net: Architecture.
        corruption: Detector-like ankle errors.
    """

    held_out_subjects: tuple[str, ...] = ("2", "8", "17", "135")
    epochs: int = 8
    samples_per_epoch: int = 200_000
    window: int = 50
    batch_size: int = 512
    lr: float = 1e-3
    lr_decay: float = 0.7
    val_samples: int = 50_000
    seed: int = 0
    net: AnkleNetConfig = field(default_factory=AnkleNetConfig)
    corruption: AnkleCorruption = field(default_factory=AnkleCorruption)


@dataclass(frozen=True)
class AnkleSamples:
    """Training frames: ``features`` (N, 16) float32, ``targets`` (N, 4) true ankles, ``corrupted`` (N, 2)."""

    features: np.ndarray
    targets: np.ndarray
    corrupted: np.ndarray


def corrupt_ankles(kp: np.ndarray, height: np.ndarray, config: AnkleCorruption,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt the ankles of COCO-17 frames like a single-image 2D model, and score them.

    Args:
        kp: (N, 17, 2) pixels (jittered; its ankles are taken as true).
        height: (N,) body height, pixels.
        config: Probabilities and sizes of the errors.
        rng: Random generator.

    Returns:
        (keypoints (N, 17, 2) with corrupted ankles, ankle scores (N, 2), corrupted (N, 2) bool: the ankle
        is more than 2% of the height from where it was).
    """
    n = len(kp)
    out = kp.copy()
    ank, knee = kp[:, list(ANKLES)], kp[:, list(KNEES)]
    c = config
    edges = np.cumsum([c.unsure, c.to_knee, c.elsewhere, c.lost, c.other_foot])
    kind = np.searchsorted(edges, rng.random((n, 2)), side="right")   # 0 unsure .. 5 correct
    h = height[:, None, None]
    angle = rng.uniform(0, 2 * np.pi, (n, 2))
    unit = np.stack([np.cos(angle), np.sin(angle)], -1)
    pulled = knee + rng.uniform(0, 0.7, (n, 2, 1)) * (ank - knee)
    moved = ank + unit * rng.uniform(0.05, 0.5, (n, 2, 1)) * h
    lost = knee + unit * np.sqrt(rng.random((n, 2, 1))) * 0.3 * h
    other = ank[:, ::-1] + rng.normal(0, 0.01, (n, 2, 2)) * h
    new = np.select([kind[..., None] == k for k in (1, 2, 3, 4)], [pulled, moved, lost, other], ank)
    score = np.where(kind == 5, rng.uniform(0.5, 1.0, (n, 2)), rng.uniform(0.0, 0.7, (n, 2)))
    score = np.where(kind == 3, rng.uniform(0.0, 0.3, (n, 2)), score)
    swap = rng.random(n) < c.swap
    new[swap] = new[swap, ::-1]
    score[swap] = np.where(kind[swap] == 5, rng.uniform(0.3, 1.0, (int(swap.sum()), 2)), score[swap])
    out[:, list(ANKLES)] = new
    # By where the ankle ended up: a swap can undo an "other foot", and a swap of feet side by side is harmless.
    corrupted = np.linalg.norm(new - ank, axis=-1) > 0.02 * height[:, None]
    return out, score, corrupted


def make_samples(windows: PoseWindows, frames: int, config: AnkleTrainConfig, gen: torch.Generator,
                 rng: np.random.Generator) -> AnkleSamples:
    """Film random windows, corrupt them and build regressor inputs and targets.

    Args:
        windows: Mocap windows of ``config.window`` frames (exact 2D, augmented by bone lengths and flips).
        frames: Frames wanted (rounded up to whole windows).
        config: Window length and corruption.
        gen, rng: Random generators (cameras; corruption).

    Returns:
        :class:`AnkleSamples`, ``frames`` or a few more.
    """
    b = -(-frames // config.window)
    x, _ = windows.sample(b, gen, noisy=False)              # (B, L, 17, 2) normalised screen, H36M-17
    coco = h36m_to_coco(x.reshape(-1, 17, 2).numpy().astype(np.float64)).astype(np.float64)
    coco = coco.reshape(b, config.window, 17, 2)
    seen = coco[:, :, [0, 5, 6, 11, 12, 15, 16]]
    height = (seen[..., 1].max((1, 2)) - seen[..., 1].min((1, 2)))                   # (B,)
    lo, hi = config.corruption.jitter
    sigma = rng.uniform(lo, hi, b) * height
    noisy = coco + rng.normal(0, 1, coco.shape) * sigma[:, None, None, None]
    torso = np.linalg.norm((noisy[:, :, L_SHOULDER] + noisy[:, :, R_SHOULDER]
                            - noisy[:, :, L_HIP] - noisy[:, :, R_HIP]) / 2, axis=-1)
    scale = np.repeat(np.median(torso, axis=1), config.window)                      # (B L,)
    flat = noisy.reshape(-1, 17, 2)
    bad, ankle_scores, corrupted = corrupt_ankles(flat, np.repeat(height, config.window), config.corruption, rng)
    scores = np.ones(flat.shape[:2])
    scores[:, list(ANKLES)] = ankle_scores
    feats, valid = leg_features(bad, scores, scale)
    origin = (flat[:, L_HIP] + flat[:, R_HIP]) / 2
    truth = (coco.reshape(-1, 17, 2)[:, list(ANKLES)] - origin[:, None]) / scale[:, None, None]
    keep = valid & np.isfinite(truth).all((1, 2))
    return AnkleSamples(feats[keep], truth[keep].reshape(-1, 4).astype(np.float32), corrupted[keep])


def ankle_errors(regressor: AnkleRegressor, samples: AnkleSamples) -> dict[str, float]:
    """Mean ankle error, in torso lengths, over the corrupted ankles and over all, per method.

    Returns:
        {"observed_corrupted", "linear_corrupted", "net_corrupted", "observed_all", "linear_all", "net_all"}.
    """
    truth = samples.targets.reshape(-1, 2, 2)
    guesses = {"observed": samples.features[:, 10:14].reshape(-1, 2, 2),
               "linear": regressor.predict(samples.features, "linear").reshape(-1, 2, 2),
               "net": regressor.predict(samples.features, "net").reshape(-1, 2, 2)}
    out = {}
    for name, guess in guesses.items():
        err = np.linalg.norm(guess - truth, axis=-1)
        out[f"{name}_corrupted"] = float(err[samples.corrupted].mean())
        out[f"{name}_all"] = float(err.mean())
    return out


@dataclass(frozen=True)
class AnkleTrainProgress:
    """Reported after each step; ``val`` (torso lengths, net on corrupted ankles) at epoch ends."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    val: float | None = None


def _windows(clips, split: TrainConfig, config: AnkleTrainConfig) -> PoseWindows:
    # Bone-length, size and flip augmentation as for the lifter; no multi-rate sampling (one frame at a time).
    return PoseWindows(clips, config.window, 1, False, split.camera, replace(split.augment, rate_prob=0.0))


def train_ankle(split_config: TrainConfig, config: AnkleTrainConfig, *, split=None,
                progress: Callable[[AnkleTrainProgress], None] | None = None) -> AnkleRegressor:
    """Fit the linear forms and the dense networks; return the regressor of the best validation epoch.

    Args:
        split_config: Data folder, subject split, cameras and augmentation (``configs/train.yaml``).
        config: Ankle training settings.
        split: Pre-loaded :class:`pipeline.training.split.Split` (default: read ``split_config.data``).
        progress: Called after every step with an :class:`AnkleTrainProgress`.

    Returns:
        The :class:`AnkleRegressor`; its ``extra`` holds the settings, the split and validation errors.
    """
    split = split or load_split(split_config)
    split = replace(split, train=[c for c in split.train if c.subject not in config.held_out_subjects])
    if not split.train or not split.val:
        raise InputError(f"{split_config.data}: need training and validation subjects for train-ankle")
    torch.manual_seed(config.seed)
    gen, rng = torch.Generator().manual_seed(config.seed), np.random.default_rng(config.seed)
    val = make_samples(_windows(split.val, split_config, config), config.val_samples, config,
                       torch.Generator().manual_seed(10_007), np.random.default_rng(10_007))
    train_windows = _windows(split.train, split_config, config)
    clean = make_samples(train_windows, config.samples_per_epoch, config, gen, rng)
    linear, shank_ratio = _linear_forms(clean)
    net = AnkleNet(config.net)
    net.mean.copy_(torch.from_numpy(clean.features.mean(0)))
    net.std.copy_(torch.from_numpy(clean.features.std(0) + 1e-3))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    best, best_state, history = np.inf, None, []
    steps = max(1, config.samples_per_epoch // config.batch_size)
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        data = clean if epoch == 0 else make_samples(train_windows, config.samples_per_epoch, config, gen, rng)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * config.lr_decay ** epoch
        loss = _epoch(net, optimizer, data, config, gen, lambda s, v: progress and progress(
            AnkleTrainProgress(epoch, config.epochs, s, steps, v)))
        errors = ankle_errors(AnkleRegressor(net, linear, shank_ratio), val)
        net.train()
        history.append({"epoch": epoch, "loss": loss, **errors})
        if errors["net_corrupted"] < best:
            best, best_state = errors["net_corrupted"], {k: v.clone() for k, v in net.state_dict().items()}
        if progress:
            progress(AnkleTrainProgress(epoch, config.epochs, steps - 1, steps, loss, errors["net_corrupted"]))
    net.load_state_dict(best_state)
    extra = {"config": to_dict(config), "split": {"data": split_config.data, "train": _subjects(split.train),
             "val": _subjects(split.val),
             "never_trained_on": sorted(set(split_config.test_subjects) | set(config.held_out_subjects),
                                     key=lambda s: (len(s), s))},
             "history": history, "seconds": time.perf_counter() - t0}
    return AnkleRegressor(net.eval(), linear, shank_ratio, extra)


def _linear_forms(data: AnkleSamples) -> tuple[np.ndarray, float]:
    """Paper 001's linear forms fitted on the uncorrupted frames, and those frames' median shank / torso."""
    ok = ~data.corrupted.any(1)
    linear = fit_linear(data.features[ok].astype(np.float64), data.targets[ok].astype(np.float64))
    # Features are in torso lengths already: the shank length in them is the ratio bad_ankles compares.
    shank = np.linalg.norm(data.targets[ok].reshape(-1, 2, 2) - data.features[ok, 4:8].reshape(-1, 2, 2), axis=-1)
    return linear, float(np.median(shank))


def _epoch(net: AnkleNet, optimizer, data: AnkleSamples, config: AnkleTrainConfig, gen: torch.Generator,
           report: Callable[[int, float], None]) -> float:
    """One pass over ``data`` in random order; returns the mean MSE (torso lengths^2)."""
    net.train()
    x, y = torch.from_numpy(data.features), torch.from_numpy(data.targets)
    order = torch.randperm(len(x), generator=gen)
    total, count = 0.0, 0
    for step, start in enumerate(range(0, len(x) - config.batch_size + 1, config.batch_size)):
        idx = order[start:start + config.batch_size]
        loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(idx), count + len(idx)
        report(step, loss.item())
    return total / max(count, 1)


def _subjects(clips) -> list[str]:
    return sorted({c.subject for c in clips}, key=lambda s: (len(s), s))


def fit_linear(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares fit of paper 001's linear forms.

    Args:
        x: (N, 16) leg features (``FEATURES``), exact or lightly jittered.
        y: (N, 4) true ankle coordinates (``TARGETS``), same normalisation.

    Returns:
        (4, 3) coefficients per target: (a0, a1, c); a1 is 0 for the x forms.
    """
    coef = np.zeros((len(TARGETS), 3))
    for k, cols in enumerate(LINEAR_INPUTS):
        design = np.column_stack([x[:, list(cols)], np.ones(len(x))])
        sol = np.linalg.lstsq(design, y[:, k], rcond=None)[0]
        coef[k, :len(cols)], coef[k, 2] = sol[:-1], sol[-1]
    return coef
