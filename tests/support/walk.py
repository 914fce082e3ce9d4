"""The bundled example clip (examples/walk.mp4, a rendered held-out subject) and its exact 2D joints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.video import read_frames

ROOT = Path(__file__).resolve().parents[2]
WALK = ROOT / "examples" / "walk.mp4"
TRUTH = np.load(ROOT / "examples" / "walk_truth.npz")["keypoints2d"]   # (86, 17, 2) H36M-17 pixels
# COCO shoulders, hips, knees, ankles and the H36M joints they correspond to.
COCO_LIMBS, H36M_LIMBS = [5, 6, 11, 12, 13, 14, 15, 16], [11, 14, 4, 1, 5, 2, 6, 3]


def frame(index: int) -> np.ndarray:
    """Frame ``index`` of the walk clip, (540, 960, 3) uint8 BGR."""
    return next(f.image for f in read_frames(WALK) if f.index == index)


def truth_box(index: int) -> np.ndarray:
    """The rendered person's box from the exact 2D joints: the head's top above the top joint, feet below."""
    lo, hi = TRUTH[index].min(0), TRUTH[index].max(0)
    h = hi[1] - lo[1]
    return np.array([lo[0] - 0.05 * h, lo[1] - 0.1 * h, hi[0] + 0.05 * h, hi[1] + 0.02 * h])
