"""Small people in 1080p video: how many the bundled detector finds, with and without tiles, and the cost.

Renders 1920 x 1080 clips of several held-out people (``pose3d synth --people``) at camera distances that
make them about 40, 60 and 90 px tall, decodes each at the 2D stage's size (``decode_max_size``, 1280 px by
default, or full size), and runs the NanoDet person detector (``pipeline/twod/nanodet.py``) on every frame.
A person counts in a frame when at least half of their box is in view and not behind someone nearer; they
are found when a box the detector is sure enough of to start a track (probability >= 0.25, the tracker's
``new_track_thresh``) overlaps theirs with IoU >= 0.5 (boxes around the whole rendered body); a box
overlapping nobody (IoU < 0.3) is wrong.

Usage:
    python benchmarks/small_people.py [--frames 60] [--subjects 2,8,17] [--tall 40,60,90]
        [--settings 1280:0,1280:416,1920:0,1920:640,1920:416]   (decode long side : tile side, 0 = no tiles)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.evaluation.synth import SynthConfig, write_clip  # noqa: E402
from pipeline.evaluation.synth_group import GroupConfig, pick_motions, synthesize_group  # noqa: E402
from pipeline.io.video import VideoReader  # noqa: E402
from pipeline.training.mocap import load_dataset  # noqa: E402
from pipeline.twod.detect import box_iou  # noqa: E402
from pipeline.twod.nanodet import NanoDetConfig, NanoDetDetector  # noqa: E402

MOCAP = ROOT.parent / "shared" / "data" / "mocap"
# Camera distance (m) -> people about this tall at 1920 x 1080 (focal 1844 px, 1.7 m people).
DISTANCES = {78.0: 40, 52.0: 60, 35.0: 90}
# (decode long side, tile side in decoded pixels; 0 = the whole frame only)
SETTINGS = [(1280, 0), (1280, 416), (1920, 0), (1920, 640), (1920, 416)]


def recall(clip, path: Path, decode: int, tile: int) -> tuple[float, float, float]:
    """(found / counted person-frames, wrong boxes per frame, ms per frame) of one detector setting."""
    detector = NanoDetDetector(NanoDetConfig(conf=0.25, tile=tile))
    counted = found = wrong = 0
    seconds = 0.0
    with VideoReader(path, max_size=decode) as reader:
        for frame in reader:
            scale = frame.image.shape[1] / clip.camera.width
            t0 = time.perf_counter()
            boxes = detector.detect(frame.image).boxes / scale
            seconds += time.perf_counter() - t0
            truth = clip.boxes[:, frame.index]
            visible = clip.visible[:, frame.index] >= 0.5
            iou = box_iou(truth, boxes) if len(boxes) else np.zeros((len(truth), 0))
            counted += int(visible.sum())
            found += int(((iou >= 0.5).any(axis=1) & visible).sum())
            wrong += int((iou.max(axis=0, initial=0.0) < 0.3).sum()) if len(boxes) else 0
    frames = clip.num_frames
    return found / max(counted, 1), wrong / frames, 1000 * seconds / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (30 fps)")
    parser.add_argument("--subjects", default="2,8,17", help="held-out subjects to draw the people from")
    parser.add_argument("--tall", default=",".join(map(str, DISTANCES.values())), help="people heights, px")
    parser.add_argument("--settings", default=",".join(f"{d}:{t}" for d, t in SETTINGS),
                        help="decode long side : tile side pairs (tile 0: the whole frame only)")
    args = parser.parse_args()
    wanted = {int(v) for v in args.tall.split(",")}
    settings = [tuple(int(v) for v in pair.split(":")) for pair in args.settings.split(",")]
    motions = [m for m in load_dataset(MOCAP, fps=30.0, subjects=set(args.subjects.split(","))) if len(m.joints) >= 30]
    print("| people tall (1080p) | decode px | tiles px | found | wrong boxes / frame | detector ms / frame |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for distance, tall in ((d, t) for d, t in DISTANCES.items() if t in wanted):
            config = GroupConfig(people=4, seconds=args.frames / 30.0, distance=distance,
                                 synth=SynthConfig(width=1920, height=1080, seed=7))
            clip = synthesize_group(pick_motions(motions, 4, np.random.default_rng(7)), config)
            heights = (clip.boxes[..., 3] - clip.boxes[..., 1])[clip.visible >= 0.5]
            path = Path(tmp) / f"small_{tall}.mp4"
            write_clip(clip, path)
            for decode, tile in settings:
                share, wrong, ms = recall(clip, path, decode, tile)
                print(f"| {tall} (median {np.median(heights):.0f}) | {decode} | {tile or '-'} | {100 * share:.1f}% | "
                      f"{wrong:.2f} | {ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
