"""Stage 3b: clean each track's 2D keypoints before lifting (``clean`` in ``configs/run.yaml``).

Single-image 2D models jitter, flip limbs and lose ankles (papers 000 and 001). Per track, in order:

1. **ankle**: ankles that score low or sit at an implausible distance from their knee are replaced by a
   regressor's prediction (:mod:`pipeline.cleanup.ankle`, paper 001);
2. **outliers**: joint-frames with an implausible 2nd derivative are dropped and interpolated
   (:func:`pipeline.cleanup.smooth.find_outliers`, paper 000's test relative to the person's size);
3. **rpca**: optionally, joint-frames that the low-rank pose space cannot explain are replaced
   (:mod:`pipeline.cleanup.rpca`, paper 000's proposal);
4. **smoothing**: a Savitzky-Golay filter per joint coordinate (:func:`pipeline.cleanup.smooth.savgol_track`).

Every step is switchable. Nothing is smoothed across a jump in ``frames``; only ``keypoints`` change
(frames, scores and ``interpolated`` are returned as they were); NaN stays NaN. Usage::

    cleaner = Cleaner(CleanConfig())                      # loads weights/ankle.pt once
    tracks = [cleaner.clean(t, fps) for t in tracks]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from pipeline.cleanup.ankle import AnkleConfig, AnkleRegressor, correct_ankles
from pipeline.cleanup.rpca import rpca_track
from pipeline.cleanup.smooth import (
    SmoothConfig,
    confident,
    find_outliers,
    like_input,
    replace_outliers,
    savgol_track,
    segments,
    window_length,
)
from pipeline.errors import ShapeError
from pipeline.types import Track


@dataclass(frozen=True)
class CleanConfig:
    """Settings of the 2D clean-up.

    Attributes:
        enabled: Run the clean-up at all (False: tracks are lifted as the 2D stage gave them).
        ankle: The ankle correction (``ankle.enabled`` switches it).
        smooth: Outlier test (``smooth.outliers``), robust PCA (``smooth.rpca``) and Savitzky-Golay
            smoothing (``smooth.smoothing``).
    """

    enabled: bool = True
    ankle: AnkleConfig = field(default_factory=AnkleConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)


@dataclass(frozen=True)
class CleanupReport:
    """What :func:`clean_track_report` changed.

    Attributes:
        ankles: Ankle joint-frames replaced by the regressor.
        outliers, rpca_replaced: Joint-frames flagged by the acceleration test / by robust PCA, re-filled.
        low_score_replaced: Joint-frames below ``min_score`` that were given the filtered value.
        segments, segments_unsmoothed: Runs of consecutive frames / those too short to filter.
    """

    ankles: int = 0
    outliers: int = 0
    rpca_replaced: int = 0
    low_score_replaced: int = 0
    segments: int = 0
    segments_unsmoothed: int = 0


def clean_track_report(track: Track, fps: float, config: CleanConfig,
                       regressor: AnkleRegressor | None = None) -> tuple[Track, CleanupReport]:
    """:func:`clean_track`, also counting what each step changed.

    Returns:
        (the cleaned Track, or ``track`` itself when disabled; the :class:`CleanupReport`).
    """
    if not fps > 0:
        raise ShapeError(f"track {track.track_id}: fps must be > 0, got {fps}")
    segs, frames, sm = segments(track.frames, len(track)), track.frames, config.smooth
    if not config.enabled:
        return track, CleanupReport(segments=len(segs))
    kp, scores = track.keypoints.astype(np.float64), np.nan_to_num(track.scores.astype(np.float64))
    fixed = np.zeros(kp.shape[:2], bool)
    if config.ankle.enabled:
        regressor = regressor or AnkleRegressor.load(config.ankle.weights)
        kp, fixed = correct_ankles(dataclasses.replace(track, keypoints=kp), regressor, config.ankle, fps)
        kp = kp.keypoints.astype(np.float64)
        # The regressor's ankle is a measurement like any other from here on: trusted by the later steps.
        scores = np.where(fixed, np.maximum(scores, sm.min_score), scores)
    trusted = confident(kp, scores, sm.min_score)
    outliers = replaced = np.zeros(trusted.shape, bool)
    if sm.outliers:
        masked = np.where(trusted[..., None], kp, np.nan)
        outliers = find_outliers(masked, fps, sm, frames=frames)
        kp = np.where(outliers[..., None], replace_outliers(masked, outliers, frames=frames), kp)
        scores = np.where(outliers, 0.0, scores)   # so the filter re-fills them from confident neighbours too
    if sm.rpca:
        kp, replaced = rpca_track(kp, scores, fps, sm, frames=frames)
        # Excluded as well: the confident neighbours are a more exact fill than the low-rank value,
        # which the rank/sparsity trade-off biases by a few pixels.
        scores = np.where(replaced, 0.0, scores)
    if sm.smoothing:
        kp = savgol_track(kp, scores, fps, sm, frames=frames)
    out = like_input(kp, track.keypoints)
    low_score = np.isfinite(track.keypoints).all(-1) & ~confident(track.keypoints, track.scores, sm.min_score)
    report = CleanupReport(
        ankles=int(fixed.sum()), outliers=int(outliers.sum()), rpca_replaced=int(replaced.sum()),
        low_score_replaced=int((low_score & (out != track.keypoints).any(-1)).sum()) if sm.smoothing else 0,
        segments=len(segs),
        segments_unsmoothed=sum(not window_length(fps, sm, s.stop - s.start) for s in segs) if sm.smoothing else 0)
    return dataclasses.replace(track, keypoints=out), report


def clean_track(track: Track, fps: float, config: CleanConfig, regressor: AnkleRegressor | None = None) -> Track:
    """Clean one track's keypoints: ankles, outliers, optional RPCA, Savitzky-Golay, per segment.

    Args:
        track: The person's COCO-17 keypoints (pixels) with frames, scores and interpolated flags.
        fps: Frame rate, Hz.
        config: The clean-up settings; ``enabled=False`` returns the track itself.
        regressor: The ankle regressor (default: load ``config.ankle.weights`` when the step is on).

    Returns:
        A new Track with the same frames, scores and interpolated flags and cleaned (T, 17, 2) keypoints.
    """
    return clean_track_report(track, fps, config, regressor)[0]


class Cleaner:
    """The clean-up stage with its ankle regressor loaded once, for many tracks.

    Args:
        config: Settings.
        regressor: A loaded regressor (default: ``config.ankle.weights`` when the ankle step is on).
    """

    def __init__(self, config: CleanConfig, regressor: AnkleRegressor | None = None) -> None:
        self.config = config
        needed = config.enabled and config.ankle.enabled
        self.regressor = regressor or (AnkleRegressor.load(config.ankle.weights) if needed else None)

    def clean(self, track: Track, fps: float) -> Track:
        """:func:`clean_track` with this stage's settings and regressor."""
        return clean_track(track, fps, self.config, self.regressor)

    def clean_all(self, tracks: list[Track], fps: float) -> list[Track]:
        """Clean every track of a clip (Hz ``fps``)."""
        return [self.clean(t, fps) for t in tracks]
