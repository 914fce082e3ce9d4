"""Cost of the long-term pose bank (paper 003) on one long track: plain lifting vs online / offline bank.

Times, on a synthetic 10,000-frame track (a figure whose limbs follow smooth random trajectories), the
bank plan alone (Algorithm 1 + choosing the poses to fuse) and the whole lift with
:func:`pipeline.lifting.bank.infer_with_bank` in each mode, with the shipped lifter when ``weights/lifter.pt``
exists (else a random one of the same size). Prints the fraction of frames whose window got bank poses:
about 80% on this track, more than on mocap (a third online, half offline on the validation subjects), so
the figures are on the slow side. Frames with bank poses are lifted one window each by the strided pass.

Usage:
    python benchmarks/bank_speed.py                    # 10,000 frames, cpu
    python benchmarks/bank_speed.py --frames 50000 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.lifting.bank import PoseBankConfig, infer_with_bank, plan_fusion
from pipeline.lifting.checkpoint import load_checkpoint
from pipeline.lifting.lifter import default_weights
from pipeline.lifting.model import LifterConfig, TemporalModel


def synthetic_track(frames: int, seed: int = 0) -> np.ndarray:
    """(T, 17, 2) normalised screen coordinates: a rest pose plus smooth random per-joint motion."""
    rng = np.random.default_rng(seed)
    rest = rng.uniform(-0.2, 0.2, (17, 2))
    t = np.arange(frames)[:, None, None]
    motion = sum(rng.uniform(0.04, 0.12, (1, 17, 2)) * np.sin(2 * np.pi * t / rng.uniform(20, 200) + rng.uniform(0, 6.3))
                 for _ in range(4))
    return (rest + motion).astype(np.float32)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if default_weights().exists():
        model, _ = load_checkpoint(default_weights())
        source = f"shipped lifter {default_weights()}"
    else:
        model, source = TemporalModel(LifterConfig(channels=512, input_norm="pelvis_scale_pos")).eval(), "random lifter"
    x = synthetic_track(args.frames)
    rf = model.receptive_field
    print(f"{args.frames} frames, {source} (receptive field {rf}, {model.config.channels} channels), "
          f"{args.threads} torch thread(s), median of {args.repeats}")
    print(f"{'mode':8s} {'plan s':>8s} {'lift s':>8s} {'frames/s':>10s} {'fused':>7s}")
    for mode in ("off", "online", "offline"):
        config = PoseBankConfig(mode=mode)
        plan_s, fused = float("nan"), 0.0
        if mode != "off":
            plan_s = timed(lambda: plan_fusion(x, config, rf, model.config.causal), args.repeats)
            fused = float((plan_fusion(x, config, rf, model.config.causal).counts > 0).mean())
        lift_s = timed(lambda: infer_with_bank(model, x, config), args.repeats)
        print(f"{mode:8s} {plan_s:8.2f} {lift_s:8.2f} {args.frames / lift_s:10.0f} {fused:7.1%}")


if __name__ == "__main__":
    main()
