"""Training windows from the 2D stage's own output: ``pose3d build-detections`` clips, read by their file format.

The lifter otherwise trains on projected mocap with synthetic noise, which does not look like what the 2D stage
gets wrong (hips and shoulders placed where the skin is, depth-ambiguous limbs, left/right confusions on
turning bodies, frames it misses). Each ``clip_*.npz`` of a detections folder holds the cleaned COCO-17 track the
2D stage found on a rendered clip of a training subject, the exact projections of the same joints, and the
ground-truth 3D. This module turns them into what the lifter sees at run time (H36M-17 with the torso rebuilt from
hips and shoulders, gaps interpolated, resampled to the training rate, normalised screen coordinates) and draws:

- **detected windows**: (x, y) pairs exactly like :meth:`pipeline.training.dataset.PoseWindows.sample`'s;
- **error windows** (the learned noise model): the 2D stage's error over a window, in units of the person's 2D
  size, with its per-joint structure and temporal correlation intact, to add to any projected mocap window.

Training reads the files by format only (it never imports the evaluation code that writes them); the format is
documented in :mod:`pipeline.evaluation.detections` and docs/formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pipeline.camera import normalize_screen
from pipeline.errors import InputError, ShapeError
from pipeline.keypoints import coco_to_h36m, fill_gaps, rebuild_torso
from pipeline.lifting.model import flip_2d, flip_3d, pose_size_2d, resample_time

_FIELDS = ("frames", "keypoints", "scores", "poses3d", "keypoints2d", "width", "height", "fps", "subject")


@dataclass(frozen=True)
class DetectedRun:
    """One gap-free stretch of a detected track at the training rate.

    Attributes:
        x: (T, 17, 2) float32 H36M-17 normalised screen coordinates of the 2D stage's keypoints (torso rebuilt).
        truth: (T, 17, 2) float32 the exact projections, normalised the same way (torso rebuilt).
        y: (T, 17, 3) float32 camera-frame metres, pelvis at the origin.
        subject: Mocap subject of the clip.
        clip: The clip's file name without extension.
        small: The clip was filmed from far away (a small figure).
    """

    x: np.ndarray
    truth: np.ndarray
    y: np.ndarray
    subject: str
    clip: str = ""
    small: bool = False

    def __post_init__(self) -> None:
        t = len(self.x)
        if self.x.shape != (t, 17, 2) or self.truth.shape != (t, 17, 2) or self.y.shape != (t, 17, 3) or t == 0:
            raise ShapeError(f"DetectedRun: x {self.x.shape}, truth {self.truth.shape}, y {self.y.shape}")
        if not (np.isfinite(self.x).all() and np.isfinite(self.truth).all() and np.isfinite(self.y).all()):
            raise ShapeError("DetectedRun: non-finite values")


def read_clip(path: str | Path, fps: float, min_frames: int) -> list[DetectedRun]:
    """The gap-free runs of one ``clip_*.npz``, as the lifter would see them at ``fps``.

    Args:
        path: A file written by ``pose3d build-detections``.
        fps: Training frame rate, Hz.
        min_frames: Runs shorter than this many frames (at the clip's own rate) are dropped.

    Returns:
        The clip's runs (none when the 2D stage found nobody).
    """
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in _FIELDS if k not in data.files]
        if missing:
            raise InputError(f"{path}: not a detections clip (missing {', '.join(missing)})")
        clip = {k: data[k] for k in _FIELDS}
        small = bool(data["small"]) if "small" in data.files else False
    width, height, rate = int(clip["width"]), int(clip["height"]), float(clip["fps"])
    h36m, _ = coco_to_h36m(clip["keypoints"].astype(np.float32), clip["scores"].astype(np.float32))
    truth = rebuild_torso(clip["keypoints2d"].astype(np.float64))
    poses = clip["poses3d"].astype(np.float64)
    bounds = np.flatnonzero(np.diff(clip["frames"]) > 1) + 1
    runs = []
    for idx in np.split(np.arange(len(h36m)), bounds):
        if len(idx) < max(min_frames, 2) or not np.isfinite(h36m[idx]).any(axis=0).all():
            continue
        streams = [normalize_screen(fill_gaps(h36m[idx]).astype(np.float64), width, height),
                   normalize_screen(truth[idx], width, height), poses[idx] - poses[idx, :1]]
        x, tr, y = (resample_time(s, rate, fps).astype(np.float32) for s in streams)
        runs.append(DetectedRun(x, tr, y, str(clip["subject"]), Path(path).stem, small))
    return runs


def read_folder(folder: str | Path, fps: float, min_frames: int, held_out: Sequence[str],
                training: bool = True) -> list[DetectedRun]:
    """Every run of a detections folder.

    Args:
        folder: ``pose3d build-detections`` output.
        fps: Training frame rate, Hz.
        min_frames: Shortest run kept, frames at the clips' rate.
        held_out: Validation and test subjects.
        training: The runs are for training: a clip of a held-out subject is an error (it would leak held-out
            people into training). False: they are for evaluation, and a clip of any other subject is the error.

    Returns:
        The runs, in file order.
    """
    paths = sorted(Path(folder).glob("clip_*.npz"))
    if not paths:
        raise InputError(f"no detections clips (clip_*.npz) in {folder}: build them with `pose3d build-detections`")
    runs = [run for p in paths for run in read_clip(p, fps, min_frames)]
    subjects = {r.subject for r in runs}
    wrong = sorted(subjects & set(held_out) if training else subjects - set(held_out))
    if wrong:
        use = "training" if training else "evaluation"
        raise InputError(f"{folder}: clips of subject(s) {', '.join(wrong)}, which {use} must not see "
                         f"(held out: {', '.join(held_out)})")
    if not runs:
        raise InputError(f"{folder}: the 2D stage found nobody long enough in any clip")
    return runs


class DetectedWindows:
    """Random windows over detected runs: lifter pairs and 2D-stage error windows.

    Args:
        runs: Detected runs at the training rate.
        receptive_field: Lifter receptive field.
        out_frames: K output frames per sample.
        causal: Output frames at the window end instead of its centre.
        flip: Probability of mirroring a window (left/right swapped, as the mocap windows).
    """

    def __init__(self, runs: Sequence[DetectedRun], receptive_field: int, out_frames: int, causal: bool,
                 flip: float = 0.5) -> None:
        if not runs:
            raise InputError("no detected runs to train on")
        self.x = torch.from_numpy(np.concatenate([r.x for r in runs]))
        self.truth = torch.from_numpy(np.concatenate([r.truth for r in runs]))
        self.y = torch.from_numpy(np.concatenate([r.y for r in runs]))
        lengths = torch.tensor([len(r.x) for r in runs])
        self.ends = lengths.cumsum(0)
        self.starts = self.ends - lengths
        self.receptive_field, self.out_frames, self.causal, self.flip = receptive_field, out_frames, causal, flip

    def __len__(self) -> int:
        return len(self.x)

    def _indices(self, b: int, length: int, anchor: int, gen: torch.Generator) -> torch.Tensor:
        """(B, L) frame indices: a window per sample, clamped inside its run (replication padding)."""
        frame = torch.randint(len(self.x), (b,), generator=gen)
        run = torch.searchsorted(self.ends, frame, right=True)
        idx = frame[:, None] + (torch.arange(length) - anchor)[None]
        return torch.maximum(torch.minimum(idx, self.ends[run, None] - 1), self.starts[run, None])

    def _mirror(self, b: int, gen: torch.Generator) -> torch.Tensor:
        return (torch.rand(b, generator=gen) < self.flip)[:, None, None, None]

    def sample(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (x, y): x (B, RF + K - 1, 17, 2) normalised screen, y (B, K, 17, 3) pelvis-relative metres."""
        length = self.receptive_field + self.out_frames - 1
        first = self.receptive_field - 1 if self.causal else self.receptive_field // 2
        idx = self._indices(batch_size, length, length - 1 if self.causal else length // 2, gen)
        x, y = self.x[idx], self.y[idx[:, first: first + self.out_frames]]
        mirror = self._mirror(batch_size, gen)
        return torch.where(mirror, flip_2d(x), x), torch.where(mirror, flip_3d(y), y)

    def errors(self, batch_size: int, length: int, gen: torch.Generator) -> torch.Tensor:
        """Draw (B, L, 17, 2) windows of the 2D stage's error over its exact projections, per frame in units of
        the person's 2D size (RMS joint distance from the pelvis), mirrored at random."""
        idx = self._indices(batch_size, length, length // 2, gen)
        x, truth = self.x[idx], self.truth[idx]
        error = (x - truth) / pose_size_2d(truth)[..., None]
        mirror = self._mirror(batch_size, gen)
        # Mirroring an error is mirroring the detection and the truth alike: x negated, joints swapped.
        return torch.where(mirror, flip_2d(error), error)
