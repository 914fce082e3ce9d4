"""Synthetic COCO-17 2D tracks shared by the clean-up tests (import as ``from tests.support.tracks2d import ...``)."""

from __future__ import annotations

import numpy as np

from pipeline.types import Track

# A frontal COCO-17 pose in pixels, about 470 px from nose to ankle.
BASE = np.array([
    (500, 200), (510, 190), (490, 190), (520, 195), (480, 195), (560, 260), (440, 260), (580, 340),
    (420, 340), (590, 420), (410, 420), (540, 450), (460, 450), (545, 560), (455, 560), (550, 670),
    (450, 670)], dtype=np.float64)


def person(frames: int, fps: float = 50.0, seed: int = 0) -> np.ndarray:
    """(T, 17, 2) px: the pose drifting right with two smooth per-joint wobbles (0.7 and 1.3 Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / fps
    phase = rng.uniform(0, 2 * np.pi, (2, 1, 17, 2))
    amp = rng.uniform(5, 25, (2, 1, 17, 2))
    wobble = amp[0] * np.sin(2 * np.pi * 0.7 * t + phase[0]) + amp[1] * np.sin(2 * np.pi * 1.3 * t + phase[1])
    return BASE + wobble + np.array([40.0, 0.0]) * t


def cubic(frames: int, fps: float = 50.0, seed: int = 0) -> np.ndarray:
    """(T, 17, 2) px: a different cubic polynomial of time per joint coordinate."""
    rng = np.random.default_rng(seed)
    t = (np.arange(frames) / fps)[:, None, None]
    c = rng.uniform(-20, 20, (4, 1, 17, 2))
    return BASE + c[0] + c[1] * t + c[2] * t**2 + c[3] * t**3


def make_track(kp, scores=None, frames=None) -> Track:
    n = len(kp)
    frames = np.arange(n, dtype=np.int64) if frames is None else np.asarray(frames, np.int64)
    scores = np.ones((n, 17), np.float32) if scores is None else np.asarray(scores, np.float32)
    return Track(3, frames, np.asarray(kp, np.float32), scores, np.zeros(n, bool))


def spikes(kp, where, size, seed=0):
    """Copy of ``kp`` with a spike of ``size`` px in a random direction at each (frame, joint)."""
    rng = np.random.default_rng(seed)
    out, mask = kp.copy(), np.zeros(kp.shape[:2], bool)
    for f, j in where:
        d = rng.normal(size=2)
        out[f, j] += size * d / np.linalg.norm(d)
        mask[f, j] = True
    return out, mask
