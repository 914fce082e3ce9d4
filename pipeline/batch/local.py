"""Local workers of ``pose3d batch``: clips one after another, in threads, or in worker processes.

* One worker: clips run in this process, one after another, with one set of loaded models.
* Threads (``pool="threads"``, and "auto" when the workers share a single CUDA GPU): one process, one set of
  models on the GPU shared by all threads (a lock lets one network call through at a time), while decoding,
  MediaPipe, tracking, drawing and encoding of the other clips go on around it. N processes would hold N
  copies of the models in GPU memory and contend for the same GPU anyway.
* Processes (``pool="processes"``, and "auto" otherwise: CPU, or several GPUs, one per worker in turn):
  spawned workers, each loading the models once and then taking clip after clip. A worker that dies (OOM
  killer, a crash in native code) costs only its clip, which goes to a fresh worker up to ``retries`` more
  times. Workers leave when this process goes away, even by SIGKILL. Being spawned, they import the
  calling script again: a script that runs a batch with processes needs the ``if __name__ == "__main__":``
  guard (the ``pose3d`` command has it).

Each worker keeps one :class:`ClipModels` (the lifter, and the yolo-mmpose networks) for all its clips.
Progress reaches the caller's thread only: events from threads and workers are queued and relayed by the
loop here.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from pipeline.batch.clip import ClipJob, ClipProgress, ClipResult, process_clip, record_failure
from pipeline.batch.plan import BatchConfig, Engine, Event
from pipeline.config import to_dict
from pipeline.lifting.lifter import Lifter, resolve_device
from pipeline.run import RunConfig
from pipeline.twod.stage import TwoDModels


class _Locked:
    """Forwards method calls to ``target`` one thread at a time (ultralytics and mmpose are not thread-safe)."""

    def __init__(self, target, lock) -> None:
        self._target, self._lock = target, lock

    def __getattr__(self, name):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return call


@dataclass(frozen=True)
class ClipModels:
    """The networks a worker loads once and lends to each of its clips.

    Attributes:
        lifter: The 2D->3D lifter.
        twod: The yolo-mmpose networks (None for MediaPipe, whose graph is made per clip).
    """

    lifter: Lifter
    twod: TwoDModels | None = None

    @classmethod
    def load(cls, config: RunConfig, device: str) -> "ClipModels":
        """Load what ``config`` (with a concrete 2D backend) needs onto ``device``."""
        twod = TwoDModels.load(config.twod, device, config.weights_dir) if config.twod.backend == "yolo-mmpose" else None
        return cls(Lifter.load(config.lift.weights, device), twod)

    def locked(self, lock) -> "ClipModels":
        """The same networks, each used by one thread at a time (clips in threads share one GPU)."""
        twod = TwoDModels(_Locked(self.twod.detector, lock), _Locked(self.twod.keypoints, lock)) if self.twod else None
        return ClipModels(_Locked(self.lifter, lock), twod)


_CACHE: dict[str, ClipModels] = {}


def cached_models(config: RunConfig, device: str) -> ClipModels:
    """This process's :class:`ClipModels` for ``config`` on ``device``, loaded on first use (workers keep one)."""
    key = json.dumps([device, config.weights_dir, config.lift.weights, to_dict(config.twod)], sort_keys=True,
                     default=str)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = ClipModels.load(config, device)
    return _CACHE[key]


class _Stop(BaseException):
    """Raised inside a clip (from its progress callback) to abandon it when the batch is interrupted."""


def _throttled(emit: Callable[[Event], None], every_s: float = 0.2) -> Callable[[ClipProgress], None]:
    """Pass on a clip's progress at most every ``every_s`` per stage, plus each stage's first and last."""
    last: dict[tuple[str, str], float] = {}

    def relay(p: ClipProgress) -> None:
        now, key = time.monotonic(), (p.name, p.stage)
        if key in last and p.done < p.total and now - last[key] < every_s:
            return
        last[key] = now
        emit(p)

    return relay


def _devices(device: str, workers: int) -> list[str]:
    """The torch device of each worker: several GPUs are dealt out in turn; else all share one device."""
    resolved = resolve_device(device)
    if resolved == "cuda":
        count = torch.cuda.device_count()
        if count > 1:
            return [f"cuda:{i % count}" for i in range(workers)]
    return [resolved] * workers


def local_engine(config: BatchConfig) -> Engine:
    """The engine :func:`pipeline.batch.runner.run_batch` uses on this machine (see the module docstring)."""

    def engine(jobs: Sequence[ClipJob], run_config: RunConfig, root: Path, emit: Callable[[Event], None]) -> None:
        workers = min(config.workers, len(jobs))
        devices = _devices(run_config.device, workers)
        pool = config.pool
        if pool == "auto":
            pool = "threads" if devices[0].startswith("cuda") and len(set(devices)) == 1 else "processes"
        if workers <= 1:
            _inline(jobs, replace(run_config, device=devices[0]), root, emit)
        elif pool == "threads":
            _threads(jobs, replace(run_config, device=devices[0]), root, emit, workers)
        else:
            _ProcessPool(run_config, root, devices, config.retries).run(jobs, emit)

    return engine


def _inline(jobs: Sequence[ClipJob], run_config: RunConfig, root: Path, emit: Callable[[Event], None]) -> None:
    models = ClipModels.load(run_config, run_config.device)
    relay = _throttled(emit)
    for job in jobs:
        emit(process_clip(job, run_config, root, models, relay))


def _threads(jobs: Sequence[ClipJob], run_config: RunConfig, root: Path, emit: Callable[[Event], None],
             workers: int) -> None:
    """Clips in ``workers`` threads sharing one set of models; the caller's thread relays their events."""
    models = ClipModels.load(run_config, run_config.device).locked(threading.Lock())
    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    relay = _throttled(events.put)

    def report(p: ClipProgress) -> None:
        if stop.is_set():
            raise _Stop
        relay(p)

    def one(job: ClipJob) -> None:
        if not stop.is_set():
            events.put(process_clip(job, run_config, root, models, report))

    pool = ThreadPoolExecutor(workers, thread_name_prefix="pose3d-clip")
    futures = [pool.submit(one, job) for job in jobs]
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            _drain(events, emit)
            for future in done:
                future.result()  # a bug in the worker code itself: surface it
        _drain(events, emit)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _drain(events, emit: Callable[[Event], None]) -> None:
    while True:
        try:
            emit(events.get_nowait())
        except queue.Empty:
            return


def _worker_main(run_config: RunConfig, root: Path, tasks, events, parent: int, threads: int) -> None:
    """A worker process: load the models once, then run each clip sent until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: temporary files are removed

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, daemon=True).start()

    torch.set_num_threads(threads)
    models = cached_models(run_config, run_config.device)
    relay = _throttled(events.put)
    while (task := tasks.get()) is not None:
        job, attempt = task
        events.put(process_clip(job, run_config, root, models, relay, attempt))


class _ProcessPool:
    """Spawned worker processes, each given one clip at a time so a lost worker costs just its own clip."""

    def __init__(self, run_config: RunConfig, root: Path, devices: list[str], retries: int) -> None:
        self.ctx = mp.get_context("spawn")   # fork would copy torch/MediaPipe threads and CUDA state
        self.run_config, self.root, self.devices, self.retries = run_config, root, devices, retries
        self.events = self.ctx.Queue()
        self.threads = max(1, (os.cpu_count() or 1) // len(devices))
        self.workers: list = [None] * len(devices)     # (process, task queue) per slot
        self.busy: dict[int, tuple[ClipJob, int]] = {}

    def _start(self, slot: int):
        tasks = self.ctx.SimpleQueue()
        proc = self.ctx.Process(target=_worker_main, name=f"pose3d-worker-{slot}", daemon=True,
                                args=(replace(self.run_config, device=self.devices[slot]), self.root, tasks,
                                      self.events, os.getpid(), self.threads))
        proc.start()
        self.workers[slot] = (proc, tasks)
        return self.workers[slot]

    def run(self, jobs: Sequence[ClipJob], emit: Callable[[Event], None]) -> None:
        """Run ``jobs``; results and progress go to ``emit`` in this thread."""
        todo = [(job, 1) for job in reversed(jobs)]
        try:
            while todo or self.busy:
                for slot in range(len(self.workers)):
                    if todo and slot not in self.busy:
                        proc, tasks = self.workers[slot] or self._start(slot)
                        self.busy[slot] = todo.pop()
                        tasks.put(self.busy[slot])
                self._collect(emit, todo)
        finally:
            self._stop()

    def _collect(self, emit: Callable[[Event], None], todo: list) -> None:
        """Relay queued events; put the clip of a worker that died back in ``todo`` or fail it."""
        try:
            event = self.events.get(timeout=0.2)
        except queue.Empty:
            event = None
        if isinstance(event, ClipResult):
            slot = next((s for s, (job, _) in self.busy.items() if job.name == event.name), None)
            if slot is not None:   # None: a late result of a worker already counted as lost
                del self.busy[slot]
        if event is not None:
            emit(event)
            return
        for slot, (job, attempt) in list(self.busy.items()):
            proc = self.workers[slot][0]
            if proc.is_alive():
                continue
            del self.busy[slot]
            self.workers[slot] = None
            if attempt <= self.retries:
                todo.append((job, attempt + 1))
            else:
                emit(record_failure(job, f"its worker process died {attempt} times (exit code {proc.exitcode})",
                                    True, attempts=attempt))

    def _stop(self) -> None:
        """Send idle workers home and stop busy ones (their temporary files are removed as they unwind)."""
        for slot, worker in enumerate(self.workers):
            if worker is not None:
                proc, tasks = worker
                if slot in self.busy:
                    proc.terminate()
                else:
                    tasks.put(None)
        deadline = time.monotonic() + 10
        for worker in self.workers:
            if worker is not None:
                worker[0].join(max(0.1, deadline - time.monotonic()))
                if worker[0].is_alive():
                    worker[0].kill()
