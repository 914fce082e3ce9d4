"""One clip of ``pose3d batch``: run it, put its outputs in place atomically, and record that it is done.

A clip's outputs are first written under hidden temporary names beside their final place (same folder,
so renaming is atomic), flushed to disk, renamed into place, and only then is a small record written
(``.<base>.record.json``, also through a temporary name). The record holds the input's size and mtime,
the output files with their sizes, and a fingerprint of the settings. A clip counts as complete only when
its record says so and still matches the input and the files on disk, so a run killed at any moment
(Ctrl-C, SIGKILL, power loss) never leaves outputs that look complete; the next run removes the
temporary files and does the clip again.

Every worker (inline, threads, processes, Ray) processes a clip through :func:`produce` and
:func:`commit`, which call :func:`pipeline.run.run_video`: the same code path as ``pose3d run``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from pipeline.config import to_dict
from pipeline.errors import ConfigError, InputError, OutputError, Pose3DError
from pipeline.run import Progress, RunConfig, run_video

STATUSES = ("done", "skipped", "failed", "ignored", "interrupted")
RECORD_FORMAT = "pose3d-batch-record"
# Fault injection for the recovery tests: "CLIP=MARKER" makes the first attempt at CLIP (its name in the
# batch) kill its own worker process with os._exit; MARKER (a file, created then) remembers the attempt.
FAULT_ENV = "POSE3D_FAULT_EXIT_ONCE"


OUTPUT_SUFFIXES = (".mp4", ".json", ".npz", ".csv", "_angles.csv", ".bvh")


@dataclass(frozen=True)
class ClipJob:
    """One input file of a batch and where its results go.

    Attributes:
        source: The input file.
        name: Its path under the batch's input folder (POSIX separators); names the clip in reports.
        folder: The clip's output folder (the input's sub-folder, mirrored under the output folder).
        base: Stem of the output file names (``base.mp4``, ``base.json`` ...).
        suffixes: Outputs to write, e.g. (".mp4", ".json"); ".mp4" is the rendered video, "_angles.csv" the joint
            angles, ".bvh" one ``base_track<ID>.bvh`` per person.
        size: The input's size in bytes when planned.
        mtime_ns: The input's modification time when planned, ns since the epoch.
        frames: Frame count from the probe (the unit of batch progress).
        settings: Fingerprint of the settings that shape the outputs (see :func:`settings_fingerprint`).
    """

    source: Path
    name: str
    folder: Path
    base: str
    suffixes: tuple[str, ...]
    size: int
    mtime_ns: int
    frames: int
    settings: str

    def __post_init__(self) -> None:
        if not self.suffixes or any(s not in OUTPUT_SUFFIXES for s in self.suffixes):
            raise ConfigError(f"{self.name}: outputs must be among {' '.join(OUTPUT_SUFFIXES)}, got {self.suffixes}")
        if self.size < 0 or self.frames < 0:
            raise ConfigError(f"{self.name}: negative size {self.size} or frame count {self.frames}")

    @property
    def outputs(self) -> tuple[Path, ...]:
        """Final output paths, in ``suffixes`` order."""
        return tuple(self.folder / f"{self.base}{s}" for s in self.suffixes)

    @property
    def record(self) -> Path:
        """The clip's record: written last, it marks the outputs complete (or the clip failed)."""
        return record_path(self.folder, self.base)


@dataclass(frozen=True)
class ClipProgress:
    """Progress of one running clip: ``stage`` ('2d', 'lift', 'render', 'export') and units done/total."""

    name: str
    stage: str
    done: int
    total: int
    worker: str = ""


@dataclass(frozen=True)
class ClipResult:
    """How one input file of a batch ended.

    Attributes:
        name: The clip's name (path under the input folder).
        status: 'done' (processed now), 'skipped' (complete from an earlier run), 'failed', 'ignored' (not
            a video) or 'interrupted' (the batch stopped first).
        reason: One line saying why it failed, was skipped or ignored.
        frames: Frames decoded; people: tracks found; seconds: processing wall time.
        outputs: Written files, relative to the batch's output folder.
        attempts: Tries it took (more than one after a lost worker).
        worker: Which worker ran it ("host:pid").
        retryable: For failures: whether a later run tries again (False when the input itself is bad).
    """

    name: str
    status: str
    reason: str = ""
    frames: int = 0
    people: int = 0
    seconds: float = 0.0
    outputs: tuple[str, ...] = ()
    attempts: int = 1
    worker: str = ""
    retryable: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"{self.name}: unknown clip status {self.status!r}; one of {', '.join(STATUSES)}")
        if self.frames < 0 or self.people < 0 or self.attempts < 0:
            raise ConfigError(f"{self.name}: negative frames, people or attempts in its result")


def record_path(folder: Path, base: str) -> Path:
    """Where the record of the clip with output stem ``base`` lives."""
    return folder / f".{base}.record.json"


def settings_fingerprint(config: RunConfig, suffixes: tuple[str, ...]) -> str:
    """A short hash of what shapes a clip's outputs: the run settings (not where or on what they run)."""
    shaping = replace(config, device="auto", weights_dir=None, fetch_weights=True,
                      twod=replace(config.twod, trust_weights=False))
    text = json.dumps({"run": to_dict(shaping), "outputs": list(suffixes)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def worker_id() -> str:
    """This process as "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def read_record(job: ClipJob) -> dict | None:
    """The clip's record if it exists and parses, else None."""
    try:
        record = json.loads(job.record.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == RECORD_FORMAT else None


def earlier_result(job: ClipJob, retry_failed: bool = False) -> ClipResult | None:
    """What an earlier run left for this clip, if it still holds; None means the clip must be (re)done.

    A completed clip holds when its record matches the input's size and mtime and the settings, and every
    output exists with its recorded size and is not older than the input. A failure holds (and is not
    tried again) only when the input itself was bad and is unchanged, unless ``retry_failed``.
    """
    record = read_record(job)
    if record is None or record.get("input") != {"size": job.size, "mtime_ns": job.mtime_ns}:
        return None
    if record.get("status") == "failed":
        if retry_failed or record.get("retryable", True):
            return None
        return ClipResult(job.name, "failed", f"{record.get('reason', '')} (input unchanged since the earlier "
                          "run; --retry-failed tries again)", retryable=False)
    if record.get("status") != "complete" or record.get("settings") != job.settings:
        return None
    files = record.get("outputs", {})
    if not _writes(job, set(files)):
        return None
    for name in files:
        try:
            stat = (job.folder / name).stat()
        except OSError:
            return None
        if stat.st_size != files[name] or stat.st_mtime_ns < job.mtime_ns:
            return None
    return ClipResult(job.name, "skipped", "complete from an earlier run", record.get("frames", 0),
                      record.get("people", 0), outputs=tuple(record.get("outputs_rel", ())))


def _writes(job: ClipJob, names: set[str]) -> bool:
    """Whether ``names`` are exactly the files ``job`` writes (a .bvh output: any number of per-person files)."""
    fixed = {p.name for p in job.outputs if p.suffix != ".bvh"}
    people = [f"{p.stem}_track" for p in job.outputs if p.suffix == ".bvh"]
    extra = names - fixed
    return fixed <= names and all(n.endswith(".bvh") and any(n.startswith(s) for s in people) for n in extra)


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to the disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_record(job: ClipJob, record: dict) -> None:
    """Atomically (temp + rename + fsync) write the clip's record."""
    record = {"format": RECORD_FORMAT, "version": 1, "clip": job.name,
              "input": {"size": job.size, "mtime_ns": job.mtime_ns}, "settings": job.settings,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}
    tmp = job.folder / f".{job.base}.partial-{secrets.token_hex(4)}.record"
    try:
        _write_durably(tmp, json.dumps(record, indent=1).encode())
        os.replace(tmp, job.record)
        _fsync(job.folder)
    finally:
        tmp.unlink(missing_ok=True)


def remove_partials(job: ClipJob) -> None:
    """Delete what an interrupted earlier attempt at this clip left (temporary and stale output files)."""
    if not job.folder.is_dir():
        return
    for stale in [*job.folder.glob(f".{job.base}.partial-*"), *job.folder.glob(f"..{job.base}.partial-*")]:
        with contextlib.suppress(OSError):
            stale.unlink()


def _fault_injection(job: ClipJob) -> None:
    """The test hook of :data:`FAULT_ENV`: die on the first attempt at the named clip."""
    spec = os.environ.get(FAULT_ENV, "")
    clip, _, marker = spec.partition("=")
    if clip and clip == job.name and marker:
        try:
            with open(marker, "x") as f:
                f.write(worker_id())
        except FileExistsError:
            return
        os._exit(70)


def produce(job: ClipJob, config: RunConfig, workdir: Path, models=None,
            report: Callable[[Progress], None] | None = None) -> tuple[dict[str, Path], int, int]:
    """Run the pipeline on one clip, writing its outputs under temporary names in ``workdir``.

    Args:
        job: The clip.
        config: Run settings (with a concrete 2D backend).
        workdir: Folder for the temporary files: the clip's output folder locally (renames stay atomic),
            a scratch folder on a Ray worker.
        models: A :class:`pipeline.batch.local.ClipModels` to reuse (None: load them for this clip).
        report: Progress callback.

    Returns:
        ({final output name: temporary file}, frames decoded, people tracked).
    """
    _fault_injection(job)
    tag = secrets.token_hex(4)
    # The temporary names end like the final ones: the suffix (and "_angles.csv") picks the export format.
    temps = {f"{job.base}{s}": workdir / f".{job.base}.partial-{tag}{s}" for s in job.suffixes}
    video = temps.get(f"{job.base}.mp4")
    exports = [tmp for name, tmp in temps.items() if not name.endswith(".mp4")]
    try:
        result = run_video(job.source, video, config, exports, progress=report,
                           lifter=models.lifter if models else None, models=models.twod if models else None)
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    return _per_person(temps, result.exports), result.frames, len(result.tracks)


def _per_person(temps: dict[str, Path], written: list[Path]) -> dict[str, Path]:
    """{final name: temporary file} with each .bvh entry replaced by the per-person files the run wrote."""
    out = {}
    for name, tmp in temps.items():
        if not name.endswith(".bvh"):
            out[name] = tmp
            continue
        stem = name[: -len(".bvh")]
        for path in written:   # tmp's stem + "_track<ID>.bvh" -> the final stem + "_track<ID>.bvh"
            if path.parent == tmp.parent and path.name.startswith(f"{tmp.stem}_track"):
                out[stem + path.name[len(tmp.stem):]] = path
    return out


def commit(job: ClipJob, temps: dict[str, Path], frames: int, people: int, seconds: float,
           output_root: Path, attempts: int = 1, worker: str = "") -> ClipResult:
    """Move a clip's finished temporary files into place, then write its record.

    Args:
        job: The clip.
        temps: {final output name: temporary file in ``job.folder``}.
        frames, people, seconds: What the run found and how long it took.
        output_root: The batch's output folder (outputs are reported relative to it).
        attempts, worker: Tries it took and who ran it.

    Returns:
        The 'done' result.
    """
    job.record.unlink(missing_ok=True)  # from here until the new record, the clip reads as incomplete
    sizes = {}
    for name, tmp in temps.items():
        _fsync(tmp)
        sizes[name] = tmp.stat().st_size
    for name, tmp in temps.items():
        os.replace(tmp, job.folder / name)
    _fsync(job.folder)
    rel = tuple(str((job.folder / n).relative_to(output_root)) for n in sorted(temps))
    _write_record(job, {"status": "complete", "outputs": sizes, "outputs_rel": list(rel), "frames": frames,
                        "people": people, "seconds": round(seconds, 3), "worker": worker})
    return ClipResult(job.name, "done", "", frames, people, seconds, rel, attempts, worker)


def record_failure(job: ClipJob, reason: str, retryable: bool, detail: str = "", attempts: int = 1,
                   worker: str = "") -> ClipResult:
    """Write a failed clip's record (its outputs are left untouched) and return its result."""
    job.folder.mkdir(parents=True, exist_ok=True)
    _write_record(job, {"status": "failed", "reason": reason, "retryable": retryable, "detail": detail,
                        "worker": worker})
    return ClipResult(job.name, "failed", reason, attempts=attempts, worker=worker, retryable=retryable)


def one_line(exc: BaseException, source: Path | None = None) -> str:
    """The first line of an error's message, without the input's path in front (the clip's name says it)."""
    line = (str(exc).splitlines() or [""])[0]
    prefix = f"{source}: "
    return line[len(prefix):] if source is not None and line.startswith(prefix) else line


def failure_of(exc: BaseException, source: Path | None = None) -> tuple[str, bool, str]:
    """(one-line reason, whether a later run should retry, traceback) for an exception a clip raised."""
    detail = "".join(traceback.format_exception(exc))
    line = one_line(exc, source)
    if isinstance(exc, Pose3DError):
        # A bad input stays bad; an output that could not be written (disk full) may succeed next time.
        return line, not isinstance(exc, InputError) or isinstance(exc, OutputError), detail
    return f"{type(exc).__name__}: {line} (a bug: the record holds the traceback)", True, detail


def process_clip(job: ClipJob, config: RunConfig, output_root: Path, models=None,
                 report: Callable[[ClipProgress], None] | None = None, attempts: int = 1) -> ClipResult:
    """Run one clip in place: outputs into ``job.folder`` atomically, then its record.

    Args:
        job: The clip.
        config: Run settings (concrete 2D backend).
        output_root: The batch's output folder.
        models: A :class:`pipeline.batch.local.ClipModels` to reuse (None: load them for this clip).
        report: Receives :class:`ClipProgress` while it runs.
        attempts: Which try this is.

    Returns:
        'done', or 'failed' with the one-line reason (failures are recorded too; the batch goes on).
    """
    me = worker_id()
    job.folder.mkdir(parents=True, exist_ok=True)
    remove_partials(job)
    t0 = time.perf_counter()
    relay = (lambda p: report(ClipProgress(job.name, p.stage, p.done, p.total, me))) if report else None
    try:
        temps, frames, people = produce(job, config, job.folder, models, relay)
        return commit(job, temps, frames, people, time.perf_counter() - t0, output_root, attempts, me)
    except Exception as exc:  # one clip's failure must not stop the batch
        reason, retryable, detail = failure_of(exc, job.source)
        return record_failure(job, reason, retryable, detail, attempts, me)
