"""Evaluation metrics for 3D poses (VideoPose3D protocols), in the units of the inputs.

Shapes: predictions and targets are (T, J, 3) or (N, J, 3), pelvis-relative.
"""

from __future__ import annotations

import numpy as np


def mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """Protocol 1: mean per-joint position error."""
    return float(np.linalg.norm(pred - target, axis=-1).mean())


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Align each pose of ``pred`` to ``target`` by the best similarity transform (rotation, scale, translation).

    Args:
        pred, target: (N, J, 3).

    Returns:
        (N, J, 3) aligned predictions.
    """
    mu_p, mu_t = pred.mean(axis=1, keepdims=True), target.mean(axis=1, keepdims=True)
    p, t = pred - mu_p, target - mu_t
    norm_p = np.sqrt((p ** 2).sum(axis=(1, 2), keepdims=True)) + 1e-12
    norm_t = np.sqrt((t ** 2).sum(axis=(1, 2), keepdims=True)) + 1e-12
    p, t = p / norm_p, t / norm_t
    u, s, vt = np.linalg.svd(np.einsum("nji,njk->nik", p, t))
    v = vt.transpose(0, 2, 1)
    rot = v @ u.transpose(0, 2, 1)
    # Forbid reflections: flip the last singular vector where the determinant is negative.
    neg = np.linalg.det(rot) < 0
    v[neg, :, -1] *= -1
    s[neg, -1] *= -1
    rot = v @ u.transpose(0, 2, 1)
    scale = s.sum(axis=1)[:, None, None] * norm_t / norm_p
    return scale * np.einsum("nij,nkj->nki", rot, pred - mu_p) + mu_t


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """Protocol 2: MPJPE after per-frame Procrustes alignment (rotation, translation, scale)."""
    return mpjpe(procrustes_align(pred, target), target)


def n_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """Protocol 3: MPJPE after the per-frame least-squares scale of ``pred`` to ``target``."""
    num = (pred * target).sum(axis=(-1, -2), keepdims=True)
    den = (pred * pred).sum(axis=(-1, -2), keepdims=True) + 1e-12
    return mpjpe(num / den * pred, target)


def mpjve(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean per-joint velocity error: error of the per-frame displacement, input units per frame (VideoPose3D)."""
    if len(pred) < 2:
        return float("nan")
    return float(np.linalg.norm(np.diff(pred, axis=0) - np.diff(target, axis=0), axis=-1).mean())
