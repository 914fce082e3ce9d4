"""Ankle correction (paper 001): where a 2D model lost an ankle, predict it from the leg.

Single-image 2D models often put an ankle on the knee, on the other foot or on the floor, usually with a
low score. Per track and frame, an ankle is judged unreliable (:func:`bad_ankles`) when its score is below
``min_score`` or its distance to the knee is implausible for that person: outside ``shank_range`` times
the person's typical shank length over the track. Only those ankles are replaced, by one of two
regressors fitted by ``pose3d train-ankle`` (:mod:`pipeline.training.ankle`) on CMU mocap:

* ``linear``, paper 001's forms, per side: ankle x = a0 knee x + c; ankle y = a0 knee y + a1 hip y + c;
* ``net``, paper 001's dense network (500-200-1 units, ReLU, MSE), one per ankle coordinate. Besides the
  hips and knees it sees both observed ankles and their scores, so it learns when an observed ankle is
  still useful (drifted part-way, or right but unsure) and when to ignore it (swapped, lost).

Every input is normalised per person (:func:`leg_features`): relative to the hip midpoint and divided by
the person's torso length (shoulder midpoint to hip midpoint, a running median over ``scale_window_s``),
so the regressors do not depend on image size or distance. Usage::

    regressor = AnkleRegressor.load()                       # weights/ankle.pt
    track, corrected = correct_ankles(track, regressor, AnkleConfig(), fps=30.0)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.assets import shipped_weights
from pipeline.config import from_dict, to_dict
from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.types import Track

L_SHOULDER, R_SHOULDER, L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 5, 6, 11, 12, 13, 14, 15, 16
KNEES, ANKLES = (L_KNEE, R_KNEE), (L_ANKLE, R_ANKLE)
# Feature layout of leg_features (torso lengths, hip midpoint at the origin; image axes, y down).
FEATURES = ("l_hip_x", "l_hip_y", "r_hip_x", "r_hip_y", "l_knee_x", "l_knee_y", "r_knee_x", "r_knee_y",
            "shoulders_x", "shoulders_y", "l_ankle_x", "l_ankle_y", "r_ankle_x", "r_ankle_y",
            "l_ankle_score", "r_ankle_score")
TARGETS = ("l_ankle_x", "l_ankle_y", "r_ankle_x", "r_ankle_y")
# Paper 001's linear forms: the features each target is regressed on (plus a constant).
LINEAR_INPUTS = ((4,), (5, 1), (6,), (7, 3))
# An observed ankle farther than this many torso lengths from the hips is clipped (a far-off blunder).
FEATURE_CLIP = 4.0
CHECKPOINT_FORMAT = "pose3d-ankle"
# Shank length / torso length of a person when a track has too few confident ankles to measure it:
# the median over the CMU training subjects seen by random cameras (ANKLE_MODEL_CARD.md).
DEFAULT_SHANK_RATIO = 0.85
MIN_SHANK_SAMPLES = 10


@dataclass(frozen=True)
class AnkleConfig:
    """Settings of the ankle correction (``clean.ankle`` in ``configs/run.yaml``).

    Attributes:
        enabled: Run the ankle correction.
        weights: Regressor checkpoint; None: the shipped ``weights/ankle.pt``.
        method: "net" (dense network) or "linear" (paper 001's linear forms).
        min_score: Ankles scoring below this are corrected.
        shank_range: (low, high): an ankle whose distance to its knee is below low or above high times the
            person's median shank length over the track is corrected.
        scale_window_s: Window of the running median of the torso length that normalises the inputs, s.
    """

    enabled: bool = True
    weights: str | None = None
    method: str = "net"
    min_score: float = 0.3
    shank_range: tuple[float, float] = (0.6, 1.4)
    scale_window_s: float = 2.0

    def __post_init__(self) -> None:
        if self.method not in ("net", "linear"):
            raise ConfigError(f"ankle.method must be 'net' or 'linear', got {self.method!r}")
        if not 0 <= self.min_score <= 1:
            raise ConfigError(f"ankle.min_score must be in [0, 1], got {self.min_score!r}")
        low, high = self.shank_range
        if not 0 <= low < 1 < high:
            raise ConfigError(f"ankle.shank_range must be [low, high] with 0 <= low < 1 < high, got {self.shank_range}")
        if not self.scale_window_s > 0:
            raise ConfigError(f"ankle.scale_window_s must be > 0, got {self.scale_window_s!r}")


@dataclass(frozen=True)
class AnkleNetConfig:
    """Architecture of the dense ankle network (stored in its checkpoint).

    Attributes:
        hidden: Units of the hidden layers (paper 001: 500, 200), ReLU after each.
        features: Inputs per frame (``FEATURES``).
        outputs: Ankle coordinates predicted, one independent network each (``TARGETS``).
    """

    hidden: tuple[int, ...] = (500, 200)
    features: int = len(FEATURES)
    outputs: int = len(TARGETS)


class AnkleNet(nn.Module):
    """``outputs`` independent dense networks (features -> hidden... -> 1), evaluated side by side.

    Each network has its own weights (batched matrix products), so this is exactly one network per ankle
    coordinate. Inputs are standardised by the training set's mean and spread (buffers saved with it).
    """

    def __init__(self, config: AnkleNetConfig) -> None:
        super().__init__()
        self.config = config
        sizes = (config.features, *config.hidden, 1)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(n_in)
            self.weights.append(nn.Parameter(torch.empty(config.outputs, n_in, n_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(config.outputs, 1, n_out).uniform_(-bound, bound)))
        self.register_buffer("mean", torch.zeros(config.features))
        self.register_buffer("std", torch.ones(config.features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, features) normalised leg features -> (B, outputs) normalised ankle coordinates."""
        h = ((x - self.mean) / self.std).expand(self.config.outputs, *x.shape)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h[..., 0].T


def predict_linear(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, 16) leg features -> (N, 4) ankle coordinates by the linear forms ``coef`` (4, 3)."""
    out = np.empty((len(x), len(TARGETS)))
    for k, cols in enumerate(LINEAR_INPUTS):
        out[:, k] = x[:, list(cols)] @ coef[k, :len(cols)] + coef[k, 2]
    return out


class AnkleRegressor:
    """Both fitted regressors and their metadata, as stored in ``weights/ankle.pt``.

    Args:
        net: The dense networks.
        linear: (4, 3) linear-form coefficients (:func:`fit_linear`).
        shank_ratio: Median shank / torso length of the training people (fallback reference).
        extra: JSON-able metadata (training settings, validation figures).
    """

    def __init__(self, net: AnkleNet, linear: np.ndarray, shank_ratio: float = DEFAULT_SHANK_RATIO,
                 extra: dict | None = None) -> None:
        self.net, self.linear = net.eval(), np.asarray(linear, np.float64)
        self.shank_ratio, self.extra = float(shank_ratio), extra or {}

    @torch.no_grad()
    def predict(self, features: np.ndarray, method: str = "net") -> np.ndarray:
        """(N, 16) leg features -> (N, 4) normalised ankle coordinates (``TARGETS``)."""
        if method == "linear":
            return predict_linear(self.linear, features)
        x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        return self.net(x).double().numpy()

    def save(self, path: str | Path) -> None:
        """Write the checkpoint (architecture, weights, linear forms, metadata) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": CHECKPOINT_FORMAT, "version": 1, "net": to_dict(self.net.config),
                   "state_dict": self.net.state_dict(), "linear": self.linear.tolist(),
                   "shank_ratio": self.shank_ratio, "extra": self.extra}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "AnkleRegressor":
        """Read a checkpoint written by :meth:`save` (default: the shipped ``weights/ankle.pt``)."""
        path = Path(path) if path is not None else default_weights()
        if not path.is_file():
            raise ModelError(f"ankle regressor weights not found: {path} (train them with `pose3d train-ankle`, "
                             "or set clean.ankle.enabled: false)")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            if data.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            net = AnkleNet(from_dict(AnkleNetConfig, data["net"], f"{path}:net"))
            net.load_state_dict(data["state_dict"])
            return cls(net, np.array(data["linear"]), data["shank_ratio"], data["extra"])
        except (ConfigError, ModelError):
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever went wrong, the file is not one of ours
            raise ModelError(f"{path}: not a readable ankle checkpoint ({type(exc).__name__}: "
                             f"{str(exc).strip()[:200]})") from None


def default_weights() -> Path:
    """The shipped ankle regressor: the package's ``ankle.pt``."""
    return shipped_weights("ankle.pt")


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the finite ``values`` (T,) in a centred window of ``window`` frames; NaN where none."""
    half = max(window // 2, 0)
    padded = np.pad(np.asarray(values, np.float64), half, constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    out = np.full(len(values), np.nan)
    some = np.isfinite(view).any(-1)
    out[some] = np.nanmedian(view[some], axis=-1)
    return out


def torso_scale(keypoints: np.ndarray, scores: np.ndarray, fps: float, config: AnkleConfig) -> np.ndarray:
    """Per-frame size of the person: running median of the shoulder-midpoint to hip-midpoint distance.

    Args:
        keypoints: (T, 17, 2) COCO-17 pixels, NaN where unseen.
        scores: (T, 17) confidences; frames whose shoulders or hips score below ``config.min_score`` are
            not measured.
        fps: Frame rate, Hz (sets the window).
        config: Supplies min_score and scale_window_s.

    Returns:
        (T,) pixels; frames with no measurement in their window take the track's median; NaN if none.
    """
    kp = np.asarray(keypoints, np.float64)
    torso = np.linalg.norm((kp[:, L_SHOULDER] + kp[:, R_SHOULDER] - kp[:, L_HIP] - kp[:, R_HIP]) / 2, axis=-1)
    sure = (np.nan_to_num(np.asarray(scores, np.float64))[:, [L_SHOULDER, R_SHOULDER, L_HIP, R_HIP]]
            >= config.min_score).all(-1)
    torso = np.where(sure & (torso > 0), torso, np.nan)
    out = running_median(torso, int(round(config.scale_window_s * fps)))
    return np.where(np.isfinite(out), out, np.nanmedian(torso) if np.isfinite(torso).any() else np.nan)


def leg_features(keypoints: np.ndarray, scores: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised regressor inputs per frame (``FEATURES``).

    Args:
        keypoints: (T, 17, 2) COCO-17 pixels.
        scores: (T, 17) confidences.
        scale: (T,) torso length, pixels (:func:`torso_scale`).

    Returns:
        (features (T, 16) float32, valid (T,) bool: hips, knees and shoulders seen and the scale known).
        An unseen ankle reads as its knee with score 0.
    """
    kp = np.asarray(keypoints, np.float64)
    origin = (kp[:, L_HIP] + kp[:, R_HIP]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (kp - origin[:, None]) / np.asarray(scale, np.float64)[:, None, None]
    ankle_seen = np.isfinite(rel[:, list(ANKLES)]).all(-1)
    ankles = np.where(ankle_seen[..., None], rel[:, list(ANKLES)], rel[:, list(KNEES)])
    ankles = np.clip(ankles, -FEATURE_CLIP, FEATURE_CLIP)
    ankle_scores = np.where(ankle_seen, np.nan_to_num(np.asarray(scores, np.float64)[:, list(ANKLES)]), 0.0)
    shoulders = (rel[:, L_SHOULDER] + rel[:, R_SHOULDER]) / 2
    feats = np.concatenate([rel[:, [L_HIP, R_HIP, L_KNEE, R_KNEE]].reshape(len(kp), 8), shoulders,
                            ankles.reshape(len(kp), 4), ankle_scores], axis=1)
    valid = np.isfinite(feats).all(1) & (np.asarray(scale) > 0)
    return np.where(valid[:, None], feats, 0.0).astype(np.float32), valid


def bad_ankles(keypoints: np.ndarray, scores: np.ndarray, scale: np.ndarray, config: AnkleConfig,
               default_ratio: float = DEFAULT_SHANK_RATIO) -> np.ndarray:
    """Flag the ankles to correct: seen, but scoring low or at an implausible distance from their knee.

    The reference shank length is the median, over the track's frames where ankle and knee score at least
    ``min_score``, of shank / torso length, both sides pooled (``default_ratio`` with fewer than
    MIN_SHANK_SAMPLES such frames), times the frame's torso length.

    Args:
        keypoints: (T, 17, 2) COCO-17 pixels.
        scores: (T, 17) confidences.
        scale: (T,) torso length, pixels.
        config: Supplies min_score and shank_range.
        default_ratio: Fallback shank / torso ratio.

    Returns:
        (T, 2) bool for (left, right) ankles; never True for an unseen (NaN) ankle.
    """
    kp, sc = np.asarray(keypoints, np.float64), np.nan_to_num(np.asarray(scores, np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.linalg.norm(kp[:, list(ANKLES)] - kp[:, list(KNEES)], axis=-1) / np.asarray(scale)[:, None]
    sure = (sc[:, list(ANKLES)] >= config.min_score) & (sc[:, list(KNEES)] >= config.min_score)
    usable = sure & np.isfinite(ratio)
    ref = float(np.median(ratio[usable])) if usable.sum() >= MIN_SHANK_SAMPLES else default_ratio
    low, high = config.shank_range
    with np.errstate(invalid="ignore"):
        implausible = (ratio < low * ref) | (ratio > high * ref)
    seen = np.isfinite(kp[:, list(ANKLES)]).all(-1)
    return seen & ((sc[:, list(ANKLES)] < config.min_score) | implausible)


def correct_ankles(track: Track, regressor: AnkleRegressor, config: AnkleConfig,
                   fps: float) -> tuple[Track, np.ndarray]:
    """Replace a track's unreliable ankles (:func:`bad_ankles`) by the regressor's prediction.

    Args:
        track: COCO-17 track, pixels.
        regressor: The fitted regressors.
        config: Settings (``method`` picks the regressor).
        fps: Frame rate, Hz (sets the torso-length window).

    Returns:
        (the Track with corrected keypoints, frames/scores/flags unchanged; (T, 17) bool, True at the
        corrected joint-frames). Frames whose hips, knees or shoulders are unseen are left alone.
    """
    if not fps > 0:
        raise ShapeError(f"track {track.track_id}: fps must be > 0, got {fps}")
    kp, scores = track.keypoints.astype(np.float64), track.scores
    scale = torso_scale(kp, scores, fps, config)
    feats, valid = leg_features(kp, scores, scale)
    todo = bad_ankles(kp, scores, scale, config, regressor.shank_ratio) & valid[:, None]
    corrected = np.zeros(kp.shape[:2], bool)
    rows = np.flatnonzero(todo.any(1))
    if len(rows) == 0:
        return track, corrected
    pred = regressor.predict(feats[rows], config.method).reshape(len(rows), 2, 2)
    origin = (kp[rows, L_HIP] + kp[rows, R_HIP]) / 2
    fixed = origin[:, None] + pred * scale[rows, None, None]
    for side, joint in enumerate(ANKLES):
        pick = todo[rows, side]
        kp[rows[pick], joint] = fixed[pick, side]
        corrected[rows[pick], joint] = True
    return dataclasses.replace(track, keypoints=kp.astype(track.keypoints.dtype)), corrected
