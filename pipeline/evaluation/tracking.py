"""Identities on rendered group clips (``pose3d evaluate-tracking``).

Held-out mocap people are rendered together on scripted crossing, leaving and staying paths
(:mod:`pipeline.evaluation.synth_group`), encoded to H.264 and run through ``pose3d run``'s 2D stage and
2D clean-up with the same settings (decoding size, detector, tracker, track rules, keypoints); the tracks,
and the tracker's boxes frame by frame, are scored against the ground truth with
:func:`pipeline.evaluation.identities.score_identities`. Lifting is left out: it does not change who is
where.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline.evaluation.identities import IdentityScores, score_identities, track_keypoints
from pipeline.evaluation.synth import write_clip
from pipeline.evaluation.synth_group import GroupConfig, pick_motions, synthesize_group
from pipeline.io.ffmpeg import probe
from pipeline.run import RunConfig, clean_tracks, two_d_pass
from pipeline.training.mocap import Motion
from pipeline.twod.stage import FrameResult


@dataclass(frozen=True)
class TrackingRow:
    """One group clip's figures.

    Attributes:
        name: The motions rendered, joined by '+'.
        frames: Frames in the clip.
        scores: Identity figures.
        seconds_2d: Wall time of the decoding, 2D stage (detection, tracking, keypoints) and clean-up, seconds.
    """

    name: str
    frames: int
    scores: IdentityScores
    seconds_2d: float


def evaluate_group(motions: Sequence[Motion], config: GroupConfig, run_config: RunConfig,
                   workdir: Path) -> TrackingRow:
    """Render one group clip, run the 2D stage and clean-up on the encoded file, and score them."""
    clip = synthesize_group(motions, config)
    path = workdir / f"group_{config.synth.seed}.mp4"
    write_clip(clip, path)
    boxes: list[np.ndarray] = []

    def keep_boxes(found: FrameResult, scale: float) -> None:
        boxes.append(found.detections.boxes[found.detections.track_ids >= 0] / scale)

    start = time.perf_counter()
    tracks, _ = two_d_pass(path, probe(path), run_config, on_frame=keep_boxes)
    tracks = clean_tracks(tracks, run_config, clip.fps)
    seconds = time.perf_counter() - start
    keypoints, confidences = track_keypoints(tracks, clip.num_frames)
    heights = clip.boxes[..., 3] - clip.boxes[..., 1]
    scores = score_identities(clip.keypoints2d, heights, clip.visible, keypoints, confidences,
                              (clip.camera.width, clip.camera.height), truth_boxes=clip.boxes, tracked_boxes=boxes)
    return TrackingRow("+".join(clip.names), clip.num_frames, scores, seconds)


def evaluate_groups(motions: Sequence[Motion], *, clips: int, config: GroupConfig = GroupConfig(),
                    run_config: RunConfig | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[TrackingRow]:
    """Score identities on ``clips`` group clips (seed = config's seed + index: other people, looks, scene).

    Args:
        motions: Held-out motions to draw the people from (:func:`pipeline.evaluation.synth_group.pick_motions`).
        clips: Number of clips.
        config: People, camera distance, clip length and rendering.
        run_config: Pipeline settings (defaults when None).
        progress: Called with (clips done, clips total).

    Returns:
        One row per clip.
    """
    run_config = run_config or RunConfig()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pose3d-evaltracking-") as tmp:
        for i in range(clips):
            seed = config.synth.seed + i
            clip_config = dataclasses.replace(config, synth=dataclasses.replace(config.synth, seed=seed))
            picked = pick_motions(motions, config.people, np.random.default_rng(seed))
            rows.append(evaluate_group(picked, clip_config, run_config, Path(tmp)))
            if progress:
                progress(i + 1, clips)
    return rows


def format_tracking(rows: Sequence[TrackingRow]) -> str:
    """A Markdown table of the rows and their sum."""
    lines = ["| clip | frames | people | tracks | found (boxes) | recall (keypoints) | precision | id switches | IDF1 "
             "| 2D s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, frames, s, seconds in [(r.name, r.frames, r.scores, r.seconds_2d) for r in rows] + (
            [("**overall**", sum(r.frames for r in rows), sum((r.scores for r in rows[1:]), rows[0].scores),
              sum(r.seconds_2d for r in rows))] if rows else []):
        lines.append(f"| {name} | {frames} | {s.people} | {s.tracks} | {100 * s.detection_recall:.1f}% | "
                     f"{100 * s.recall:.1f}% | {100 * s.precision:.1f}% | {s.id_switches} | {s.idf1:.3f} | "
                     f"{seconds:.1f} |")
    return "\n".join(lines)
