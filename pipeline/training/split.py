"""Mocap split by subject into training, validation and test clips at the training rate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from pipeline.errors import InputError
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import Clip
from pipeline.training.mocap import load_dataset


@dataclass(frozen=True)
class Split:
    """Clips per split: ``train`` (fitted), ``val`` (model selection), ``test`` (final figures only)."""

    train: list[Clip]
    val: list[Clip]
    test: list[Clip]


def action_of(description: str) -> str:
    """Short action label from a CMU description ('basketball - forward dribble' -> 'basketball')."""
    head = description.split(" - ")[0].split(",")[0].strip().lower()
    return head or "unknown"


def load_split(config: TrainConfig, progress: Callable[[int, int], None] | None = None) -> Split:
    """Read the mocap folder at the training rate and split it by subject.

    Args:
        config: Uses ``data``, ``fps``, ``test_subjects`` and ``val_subjects``.
        progress: Called with (files done, files total) while reading.

    Returns:
        A :class:`Split`; no subject appears in two parts.
    """
    root = Path(config.data)
    if not root.exists():
        raise InputError(f"mocap folder or manifest not found: {root} (pass --data or set `data:` in the config)")
    motions = load_dataset(root, fps=config.fps, progress=progress)
    parts: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for m in motions:
        part = "test" if m.subject in config.test_subjects else "val" if m.subject in config.val_subjects else "train"
        parts[part].append(Clip(torch.from_numpy(m.joints), m.name, m.subject, action_of(m.description)))
    return Split(**parts)
