"""Robust PCA clean-up of one track's 2D keypoints (paper 000's proposal for outlier-ridden 2D).

A person's pose over a couple of seconds lives near a low-dimensional space; a detector's failures
(a limb flipped, a joint snapped to the background) are sparse departures from it. Principal component
pursuit splits the (frames, 34) keypoint matrix into a low-rank part and a sparse part, and joint-frames
with a large sparse part are replaced by their low-rank value::

    from pipeline.cleanup.rpca import rpca_track
    keypoints, replaced = rpca_track(track.keypoints, track.scores, fps, SmoothConfig(rpca=True))

:func:`pipeline.cleanup.cleaner.clean_track` runs it between the outlier test and the Savitzky-Golay filter when
``clean.smooth.rpca`` is on.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.cleanup.smooth import SmoothConfig, body_height, confident, like_input, segments
from pipeline.errors import ShapeError
from pipeline.keypoints import fill_gaps


def rpca(matrix: np.ndarray, lam: float | None = None, *, tol: float = 1e-7,
         max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Split a matrix into low-rank plus sparse parts by principal component pursuit.

    Solves min ||L||_* + lam ||S||_1 subject to L + S = M (Candes, Li, Ma & Wright 2011) with the inexact
    augmented Lagrange multiplier method (Lin, Chen & Ma 2010).

    Args:
        matrix: (m, n) finite.
        lam: Weight of the sparse part; None: 1 / sqrt(max(m, n)).
        tol: Stop when ||M - L - S||_F <= tol * ||M||_F.
        max_iter: Iteration cap (the last iterate is returned when it is reached).

    Returns:
        (low_rank, sparse), each (m, n) float64.
    """
    m = np.asarray(matrix, np.float64)
    if m.ndim != 2 or not np.isfinite(m).all():
        raise ShapeError(f"rpca needs a finite 2D matrix, got shape {m.shape}")
    lam = 1.0 / math.sqrt(max(m.shape)) if lam is None else lam
    low, sparse = np.zeros_like(m), np.zeros_like(m)
    norm = np.linalg.norm(m)
    if norm == 0:
        return low, sparse
    spectral = np.linalg.norm(m, 2)
    y = m / max(spectral, np.abs(m).max() / lam)   # dual start that makes the first steps well scaled
    mu, rho = 1.25 / spectral, 1.5
    mu_max = mu * 1e7
    for _ in range(max_iter):
        u, s, vt = np.linalg.svd(m - sparse + y / mu, full_matrices=False)
        s = np.maximum(s - 1.0 / mu, 0.0)          # singular value thresholding
        r = int((s > 0).sum())
        low = (u[:, :r] * s[:r]) @ vt[:r]
        rest = m - low + y / mu
        sparse = np.sign(rest) * np.maximum(np.abs(rest) - lam / mu, 0.0)
        gap = m - low - sparse
        y += mu * gap
        mu = min(mu * rho, mu_max)
        if np.linalg.norm(gap) <= tol * norm:
            break
    return low, sparse


def rpca_track(keypoints: np.ndarray, scores: np.ndarray, fps: float, config: SmoothConfig, *,
               frames: np.ndarray | None = None, height: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Replace joint-frames that the low-rank pose space around them cannot explain.

    Each block (``config.rpca_window_s`` of a segment) of confident joints, gaps linearly filled, forms a
    (rows, 34) matrix, centred per column; :func:`rpca` splits it, and confident joint-frames whose sparse
    part exceeds ``config.rpca_threshold`` times the person's height take their low-rank value.

    Args:
        keypoints: (T, 17, 2) pixels, NaN where unseen.
        scores: (T, 17) confidences; joint-frames below ``config.min_score`` are filled, never replaced.
        fps: Frame rate, Hz (sets the block length).
        config: Supplies min_score, rpca_window_s, rpca_lambda and rpca_threshold.
        frames: (T,) frame indices; a jump starts a new segment (None: one segment).
        height: The person's size in pixels; None: :func:`body_height` of each segment.

    Returns:
        (keypoints (T, 17, 2) pixels, replaced (T, 17) bool).
    """
    kp = np.asarray(keypoints)
    out = kp.astype(np.float64)
    ok = confident(kp, scores, config.min_score)
    replaced = np.zeros(kp.shape[:2], bool)
    for seg in segments(frames, len(kp)):
        size = body_height(np.where(ok[seg][..., None], out[seg], np.nan)) if height is None else height
        count = -(-(seg.stop - seg.start) // max(round(config.rpca_window_s * fps), 1))
        edges = np.linspace(seg.start, seg.stop, count + 1).round().astype(int)   # near-equal blocks
        for block in (slice(a, b) for a, b in zip(edges[:-1], edges[1:])):
            joints = np.flatnonzero(ok[block].any(0))
            if block.stop - block.start < 3 or len(joints) == 0 or not size > 0:
                continue
            work = np.where(ok[block][:, joints, None], out[block][:, joints], np.nan)
            mat = fill_gaps(work).astype(np.float64).reshape(len(work), -1)
            centre = np.median(mat, 0)   # the mean pose would cost the low-rank part one whole component
            low, sparse = rpca(mat - centre, config.rpca_lambda)
            big = np.linalg.norm(sparse.reshape(work.shape), axis=-1) > config.rpca_threshold * size
            rows, cols = np.nonzero(big & ok[block][:, joints])
            out[block.start + rows, joints[cols]] = (low + centre).reshape(work.shape)[rows, cols]
            replaced[block.start + rows, joints[cols]] = True
    return like_input(out, kp), replaced
