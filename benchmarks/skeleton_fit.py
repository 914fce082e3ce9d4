"""Bone-length stability and BVH fidelity of ``pose3d run`` on real clips (issue 19's figures).

Runs the whole pipeline on each clip (default: the dance and two-kids clips of ``../shared/data/videos``) with a
JSON and a BVH export, then for every track of at least ``--min-seconds``:

- bone CV: per H36M-17 bone, the standard deviation of its length over the track divided by its mean; the
  worst bone is reported, for the lifter's raw output (``poses3d_raw``) and the fitted skeleton (``poses3d``);
- BVH error: the BVH file is read back (``pipeline.io.bvh.bvh_positions``), its forward kinematics rigidly aligned
  (one rotation and translation for the whole file) to the exported fitted joints, and the largest joint
  distance over all frames reported, in cm.

Usage:
    python benchmarks/skeleton_fit.py [CLIP ...] [--min-seconds 1] [--trajectory]
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

from pipeline.io.bvh import bvh_positions  # noqa: E402
from pipeline.run import RunConfig, run_video, with_choices  # noqa: E402
from pipeline.skeleton import H36M17, RIG_OF_H36M  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CLIPS = ("dance_aerobics_romp.mp4", "two_kids_jumping_sam2.mp4")
PARENTS = np.array(H36M17.parents)


def worst_bone_cv(poses: np.ndarray) -> tuple[float, str]:
    """Largest coefficient of variation of an H36M-17 bone's length over (T, 17, 3) poses (percent), and the bone
    (named by its child joint)."""
    lengths = np.linalg.norm(poses[:, 1:] - poses[:, PARENTS[1:]], axis=-1)
    cv = lengths.std(0) / lengths.mean(0)
    return float(100 * cv.max()), H36M17.joints[1 + int(cv.argmax())]


def aligned_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance between (N, 3) points ``a`` and ``b`` after the best rigid motion of ``a`` onto ``b``."""
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return float(np.linalg.norm((a - ca) @ rotation.T + cb - b, axis=-1).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path, default=[VIDEOS / c for c in CLIPS])
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--trajectory", action="store_true", help="Place people (root motion in the BVH).")
    args = parser.parse_args()
    config = with_choices(RunConfig(), trajectory=args.trajectory)
    print("| clip | track | frames | BVH frames | worst bone CV raw | worst bone CV fitted | BVH max error cm "
          "| fit s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for clip in args.clips:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = run_video(clip, None, config, exports=[Path(tmp) / "out.bvh"])
            for track in result.tracks:
                if len(track) < args.min_seconds * result.video.fps or track.skeleton is None:
                    continue
                _, positions = bvh_positions(Path(tmp) / f"out_track{track.track_id}.bvh")
                fitted = track.poses3d + (0 if track.root3d is None else track.root3d[:, None])
                # The BVH has a row per frame interval from the track's first frame to its last; a track that
                # resumes after a gap has rows the track lacks (interpolated), which are not compared.
                times = result.timeline.at(track.frames)
                rows = np.round((times - times[0]) * result.video.fps).astype(int)
                error = aligned_error(positions[rows][:, list(RIG_OF_H36M)].reshape(-1, 3), fitted.reshape(-1, 3))
                raw, bone = worst_bone_cv(track.poses3d_raw)
                print(f"| {clip.name} | {track.track_id} | {len(track)} | {len(positions)} | {raw:.1f}% ({bone}) | "
                      f"{worst_bone_cv(track.poses3d)[0]:.3f}% | {100 * error:.3f} | "
                      f"{result.seconds.get('fit', float('nan')):.1f} |", flush=True)
            print(f"<!-- {clip.name}: {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
