"""Small synthetic poses and helpers shared by the tests (import as ``from tests.support.synth import ...``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pipeline.skeleton import H36M17

# The shared data folder beside the checkout (../shared); tests that need it skip when it is absent.
SHARED = Path(os.environ.get("POSE3D_SHARED") or Path(__file__).resolve().parents[3] / "shared")

# A person standing upright, facing +Z, in a Y-up world (metres), H36M-17 order.
STANDING = np.array([
    [0.00, 0.95, 0.00],    # pelvis
    [-0.12, 0.95, 0.00],   # r_hip
    [-0.13, 0.52, 0.03],   # r_knee
    [-0.13, 0.08, 0.00],   # r_ankle
    [0.12, 0.95, 0.00],    # l_hip
    [0.13, 0.52, 0.03],    # l_knee
    [0.13, 0.08, 0.00],    # l_ankle
    [0.00, 1.20, 0.01],    # spine
    [0.00, 1.45, 0.00],    # thorax
    [0.00, 1.55, 0.03],    # neck / nose
    [0.00, 1.70, 0.00],    # head
    [0.18, 1.43, 0.00],    # l_shoulder
    [0.22, 1.15, 0.02],    # l_elbow
    [0.24, 0.90, 0.08],    # l_wrist
    [-0.18, 1.43, 0.00],   # r_shoulder
    [-0.22, 1.15, 0.02],   # r_elbow
    [-0.24, 0.90, 0.08],   # r_wrist
])
assert STANDING.shape == (H36M17.num_joints, 3)


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (det +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def rigid_motion(frames: int, seed: int = 0) -> np.ndarray:
    """(T, 17, 3) the standing pose turning and walking rigidly: every bone length is constant."""
    rng = np.random.default_rng(seed)
    yaw0, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
    out = np.empty((frames, 17, 3))
    for t in range(frames):
        yaw = yaw0 + 0.02 * t
        out[t] = STANDING @ rot_y(yaw).T + np.array([speed * 0.02 * t, 0.0, 0.01 * t])
    return out


def moving_person(frames: int, seed: int = 0, jitter: float = 0.05) -> np.ndarray:
    """(T, 17, 3) a rigidly moving standing pose plus smooth per-joint wobble (bone lengths vary a little)."""
    rng = np.random.default_rng(seed)
    base = rigid_motion(frames, seed)
    phase = rng.uniform(0, 2 * np.pi, size=(1, 17, 3))
    amp = rng.uniform(0, jitter, size=(1, 17, 3))
    amp[:, 0] = 0.0
    t = np.arange(frames)[:, None, None]
    return base + amp * np.sin(0.2 * t + phase)


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters (eval tests)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
    return model.eval()
