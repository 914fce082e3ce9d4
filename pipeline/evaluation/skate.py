"""Foot skate and contacts on rendered clips (``pose3d evaluate-contacts``): does foot locking keep feet planted?

Each held-out motion is rendered (:mod:`pipeline.evaluation.synth`) and run through the pipeline with the
trajectory and the skeleton fit, feet unlocked; the same tracks are then locked
(:func:`pipeline.lifting.skeletons.locked`). Ground-truth contacts come from the mocap itself: an ankle within
5 cm of its lowest height over the clip and moving under 0.3 m/s. Foot skate is the mean horizontal speed of
the estimated ankle, in the estimated world frame, over the ground-truth contact frames (0 for a foot that
stays put; the mocap's own figure is its floor).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline.evaluation.synth import SynthConfig, synthesize, write_clip
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.skeletons import locked
from pipeline.lifting.world import estimate_world, placed_poses
from pipeline.run import RunConfig, run_video
from pipeline.skeleton import H36M17
from pipeline.training.mocap import Motion

_FEET = [H36M17.index("r_ankle"), H36M17.index("l_ankle")]
GT_HEIGHT_M, GT_SPEED_M_S = 0.05, 0.3


@dataclass(frozen=True)
class SkateRow:
    """One clip's foot figures.

    Attributes:
        name: Motion name and slice.
        frames: Frames of the evaluated track.
        contact_frames: Foot-frames in ground-truth contact.
        truth: The mocap's own skate over those frames, m/s (the floor of what any estimate can reach).
        unlocked, locked: The estimate's skate without and with foot locking, m/s.
        precision, recall: Of the estimated contact flags against the ground truth.
    """

    name: str
    frames: int
    contact_frames: int
    truth: float
    unlocked: float
    locked: float
    precision: float
    recall: float


def ground_contacts(ankles: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) bool ground-truth contacts from world ankles (T, 2, 3) (y up): low and slow (module docstring)."""
    low = ankles[..., 1] < ankles[..., 1].min(axis=0) + GT_HEIGHT_M
    return low & (horizontal_speed(ankles, fps) < GT_SPEED_M_S)


def horizontal_speed(ankles: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) horizontal speed, m/s, of world ankles (T, 2, 3) (y up) at ``fps``."""
    if len(ankles) < 2:
        return np.zeros(ankles.shape[:2])
    return np.linalg.norm(np.gradient(ankles[..., [0, 2]], axis=0), axis=-1) * fps


def evaluate_skate_clip(motion: Motion, synth: SynthConfig, lifter: Lifter, run_config: RunConfig,
                        workdir: Path) -> SkateRow | None:
    """Render one motion, run it with the trajectory, and measure its feet unlocked and locked."""
    clip = synthesize(motion, synth)
    path = workdir / f"{motion.name.replace('@', '_')}_{synth.seed}.mp4"
    write_clip(clip, path)
    unlocked_config = replace(run_config, lift=replace(run_config.lift, trajectory=True,
                                                       contacts=replace(run_config.lift.contacts, lock=False)))
    result = run_video(path, None, unlocked_config, lifter=lifter)
    track = max(result.tracks, key=len, default=None)
    if track is None or track.skeleton is None or len(track) < 3:
        return None
    keep = track.frames < clip.num_frames
    world = estimate_world(result.tracks)
    pinned = locked(track, world, clip.fps, run_config.lift.fit)
    truth = ground_contacts(clip.world[track.frames[keep]][:, _FEET], clip.fps)
    skate = [float(horizontal_speed(feet, clip.fps)[truth].mean()) if truth.any() else float("nan")
             for feet in (clip.world[track.frames[keep]][:, _FEET], world.apply(placed_poses(track))[keep][:, _FEET],
                          world.apply(placed_poses(pinned))[keep][:, _FEET])]
    flags = track.contacts[keep] >= 0.5
    precision = float((flags & truth).sum() / max(flags.sum(), 1))
    recall = float((flags & truth).sum() / max(truth.sum(), 1))
    return SkateRow(motion.name, int(keep.sum()), int(truth.sum()), *skate, precision, recall)


def evaluate_skate(motions: Sequence[Motion], lifter: Lifter, *, synth: SynthConfig = SynthConfig(),
                   run_config: RunConfig | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[SkateRow]:
    """Foot skate with and without locking on one rendered clip per motion, plus an 'overall' row.

    Args:
        motions: Held-out motions, already sliced.
        lifter: The lifter.
        synth: Rendering settings (its seed is offset per clip).
        run_config: Pipeline settings (the trajectory is switched on; the fit must be enabled).
        progress: Called with (clips done, clips total).

    Returns:
        One row per clip where a person was tracked, then 'overall' (weighted by contact frames).
    """
    run_config = run_config or RunConfig()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose3d-skate-") as tmp:
        for i, motion in enumerate(motions):
            row = evaluate_skate_clip(motion, replace(synth, seed=synth.seed + i), lifter, run_config, Path(tmp))
            rows += [row] if row is not None else []
            if progress:
                progress(i + 1, len(motions))
    return rows + [_overall(rows)]


def _overall(rows: Sequence[SkateRow]) -> SkateRow:
    w = np.array([r.contact_frames for r in rows], float)
    ok = w > 0

    def mean(values) -> float:
        v = np.array(values, float)
        return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")

    return SkateRow("overall", sum(r.frames for r in rows), int(w.sum()), mean([r.truth for r in rows]),
                    mean([r.unlocked for r in rows]), mean([r.locked for r in rows]),
                    mean([r.precision for r in rows]), mean([r.recall for r in rows]))


def format_skate(rows: Sequence[SkateRow]) -> str:
    """A Markdown table of the rows (speeds in cm/s)."""
    lines = ["| clip | frames | contact foot-frames | mocap cm/s | unlocked cm/s | locked cm/s | contact precision "
             "| recall |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = f"**{r.name}**" if r.name == "overall" else r.name
        lines.append(f"| {name} | {r.frames} | {r.contact_frames} | {100 * r.truth:.1f} | {100 * r.unlocked:.1f} | "
                     f"{100 * r.locked:.1f} | {r.precision:.2f} | {r.recall:.2f} |")
    return "\n".join(lines)
