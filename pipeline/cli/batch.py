"""``pose3d batch``: parse the options, draw the overall and per-clip progress, print the summary.

Mounted on the main app by :mod:`pipeline.cli.app`; the library part is :mod:`pipeline.batch`. Errors,
progress bars and muting MediaPipe's native log come from :mod:`pipeline.cli.ui`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pipeline.batch.clip import ClipResult
from pipeline.batch.plan import BatchConfig, plan_batch
from pipeline.batch.ray import RayOptions, ray_engine
from pipeline.batch.runner import run_batch
from pipeline.cli.ui import (
    Terminated,
    console,
    handle_errors,
    interrupt_exit_code,
    native_logs_muted,
    progress_bar,
    sigterm_interrupts,
)
from pipeline.errors import ConfigError
from pipeline.run import check_fit_for, load_run_config, with_choices
from pipeline.twod.stage import resolve_backend

_STATUS_STYLE = {"done": "green", "skipped": "dim", "failed": "red", "ignored": "yellow", "interrupted": "magenta"}


class _View:
    """Rich bars: one for the whole batch (frames, clips done/failed, frames/s, ETA), one per running clip."""

    def __init__(self, bar, plan, video: bool) -> None:
        self.bar, self.video, self.clips = bar, video, len(plan.jobs)
        self.frames = {job.name: max(job.frames, 1) for job in plan.jobs}
        self.overall = bar.add_task("batch", total=max(sum(self.frames.values()), 1), info="")
        self.running: dict[str, tuple[int, dict[str, int]]] = {}
        self.finished_frames, self.done, self.failed, self.t0 = 0, 0, 0, time.perf_counter()

    def _clip_frames(self, name: str, stages: dict[str, int]) -> float:
        """Frames of this clip's work done so far: the 2D pass and the render pass count half each."""
        total = self.frames[name]
        if not self.video:
            return min(stages.get("2d", 0), total)
        return min((stages.get("2d", 0) + stages.get("render", 0)) / 2, total)

    def __call__(self, event) -> None:
        if isinstance(event, ClipResult):
            self._finish(event)
        elif event.name in self.frames:
            task, stages = self.running.get(event.name) or (self.bar.add_task(event.name, total=None, info=""), {})
            stages[event.stage] = event.done
            self.running[event.name] = (task, stages)
            where = f" on {event.worker}" if event.worker else ""
            self.bar.update(task, completed=event.done, total=max(event.total, event.done) or None,
                            description=f"  {event.name}: {event.stage}", info=where)
        self._overall()

    def _finish(self, result) -> None:
        if result.name not in self.frames:
            return
        task, _ = self.running.pop(result.name, (None, None))
        if task is not None:
            self.bar.remove_task(task)
        self.finished_frames += self.frames[result.name]
        self.done += result.status == "done"
        self.failed += result.status == "failed"

    def _overall(self) -> None:
        partial = sum(self._clip_frames(name, stages) for name, (_, stages) in self.running.items())
        completed = self.finished_frames + partial
        rate = completed / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.overall, completed=completed,
                        info=f"{self.done} done, {self.failed} failed of {self.clips} clips; {rate:.1f} frames/s")


def _print_summary(console, summary) -> None:
    rows = [r for r in summary.results if len(summary.results) <= 30 or r.status in ("failed", "interrupted")]
    if rows:
        table = Table(title="clips" if len(rows) == len(summary.results) else "clips that did not finish",
                      title_justify="left")
        for column in ("clip", "status", "frames", "people", "seconds", "reason"):
            table.add_column(column, overflow="fold")
        for r in rows:
            style = _STATUS_STYLE[r.status]
            table.add_row(r.name, f"[{style}]{r.status}[/]", str(r.frames or ""), str(r.people or ""),
                          f"{r.seconds:.1f}" if r.seconds else "", r.reason)
        console.print(table)
    counts = ", ".join(f"{summary.count(s)} {s}" for s in _STATUS_STYLE if summary.count(s))
    minutes = summary.seconds / 60
    speed = (f" ({summary.count('done') / minutes:.2f} clips/min, {summary.frames_done / summary.seconds:.1f} "
             "frames/s)") if summary.count("done") and summary.seconds else ""
    console.print(f"{counts} in {summary.seconds:.1f} s{speed}. Summary: "
                  + ", ".join(str(p) for p in summary.files), highlight=False, soft_wrap=True)


def _plan(input_dir: Path, out: Path, run_cfg, cfg):
    """Resolve the 2D backend (downloading weights when allowed), examine the files, say what will be done."""
    with progress_bar() as bar:
        task = bar.add_task("weights", total=None, info="", visible=False)
        twod, notice = resolve_backend(run_cfg.twod, run_cfg.weights_dir, run_cfg.fetch_weights,
                                       lambda name, done, total: bar.update(
                                           task, description=f"download {name}", completed=done, total=total,
                                           visible=True))
        task = bar.add_task("examining files", total=None, info="")
        plan = plan_batch(input_dir, out, replace(run_cfg, twod=twod), cfg,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    if notice:
        console.print(notice, highlight=False, markup=False)
    console.print(f"{len(plan.jobs)} clips to process ({plan.frames} frames); "
                  f"{sum(r.status == 'skipped' for r in plan.settled)} complete from earlier runs, "
                  f"{len(plan.broken) + sum(r.status == 'failed' for r in plan.settled)} unreadable, "
                  f"{sum(r.status == 'ignored' for r in plan.settled)} not videos", highlight=False)
    return plan


@handle_errors
def batch_command(
    input_dir: Path = typer.Argument(..., help="Folder searched recursively for videos (found by content)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder; mirrors the input folder's layout."),
    export: list[str] = typer.Option(["json"], "--export", "-e", help="Data format per clip: json, npz, csv, "
                                     "angles (joint angles CSV) or bvh (one file per person); repeatable."),
    video: bool = typer.Option(True, "--video/--no-video", help="Also write each clip's rendered MP4."),
    workers: int = typer.Option(1, "--workers", "-j", help="Clips processed at once on this machine."),
    pool: str = typer.Option("auto", help="auto, processes or threads (threads share one set of models; auto "
                                          "picks them when the workers share a single GPU)."),
    force: bool = typer.Option(False, "--force", help="Redo clips whose outputs are complete."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Try again clips whose input was unreadable."),
    retries: int = typer.Option(2, help="Extra tries for a clip whose worker process died."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run the clips on a Ray cluster: auto, local, or the "
                                                          "head's host:port."),
    gpus_per_clip: Optional[float] = typer.Option(None, help="With --ray: GPUs per clip (default: 1 if the "
                                                             "cluster has GPUs, else 0)."),
    cpus_per_clip: float = typer.Option(1.0, help="With --ray: CPUs per clip."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run YAML (configs/run.yaml)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (overrides the config)."),
    backend: Optional[str] = typer.Option(None, help="2D backend: auto, yolo-mmpose, offline or mediapipe."),
    layout: Optional[str] = typer.Option(None, help="side, pip or overlay."),
    weights: Optional[Path] = typer.Option(None, help="Lifter checkpoint (default: the shipped weights)."),
    weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", envvar="POSE3D_WEIGHTS_DIR",
                                               help="Folder of the YOLO / mmpose weight files."),
    pose_bank: Optional[str] = typer.Option(None, "--pose-bank", help="off, online or offline (see `pose3d run`)."),
    trajectory: Optional[bool] = typer.Option(None, help="Also estimate where each person is (see `pose3d run`)."),
    fov: Optional[float] = typer.Option(None, help="Camera field of view for the trajectory, degrees."),
    fit: Optional[bool] = typer.Option(None, "--fit/--no-fit", help="One constant-bone skeleton per person (joint "
                                       "rotations, contacts, BVH); --no-fit exports the lifter's raw joints. "
                                       "Default: the config's (on)."),
    trust_weights: bool = typer.Option(False, "--trust-weights", help=(
        "Load YOLO / mmpose weight files whose complete SHA-256 pose3d does not know (see `pose3d run`).")),
) -> None:
    """Every video under a folder through `pose3d run`: resumable, several at once, on Ray if asked."""
    if ray is None and (gpus_per_clip is not None or cpus_per_clip != 1.0):
        raise ConfigError("--gpus-per-clip and --cpus-per-clip apply to --ray only")
    cfg = BatchConfig(exports=tuple(export), video=video, workers=workers, pool=pool, retries=retries,
                      force=force, retry_failed=retry_failed)
    run_cfg = with_choices(load_run_config(config), backend=backend, weights_dir=weights_dir, device=device,
                           weights=weights, layout=layout, pose_bank=pose_bank, trajectory=trajectory, fov_deg=fov,
                           fit=fit, trust_weights=trust_weights)
    check_fit_for(run_cfg, cfg.suffixes)
    engine = None
    if ray is not None:
        engine = ray_engine(RayOptions(ray, gpus_per_clip, cpus_per_clip, retries))
    plan = _plan(input_dir, out, run_cfg, cfg)
    try:
        if not plan.jobs:
            summary = run_batch(plan, cfg)
        else:
            with sigterm_interrupts(), native_logs_muted() as screen, progress_bar(screen) as bar:
                summary = run_batch(plan, cfg, progress=_View(bar, plan, video), engine=engine)
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]{'terminated' if isinstance(exc, Terminated) else 'interrupted'}[/]: finished clips "
                      f"are kept; run the same command again to resume (summary so far in {out})")
        raise typer.Exit(interrupt_exit_code(exc)) from None
    _print_summary(console, summary)
    if summary.failed:
        raise typer.Exit(1)
