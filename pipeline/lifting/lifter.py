"""The lifter's front end: a loaded network that lifts pixel H36M-17 tracks to camera-frame metres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.assets import shipped_weights
from pipeline.camera import normalize_screen
from pipeline.errors import ConfigError, ShapeError
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.bank import infer_with_bank
from pipeline.lifting.checkpoint import load_checkpoint
from pipeline.lifting.model import LifterConfig, TemporalModel, infer, resample_time


def default_weights() -> Path:
    """The shipped lifter: the package's ``lifter.pt``."""
    return shipped_weights("lifter.pt")


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; other values pass through (checked)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return device


class Lifter:
    """A loaded lifter that turns pixel H36M-17 tracks into pelvis-relative camera-frame metres.

    Args:
        model: The network.
        train_fps: Frame rate it was trained at; inputs are resampled to it and back.
        device: Torch device.
        torso_from_limbs: The network trained on a 2D pelvis, spine and thorax rebuilt from the hips and
            shoulders (``augment.torso_from_limbs``); inputs get the same torso before lifting.
    """

    def __init__(self, model: TemporalModel, train_fps: float, device: str = "cpu",
                 torso_from_limbs: bool = False) -> None:
        self.model, self.train_fps, self.device = model.eval().to(device), float(train_fps), device
        self.torso_from_limbs = torso_from_limbs

    @classmethod
    def load(cls, weights=None, device: str = "auto", config: LifterConfig | None = None) -> "Lifter":
        """Load ``weights`` (default: the shipped lifter) onto ``device`` ('auto', 'cpu', 'cuda')."""
        device = resolve_device(device)
        model, meta = load_checkpoint(weights or default_weights(), config)
        return cls(model, meta["train_fps"], device, meta["torso_from_limbs"])

    def lift(self, keypoints: np.ndarray, width: int, height: int, fps: float, flip: bool = True,
             bank=None) -> np.ndarray:
        """Lift one person's track.

        Args:
            keypoints: (T, 17, 2) H36M-17 pixel coordinates, finite (fill gaps first).
            width, height: Image size in pixels.
            fps: Frame rate of the track, Hz.
            flip: Flip test-time augmentation.
            bank: A :class:`pipeline.lifting.bank.PoseBankConfig` to fuse long-term bank poses (paper 003), built
                on the track at the lifter's rate; None or mode 'off' lifts plainly.

        Returns:
            (T, 17, 3) camera-frame metres, pelvis at the origin.
        """
        if keypoints.ndim != 3 or keypoints.shape[1:] != (17, 2) or not np.isfinite(keypoints).all():
            raise ShapeError(f"lift expects finite (T, 17, 2) pixel keypoints, got {keypoints.shape}")
        if self.torso_from_limbs:
            keypoints = rebuild_torso(keypoints)
        x = normalize_screen(keypoints.astype(np.float64), width, height)
        same_rate = abs(fps - self.train_fps) < 1e-3 * self.train_fps
        x = x if same_rate else resample_time(x, fps, self.train_fps)
        if bank is not None and bank.mode != "off":
            out = infer_with_bank(self.model, x.astype(np.float32), bank, flip=flip, device=self.device, chunk=20_000)
        else:
            out = infer(self.model, x.astype(np.float32), flip=flip, device=self.device, chunk=20_000)
        out = out if same_rate else resample_time(out, self.train_fps, fps, length=len(keypoints))
        return (out - out[:, :1]).astype(np.float32)
