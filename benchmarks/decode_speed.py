"""Decode-only throughput (frames/s) and peak memory of :class:`pipeline.io.video.VideoReader`.

Decodes the clip once, then ``--repeats`` more times in a loop: if the reader streams in bounded memory the
peak RSS after many passes (many times the clip's length worth of frames) matches the peak after one.
Peak RSS comes from ``resource.getrusage``: this Python process (RUSAGE_SELF) and the largest reaped ffmpeg
child (RUSAGE_CHILDREN).

Usage:
    python benchmarks/decode_speed.py                                  # shared running_track_phalp.mp4
    python benchmarks/decode_speed.py CLIP.mp4 --repeats 10 --max-size 640
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.io.ffmpeg import ffmpeg_exe
from pipeline.io.video import VideoReader

SHARED = Path(os.environ.get("POSE3D_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def peak_mib(who: int) -> float:
    """Peak resident memory in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def decode(reader: VideoReader, passes: int) -> tuple[int, float]:
    """Decode the whole clip ``passes`` times; returns (frames, seconds)."""
    frames, start = 0, time.perf_counter()
    for _ in range(passes):
        for _frame in reader:
            frames += 1
    return frames, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, default=SHARED / "data/videos/running_track_phalp.mp4")
    parser.add_argument("--repeats", type=int, default=10, help="Passes in the memory-growth loop.")
    parser.add_argument("--max-size", type=int, default=None, help="Downscale so the long side <= this.")
    args = parser.parse_args()

    reader = VideoReader(args.clip, max_size=args.max_size)
    info = reader.info
    print(f"clip: {args.clip.name}  {info.width}x{info.height} -> {reader.width}x{reader.height}, "
          f"{info.fps:.3f} fps, {info.num_frames} frames, {info.duration:.2f} s, {info.codec}")
    print(f"ffmpeg: {ffmpeg_exe()}  cpus: {os.cpu_count()}  load: {os.getloadavg()[0]:.2f}")
    frame_mib = reader.width * reader.height * 3 / 2**20
    print(f"one frame: {frame_mib:.1f} MiB; python peak RSS before decoding: {peak_mib(resource.RUSAGE_SELF):.0f} MiB")

    for label, passes in (("1 pass", 1), (f"{args.repeats} passes", args.repeats)):
        frames, seconds = decode(reader, passes)
        print(f"{label:>10}: {frames:6d} frames in {seconds:6.2f} s = {frames / seconds:6.1f} frames/s | "
              f"peak RSS python {peak_mib(resource.RUSAGE_SELF):.0f} MiB, "
              f"ffmpeg {peak_mib(resource.RUSAGE_CHILDREN):.0f} MiB")
    reader.close()


if __name__ == "__main__":
    main()
