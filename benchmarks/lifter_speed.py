"""Lifter inference throughput (frames/s) for VideoPose3D-sized architectures.

Times :func:`pipeline.lifting.model.infer` on one long random 2D sequence for receptive fields 27, 81 and 243
(kernel widths 3,3,3 / 3,3,3,3 / 3,3,3,3,3) and, when ``weights/lifter.pt`` exists, the shipped lifter, with
flip test-time augmentation on and off, on the CPU and on CUDA when a GPU is visible. Weights are random
(speed does not depend on them). Each case gets a warm-up run, then the median of ``--repeats`` runs.

Usage:
    python benchmarks/lifter_speed.py                      # 10,000 frames, 1024 channels, cpu (+ cuda)
    python benchmarks/lifter_speed.py --frames 2000 --device cpu --channels 256
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import device_name  # noqa: E402

from pipeline.lifting.checkpoint import load_checkpoint
from pipeline.lifting.lifter import default_weights
from pipeline.lifting.model import LifterConfig, TemporalModel, infer

ARCHS = {27: (3, 3, 3), 81: (3, 3, 3, 3), 243: (3, 3, 3, 3, 3)}


def time_infer(model: TemporalModel, keypoints: np.ndarray, flip: bool, device: str, chunk: int,
               repeats: int) -> float:
    """Median wall time of ``infer`` in seconds after one warm-up run (infer returns numpy: it syncs)."""
    infer(model, keypoints, flip=flip, device=device, chunk=chunk)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        infer(model, keypoints, flip=flip, device=device, chunk=chunk)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def models(channels: int, weights: Path | None) -> list[tuple[str, TemporalModel]]:
    out = []
    for rf, widths in ARCHS.items():
        torch.manual_seed(rf)
        out.append((f"vp3d-rf{rf}", TemporalModel(LifterConfig(filter_widths=widths, channels=channels)).eval()))
    if weights is not None and weights.is_file():
        model, _ = load_checkpoint(weights)
        out.append((f"shipped ({weights.name})", model))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000, help="Length of the one sequence (default 10000).")
    parser.add_argument("--channels", type=int, default=1024, help="Channels of the rf27/81/243 models (1024).")
    parser.add_argument("--device", default="all", choices=["all", "cpu", "cuda"],
                        help="all: cpu, plus cuda when a GPU is visible.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per case; the median is reported.")
    parser.add_argument("--chunk", type=int, default=0, help="infer(chunk=...): 0 = one pass over the sequence.")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--weights", type=Path, default=None,
                        help="Also time this checkpoint (default: weights/lifter.pt when it exists).")
    args = parser.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA GPU")
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else \
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    weights = args.weights or default_weights()
    cases = models(args.channels, weights)
    rng = np.random.default_rng(0)
    keypoints = (rng.normal(size=(args.frames, 17, 2)) * 0.3).astype(np.float32)

    print(f"torch {torch.__version__}, python {platform.python_version()}, torch CPU threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    for dev in devices:
        print(f"{dev}: {device_name(dev)}")
    if not weights.is_file():
        print(f"(no shipped lifter at {weights}; timing the reference architectures only)")
    print(f"sequence: {args.frames} frames, one infer() call (chunk={args.chunk}); "
          f"warm-up + median of {args.repeats}\n")

    header = f"{'device':<6} {'model':<28} {'RF':>4} {'ch':>5} {'params':>7} {'flip':>4} {'median s':>9} {'frames/s':>10}"
    print(header)
    print("-" * len(header))
    for dev in devices:
        for name, model in cases:
            params = sum(p.numel() for p in model.parameters()) / 1e6
            for flip in (False, True):
                seconds = time_infer(model, keypoints, flip, dev, args.chunk, args.repeats)
                print(f"{dev:<6} {name:<28} {model.receptive_field:>4} {model.config.channels:>5} "
                      f"{params:>6.2f}M {'on' if flip else 'off':>4} {seconds:>9.3f} {args.frames / seconds:>10,.0f}",
                      flush=True)
            model.cpu()
    return 0


if __name__ == "__main__":
    sys.exit(main())
