"""Ablation tables on held-out mocap (``pose3d ablate``): methods x test-sequence intervals.

A *method* is a named lifter checkpoint plus the inference options it runs with (so far: the long-term
pose bank of paper 003, :mod:`pipeline.lifting.bank`). Every method is scored by :func:`pipeline.evaluation.evaluate.evaluate`
on the same held-out segments, cameras and 2D noise, at the original frame rate and on test sequences
subsampled by 3, 5 and 7 (paper 003's protocol, see :mod:`pipeline.evaluation.evaluate`). Adding a row is adding a
:class:`Method`: e.g. a retrained checkpoint (``pose3d ablate --model multi-rate=runs/mr/best.pt``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from pipeline.errors import ConfigError, ModelError
from pipeline.evaluation.evaluate import evaluate
from pipeline.lifting.bank import MODES, PoseBankConfig
from pipeline.lifting.lifter import Lifter
from pipeline.skeleton import H36M_LIMB_JOINTS
from pipeline.training.config import CameraConfig
from pipeline.training.dataset import Clip


@dataclass(frozen=True)
class Method:
    """One row of the table: a name, a checkpoint (None: the shipped lifter) and inference options."""

    name: str
    weights: Path | None = None
    bank: PoseBankConfig = PoseBankConfig()


@dataclass(frozen=True)
class AblationCell:
    """Errors of one method at one interval under one 2D protocol ('gt' or 'noisy'), mm (MPJVE mm/frame)."""

    method: str
    interval: int
    protocol: str
    frames: int
    mpjpe: float
    p_mpjpe: float
    mpjve: float


def parse_model(spec: str) -> tuple[str, Path | None]:
    """``NAME=PATH`` (or ``NAME`` alone for the shipped lifter) -> (name, checkpoint path)."""
    name, _, path = spec.partition("=")
    if not name.strip():
        raise ConfigError(f"--model expects NAME=PATH (e.g. baseline=weights/lifter.pt), got {spec!r}")
    return name.strip(), Path(path.strip()) if path.strip() else None


def methods_for(models: Sequence[tuple[str, Path | None]], bank_modes: Sequence[str],
                bank: PoseBankConfig = PoseBankConfig()) -> list[Method]:
    """Every model crossed with every pose-bank mode, in that order.

    Args:
        models: (name, checkpoint) pairs.
        bank_modes: 'off', 'online', 'offline'; 'off' rows keep the model's name, others get "+ pose bank (mode)".
        bank: Bank settings other than the mode.

    Returns:
        The table's rows.
    """
    for mode in bank_modes:
        if mode not in MODES:
            raise ConfigError(f"--pose-bank modes must be among {', '.join(MODES)}; got {mode!r}")
    return [Method(name if mode == "off" else f"{name} + pose bank ({mode})", weights, replace(bank, mode=mode))
            for name, weights in models for mode in bank_modes]


def run_ablation(methods: Sequence[Method], clips: Sequence[Clip], camera: CameraConfig, *,
                 intervals: Sequence[int] = (1, 3, 5, 7), fps: float = 50.0, segment_frames: int = 250,
                 seed: int = 0, joints: Sequence[int] = H36M_LIMB_JOINTS, device: str = "auto",
                 progress: Callable[[int, int], None] | None = None) -> list[AblationCell]:
    """Score every method at every interval on the same held-out segments.

    Args:
        methods: Rows of the table.
        clips: Held-out motions at ``fps``.
        camera: Virtual camera ranges (segments and noise are seeded by ``seed``, the same for every row).
        intervals: Test-sequence subsampling intervals (1: the original rate).
        fps: Frame rate of ``clips``; every checkpoint must have been trained at it.
        segment_frames: Lifted frames per camera segment.
        seed: Seed of cameras and 2D noise.
        joints: H36M-17 joints the errors average over.
        device: Torch device ('auto', 'cpu', 'cuda').
        progress: Called with (evaluations done, evaluations total).

    Returns:
        One :class:`AblationCell` per method, interval and 2D protocol.
    """
    lifters: dict[Path | None, Lifter] = {}
    cells: list[AblationCell] = []
    total = len(methods) * len(intervals)
    for i, method in enumerate(methods):
        if method.weights not in lifters:
            lifters[method.weights] = Lifter.load(method.weights, device)
        lifter = lifters[method.weights]
        if abs(lifter.train_fps - fps) > 1e-3 * fps:
            raise ModelError(f"{method.weights or 'the shipped lifter'} was trained at {lifter.train_fps:g} Hz; "
                             f"the test motions are at {fps:g} Hz (set fps in the training config)")
        for k, interval in enumerate(intervals):
            report = evaluate(lifter.model, clips, camera, segment_frames=segment_frames, joints=joints,
                              seed=seed, device=lifter.device, interval=interval, bank=method.bank,
                              torso_from_limbs=lifter.torso_from_limbs)
            for protocol in report.rows:
                row = report.overall(protocol)
                cells.append(AblationCell(method.name, interval, protocol, row.frames, row.mpjpe, row.p_mpjpe,
                                          row.mpjve))
            if progress:
                progress(i * len(intervals) + k + 1, total)
    return cells


def format_ablation(cells: Sequence[AblationCell], protocol: str = "gt") -> str:
    """A Markdown table for one 2D protocol: rows by interval then method; changes against the first method."""
    picked = [c for c in cells if c.protocol == protocol]
    lines = ["| test data | method | frames | MPJPE | P-MPJPE | MPJVE |", "|---|---|---:|---:|---:|---:|"]
    for interval in sorted({c.interval for c in picked}):
        rows = [c for c in picked if c.interval == interval]
        base, data = rows[0], "original" if interval == 1 else f"1 in {interval} frames"
        for c in rows:
            errors = [_delta(getattr(c, m), getattr(base, m), d, c is base)
                      for m, d in (("mpjpe", 1), ("p_mpjpe", 1), ("mpjve", 2))]
            lines.append(f"| {data} | {c.method} | {c.frames} | {' | '.join(errors)} |")
    return "\n".join(lines)


def _delta(value: float, ref: float, digits: int, is_ref: bool) -> str:
    """``value`` with its change against ``ref`` in brackets (none for the reference row)."""
    return f"{value:.{digits}f}" if is_ref else f"{value:.{digits}f} ({value - ref:+.{digits}f})"
