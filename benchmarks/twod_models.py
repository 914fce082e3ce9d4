"""2D-stage network speed: the person detector and the mmpose top-down keypoint models, per crop and per frame.

Times, on one real frame (a clip under ``/work/shared/data/videos/`` when present, else a synthetic frame):

* YOLO11n built untrained from Ultralytics' ``yolo11n.yaml`` (640 px), per frame;
* HRNet-W32 and RTMPose-m (``--models`` adds HRNet-W48, RSN-50, MSPN-50) with random weights, through
  :class:`pipeline.twod.mmpose_topdown.MMPoseEstimator`, for 1 and 4 person boxes per frame (one batch), with
  flip test off and on; per frame and per crop (frame time / crops).

On the CPU, and on CUDA (named) when torch sees a GPU. Speed does not depend on the weights' values. Each case
gets one warm-up call, then the median of ``--repeats`` calls is reported, in milliseconds.

Usage:
    python benchmarks/twod_models.py                  # about 30 s on 2 CPU cores
    python benchmarks/twod_models.py --threads 1 --repeats 3 --models hrnet-w32,rtmpose-m,hrnet-w48 --no-yolo
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
from _machine import cpu_name  # noqa: E402

from pipeline.twod.detect import DetectorConfig, YoloDetector  # noqa: E402
from pipeline.twod.mmpose_topdown import MMPoseConfig, MMPoseEstimator  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
PREFERRED = ("two_kids_jumping_sam2.mp4", "running_track_phalp.mp4", "dance_aerobics_romp.mp4")


def load_frame(videos: Path) -> tuple[np.ndarray, str]:
    """A BGR frame 1 s into the first readable clip in ``videos``, else a synthetic 720p frame."""
    clips = [videos / n for n in PREFERRED] + (sorted(videos.glob("*.mp4")) if videos.is_dir() else [])
    for clip in clips:
        if not clip.is_file():
            continue
        capture = cv2.VideoCapture(str(clip))
        capture.set(cv2.CAP_PROP_POS_FRAMES, 30)
        ok, frame = capture.read()
        capture.release()
        if ok:
            return frame, f"{clip.name} frame 30"
    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    return frame, "synthetic 1280x720 noise (no clip found)"


def person_boxes(frame: np.ndarray, count: int) -> np.ndarray:
    """``count`` standing-person-sized boxes side by side (x1 y1 x2 y2 pixels)."""
    h, w = frame.shape[:2]
    xs = np.linspace(0.05, 0.75, 4)[:count] * w
    return np.stack([xs, np.full(count, 0.15 * h), xs + 0.2 * w, np.full(count, 0.9 * h)], axis=1).astype(np.float32)


def median_ms(call, repeats: int, device: str) -> float:
    """Median wall time of ``call()`` in ms after one warm-up call (CUDA synchronised around each)."""
    call()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        call()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def time_yolo(frame: np.ndarray, device: str, repeats: int) -> float:
    """YOLO11n (untrained, from yolo11n.yaml) per-frame ms at 640 px, through the pipeline's own detector."""
    detector = YoloDetector(DetectorConfig(model="yolo11n.yaml", conf=0.0), device=device)
    return median_ms(lambda: detector.detect(frame), repeats, device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="hrnet-w32,rtmpose-m",
                        help="Comma-separated pose models (default hrnet-w32,rtmpose-m; "
                             "also hrnet-w48, rsn-50, mspn-50).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed calls per case; the median is reported.")
    parser.add_argument("--device", default="all", choices=["all", "cpu", "cuda"],
                        help="all: cpu, plus cuda when a GPU is visible.")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--no-yolo", action="store_true", help="Skip the detector.")
    parser.add_argument("--videos", type=Path, default=VIDEOS, help=f"Folder of clips (default {VIDEOS}).")
    args = parser.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA GPU")
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else \
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    frame, source = load_frame(args.videos)

    print(f"torch {torch.__version__}, python {platform.python_version()}, torch CPU threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    print(f"cpu: {cpu_name()} ({os.cpu_count()} logical cores)")
    if "cuda" in devices:
        print(f"cuda: {torch.cuda.get_device_name()}")
    print(f"frame: {source}, {frame.shape[1]}x{frame.shape[0]}; random weights; warm-up + median of "
          f"{args.repeats}\n")
    header = f"{'device':<6} {'model':<10} {'input':>8} {'flip':>4} {'crops':>5} {'ms/frame':>9} {'ms/crop':>8}"
    print(header)
    print("-" * len(header))
    for device in devices:
        if not args.no_yolo:
            ms = time_yolo(frame, device, args.repeats)
            print(f"{device:<6} {'yolo11n':<10} {'640':>8} {'-':>4} {'-':>5} {ms:>9.1f} {'-':>8}", flush=True)
        for name in filter(None, args.models.split(",")):
            for flip in (False, True):
                torch.manual_seed(0)
                estimator = MMPoseEstimator(MMPoseConfig(model=name, checkpoint="none", flip_test=flip), device)
                w, h = estimator.input_size
                for crops in (1, 4):
                    boxes = person_boxes(frame, crops)
                    ms = median_ms(lambda: estimator.estimate(frame, boxes), args.repeats, device)
                    print(f"{device:<6} {name:<10} {f'{w}x{h}':>8} {'on' if flip else 'off':>4} {crops:>5} "
                          f"{ms:>9.1f} {ms / crops:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
