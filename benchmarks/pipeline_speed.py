"""Whole-pipeline speed and memory on one clip (``pose3d run``'s stages measured separately and together).

Prints, for the same clip in one run:

* decode alone (full size, and at the 2D stage's size), frames/s;
* the 2D stage alone (people, keypoints, identities) on decoded frames, frames/s;
* the whole ``run`` (2D, lift, render, encode with audio), frames/s, and its time per stage;
* the renderer per frame next to a matplotlib 3D panel drawing the same skeletons (see render_speed.py);
* peak RSS of the whole run on the clip and on the same clip looped 10 times (memory must not grow with
  length), each measured in a fresh process (Python and its ffmpeg children separately).

Usage:
    python benchmarks/pipeline_speed.py [CLIP] [--backend auto|offline|mediapipe|yolo-mmpose] [--config RUN.yaml]
        [--speed-only]
    (CLIP defaults to ../shared/data/videos/running_track_phalp.mp4; --config gives other settings, e.g. the
    heavy keypoint model or detector tiles; --speed-only skips the memory runs and the renderer comparison)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.io.ffmpeg import ffmpeg_exe, probe  # noqa: E402
from pipeline.io.video import VideoReader  # noqa: E402
from pipeline.run import RunConfig, load_run_config, with_choices  # noqa: E402
from pipeline.twod.stage import TwoDStage  # noqa: E402

_RSS_CHILD = """
import json, resource, sys
from pipeline.run import load_run_config, run_video, with_choices
config = with_choices(load_run_config(sys.argv[5] or None), backend=sys.argv[4])
r = run_video(sys.argv[1], sys.argv[2], config, exports=[sys.argv[3]])
print(json.dumps({"frames": r.frames, "seconds": r.seconds,
                  "python_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def decode_fps(path: Path, max_size: int | None) -> float:
    t0, n = time.perf_counter(), 0
    with VideoReader(path, max_size=max_size) as reader:
        for _ in reader:
            n += 1
    return n / (time.perf_counter() - t0)


def twod_fps(path: Path, config: RunConfig) -> float:
    """2D stage only: frames decoded first (not timed), then processed."""
    with VideoReader(path, max_size=config.decode_max_size or None) as reader:
        frames = list(reader)
    t0 = time.perf_counter()
    with TwoDStage(config.twod, fps=probe(path).fps) as stage:
        for frame in frames:
            stage.process(frame)
        stage.finish(len(frames))
    return len(frames) / (time.perf_counter() - t0)


def run_in_child(path: Path, tmp: Path, backend: str, config: Path | None) -> dict:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(tmp / "out.mp4"), str(tmp / "out.json"),
                          backend, str(config or "")], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path,
                        default=ROOT.parent / "shared" / "data" / "videos" / "running_track_phalp.mp4")
    parser.add_argument("--backend", default="auto", help="2D backend: auto, offline, mediapipe or yolo-mmpose")
    parser.add_argument("--config", type=Path, help="run settings (configs/run.yaml style)")
    parser.add_argument("--speed-only", action="store_true", help="skip the memory runs and the renderer")
    args = parser.parse_args()
    info = probe(args.clip)
    config = with_choices(load_run_config(args.config), backend=args.backend)
    print(f"clip: {args.clip.name} {info.width}x{info.height} {info.fps:.2f} fps, {info.num_frames} frames; "
          f"2D backend {args.backend}" + (f", settings {args.config}" if args.config else ""))
    print(f"decode alone, full size:        {decode_fps(args.clip, None):7.1f} frames/s")
    print(f"decode alone, {config.decode_max_size} px long side: {decode_fps(args.clip, config.decode_max_size):7.1f} frames/s")
    print(f"2D stage alone:                 {twod_fps(args.clip, config):7.1f} frames/s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = run_in_child(args.clip, tmp, args.backend, args.config)
        total = sum(one["seconds"].values())
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in one["seconds"].items())
        print(f"whole run:                      {one['frames'] / total:7.1f} frames/s ({stages})")
        if args.speed_only:
            return
        looped = tmp / "looped.mp4"
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-stream_loop", "9", "-i", str(args.clip), "-c", "copy",
                        str(looped)], check=True)
        ten = run_in_child(looped, tmp, args.backend, args.config)
    print(f"peak RSS, clip ({one['frames']} frames):    python {one['python_mib']:.0f} MiB, "
          f"ffmpeg {one['children_mib']:.0f} MiB")
    print(f"peak RSS, clip x10 ({ten['frames']} frames): python {ten['python_mib']:.0f} MiB, "
          f"ffmpeg {ten['children_mib']:.0f} MiB")
    print("renderer vs matplotlib: run benchmarks/render_speed.py (same skeletons, same panel size)")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_speed.py"), "--frames", "60",
                    "--mpl-frames", "20"], check=True)


if __name__ == "__main__":
    main()
