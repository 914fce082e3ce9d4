"""Training throughput with each training-data method on and off (multi-rate sampling, evolution, bone loss).

For every training config given (default: the four ``configs/ablation/*.yaml``), builds the trainer's
:class:`pipeline.training.dataset.PoseWindows` on the config's training subjects and times, in interleaved rounds so
a busy machine slows every config alike:

* ``sample``: drawing one batch of windows alone (cameras, augmentation, evolution);
* ``step``: what the trainer does per batch: draw, strided forward pass, loss, backward pass, AMSGrad step.

It prints the median per round as samples/s, both by wall clock and by this process's CPU time (steadier when
other jobs share the cores), and each config's throughput relative to the first one; for configs with
evolution on, also how often natural selection accepted an offspring (per evolved window and generation).

Usage:
    python benchmarks/augment_speed.py                       # the ablation configs, 6 rounds of 2 steps
    python benchmarks/augment_speed.py --rounds 3 --threads 2 configs/ablation/baseline.yaml configs/ablation/evolve.yaml
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_config
from pipeline.lifting.model import TemporalModel
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import PoseWindows
from pipeline.training.evolve import evolve_windows
from pipeline.training.losses import total_loss
from pipeline.training.objective import strided_k
from pipeline.training.split import load_split

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "configs" / "ablation" / f"{n}.yaml" for n in ("baseline", "multirate", "evolve", "boneloss")]


class Case:
    """One config's sampler, model and optimiser."""

    def __init__(self, path: Path, clips) -> None:
        self.name = path.stem
        self.cfg = load_config(TrainConfig, path)
        k = self.cfg.loss.frames
        self.windows = PoseWindows(clips, self.cfg.lifter.receptive_field, k, self.cfg.lifter.causal,
                                   self.cfg.camera, self.cfg.augment)
        torch.manual_seed(0)
        self.model = TemporalModel(self.cfg.lifter).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, amsgrad=True)
        self.gen = torch.Generator().manual_seed(0)
        self.sample_times: list[tuple[float, float]] = []
        self.step_times: list[tuple[float, float]] = []

    def sample(self) -> None:
        self.windows.sample(self.cfg.batch_size, self.gen)

    def step(self) -> None:
        x, y = self.windows.sample(self.cfg.batch_size, self.gen)
        terms = total_loss(strided_k(self.model, x, self.cfg.loss.frames), y, self.cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.optimizer.step()


def timed(fn, repeats: int) -> tuple[float, float]:
    """(wall s, process CPU s) per call, over ``repeats`` calls."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - w0) / repeats, (time.process_time() - c0) / repeats


def report(cases: list[Case], what: str) -> None:
    print(f"\n{what}: samples/s (median of rounds)")
    print(f"{'config':<12} {'wall':>10} {'cpu':>10} {'wall vs 1st':>12} {'cpu vs 1st':>11}")
    base = None
    for case in cases:
        times = case.sample_times if what == "sample" else case.step_times
        batch = case.cfg.batch_size
        wall = batch / statistics.median(t[0] for t in times)
        cpu = batch / statistics.median(t[1] for t in times)
        base = base or (wall, cpu)
        print(f"{case.name:<12} {wall:>10,.0f} {cpu:>10,.0f} {wall / base[0]:>11.2f}x {cpu / base[1]:>10.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, default=DEFAULT, help="Training YAMLs (first = reference).")
    parser.add_argument("--rounds", type=int, default=6, help="Interleaved rounds over the configs (default 6).")
    parser.add_argument("--steps", type=int, default=2, help="Training steps per config per round (default 2).")
    parser.add_argument("--samples", type=int, default=5, help="sample() calls per config per round (default 5).")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    first = load_config(TrainConfig, args.configs[0])
    split = load_split(first)
    cases = [Case(p, split.train) for p in args.configs]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f}; "
          f"{len(split.train)} training motions, {sum(len(c.joints) for c in split.train)} frames")
    for case in cases:   # warm-up
        case.step()
    for _ in range(args.rounds):
        for case in cases:
            case.sample_times.append(timed(case.sample, args.samples))
            case.step_times.append(timed(case.step, args.steps))
    report(cases, "sample")
    report(cases, "step")
    for case in cases:
        evolve = case.cfg.augment.evolve
        if evolve.fraction > 0.0:
            gen = torch.Generator().manual_seed(1)
            batch = case.windows.joints[case.windows._indices(8192, gen)]
            out = evolve_windows(batch, evolve, gen)
            rate = out.accepted[out.chosen].float().mean() / evolve.generations
            print(f"\n{case.name}: {int(out.chosen.sum())} of 8192 windows evolved; selection accepted "
                  f"{100 * rate:.1f}% of offspring ({evolve.generations} generations, sigma "
                  f"{evolve.mutation_sigma_deg:g} deg)")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
