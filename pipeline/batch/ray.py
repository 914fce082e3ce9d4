"""``pose3d batch --ray``: the clips of a batch spread over a Ray cluster.

Each clip is one Ray task asking for ``gpus_per_clip`` GPUs (default: 1 when the cluster has GPUs, else
0) and ``cpus_per_clip`` CPUs. The task gets the input's bytes through Ray's object store, runs
:func:`pipeline.batch.clip.produce` (so :func:`pipeline.run.run_video`, as everywhere) in a scratch folder
on its node, and returns the output files' bytes; this process writes them into the output folder and
commits them exactly as a local run does (:func:`pipeline.batch.clip.commit`). The nodes therefore need no
shared file system, and the resume rules are the local ones.

A task whose worker process or node dies is run again by Ray, up to ``retries`` more times
(``max_retries``); a clip's own failures (a bad input, a model error) are results, not retried. CPU tasks
reuse their worker process and its loaded models from clip to clip; GPU tasks get a fresh process per
clip, Ray's default, because a reused process can be handed a different GPU than the one its CUDA
context was made on.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from pipeline.batch.clip import (
    ClipJob,
    ClipProgress,
    ClipResult,
    commit,
    failure_of,
    produce,
    record_failure,
    remove_partials,
    worker_id,
)
from pipeline.batch.local import cached_models
from pipeline.batch.plan import Engine, Event
from pipeline.errors import ConfigError
from pipeline.run import RunConfig


@dataclass(frozen=True)
class RayOptions:
    """Where and how the clips run on Ray.

    Attributes:
        address: "auto" (the cluster this host belongs to, or ``$RAY_ADDRESS``), "local" (start a private
            Ray on this machine for the batch), or a head's "host:port" / "ray://host:port".
        gpus_per_clip: GPUs each clip's task asks for (fractions share a GPU); None: 1 when the cluster
            has GPUs, else 0.
        cpus_per_clip: CPUs each clip's task asks for.
        retries: Extra runs of a task whose worker died.
    """

    address: str = "auto"
    gpus_per_clip: float | None = None
    cpus_per_clip: float = 1.0
    retries: int = 2

    def __post_init__(self) -> None:
        if not self.address:
            raise ConfigError("--ray needs an address: auto, local, or the head's host:port")
        if (self.gpus_per_clip is not None and self.gpus_per_clip < 0) or self.cpus_per_clip <= 0 or self.retries < 0:
            raise ConfigError(f"bad Ray resources: gpus {self.gpus_per_clip}, cpus {self.cpus_per_clip}, "
                              f"retries {self.retries} (gpus >= 0, cpus > 0, retries >= 0)")


class _ProgressBox:
    """A Ray actor that holds progress events from the tasks until the driver takes them."""

    def __init__(self) -> None:
        self._events: list = []

    def put(self, event) -> None:
        self._events.append(event)

    def take(self) -> list:
        events, self._events = self._events, []
        return events


def _ray_clip(job: ClipJob, run_config: RunConfig, data: bytes, box) -> dict:
    """The Ray task: one clip from its bytes to its output files' bytes (or its failure)."""
    me, last = worker_id(), [0.0]

    def report(p) -> None:
        now = time.monotonic()
        if p.done >= p.total or now - last[0] > 0.5:
            last[0] = now
            box.put.remote(ClipProgress(job.name, p.stage, p.done, p.total, me))

    import ray  # deferred: the optional `ray` extra, needed only on a cluster

    # Waited for, so the driver counts this attempt even if the process dies right after.
    ray.get(box.put.remote(ClipProgress(job.name, "start", 0, job.frames, me)))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pose3d-ray-") as scratch:
        local = Path(scratch) / f"input{job.source.suffix}"
        local.write_bytes(data)
        here = replace(job, source=local, folder=Path(scratch))
        try:
            temps, frames, people = produce(here, run_config, Path(scratch),
                                            cached_models(run_config, run_config.device), report)
        except Exception as exc:  # the clip's own failure: a result for the driver, not a retry
            reason, retryable, detail = failure_of(exc, local)
            return {"failed": reason, "retryable": retryable, "detail": detail, "worker": me}
        files = {name: tmp.read_bytes() for name, tmp in temps.items()}
    return {"files": files, "frames": frames, "people": people, "seconds": time.perf_counter() - t0, "worker": me}


def _import_ray(address: str):
    if address == "local":
        # A private local Ray shares this interpreter: Ray's `uv run` hook would rebuild it per worker.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        # Single-machine mode: Ray then listens on 127.0.0.1 only (read when ray is first imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray  # deferred: the optional `ray` extra, needed only on a cluster
    except ImportError:
        raise ConfigError("--ray needs the ray package: pip install 'pose3d[ray]' (uv sync installs it)") from None
    return ray


def _connect(ray, address: str) -> bool:
    """Join (or for "local" start) the cluster; True when this call started Ray and must shut it down."""
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False} if address == "local" else {}
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({err}); start it with `ray start "
                          "--head` (README: Folders of clips) or use --ray local") from None
    return True


def _finish(ray, job: ClipJob, ref, root: Path, workers: set[str]) -> ClipResult:
    """Write one finished task's files into place (or record its failure)."""
    attempts = max(1, len(workers))
    try:
        out = ray.get(ref)
    except ray.exceptions.RayError as err:
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return record_failure(job, f"Ray lost its worker {attempts} times ({type(err).__name__}: {why})",
                              True, str(err), attempts)
    if "failed" in out:
        return record_failure(job, out["failed"], out["retryable"], out["detail"], attempts, out["worker"])
    job.folder.mkdir(parents=True, exist_ok=True)
    remove_partials(job)
    temps = {}
    try:
        for name, data in out["files"].items():
            temps[name] = job.folder / f".{job.base}.partial-ray-{name}"   # one per file: several .bvh
            temps[name].write_bytes(data)
        return commit(job, temps, out["frames"], out["people"], out["seconds"], root, attempts, out["worker"])
    except OSError as err:
        return record_failure(job, f"cannot write its outputs in {job.folder} ({err.strerror})", True,
                              attempts=attempts, worker=out["worker"])
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def _task(ray, options: RayOptions):
    """The remote function with this batch's resources and retry policy."""
    gpus = options.gpus_per_clip
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    # max_calls is fixed when the function is made: 1 for GPU tasks (see the module docstring).
    remote = ray.remote(max_calls=1 if gpus else 0)(_ray_clip)
    slots = ray.cluster_resources().get("GPU", 0) / gpus if gpus else \
        ray.cluster_resources().get("CPU", 1) / options.cpus_per_clip
    return remote.options(num_gpus=gpus, num_cpus=options.cpus_per_clip, max_retries=options.retries,
                          retry_exceptions=False), max(1, int(slots))


def ray_engine(options: RayOptions | None = None) -> Engine:
    """An engine for :func:`pipeline.batch.runner.run_batch` that runs the clips on a Ray cluster."""
    options = options or RayOptions()

    def engine(jobs: Sequence[ClipJob], run_config: RunConfig, root: Path, emit: Callable[[Event], None]) -> None:
        ray = _import_ray(options.address)
        owned = _connect(ray, options.address)
        running: dict = {}
        try:
            task, slots = _task(ray, options)
            box = ray.remote(num_cpus=0)(_ProgressBox).remote()
            todo, seen = deque(jobs), {}
            while todo or running:
                while todo and len(running) < 2 * slots:   # bounded: inputs wait on disk, not in memory
                    job = todo.popleft()
                    running[task.remote(job, run_config, job.source.read_bytes(), box)] = job
                    seen[job.name] = set()
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                for event in ray.get(box.take.remote()):
                    seen.get(event.name, set()).add(event.worker)
                    if event.stage != "start":
                        emit(event)
                for ref in ready:
                    job = running.pop(ref)
                    emit(_finish(ray, job, ref, root, seen[job.name]))
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
            if owned:
                ray.shutdown()

    return engine
