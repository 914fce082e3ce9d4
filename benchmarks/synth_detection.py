"""How human the synthetic figure looks to a real 2D detector: MediaPipe BlazePose on rendered clips.

For every (motion, seed) pair the script renders a clip with :func:`pipeline.evaluation.synth.synthesize` (a different
random camera, look and scene per seed), runs MediaPipe Pose in video mode (``model_complexity=1``, the
one bundled offline) and prints, per clip:

* detection rate -- frames with a pose found;
* 2D error -- mean distance between MediaPipe's hips, knees, ankles, shoulders, elbows and wrists and the
  projected ground truth, as a percentage of the person's standing height in pixels (median in brackets);
* render and MediaPipe milliseconds per frame.

Needs the CMU mocap in ../shared (see shared/README.md); exits with a message when it is absent.

Usage:
    python benchmarks/synth_detection.py                         # 7 clips, up to 100 frames each
    python benchmarks/synth_detection.py --frames 60 --png /tmp/synth   # also save each clip's middle frame
    python benchmarks/synth_detection.py --clips asfamc/16/16_35.amc.gz:3 --frames 150
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.evaluation.synth import SynthConfig, person_height_px, synthesize
from pipeline.skeleton import H36M17
from pipeline.training.mocap import load_manifest, load_motion, resample

MOCAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "mocap" / "cmu"
# MediaPipe Pose landmark id -> H36M joint (MediaPipe's odd ids are the person's left side).
MEDIAPIPE_TO_H36M = {23: 4, 24: 1, 25: 5, 26: 2, 27: 6, 28: 3, 11: 11, 12: 14, 13: 12, 14: 15, 15: 13, 16: 16}
# motion file:seed:first frame at 30 fps -- walk, run, jog in place, jump, ballet, boxing, salsa.
DEFAULT_CLIPS = ("asfamc/02/02_01.amc.gz:0:0", "asfamc/16/16_35.amc.gz:1:0", "asfamc/14/14_06.amc.gz:2:450",
                 "asfamc/16/16_01.amc.gz:3:0", "asfamc/05/05_02.amc.gz:4:60", "asfamc/14/14_02.amc.gz:5:300",
                 "bvh/daz-metres/60_01_scaled.bvh.gz:6:100")


def run_mediapipe(frames) -> np.ndarray:
    """MediaPipe Pose (video mode) on BGR frames.

    Returns:
        (T, 17, 2) float64 H36M pixels for the joints in MEDIAPIPE_TO_H36M, NaN elsewhere and where no
        pose was found.
    """
    import mediapipe as mp

    out = []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        for image in frames:
            h, w = image.shape[:2]
            kp = np.full((17, 2), np.nan)
            result = pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            if result.pose_landmarks is not None:
                lm = result.pose_landmarks.landmark
                for m, j in MEDIAPIPE_TO_H36M.items():
                    kp[j] = (lm[m].x * w, lm[m].y * h)
            out.append(kp)
    return np.array(out)


def score(detected: np.ndarray, truth: np.ndarray, height: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Detection rate, per-detected-frame mean 2D error (fraction of height), and left/right swap rate.

    A frame counts as swapped when exchanging MediaPipe's left and right joints halves its error.
    """
    joints = sorted(MEDIAPIPE_TO_H36M.values())
    found = np.isfinite(detected[:, joints, 0]).all(axis=1)

    def error(kp):
        return np.linalg.norm(kp[:, joints] - truth[:, joints], axis=-1).mean(axis=1) / height

    err = error(detected)
    swapped = error(detected[:, H36M17.flip_permutation()]) < 0.5 * err
    return float(found.mean()), err[found], float(swapped[found].mean()) if found.any() else float("nan")


def _clip(spec: str, frames: int, size: tuple[int, int], capture_fps: dict[Path, float]):
    path, seed, start = (spec.split(":") + ["0", "0"])[:3]
    # The manifest's capture rate wins over the file header (daz-metres files say 120 but are 60 fps).
    motion = resample(load_motion(MOCAP / path, fps=capture_fps.get((MOCAP / path).resolve())), 30.0)
    motion = dataclasses.replace(motion, joints=motion.joints[int(start):int(start) + frames])
    return synthesize(motion, SynthConfig(width=size[0], height=size[1], seed=int(seed))), Path(path).name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS),
                    help="motion:seed:first_frame, motion relative to shared/data/mocap/cmu")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, nargs=2, default=(960, 540), metavar=("W", "H"))
    ap.add_argument("--png", type=Path, help="folder to save each clip's middle frame in")
    args = ap.parse_args()
    if not MOCAP.is_dir():
        sys.exit(f"mocap not found at {MOCAP}; this benchmark needs ../shared (see shared/README.md)")
    capture_fps = {e.path: e.capture_fps for e in load_manifest(MOCAP)}
    print(f"{'clip':<34}{'frames':>7}{'detected':>10}{'err %h':>9}{'(median)':>10}{'L/R swap':>10}"
          f"{'render ms':>11}{'mp ms':>7}")
    rates, errors = [], []
    for spec in args.clips:
        clip, name = _clip(spec, args.frames, tuple(args.size), capture_fps)
        t0 = time.perf_counter()
        images = list(clip.frames)
        render_ms = (time.perf_counter() - t0) / len(images) * 1e3
        t0 = time.perf_counter()
        detected = run_mediapipe(images)
        mp_ms = (time.perf_counter() - t0) / len(images) * 1e3
        rate, err, swap = score(detected, clip.keypoints2d, person_height_px(clip))
        rates.append(rate)
        errors.extend(err)
        med = np.median(err) * 100 if len(err) else float("nan")
        mean = err.mean() * 100 if len(err) else float("nan")
        print(f"{spec:<34}{len(images):>7}{rate * 100:>9.1f}%{mean:>9.2f}{med:>10.2f}{swap * 100:>9.1f}%"
              f"{render_ms:>11.1f}{mp_ms:>7.1f}")
        if args.png:
            args.png.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.png / f"{name.split('.')[0]}_seed{spec.split(':')[1]}.png"), images[len(images) // 2])
    print(f"{'all':<34}{'':>7}{np.mean(rates) * 100:>9.1f}%{np.mean(errors) * 100:>9.2f}"
          f"{np.median(errors) * 100:>10.2f}")


if __name__ == "__main__":
    main()
