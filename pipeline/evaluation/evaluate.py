"""Evaluate a lifter on held-out mocap through random virtual cameras (``pose3d evaluate``).

Each held-out motion is cut into segments (default 5 s); each segment is filmed by its own random camera
(seeded, so runs compare) and lifted exactly as at inference time: whole-sequence pass, replication padding
at the ends, flip test-time augmentation. Errors are reported in millimetres per action and overall, with
exact 2D ("gt") and with detector-like 2D ("noisy"). The 2D torso is the mocap's by default (the
VideoPose3D protocol); ``torso_from_limbs`` gives the lifter the one pose3d builds at run time from a 2D
model's hips and shoulders instead.

Subsampled test sequences (paper 003's protocol, ``interval`` s > 1): every s-th frame of a held-out
motion is kept and the result is lifted as consecutive frames at the lifter's rate, as if the person moved
s times faster in front of a camera at that rate (paper 003 extracts every s-th frame of Human3.6M's 50 Hz
sequences to synthesise fast motion; nothing is interpolated back). All s phases (start frames 0..s-1) are
evaluated, so every frame of the motion is scored once at every interval. MPJVE is then per subsampled
frame, as in the paper.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from pipeline.camera import normalize_screen
from pipeline.errors import ConfigError
from pipeline.evaluation import metrics
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.bank import PoseBankConfig, infer_with_bank
from pipeline.lifting.fit import FitConfig, fit_skeleton
from pipeline.lifting.model import TemporalModel
from pipeline.skeleton import H36M_LIMB_JOINTS
from pipeline.training.cameras import film
from pipeline.training.config import AugmentConfig, CameraConfig
from pipeline.training.dataset import Clip, corrupt_2d

# Fixed detector-like corruption for the "noisy" protocol: 1% of body height jitter, stale joints, swaps.
NOISY_2D = AugmentConfig(clean_fraction=0.0, noise_px=(0.01, 0.01), drop_prob=0.01, swap_prob=0.005)


@dataclass(frozen=True)
class EvalRow:
    """Errors (mm; MPJVE in mm per lifted frame: at the training rate, subsampled ones) for one group of frames."""

    group: str
    frames: int
    mpjpe: float
    p_mpjpe: float
    n_mpjpe: float
    mpjve: float


@dataclass(frozen=True)
class EvalReport:
    """Per-action rows plus an 'overall' row for each 2D protocol ('gt', 'noisy').

    Attributes:
        rows: protocol -> rows (actions sorted, 'overall' last).
        joints: Indices of the H36M-17 joints the errors average over.
        subjects: Held-out subjects evaluated.
        segments: Number of camera segments.
    """

    rows: dict[str, list[EvalRow]]
    joints: tuple[int, ...]
    subjects: tuple[str, ...]
    segments: int

    def overall(self, protocol: str = "gt") -> EvalRow:
        return self.rows[protocol][-1]


def segments(joints: torch.Tensor, length: int) -> list[torch.Tensor]:
    """Cut a (T, J, 3) sequence into pieces of ``length`` frames (a short tail joins the previous piece)."""
    n = max(1, len(joints) // length)
    bounds = np.linspace(0, len(joints), n + 1).astype(int)
    return [joints[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def joint_errors(pred: np.ndarray, gt: np.ndarray, joints: Sequence[int]) -> np.ndarray:
    """Per-metric errors (mm) of one segment: [mpjpe, p_mpjpe, n_mpjpe, mpjve]."""
    p, g = pred[:, list(joints)], gt[:, list(joints)]
    return 1000.0 * np.array([metrics.mpjpe(p, g), metrics.p_mpjpe(p, g), metrics.n_mpjpe(p, g), metrics.mpjve(p, g)])


def evaluate(model: TemporalModel, clips: Sequence[Clip], camera: CameraConfig, *, segment_frames: int = 250,
             joints: Sequence[int] = H36M_LIMB_JOINTS, seed: int = 0, flip: bool = True, device: str = "cpu",
             interval: int = 1, bank: PoseBankConfig | None = None, torso_from_limbs: bool = False,
             fit: FitConfig | None = None, fps: float = 50.0,
             progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Evaluate ``model`` on ``clips`` (held-out subjects, at the model's training rate).

    Args:
        model: The lifter.
        clips: Held-out motions.
        camera: Virtual camera ranges.
        segment_frames: Frames per camera segment.
        joints: H36M-17 joints to average over (default: pelvis, hips, knees, ankles, shoulders, elbows, wrists).
        seed: Seed of cameras and 2D noise.
        flip: Flip test-time augmentation.
        device: Torch device.
        interval: Keep every ``interval``-th frame (all phases) and lift it as consecutive frames (module docstring).
        bank: Long-term pose bank fused into the lifter's windows (paper 003); None lifts plainly.
        torso_from_limbs: Give the lifter the 2D pelvis, spine and thorax rebuilt from the hips and shoulders
            (after the noise, as a 2D model's torso is) instead of the mocap's; the 3D ground truth is unchanged.
        fit: Score the fitted skeleton's joints (:func:`pipeline.lifting.fit.fit_skeleton`) instead of the raw
            lifted ones.
        fps: Frame rate of ``clips`` (the lifter's training rate), Hz.
        progress: Called with (segments done, segments total).

    Returns:
        An :class:`EvalReport`.
    """
    gen = torch.Generator().manual_seed(seed)
    # A segment's camera already frames several seconds of motion; do not shrink the person further.
    camera = replace(camera, distance_scale=(1.0, min(2.0, camera.distance_scale[1])))
    if interval < 1:
        raise ConfigError(f"test-sequence interval must be >= 1, got {interval}")
    # Velocity errors need two frames: a one-frame piece (a very short motion subsampled) is skipped.
    jobs = [(clip.action, seg) for clip in clips for phase in range(interval)
            for seg in segments(clip.joints[phase::interval], segment_frames) if len(seg) >= 2]
    sums: dict[str, dict[str, np.ndarray]] = {p: defaultdict(lambda: np.zeros(4)) for p in ("gt", "noisy")}
    counts: dict[str, int] = defaultdict(int)
    for i, (action, seg) in enumerate(jobs):
        shot = film(seg, camera, gen)
        gt = shot.poses3d - shot.poses3d[:, :1]
        uv = torch.from_numpy(shot.keypoints)[None]
        w, h = shot.camera.width, shot.camera.height
        for protocol, uv2d in (("gt", uv), ("noisy", corrupt_2d(uv, NOISY_2D, gen))):
            uv2d = rebuild_torso(uv2d) if torso_from_limbs else uv2d
            x = normalize_screen(uv2d[0], w, h).numpy()
            pred = infer_with_bank(model, x, bank, flip=flip, device=device)
            pred = fit_skeleton(pred, fps / interval, fit).poses3d if fit is not None else pred
            err = joint_errors(pred, gt, joints) * len(seg)
            sums[protocol][action] += err
            sums[protocol]["overall"] += err
        counts[action] += len(seg)
        counts["overall"] += len(seg)
        if progress:
            progress(i + 1, len(jobs))
    rows = {p: [EvalRow(g, counts[g], *(s[g] / counts[g])) for g in sorted(s, key=lambda g: (g == "overall", g))]
            for p, s in sums.items()}
    return EvalReport(rows, tuple(joints), tuple(sorted({c.subject for c in clips})), len(jobs))


def format_report(report: EvalReport) -> str:
    """A Markdown table: one line per action and protocol, errors in mm."""
    lines = ["| 2D | action | frames | MPJPE | P-MPJPE | N-MPJPE | MPJVE |", "|---|---|---:|---:|---:|---:|---:|"]
    for protocol, rows in report.rows.items():
        for r in rows:
            name = f"**{r.group}**" if r.group == "overall" else r.group
            lines.append(f"| {protocol} | {name} | {r.frames} | {r.mpjpe:.1f} | {r.p_mpjpe:.1f} | "
                         f"{r.n_mpjpe:.1f} | {r.mpjve:.2f} |")
    return "\n".join(lines)

