"""``pose3d batch`` throughput on this machine for 1 and 2 workers (clips/min and frames/s).

Renders a folder of short clips (a shaded humanoid from held-out CMU motions when ../shared/data/mocap is
present, else a drifting pattern with nobody in it), then runs the whole batch once per worker count
into a fresh output folder. The wall time includes starting the workers and loading their models, as a
user's batch does. Per-clip settings are ``configs/run.yaml`` (2D backend "auto": yolo-mmpose when its
weights are in the weights folder, else the bundled MediaPipe model; nothing is downloaded).

Usage:
    python benchmarks/batch_speed.py [--clips 6] [--seconds 2] [--size 480x270] [--workers 1,2] [--pool auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.batch.plan import BatchConfig, plan_batch  # noqa: E402
from pipeline.batch.runner import run_batch  # noqa: E402
from pipeline.evaluation.synth import SynthConfig, synthesize, write_clip  # noqa: E402
from pipeline.evaluation.video import slice_motion  # noqa: E402
from pipeline.run import load_run_config  # noqa: E402
from pipeline.training.mocap import load_motion  # noqa: E402
from tests.support.clips import write_clip as write_pattern  # noqa: E402

MOCAP = ROOT.parent / "shared" / "data" / "mocap" / "cmu" / "asfamc"
# Held-out subjects (never trained on): a walk, a jog, a jump and a karate kick.
MOTIONS = ["02/02_01.amc.gz", "02/02_03.amc.gz", "02/02_04.amc.gz", "135/135_04.amc.gz"]


def make_clips(folder: Path, clips: int, seconds: float, width: int, height: int) -> str:
    """Write ``clips`` clips of ``seconds`` s at 30 fps into ``folder`` (half of them one level down)."""
    walks = [MOCAP / m for m in MOTIONS if (MOCAP / m).exists()]
    for i in range(clips):
        path = folder / ("sub" if i % 2 else "") / f"clip{i:02d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        if walks:
            motion = load_motion(walks[i % len(walks)])
            motion = slice_motion(motion, 0.5, min(seconds, len(motion.joints) / motion.fps - 0.5))
            write_clip(synthesize(motion, SynthConfig(width=width, height=height, fps=30.0, seed=i)), path)
        else:
            write_pattern(path, frames=int(30 * seconds), width=width, height=height, fps=30.0, seed=i)
    return f"{len(walks)} rendered CMU motions of held-out subjects" if walks else "drifting patterns (no mocap found)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", default="480x270")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--pool", default="auto", help="auto, processes or threads")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    run_config = load_run_config(ROOT / "configs" / "run.yaml")
    with tempfile.TemporaryDirectory(prefix="pose3d-batch-bench-") as tmp:
        src = Path(tmp) / "in"
        what = make_clips(src, args.clips, args.seconds, width, height)
        print(f"{args.clips} clips of {args.seconds:g} s at {width}x{height}, 30 fps: {what}")
        for workers in (int(w) for w in args.workers.split(",")):
            config = BatchConfig(workers=workers, pool=args.pool)
            plan = plan_batch(src, Path(tmp) / f"out{workers}", run_config, config)
            t0 = time.perf_counter()
            summary = run_batch(plan, config)
            wall = time.perf_counter() - t0
            done = summary.count("done")
            print(f"workers {workers} ({plan.run_config.twod.backend}, pool {args.pool}): {done}/{len(plan.jobs)} "
                  f"clips, {summary.frames_done} frames in {wall:.1f} s -> {done / wall * 60:.2f} clips/min, "
                  f"{summary.frames_done / wall:.1f} frames/s")


if __name__ == "__main__":
    main()
