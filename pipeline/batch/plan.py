"""``pose3d batch``: every video under a folder through ``pose3d run``, resumably, with a summary.

1. :func:`plan_batch` walks the input folder and decides what each file is by its content (ffmpeg probe,
   see :func:`pipeline.io.ffmpeg.probe`), not by its name. Clips whose outputs an earlier run completed are
   settled without probing (:func:`pipeline.batch.clip.earlier_result`).
2. :func:`run_batch` hands the remaining clips to an engine: local workers (:mod:`pipeline.batch.local`)
   or a Ray cluster (:mod:`pipeline.batch.ray`). Each clip runs :func:`pipeline.run.run_video` and is
   committed atomically (:mod:`pipeline.batch.clip`); a failing clip is recorded and the batch goes on.
3. A summary (``pose3d-batch.csv`` and ``pose3d-batch.json`` in the output folder) is written at the end,
   also when the batch is interrupted.

The output folder mirrors the input folder: ``IN/a/b/clip.mov`` gives ``OUT/a/b/clip.mp4`` (rendered),
``OUT/a/b/clip.json`` (and any other export). Two inputs of one folder with the same stem (``x.mp4`` and
``x.mov``) keep their whole names as stems instead (``x.mp4.mp4``, ``x.mov.mp4``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence, Union

from pipeline.batch.clip import ClipJob, ClipProgress, ClipResult, earlier_result, one_line, settings_fingerprint
from pipeline.errors import ConfigError, InputError
from pipeline.io.ffmpeg import probe
from pipeline.run import RunConfig
from pipeline.twod.stage import resolve_backend

SUMMARY_STEM = "pose3d-batch"
EXPORT_FORMATS = ("json", "npz", "csv", "angles", "bvh")
POOLS = ("auto", "processes", "threads")
# Suffixes that make a file count as a (possibly broken) video when ffmpeg cannot read it; a file with
# another name is still a clip when its content is video.
VIDEO_SUFFIXES = frozenset(".mp4 .m4v .mov .qt .avi .mkv .webm .mpg .mpeg .m2v .ts .mts .m2ts .wmv .asf .flv "
                           ".3gp .3g2 .ogv .mxf .dv .y4m .h264 .264 .h265 .265 .hevc .vob".split())
# Leading bytes of common files that are certainly not clips: no need to start ffmpeg for them.
_NOT_VIDEO = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"),
              (b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b", "a gzip archive"), (b"BM", "a bitmap image"))

Event = Union[ClipProgress, ClipResult]
Engine = Callable[[Sequence[ClipJob], RunConfig, Path, Callable[[Event], None]], None]


@dataclass(frozen=True)
class BatchConfig:
    """How a batch runs (the per-clip settings are a :class:`pipeline.run.RunConfig`).

    Attributes:
        exports: Data formats written per clip: "json", "npz", "csv", "angles" (``base_angles.csv``: joint
            angles), "bvh" (``base_track<ID>.bvh`` per person).
        video: Also write the rendered video (``.mp4``).
        workers: Clips processed at once on this machine.
        pool: "processes" (one per worker, each loading the models once), "threads" (one process whose
            threads share one set of models: the choice for a single GPU) or "auto" (threads when the
            workers share one CUDA GPU, else processes).
        retries: Extra tries for a clip whose worker process died.
        force: Redo clips whose outputs are complete.
        retry_failed: Try again clips that failed because their input was bad (and is unchanged).
    """

    exports: tuple[str, ...] = ("json",)
    video: bool = True
    workers: int = 1
    pool: str = "auto"
    retries: int = 2
    force: bool = False
    retry_failed: bool = False

    def __post_init__(self) -> None:
        unknown = [e for e in self.exports if e not in EXPORT_FORMATS]
        if unknown:
            raise ConfigError(f"unknown export format {unknown[0]!r}; use {', '.join(EXPORT_FORMATS)}")
        if not self.exports and not self.video:
            raise ConfigError("nothing to write: keep the video or give at least one --export format")
        if self.workers < 1 or self.retries < 0:
            raise ConfigError(f"--workers must be >= 1 and --retries >= 0, got {self.workers}, {self.retries}")
        if self.pool not in POOLS:
            raise ConfigError(f"unknown pool {self.pool!r}; use {', '.join(POOLS)}")

    @property
    def suffixes(self) -> tuple[str, ...]:
        """Output suffixes of each clip, the video first."""
        return ((".mp4",) if self.video else ()) + tuple("_angles.csv" if e == "angles" else f".{e}"
                                                       for e in dict.fromkeys(self.exports))


@dataclass(frozen=True)
class BatchPlan:
    """What a batch will do, decided before any clip runs.

    Attributes:
        input_dir, output_dir: The folders.
        run_config: Per-clip settings, 2D backend resolved.
        jobs: Clips to process, in discovery order.
        broken: (clip, reason) for files that are meant to be videos but cannot be read.
        settled: Results known without processing: complete earlier, failed earlier, not videos.
        order: Every file's name in discovery order (the summary's row order).
        notice: One line about the 2D backend choice, or "".
    """

    input_dir: Path
    output_dir: Path
    run_config: RunConfig
    jobs: tuple[ClipJob, ...]
    broken: tuple[tuple[ClipJob, str], ...] = ()
    settled: tuple[ClipResult, ...] = ()
    order: tuple[str, ...] = ()
    notice: str = ""

    @property
    def frames(self) -> int:
        """Frames in the clips to process (the unit of overall progress)."""
        return sum(job.frames for job in self.jobs)


def _files(root: Path, skip: Path | None) -> list[Path]:
    """Regular files under ``root``, sorted, without hidden entries, symlinked folders or ``skip``."""
    found = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or here / d != skip))
        found += [here / n for n in sorted(names) if not n.startswith(".") and (here / n).is_file()]
    return found


def _bases(files: list[Path], root: Path) -> dict[Path, str]:
    """Output stem of each file: its stem, or its whole name where stems collide in a folder."""
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in files:
        groups[(path.parent, path.stem)].append(path)
    reserved = (root, SUMMARY_STEM)
    return {p: (p.name if len(group) > 1 or key == reserved else p.stem)
            for key, group in groups.items() for p in group}


def _sniff(path: Path) -> tuple[bool, str]:
    """(looks like a video by name or header, what it certainly is otherwise or "")."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        head = b""
    video = (path.suffix.lower() in VIDEO_SUFFIXES or head[4:8] == b"ftyp" or head[:4] == b"\x1aE\xdf\xa3"
             or (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head[:3] == b"FLV"
             or head[:4] == b"\x00\x00\x01\xba" or (len(head) > 188 and head[0] == head[188] == 0x47))
    if video or not head:
        return video, "" if head else "an empty file"
    kind = next((what for magic, what in _NOT_VIDEO if head.startswith(magic)), "")
    if not kind and b"\0" not in head:
        try:
            head.decode("utf-8")
            kind = "a text file"
        except UnicodeDecodeError as err:
            kind = "a text file" if err.start > len(head) - 4 else ""   # cut mid-character at 4 KB
    return video, kind


def _classify(job: ClipJob, video: bool, kind: str) -> tuple[str, ClipJob | str]:
    """('clip', job with its frame count) | ('broken', reason) | ('ignored', reason) for one file."""
    if kind and not video:
        return "ignored", f"not a video: {kind}"
    try:
        info = probe(job.source)
    except InputError as err:
        reason = one_line(err, job.source)
        return ("broken", reason) if video else ("ignored", f"not a video ({reason})")
    if not video and info.num_frames < 2:
        return "ignored", f"not a video: a still image ({info.codec})"
    return "clip", replace(job, frames=info.num_frames)


def _job(path: Path, input_dir: Path, output_dir: Path, base: str, suffixes: tuple[str, ...],
         settings: str) -> ClipJob:
    stat = path.stat()
    rel = path.relative_to(input_dir)
    return ClipJob(path, rel.as_posix(), output_dir / rel.parent, base, suffixes, stat.st_size,
                   stat.st_mtime_ns, 0, settings)


def _folders(input_dir: str | Path, output_dir: str | Path) -> tuple[Path, Path]:
    """Absolute input and output folders, checked."""
    src, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    if not src.is_dir():
        raise InputError(f"{input_dir}: " + ("is a file; give the folder that holds the clips" if src.exists()
                                             else "no such folder; check the path"))
    if src == out:
        raise ConfigError(f"--out {output_dir} is the input folder; give a separate output folder")
    return src, out


def plan_batch(input_dir: str | Path, output_dir: str | Path, run_config: RunConfig | None = None,
               config: BatchConfig | None = None,
               progress: Callable[[int, int], None] | None = None) -> BatchPlan:
    """Find the clips under ``input_dir`` and decide what each needs. Writes nothing.

    Args:
        input_dir: Folder searched recursively (hidden files and folders are skipped, and so is the output
            folder when it lies inside).
        output_dir: Where the outputs go (mirroring the input folder's layout).
        run_config: Per-clip settings; a 2D backend "auto" is resolved here without downloading.
        config: Batch settings (outputs, --force, --retry-failed).
        progress: Called as progress(files examined, files) while files are probed.

    Returns:
        A :class:`BatchPlan`.

    Raises:
        InputError: ``input_dir`` is not a folder or holds no files.
    """
    src, out = _folders(input_dir, output_dir)
    config = config or BatchConfig()
    twod, notice = resolve_backend((run_config or RunConfig()).twod, (run_config or RunConfig()).weights_dir, False)
    run_config = replace(run_config or RunConfig(), twod=twod)
    settings = settings_fingerprint(run_config, config.suffixes)
    files = _files(src, out if out.is_relative_to(src) else None)
    if not files:
        raise InputError(f"{input_dir}: no files found (hidden files are skipped); put the clips in it")
    bases = _bases(files, src)
    jobs, broken, settled = [], [], []
    for i, path in enumerate(files):
        job = _job(path, src, out, bases[path], config.suffixes, settings)
        earlier = None if config.force else earlier_result(job, config.retry_failed)
        if earlier is None:
            what, value = _classify(job, *_sniff(path))
            if what == "clip":
                jobs.append(value)
            elif what == "broken":
                broken.append((job, value))
            else:
                settled.append(ClipResult(job.name, "ignored", value))
        else:
            settled.append(earlier)
        if progress:
            progress(i + 1, len(files))
    return BatchPlan(src, out, run_config, tuple(jobs), tuple(broken), tuple(settled),
                     tuple(p.relative_to(src).as_posix() for p in files), notice or "")


