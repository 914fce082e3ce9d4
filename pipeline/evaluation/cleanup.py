"""What each 2D clean-up step buys, on held-out mocap with detector-like 2D (``pose3d evaluate-cleanup``).

Each held-out motion is cut into segments (default 5 s); each segment is filmed by its own seeded random
camera, mapped to the COCO-17 track a 2D model would give (:func:`pipeline.keypoints.h36m_to_coco`) and
corrupted like one (:func:`corrupt_track`: jitter, a per-joint bias, bursts of wrong frames, and runs of
swapped, collapsed, displaced or doubled ankles, mostly with low scores). The track is then cleaned with
each setting of :data:`SETTINGS` and lifted by the given lifter exactly as ``pose3d run`` does; errors are
averaged over frames. Ankle errors are in % of the person's height (the exact 2D keypoints' extent).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from pipeline.cleanup.ankle import ANKLES, KNEES, AnkleRegressor
from pipeline.cleanup.cleaner import CleanConfig, clean_track
from pipeline.cleanup.smooth import body_height
from pipeline.evaluation import metrics
from pipeline.keypoints import coco_to_h36m, fill_gaps, h36m_to_coco
from pipeline.lifting.lifter import Lifter
from pipeline.skeleton import H36M_LIMB_JOINTS
from pipeline.training.cameras import film
from pipeline.training.config import CameraConfig
from pipeline.training.dataset import Clip
from pipeline.types import Track

# The detectors' worst joints get more jitter: wrists and ankles (COCO-17 indices).
_NOISIER = (9, 10, 15, 16)


@dataclass(frozen=True)
class DetectorNoise:
    """Detector-like corruption of a COCO-17 track; sizes are fractions of the person's height.

    Attributes:
        jitter: Gaussian jitter per joint-frame (x1.5 for wrists and ankles).
        bias: Gaussian offset per joint, the same for the whole segment.
        burst_rate: Chance per joint-frame that a burst of 1-3 wrong frames starts there.
        burst_size: Range of a burst's displacement.
        ankle_rate: Chance per ankle-frame that a run of a wrong ankle starts there.
        ankle_run_s: Range of such a run's length, seconds.
        good_score, bad_score: Score ranges of right joints and of wrong ones; a fifth of the wrong
            ankle runs and every burst are scored like right joints (confidently wrong).
    """

    jitter: float = 0.01
    bias: float = 0.005
    burst_rate: float = 0.003
    burst_size: tuple[float, float] = (0.05, 0.3)
    ankle_rate: float = 0.005
    ankle_run_s: tuple[float, float] = (0.1, 1.5)
    good_score: tuple[float, float] = (0.6, 1.0)
    bad_score: tuple[float, float] = (0.0, 0.5)


def _ankle_runs(kp: np.ndarray, scores: np.ndarray, height: float, fps: float, noise: DetectorNoise,
                rng: np.random.Generator) -> np.ndarray:
    """Corrupt runs of frames of each ankle in place; return (T, 2) bool, True where an ankle is wrong."""
    t = len(kp)
    truth = kp[:, list(ANKLES)].copy()
    wrong = np.zeros((t, 2), bool)
    for side, joint in enumerate(ANKLES):
        for start in np.flatnonzero(rng.random(t) < noise.ankle_rate):
            run = slice(start, min(t, start + max(1, round(rng.uniform(*noise.ankle_run_s) * fps))))
            kind = rng.integers(4)
            if kind == 0:                                   # left/right swap
                kp[run, list(ANKLES)] = truth[run, ::-1]
                wrong[run] = True
            elif kind == 1:                                 # collapsed toward the knee
                knee = kp[run, KNEES[side]]
                kp[run, joint] = knee + rng.uniform(0.0, 0.6) * (truth[run, side] - knee)
            elif kind == 2:                                 # displaced (floor, shadow, other leg)
                angle = rng.uniform(0, 2 * np.pi)
                kp[run, joint] = truth[run, side] + rng.uniform(0.08, 0.3) * height * np.array(
                    [np.cos(angle), np.sin(angle)])
            else:                                           # on the other foot
                kp[run, joint] = truth[run, 1 - side]
            wrong[run, side] = True
            sure = rng.random() < 0.2
            for s in ((0, 1) if kind == 0 else (side,)):
                scores[run, ANKLES[s]] = rng.uniform(*(noise.good_score if sure else noise.bad_score),
                                                     run.stop - run.start)
    return wrong & (np.linalg.norm(kp[:, list(ANKLES)] - truth, axis=-1) > 1e-6)


def corrupt_track(keypoints: np.ndarray, fps: float, noise: DetectorNoise,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make an exact COCO-17 track look like a single-image 2D model's output.

    Args:
        keypoints: (T, 17, 2) exact pixels (NaN where a joint does not exist, e.g. ears from H36M).
        fps: Frame rate, Hz (run lengths).
        noise: Amounts.
        rng: Random generator.

    Returns:
        (keypoints (T, 17, 2) pixels, scores (T, 17) in [0, 1], ankle_wrong (T, 2) bool).
    """
    kp = np.array(keypoints, np.float64)
    height = body_height(kp)
    scores = rng.uniform(*noise.good_score, kp.shape[:2])
    sigma = np.full(17, noise.jitter * height)
    sigma[list(_NOISIER)] *= 1.5
    kp += rng.normal(0, 1, kp.shape) * sigma[None, :, None] + rng.normal(0, noise.bias * height, (1, 17, 2))
    for f, j in zip(*np.nonzero(rng.random(kp.shape[:2]) < noise.burst_rate)):
        angle = rng.uniform(0, 2 * np.pi)
        kp[f:f + rng.integers(1, 4), j] += rng.uniform(*noise.burst_size) * height * np.array(
            [np.cos(angle), np.sin(angle)])
    wrong = _ankle_runs(kp, scores, height, fps, noise, rng)
    scores[~np.isfinite(kp).all(-1)] = 0.0
    return kp, scores, wrong


@dataclass(frozen=True)
class Setting:
    """One clean-up setting of the evaluation: a name and its configuration."""

    name: str
    config: CleanConfig


def settings(base: CleanConfig) -> list[Setting]:
    """No clean-up, each step of ``base`` alone, ``base`` with every step, and ``base`` as configured."""
    sm, ank = base.smooth, base.ankle
    off = replace(base, ankle=replace(ank, enabled=False),
                  smooth=replace(sm, outliers=False, rpca=False, smoothing=False))
    temporal = replace(base, ankle=replace(ank, enabled=False), smooth=replace(sm, outliers=True, smoothing=True))
    return [
        Setting("none", replace(base, enabled=False)),
        Setting("ankle (net)", replace(off, ankle=replace(ank, enabled=True, method="net"))),
        Setting("ankle (linear)", replace(off, ankle=replace(ank, enabled=True, method="linear"))),
        Setting("outliers", replace(off, smooth=replace(off.smooth, outliers=True))),
        Setting("rpca", replace(off, smooth=replace(off.smooth, rpca=True))),
        Setting("smoothing", replace(off, smooth=replace(off.smooth, smoothing=True))),
        Setting("outliers + smoothing", temporal),
        Setting("all (ankle net, outliers, rpca, smoothing)", replace(
            base, enabled=True, ankle=replace(ank, enabled=True, method="net"),
            smooth=replace(sm, outliers=True, rpca=True, smoothing=True))),
        Setting("configured (run.yaml clean)", replace(base, enabled=True)),
    ]


@dataclass(frozen=True)
class CleanupRow:
    """Errors of one setting, frame-weighted over all segments.

    Attributes:
        setting: Setting name.
        mpjpe, p_mpjpe: mm over the 13 limb joints; mpjve: mm per frame at the evaluation rate.
        ankle_all, ankle_wrong, ankle_right: Mean 2D ankle error, % of the person's height, over every
            ankle-frame, over those the corruption made wrong, and over the others.
    """

    setting: str
    mpjpe: float
    p_mpjpe: float
    mpjve: float
    ankle_all: float
    ankle_wrong: float
    ankle_right: float


@dataclass(frozen=True)
class CleanupEvalReport:
    """Rows per setting (the first is "exact 2D"), and what was evaluated."""

    rows: tuple[CleanupRow, ...]
    subjects: tuple[str, ...]
    segments: int
    frames: int
    fps: float
    ankle_wrong_fraction: float


def _lift_errors(lifter: Lifter, coco: np.ndarray, scores: np.ndarray, gt: np.ndarray, width: int, height: int,
                 fps: float) -> np.ndarray:
    """[mpjpe, p_mpjpe, mpjve] in mm of lifting one COCO-17 track against pelvis-relative ``gt``."""
    h36m, _ = coco_to_h36m(coco.astype(np.float32), scores)
    pred = lifter.lift(fill_gaps(h36m), width, height, fps)
    p, g = pred[:, list(H36M_LIMB_JOINTS)], gt[:, list(H36M_LIMB_JOINTS)]
    return 1000.0 * np.array([metrics.mpjpe(p, g), metrics.p_mpjpe(p, g), metrics.mpjve(p, g)])


def _segment_sums(lifter: Lifter, regressor: AnkleRegressor, todo: list[Setting], shot, exact: np.ndarray,
                  noisy: np.ndarray, scores: np.ndarray, wrong: np.ndarray, fps: float) -> np.ndarray:
    """(1 + settings, 6) frame-summed [mpjpe, p_mpjpe, mpjve] and ankle-error sums [all, wrong, right] of a segment."""
    t = len(exact)
    gt3d = shot.poses3d - shot.poses3d[:, :1]
    size, w, h = body_height(exact), shot.camera.width, shot.camera.height
    track = Track(0, np.arange(t, dtype=np.int64), noisy.astype(np.float32), scores.astype(np.float32),
                  np.zeros(t, bool))
    sums = np.zeros((len(todo) + 1, 6))
    sums[0, :3] = _lift_errors(lifter, exact, np.ones(exact.shape[:2]), gt3d, w, h, fps) * t
    for k, setting in enumerate(todo, 1):
        kp = clean_track(track, fps, setting.config, regressor).keypoints.astype(np.float64)
        err = 100.0 * np.linalg.norm(kp[:, list(ANKLES)] - exact[:, list(ANKLES)], axis=-1) / size
        sums[k, 3:] = [err.sum(), err[wrong].sum(), err[~wrong].sum()]
        sums[k, :3] = _lift_errors(lifter, kp, scores, gt3d, w, h, fps) * t
    return sums


def evaluate_cleanup(lifter: Lifter, regressor: AnkleRegressor, clips: Sequence[Clip], camera: CameraConfig,
                     base: CleanConfig, *, fps: float, noise: DetectorNoise = DetectorNoise(),
                     segment_s: float = 5.0, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> CleanupEvalReport:
    """Lift detector-like 2D of held-out motions with each clean-up setting; see the module docstring.

    Args:
        lifter: The lifter under test.
        regressor: The ankle regressor.
        clips: Held-out motions at ``fps``.
        camera: Virtual camera ranges (distance capped at 2x the closest, as ``pose3d evaluate``).
        base: The configured clean-up (its parameters are used by every setting).
        fps: Frame rate of the clips, Hz.
        noise: Corruption amounts.
        segment_s: Seconds per camera segment.
        seed: Seed of cameras and corruption.
        progress: Called with (segments done, segments total).

    Returns:
        A :class:`CleanupEvalReport`.
    """
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    camera = replace(camera, distance_scale=(1.0, min(2.0, camera.distance_scale[1])))
    length = max(int(round(segment_s * fps)), 30)
    jobs = [c.joints[a:a + length] for c in clips for a in range(0, max(1, len(c.joints) - length // 2), length)]
    jobs = [j for j in jobs if len(j) >= 30]
    todo = settings(base)
    sums, frames, wrong_total = np.zeros((len(todo) + 1, 6)), 0, 0
    for i, seg in enumerate(jobs):
        shot = film(seg, camera, gen)
        exact = h36m_to_coco(shot.keypoints)
        noisy, scores, wrong = corrupt_track(exact, fps, noise, rng)
        sums += _segment_sums(lifter, regressor, todo, shot, exact, noisy, scores, wrong, fps)
        frames, wrong_total = frames + len(seg), wrong_total + int(wrong.sum())
        if progress:
            progress(i + 1, len(jobs))
    counts = np.array([frames, frames, frames, 2 * frames, max(wrong_total, 1), max(2 * frames - wrong_total, 1)])
    names = ["exact 2D (no noise)"] + [s.name for s in todo]
    rows = tuple(CleanupRow(n, *(sums[k] / counts)) for k, n in enumerate(names))
    rows = (replace(rows[0], ankle_all=0.0, ankle_wrong=0.0, ankle_right=0.0),) + rows[1:]
    subjects = tuple(sorted({c.subject for c in clips}, key=lambda s: (len(s), s)))
    return CleanupEvalReport(rows, subjects, len(jobs), frames, float(fps), wrong_total / max(2 * frames, 1))


def format_cleanup_report(report: CleanupEvalReport) -> str:
    """A Markdown table: one line per setting; 3D errors in mm, ankle errors in % of height."""
    lines = ["| clean-up | MPJPE | P-MPJPE | MPJVE | ankle err, all | ankle err, wrong ankles | ankle err, right ankles |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report.rows:
        lines.append(f"| {r.setting} | {r.mpjpe:.1f} | {r.p_mpjpe:.1f} | {r.mpjve:.2f} | {r.ankle_all:.2f} | "
                     f"{r.ankle_wrong:.2f} | {r.ankle_right:.2f} |")
    return "\n".join(lines)
