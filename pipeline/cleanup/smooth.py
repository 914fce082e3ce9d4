"""Temporal clean-up of one track's 2D keypoints: outlier frames and Savitzky-Golay smoothing (paper 000).

Usage::

    from pipeline.cleanup.smooth import SmoothConfig, find_outliers, replace_outliers, savgol_track
    bad = find_outliers(keypoints, fps, SmoothConfig(), frames=track.frames)         # (T, 17) bool
    keypoints = replace_outliers(keypoints, bad, frames=track.frames)                # interpolated
    keypoints = savgol_track(keypoints, scores, fps, SmoothConfig(), frames=track.frames)

:func:`pipeline.cleanup.cleaner.clean_track` chains these (with the ankle regressor and the optional robust PCA
of :mod:`pipeline.cleanup.rpca`) on a whole Track. Steps: joint-frames whose 2nd derivative is implausible for a
human are dropped and interpolated; then a Savitzky-Golay filter of order 3 removes jitter. Paper 000 used
a 41-frame window at 50 Hz (0.82 s) on Human3.6M; on held-out CMU motion with detector-like 2D a 0.5 s
window lifts better (README, "2D clean-up"), so that is the default. Rules:

* Each run of consecutive ``frames`` is a segment, cleaned on its own: nothing is smoothed across a jump.
* Joint-frames scoring below ``min_score`` (and outliers) are excluded: filled from confident neighbours
  (the nearest one held at the ends) before filtering, then given the filtered value.
* Nothing is invented: NaN in the input stays NaN, so no joint is extended past the frames it was seen
  in. Spans too short to smooth, and joints with fewer than polyorder + 1 confident frames, are unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from pipeline.errors import ConfigError

# Paper 000 drops samples whose 2nd derivative exceeds 100 mm at 20 ms sampling: a second difference
# x[t+1] - 2 x[t] + x[t-1] of 0.1 m with dt = 0.02 s, i.e. 0.1 / 0.02**2 = 250 m/s^2. Pixels have no metric
# scale, so divide by an average adult height of ~1.7 m: 250 / 1.7 = 147, rounded to 150 body heights per
# s^2. Per second^2 (not per frame^2) so one physical acceleration is flagged at every frame rate. A lone
# wrong frame of error A gives |a| = 2 A fps^2, so errors above 75 / fps^2 heights are caught: 3 % of the
# height at 50 Hz, 8 % at 30 Hz. The height is the keypoints' extent (nose to ankle, ~0.9 of stature),
# which makes the test ~10 % stricter than the paper's.
OUTLIER_ACCEL = 150.0


@dataclass(frozen=True)
class SmoothConfig:
    """Settings of the temporal 2D clean-up steps (``clean.smooth`` in ``configs/run.yaml``).

    Attributes:
        smoothing: Run the Savitzky-Golay filter.
        window_s: Savitzky-Golay window, seconds (paper 000: 0.82 s, 41 frames at 50 Hz; 0.5 s measured
            better on held-out CMU subjects); in frames it is rounded to the nearest odd number and shrunk to
            fit short segments.
        polyorder: Savitzky-Golay polynomial order (paper 000: 3).
        min_score: Joint-frames scoring below this are excluded and replaced by the filtered value.
        outliers: Detect and replace implausible accelerations first.
        outlier_accel: Acceleration limit in person heights per s^2 (see ``OUTLIER_ACCEL``).
        rpca: Run robust PCA after the outlier step.
        rpca_window_s: RPCA runs on blocks of at most this many seconds of a segment: over longer spans,
            turning and walking off make the pose matrix too far from low-rank, and RPCA "corrects" real
            motion (synthetic walk: 2 s blocks changed < 0.01 % of clean joint-frames, 4 s 0.35 %).
        rpca_lambda: Sparse-part weight; None: 1 / sqrt(max(rows, 34)) per block.
        rpca_threshold: Joint-frames whose sparse part exceeds this fraction of the height are replaced.
    """

    smoothing: bool = True
    window_s: float = 0.5
    polyorder: int = 3
    min_score: float = 0.3
    outliers: bool = True
    outlier_accel: float = OUTLIER_ACCEL
    rpca: bool = False
    rpca_window_s: float = 2.0
    rpca_lambda: float | None = None
    rpca_threshold: float = 0.05

    def __post_init__(self) -> None:
        def number(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        checks = {name: (number(getattr(self, name)) and getattr(self, name) > 0, "a number > 0")
                  for name in ("window_s", "outlier_accel", "rpca_window_s", "rpca_threshold")}
        checks["polyorder"] = (type(self.polyorder) is int and self.polyorder >= 0, "an int >= 0")
        checks["min_score"] = (number(self.min_score) and 0 <= self.min_score <= 1, "a number in [0, 1]")
        lam = self.rpca_lambda
        checks["rpca_lambda"] = (lam is None or (number(lam) and lam > 0), "null or a number > 0")
        for name, (ok, what) in checks.items():
            if not ok:
                raise ConfigError(f"smooth.{name} must be {what}, got {getattr(self, name)!r}")


def segments(frames: np.ndarray | None, length: int) -> list[slice]:
    """Slices of the T axis, one per run of consecutive ``frames`` ((T,) increasing; None: one run)."""
    if frames is None or length == 0:
        return [slice(0, length)]
    starts = np.flatnonzero(np.diff(np.asarray(frames)) != 1) + 1
    edges = [0, *starts.tolist(), length]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def confident(keypoints: np.ndarray, scores: np.ndarray, min_score: float) -> np.ndarray:
    """(T, 17) bool: the joint-frame is seen and scores at least ``min_score`` (NaN scores count as 0)."""
    return np.isfinite(keypoints).all(-1) & (np.nan_to_num(np.asarray(scores, np.float64)) >= min_score)


def like_input(out: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``out`` in the input's float dtype (float64 for integer input)."""
    return out.astype(keypoints.dtype if np.issubdtype(keypoints.dtype, np.floating) else np.float64)


def window_length(fps: float, config: SmoothConfig, length: int | None = None) -> int:
    """Savitzky-Golay window in frames: ``window_s`` at ``fps`` (Hz), nearest odd, shrunk to ``length``.

    Returns:
        Odd window > polyorder, or 0 when ``length`` frames (None: no limit) are too few to smooth.
    """
    w = 2 * int(math.floor((config.window_s * fps - 1) / 2 + 0.5)) + 1
    if length is not None and w > length:
        w = length if length % 2 else length - 1
    return w if w > config.polyorder else 0


def body_height(keypoints: np.ndarray) -> float:
    """Robust size of the person: median over frames of the larger side of the keypoints' bounding box.

    Args:
        keypoints: (T, 17, 2) pixels, NaN where unseen.

    Returns:
        Pixels; NaN when no frame shows two joints.
    """
    kp = np.asarray(keypoints, np.float64)
    seen = np.isfinite(kp).all(-1)
    count = seen.sum(1)
    # Frames showing most of the body (12 joints, or as many as the best frame shows): a frame with only
    # the head visible would shrink the estimate and make every threshold too strict.
    use = count >= max(2, min(int(count.max(initial=0)), 12))
    if not use.any():
        return float("nan")
    lo = np.where(seen[use, :, None], kp[use], np.inf).min(1)
    hi = np.where(seen[use, :, None], kp[use], -np.inf).max(1)
    return float(np.median((hi - lo).max(-1)))


def savgol_track(keypoints: np.ndarray, scores: np.ndarray, fps: float, config: SmoothConfig, *,
                 frames: np.ndarray | None = None) -> np.ndarray:
    """Savitzky-Golay filter each joint coordinate over time, segment by segment.

    Args:
        keypoints: (T, 17, 2) pixels, NaN where unseen.
        scores: (T, 17) confidences in [0, 1]; joint-frames below ``config.min_score`` are excluded
            (linearly interpolated from confident neighbours, the nearest one held at the ends of the
            joint's seen span, then given the filtered value). A joint with fewer than polyorder + 1
            confident frames in a segment is left as it is.
        fps: Frame rate, Hz (sets the window in frames).
        config: Supplies window_s, polyorder and min_score.
        frames: (T,) frame indices; a jump starts a new segment (None: one segment).

    Returns:
        (T, 17, 2) pixels, the input's float dtype. NaN where the input is NaN; unchanged where a joint's
        seen span (first..last finite frame) in a segment is too short to smooth.
    """
    kp = np.asarray(keypoints)
    out = kp.astype(np.float64)
    seen, ok = np.isfinite(kp).all(-1), confident(kp, scores, config.min_score)
    for seg in segments(frames, len(kp)):
        for j in range(kp.shape[1]):
            good, span = np.flatnonzero(ok[seg, j]), np.flatnonzero(seen[seg, j])
            lo, hi = (span[0], span[-1] + 1) if len(span) else (0, 0)
            w = window_length(fps, config, hi - lo)
            if not w or len(good) <= config.polyorder:
                continue
            t = np.arange(lo, hi)
            rows = seg.start + t
            filled = np.stack([np.interp(t, good, out[seg.start + good, j, c]) for c in (0, 1)], -1)
            smooth = savgol_filter(filled, w, config.polyorder, axis=0)  # mode="interp": exact polynomial ends
            keep = seen[rows, j]
            out[rows[keep], j] = smooth[keep]
    return like_input(out, kp)


def _accel(t: np.ndarray, x: np.ndarray, p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Norm of the 2nd divided difference through samples p < q < r (index arrays): px per frame^2."""
    h1, h2 = (t[q] - t[p])[:, None], (t[r] - t[q])[:, None]
    return np.linalg.norm(2 * (h1 * x[r] - (h1 + h2) * x[q] + h2 * x[p]) / (h1 * h2 * (h1 + h2)), axis=1)


def _spikes(t: np.ndarray, x: np.ndarray, limit: float) -> np.ndarray:
    """Flag samples of one joint until no 2nd difference exceeds ``limit``; (n,) bool.

    A bad sample also raises the 2nd difference of its good neighbours, and a burst of a few bad samples
    looks like a plateau whose good edges are as "accelerated" as the bad samples. So the test only says
    where to look: each round flags, next to every exceedance, the sample farthest from the running
    median of its 7 nearest samples (which ignores bursts of up to 3), taking local maxima within 2
    samples so far-apart spikes go in one round; the 2nd differences are then recomputed across the gaps.
    """
    flagged = np.zeros(len(t), bool)
    while (~flagged).sum() >= 3:
        keep = np.flatnonzero(~flagged)
        tk, xk, n = t[keep], x[keep], len(keep)
        i = np.arange(n)
        a = np.zeros(n)
        a[1:-1] = _accel(tk, xk, i[:-2], i[1:-1], i[2:])
        over = a > limit
        if not over.any():
            break
        padded = np.pad(xk, ((3, 3), (0, 0)), constant_values=np.nan)
        median = np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, 7, axis=0), axis=-1)
        score = np.linalg.norm(xk - median, axis=1)
        touched = over | np.pad(over[1:], (0, 1)) | np.pad(over[:-1], (1, 0))
        score[~touched] = -np.inf
        s = np.pad(score, 2, constant_values=-np.inf)
        best = touched.copy()
        for k in (1, 2):   # strictly above earlier neighbours, at least equal to later ones
            best &= (score > s[2 - k:2 - k + n]) & (score >= s[2 + k:2 + k + n])
        flagged[keep[best]] = True
    return flagged


def find_outliers(keypoints: np.ndarray, fps: float, config: SmoothConfig, height: float | None = None, *,
                  frames: np.ndarray | None = None) -> np.ndarray:
    """Flag joint-frames whose acceleration is implausible for a human (paper 000's 2nd-derivative test).

    Args:
        keypoints: (T, 17, 2) pixels, NaN where unseen or excluded (NaN samples are skipped: the
            2nd difference is taken across them).
        fps: Frame rate, Hz.
        config: Supplies outlier_accel (person heights per s^2).
        height: The person's size in pixels; None: :func:`body_height` of each segment.
        frames: (T,) frame indices; a jump starts a new segment (None: one segment).

    Returns:
        (T, 17) bool, True where a joint-frame was flagged (never where the input is NaN).
    """
    kp = np.asarray(keypoints, np.float64)
    out = np.zeros(kp.shape[:2], bool)
    for seg in segments(frames, len(kp)):
        size = body_height(kp[seg]) if height is None else height
        if not size > 0:
            continue
        limit = config.outlier_accel * size / fps**2        # px per frame^2
        for j in range(kp.shape[1]):
            idx = np.flatnonzero(np.isfinite(kp[seg, j]).all(-1))
            if len(idx) >= 3:
                bad = _spikes(idx.astype(np.float64), kp[seg.start + idx, j], limit)
                out[seg.start + idx[bad], j] = True
    return out


def replace_outliers(keypoints: np.ndarray, outliers: np.ndarray, *,
                     frames: np.ndarray | None = None) -> np.ndarray:
    """Set flagged joint-frames to NaN and interpolate them linearly from the joint's other samples.

    Args:
        keypoints: (T, 17, 2) pixels, NaN where unseen.
        outliers: (T, 17) bool, the joint-frames to replace.
        frames: (T,) frame indices; interpolation never crosses a jump. None: one segment.

    Returns:
        (T, 17, 2) pixels; flagged joint-frames at a segment's edge take the nearest valid value, and
        stay NaN when the joint has no other valid sample in the segment.
    """
    kp, flags = np.asarray(keypoints), np.asarray(outliers, bool)
    out = kp.astype(np.float64)
    out[flags] = np.nan
    for seg in segments(frames, len(out)):
        t = np.arange(seg.stop - seg.start)
        for j in np.flatnonzero(flags[seg].any(0)):
            ok, fix = np.isfinite(out[seg, j]).all(-1), t[flags[seg, j]]
            if ok.any():
                for c in (0, 1):
                    out[seg.start + fix, j, c] = np.interp(fix, t[ok], out[seg.start + t[ok], j, c])
    return like_input(out, kp)
