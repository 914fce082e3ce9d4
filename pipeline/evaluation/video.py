"""End-to-end accuracy on rendered clips (``pose3d evaluate-video``).

Held-out mocap is rendered as a shaded humanoid (:mod:`pipeline.evaluation.synth`) from a random camera, encoded to
H.264, and run through the whole pipeline exactly as ``pose3d run`` does (decode, 2D stage, tracking,
lifting). The longest track is compared with the ground truth on the frames it covers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline.evaluation import metrics
from pipeline.evaluation.synth import SynthConfig, person_height_px, synthesize, write_clip
from pipeline.keypoints import coco_to_h36m
from pipeline.lifting.lifter import Lifter
from pipeline.run import RunConfig, run_video
from pipeline.skeleton import H36M_LIMB_JOINTS
from pipeline.training.mocap import Motion


@dataclass(frozen=True)
class VideoEvalRow:
    """One rendered clip's figures.

    Attributes:
        name: Motion name and slice.
        frames: Frames in the clip.
        detected: Fraction of frames covered by the evaluated track.
        error_2d: Mean 2D error of the limb joints, fraction of the person's height.
        mpjpe, p_mpjpe: 3D errors over the limb joints, mm.
    """

    name: str
    frames: int
    detected: float
    error_2d: float
    mpjpe: float
    p_mpjpe: float


def slice_motion(motion: Motion, start_s: float, seconds: float) -> Motion:
    """The part of a motion from ``start_s`` lasting ``seconds`` (clipped to its length)."""
    a = int(round(start_s * motion.fps))
    b = a + max(2, int(round(seconds * motion.fps)))
    return replace(motion, joints=motion.joints[a:b], name=f"{motion.name}@{start_s:g}s")


def evaluate_clip(motion: Motion, synth: SynthConfig, lifter: Lifter, run_config: RunConfig,
                  workdir: Path) -> VideoEvalRow:
    """Render one motion, run the pipeline on the encoded clip, and score the longest track."""
    clip = synthesize(motion, synth)
    path = workdir / f"{motion.name.replace('@', '_')}_{synth.seed}.mp4"
    write_clip(clip, path)
    result = run_video(path, None, run_config, lifter=lifter)
    t = clip.num_frames
    if not result.tracks:
        return VideoEvalRow(motion.name, t, 0.0, float("nan"), float("nan"), float("nan"))
    track = max(result.tracks, key=len)
    keep = track.frames < t
    frames = track.frames[keep]
    gt3d = clip.poses3d[frames] - clip.poses3d[frames, :1]
    pred = track.poses3d[keep]
    joints = list(H36M_LIMB_JOINTS)
    h36m_2d, _ = coco_to_h36m(track.keypoints[keep], track.scores[keep])
    distance = np.linalg.norm(h36m_2d[:, joints] - clip.keypoints2d[frames][:, joints], axis=-1)
    seen = np.isfinite(distance)   # a frame whose keypoints the 2D stage never saw has no 2D error
    err2d = np.where(seen.any(1), np.where(seen, distance, 0.0).sum(1) / np.maximum(seen.sum(1), 1), np.nan)
    return VideoEvalRow(motion.name, t, len(frames) / t, float(np.nanmean(err2d / person_height_px(clip)[frames])),
                        1000 * metrics.mpjpe(pred[:, joints], gt3d[:, joints]),
                        1000 * metrics.p_mpjpe(pred[:, joints], gt3d[:, joints]))


def evaluate_videos(motions: Sequence[Motion], lifter: Lifter, *, synth: SynthConfig = SynthConfig(),
                    run_config: RunConfig | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[VideoEvalRow]:
    """Evaluate the whole pipeline on one rendered clip per motion (seed = index, so cameras differ).

    Args:
        motions: Held-out motions, already sliced to the wanted length.
        lifter: The lifter under test.
        synth: Rendering settings (its seed is offset per clip).
        run_config: Pipeline settings (defaults when None).
        progress: Called with (clips done, clips total).

    Returns:
        One row per clip plus a frame-weighted 'overall' row last.
    """
    run_config = run_config or RunConfig()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose3d-evalvideo-") as tmp:
        for i, motion in enumerate(motions):
            rows.append(evaluate_clip(motion, replace(synth, seed=synth.seed + i), lifter, run_config, Path(tmp)))
            if progress:
                progress(i + 1, len(motions))
    return rows + [overall_row(rows)]


def overall_row(rows: Sequence[VideoEvalRow]) -> VideoEvalRow:
    """Frame-weighted means of the clip rows (clips where nobody was found count as undetected)."""
    w = np.array([r.frames * r.detected for r in rows], float)
    total = sum(r.frames for r in rows)

    def mean(values):
        v = np.array(values, float)
        ok = np.isfinite(v) & (w > 0)
        return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")

    return VideoEvalRow("overall", total, float(w.sum() / max(total, 1)), mean([r.error_2d for r in rows]),
                        mean([r.mpjpe for r in rows]), mean([r.p_mpjpe for r in rows]))


def format_rows(rows: Sequence[VideoEvalRow]) -> str:
    """A Markdown table of the rows."""
    lines = ["| clip | frames | detected | 2D error (% height) | MPJPE mm | P-MPJPE mm |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = f"**{r.name}**" if r.name == "overall" else r.name
        lines.append(f"| {name} | {r.frames} | {100 * r.detected:.0f}% | {100 * r.error_2d:.1f} | "
                     f"{r.mpjpe:.1f} | {r.p_mpjpe:.1f} |")
    return "\n".join(lines)
