"""Tiny clips and a mixed folder for the batch tests (import as ``from tests.support.clips import ...``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pipeline.io.video import VideoWriter

# Fast, offline per-clip settings: the bundled MediaPipe model, one person, no crop refinement.
FAST_RUN_YAML = """\
fetch_weights: false
twod:
  backend: mediapipe
  mediapipe:
    max_people: 1
    refine_crops: false
"""


def write_clip(path: Path, frames: int = 12, width: int = 96, height: int = 64, fps: float = 12.0,
               seed: int = 0) -> Path:
    """A short H.264 clip of a drifting colour pattern (nobody in it: the tests check batch plumbing)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, width=width, height=height, fps=fps) as writer:
        for t in range(frames):
            image = np.kron(np.roll(base, t, axis=1), np.ones((8, 8, 1), np.uint8))
            writer.write(np.ascontiguousarray(image))
    return path


def fast_config(folder: Path) -> Path:
    """Write the fast run YAML into ``folder`` and return its path."""
    path = folder / "run.yaml"
    path.write_text(FAST_RUN_YAML)
    return path


def mixed_folder(root: Path) -> dict[str, str]:
    """Good clips (one without a suffix, one nested two levels down), a truncated mp4, a text file, an empty
    mp4 and a hidden file. Returns {name under root: what the batch should make of it}."""
    good = write_clip(root / "a.mp4", seed=1)
    write_clip(root / "nested" / "deeper" / "b.mov", seed=2)
    shutil.copy(good, root / "nested" / "c_no_suffix")
    data = good.read_bytes()
    (root / "broken.mp4").write_bytes(data[: len(data) // 3])
    (root / "notes.txt").write_text("match notes: first half\n")
    (root / "empty.mp4").write_bytes(b"")
    (root / ".hidden.mp4").write_bytes(data)
    return {"a.mp4": "done", "nested/deeper/b.mov": "done", "nested/c_no_suffix": "done",
            "broken.mp4": "failed", "empty.mp4": "failed", "notes.txt": "ignored"}
