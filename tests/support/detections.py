"""Detections clips in ``pose3d build-detections``'s format, made from a synthetic person (no rendering)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.keypoints import h36m_to_coco
from tests.support.synth import moving_person

WIDTH, HEIGHT, FOCAL, FPS = 960, 540, 800.0, 30.0


def write_clip(path: Path, subject: str = "1", frames: int = 90, seed: int = 0, bias: tuple[float, float] = (0.0, 0.0),
               gap: slice | None = None, small: bool = False) -> dict[str, np.ndarray]:
    """Write one clip: the person 4 m away; the '2D stage' is the exact projection plus ``bias`` pixels on every
    joint, its frames ``gap`` missing. Returns what was written."""
    cam = moving_person(frames, seed=seed) * np.array([1.0, -1.0, 1.0]) + np.array([0.0, 1.0, 4.0])
    uv = FOCAL * cam[..., :2] / cam[..., 2:] + np.array([WIDTH / 2, HEIGHT / 2])
    keep = np.ones(frames, bool)
    if gap is not None:
        keep[gap] = False
    coco = h36m_to_coco((uv + np.asarray(bias)).astype(np.float32))
    data = dict(frames=np.flatnonzero(keep).astype(np.int64), keypoints=coco[keep],
                scores=np.ones((keep.sum(), 17), np.float32),
                poses3d=(cam - cam[:, :1])[keep].astype(np.float32), keypoints2d=uv[keep].astype(np.float32),
                width=np.int64(WIDTH), height=np.int64(HEIGHT), fps=np.float64(FPS), focal=np.float64(FOCAL),
                center=np.array([WIDTH / 2, HEIGHT / 2]), motion=np.array(f"m{seed}"), subject=np.array(subject),
                seed=np.int64(seed), small=np.bool_(small))
    np.savez(path, **data)
    return data


def write_folder(folder: Path, subjects: tuple[str, ...] = ("1", "5"), bias: tuple[float, float] = (0.0, 0.0)) -> Path:
    """A folder of one clip per subject (clip_000000.npz, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, subject in enumerate(subjects):
        write_clip(folder / f"clip_{i:06d}.npz", subject=subject, seed=i, bias=bias, small=i % 2 == 1)
    return folder
