"""Identities on the real clips: how many ids each clip gets, with appearance re-identification off and on.

Runs the 2D stage (default backend: offline, NanoDet boxes -> ByteTrack) once per clip and builds the tracks
twice from the same sightings: with ``reid_max_gap_s: 0, untangle: false`` (the tracker's ids alone, split
where someone is away longer than ``max_gap_s``) and with the configured re-identification and untangling.
For clips whose number of people is known (``PEOPLE``), "extra ids" is tracks minus people: each is an
identity switch a user would see (a person coming back under a new id). Frames covered and the gaps that re-identification bridged are listed per track.

Usage:
    python benchmarks/tracking_ids.py [CLIP ...]      # default: the clips under ../shared/data/videos
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.io.ffmpeg import probe  # noqa: E402
from pipeline.io.video import VideoReader  # noqa: E402
from pipeline.twod.stage import TwoDConfig, TwoDStage  # noqa: E402
from pipeline.twod.tracks import TrackBuilder, appearance  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
# People who appear in each clip (counted by watching it); pedestrians has too many to count reliably.
PEOPLE = {"two_kids_jumping_sam2.mp4": 2, "running_track_phalp.mp4": 1, "dance_aerobics_romp.mp4": 1}


def sightings(path: Path, config: TwoDConfig) -> tuple[list, int, float]:
    """Per-frame (index, tracked detections, keypoints, scores, looks) from the 2D stage, frames, fps."""
    info = probe(path)
    rows = []
    with VideoReader(path, max_size=1280) as reader, TwoDStage(config, fps=info.fps) as stage:
        for frame in reader:
            r = stage.process(frame)
            looks = [appearance(frame.image, b, kp, sc) if i >= 0 else None
                     for b, i, kp, sc in zip(r.detections.boxes, r.detections.track_ids.tolist(), r.keypoints,
                                             r.scores)]
            rows.append((r.index, r.detections, r.keypoints, r.scores, looks))
    return rows, len(rows), info.fps


def build(rows: list, frames: int, fps: float, config) -> list:
    builder = TrackBuilder(config)
    for row in rows:
        builder.add(*row)
    return builder.build(frames, fps)


def describe(tracks: list) -> str:
    parts = []
    for t in tracks:
        jumps = np.flatnonzero(np.diff(t.frames) > 1)
        gaps = ", ".join(f"away {t.frames[j] + 1}-{t.frames[j + 1] - 1}" for j in jumps)
        parts.append(f"id {t.track_id}: frames {t.frames[0]}-{t.frames[-1]} ({len(t)} rows{'; ' + gaps if gaps else ''})")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    args = parser.parse_args()
    clips = args.clips or sorted(p for p in VIDEOS.glob("*") if p.name in PEOPLE)
    config = TwoDConfig(backend="mediapipe")
    print("| clip | people | re-id | tracks | extra ids | tracks (frames) |")
    print("|---|---:|---|---:|---:|---|")
    for clip in clips:
        rows, frames, fps = sightings(clip, config)
        people = PEOPLE.get(clip.name)
        alone = replace(config.tracks, reid_max_gap_s=0.0, untangle=False)
        for label, tracks_cfg in (("off", alone), ("on", config.tracks)):
            tracks = build(rows, frames, fps, tracks_cfg)
            extra = "" if people is None else str(max(0, len(tracks) - people))
            print(f"| {clip.name} | {people or '?'} | {label} | {len(tracks)} | {extra} | {describe(tracks)} |",
                  flush=True)


if __name__ == "__main__":
    main()
