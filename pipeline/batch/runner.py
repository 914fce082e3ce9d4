"""Run a planned batch (``pose3d batch``): the clips through an engine, then the summary files."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from pipeline.batch.clip import ClipResult, record_failure
from pipeline.batch.local import local_engine
from pipeline.batch.plan import SUMMARY_STEM, BatchConfig, BatchPlan, Engine, Event


@dataclass(frozen=True)
class BatchSummary:
    """How a batch ended.

    Attributes:
        input_dir, output_dir: The folders.
        results: One per input file, in discovery order.
        seconds: Wall time of the run.
        files: The summary files written (CSV, JSON).
    """

    input_dir: Path
    output_dir: Path
    results: tuple[ClipResult, ...]
    seconds: float
    files: tuple[Path, ...] = field(default=())

    def count(self, status: str) -> int:
        """How many files ended with ``status``."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> tuple[ClipResult, ...]:
        """The failed clips."""
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def frames_done(self) -> int:
        """Frames of the clips processed in this run."""
        return sum(r.frames for r in self.results if r.status == "done")


def run_batch(plan: BatchPlan, config: BatchConfig | None = None,
              progress: Callable[[Event], None] | None = None, engine: Engine | None = None) -> BatchSummary:
    """Process a plan's clips and write the summary files (also when interrupted, then re-raising).

    Args:
        plan: From :func:`plan_batch`.
        config: Batch settings (workers, pool, retries).
        progress: Receives every :class:`ClipProgress` and :class:`ClipResult`, in the caller's thread.
        engine: Where clips run (default: local workers, :func:`pipeline.batch.local.local_engine`;
            :func:`pipeline.batch.ray.ray_engine` for a Ray cluster).

    Returns:
        A :class:`BatchSummary`; its ``failed`` clips carry their reasons.
    """
    config = config or BatchConfig()
    results: dict[str, ClipResult] = {r.name: r for r in plan.settled}
    t0 = time.perf_counter()

    def emit(event: Event) -> None:
        if isinstance(event, ClipResult):
            results[event.name] = event
        if progress:
            progress(event)

    try:
        for job, reason in plan.broken:
            emit(record_failure(job, reason, retryable=False))
        if plan.jobs:
            (engine or local_engine(config))(plan.jobs, plan.run_config, plan.output_dir, emit)
    finally:
        for job in plan.jobs:
            results.setdefault(job.name, ClipResult(job.name, "interrupted", "the batch stopped before it finished"))
        ordered = tuple(results[name] for name in plan.order if name in results)
        summary = BatchSummary(plan.input_dir, plan.output_dir, ordered, time.perf_counter() - t0)
        summary = replace(summary, files=write_summary(summary))
    return summary


_COLUMNS = ("clip", "status", "reason", "frames", "people", "seconds", "attempts", "worker", "outputs")


def write_summary(summary: BatchSummary) -> tuple[Path, ...]:
    """Write ``pose3d-batch.csv`` (one row per file) and ``pose3d-batch.json`` into the output folder.

    Returns:
        The two paths.
    """
    out = summary.output_dir
    out.mkdir(parents=True, exist_ok=True)
    minutes = summary.seconds / 60
    doc = {"format": "pose3d-batch-summary", "version": 1, "input": str(summary.input_dir), "output": str(out),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(summary.seconds, 3),
           "counts": {s: summary.count(s) for s in ("done", "skipped", "failed", "ignored", "interrupted")},
           "frames_done": summary.frames_done,
           "frames_per_s": round(summary.frames_done / summary.seconds, 3) if summary.seconds else 0.0,
           "clips_per_min": round(summary.count("done") / minutes, 3) if minutes else 0.0,
           "clips": [{"clip": r.name, **{k: v for k, v in asdict(r).items() if k != "name"}}
                     for r in summary.results]}
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(_COLUMNS)
    for r in summary.results:
        writer.writerow([r.name, r.status, r.reason, r.frames, r.people, f"{r.seconds:.2f}", r.attempts, r.worker,
                         ";".join(r.outputs)])
    paths = (out / f"{SUMMARY_STEM}.csv", out / f"{SUMMARY_STEM}.json")
    for path, content in zip(paths, (text.getvalue(), json.dumps(doc, indent=1))):
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(content)
        os.replace(tmp, path)
    return paths
