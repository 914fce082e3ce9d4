"""Jitter and bone-length stability of real clips, 2D clean-up off vs on (``pose3d jitter``).

For each video the 2D stage runs once (its tracks are cached, so both settings share it); the tracks are
lifted as they are ("off") and after the clean-up of ``configs/run.yaml`` ("on"). Figures, averaged over
every track's frames:

* 2D jitter: mean norm of the 2nd difference x[t+1] - 2 x[t] + x[t-1] of the COCO-17 keypoints, in pixels
  per frame^2 and in % of the person's height per frame^2;
* 3D jitter: the same for the lifted H36M-17 joints (pelvis-relative), mm per frame^2;
* bone-length variation: std / mean of each of the 16 bone lengths of the lifted skeleton over a track,
  averaged over bones, in %.

There is no ground truth here: lower jitter is only better as long as real motion survives, which the
held-out mocap evaluation (:mod:`pipeline.evaluation.cleanup`) checks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.cleanup.cleaner import Cleaner
from pipeline.cleanup.smooth import body_height, segments
from pipeline.config import to_dict
from pipeline.errors import InputError
from pipeline.io.ffmpeg import probe
from pipeline.lifting.lifter import Lifter
from pipeline.run import RunConfig, lift_tracks, run_video
from pipeline.skeleton import H36M17
from pipeline.types import Track, VideoInfo

CACHE_VERSION = 1


@dataclass(frozen=True)
class JitterStats:
    """Frame-weighted figures over a clip's tracks (see the module docstring for the definitions).

    Attributes:
        tracks, frames: Tracks and track-frames measured.
        jitter_2d_px: px / frame^2.
        jitter_2d: % of the person's height / frame^2.
        jitter_3d: mm / frame^2.
        bone_cv: % (std / mean of bone length).
    """

    tracks: int
    frames: int
    jitter_2d_px: float
    jitter_2d: float
    jitter_3d: float
    bone_cv: float


def accelerations(values: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Norms of the 2nd differences (T-2 at most, J) of (T, J, D) values inside runs of consecutive frames."""
    out = [np.linalg.norm(values[s][2:] - 2 * values[s][1:-1] + values[s][:-2], axis=-1)
           for s in segments(frames, len(values)) if s.stop - s.start >= 3]
    return np.concatenate(out) if out else np.zeros((0, values.shape[1]))


def bone_variation(poses: np.ndarray) -> float:
    """Mean over H36M-17 bones of std / mean of the bone's length over (T, 17, 3) ``poses``; a fraction."""
    bones = np.array(H36M17.bones)
    length = np.linalg.norm(poses[:, bones[:, 1]] - poses[:, bones[:, 0]], axis=-1)
    return float(np.mean(length.std(0) / np.maximum(length.mean(0), 1e-9)))


def jitter_stats(tracks: list[Track]) -> JitterStats:
    """Figures of lifted tracks (``poses3d`` set); see :class:`JitterStats`."""
    sums, frames = np.zeros(4), 0
    for t in tracks:
        if t.poses3d is None:
            raise InputError(f"track {t.track_id}: not lifted; jitter needs 3D poses")
        a2 = accelerations(t.keypoints.astype(np.float64), t.frames)
        a2 = a2[np.isfinite(a2)]
        a3 = accelerations(t.poses3d.astype(np.float64), t.frames)
        height = body_height(t.keypoints)
        if len(a2) == 0 or len(a3) == 0 or not height > 0:
            continue
        n = len(t)
        sums += n * np.array([a2.mean(), 100.0 * a2.mean() / height, 1000.0 * a3.mean(), 100.0 * bone_variation(t.poses3d)])
        frames += n
    return JitterStats(len(tracks), frames, *(sums / max(frames, 1)))


def _cache_file(video: Path, config: RunConfig, cache_dir: Path) -> Path:
    stat = video.stat()
    key = json.dumps([CACHE_VERSION, str(video.resolve()), stat.st_size, stat.st_mtime_ns, config.decode_max_size,
                      to_dict(config.twod)], sort_keys=True, default=str)
    return cache_dir / f"{video.stem}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def save_tracks(path: Path, tracks: list[Track], backend: str) -> None:
    """Write 2D tracks (frames, keypoints, scores, interpolated) and the backend's name to an .npz, atomically."""
    arrays = {"backend": np.array(backend), "ids": np.array([t.track_id for t in tracks], np.int64)}
    for t in tracks:
        arrays |= {f"frames_{t.track_id}": t.frames, f"keypoints_{t.track_id}": t.keypoints,
                   f"scores_{t.track_id}": t.scores, f"interpolated_{t.track_id}": t.interpolated}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def load_tracks(path: Path) -> tuple[list[Track], str]:
    """Read :func:`save_tracks`' file back: (tracks without 3D, backend name)."""
    with np.load(path, allow_pickle=False) as z:
        tracks = [Track(int(i), z[f"frames_{i}"], z[f"keypoints_{i}"], z[f"scores_{i}"], z[f"interpolated_{i}"])
                  for i in z["ids"]]
        return tracks, str(z["backend"])


def two_d_tracks(video: str | Path, config: RunConfig, lifter: Lifter, cache_dir: str | Path,
                 progress: Callable | None = None) -> tuple[VideoInfo, list[Track], str]:
    """The 2D stage's tracks of ``video`` (no clean-up), from the cache when it has them.

    Args:
        video: The clip.
        config: Run settings (its ``twod`` and ``decode_max_size`` key the cache).
        lifter: Passed to :func:`pipeline.run.run_video` on a cache miss.
        cache_dir: Folder of the cached tracks.
        progress: ``run_video``'s progress callback.

    Returns:
        (video properties, tracks without 3D, the 2D backend that ran).
    """
    video = Path(video)
    if not video.is_file():
        raise InputError(f"{video}: video not found")
    path = _cache_file(video, config, Path(cache_dir))
    if path.is_file():
        tracks, backend = load_tracks(path)
        return probe(video), tracks, backend
    raw = replace(config, clean=replace(config.clean, enabled=False))
    result = run_video(video, None, raw, progress=progress, lifter=lifter)
    tracks = [replace(t, poses3d=None) for t in result.tracks]
    save_tracks(path, tracks, result.backend)
    return result.video, tracks, result.backend


@dataclass(frozen=True)
class ClipJitter:
    """One clip's figures with the clean-up off and on."""

    clip: str
    backend: str
    off: JitterStats
    on: JitterStats


def compare_clip(video: str | Path, config: RunConfig, lifter: Lifter, cache_dir: str | Path,
                 progress: Callable | None = None) -> ClipJitter:
    """2D pass (cached), then lift without and with ``config.clean`` (forced on); see the module docstring."""
    info, tracks, backend = two_d_tracks(video, config, lifter, cache_dir, progress)
    off = lift_tracks(tracks, lifter, info, config.lift.flip)
    cleaner = Cleaner(replace(config.clean, enabled=True))
    on = lift_tracks(cleaner.clean_all(tracks, info.fps), lifter, info, config.lift.flip)
    return ClipJitter(Path(video).name, backend, jitter_stats(off), jitter_stats(on))


def format_jitter(rows: list[ClipJitter]) -> str:
    """A Markdown table: one line per clip and setting."""
    lines = ["| clip | clean-up | tracks | frames | 2D jitter px/f² | 2D jitter %h/f² | 3D jitter mm/f² | bone CV % |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        for name, s in (("off", r.off), ("on", r.on)):
            lines.append(f"| {r.clip} | {name} | {s.tracks} | {s.frames} | {s.jitter_2d_px:.2f} | {s.jitter_2d:.3f} | "
                         f"{s.jitter_3d:.2f} | {s.bone_cv:.2f} |")
    return "\n".join(lines)
