"""Motion-capture readers: CMU BVH and ASF/AMC files -> world joint positions on the H36M17 set.

Every reader returns joints (T, 17, 3) float32 in metres, in the file's own Y-up world frame, with the
floor at y = 0 (see :func:`pipeline.training.mocap_fk.place_on_floor`). How each H36M joint is derived per file
flavour is tabled in :mod:`pipeline.training.mocap_bvh`; the ASF/AMC reader lives in :mod:`pipeline.training.mocap_asf`.

:func:`load_dataset` reads a folder (its MANIFEST.tsv, or every .bvh/.amc file in it), removes T-pose and
glitch frames (:func:`clean`), resamples to a common rate and caches the result per file.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import ConfigError, InputError, ShapeError
from pipeline.training.mocap_asf import read_asf_amc
from pipeline.training.mocap_bvh import read_bvh_detail

__all__ = ["Motion", "ManifestEntry", "read_bvh", "read_asf_amc", "load_motion", "resample", "clean",
           "load_manifest", "load_dataset", "READER_VERSION"]

# Bump when anything changes what a file reads as, so cached results are recomputed.
READER_VERSION = 3
# Glitch tests on the pelvis, per step between consecutive frames: faster than any human (elite sprinters
# peak at 12.4 m/s), or a velocity that differs from both neighbouring steps' by more than GLITCH_DV_MPS
# (a one-step jump of >= 4 cm at 120 fps; real CMU motion, jumps and kicks included, stays below 5 m/s).
GLITCH_SPEED_MPS = 12.5
GLITCH_DV_MPS = 5.0
# Pieces left by clean() shorter than this are dropped.
MIN_PIECE_S = 1.0
# T-pose test: both arm segments within ~15 deg of horizontal, elbows straight, arms pointing apart.
TPOSE_MAX_SLOPE, TPOSE_MIN_STRAIGHT, TPOSE_MAX_APART = 0.26, 0.95, -0.9
_MOCAP_SUFFIXES = {".bvh": "bvh", ".amc": "amc"}


@dataclass(frozen=True)
class Motion:
    """One motion.

    Attributes:
        joints: (T, 17, 3) float32 metres, H36M17 order, Y-up world frame (the file's own axes), floor at y=0.
        fps: Frames per second.
        subject: CMU subject number without leading zeros, e.g. "16".
        name: Motion name, e.g. "16_01" ("16_01-2" for the second piece :func:`clean` cut from it).
        description: Free text (CMU's description).
        scale_known: False when the file's length unit could not be trusted and the body was rescaled to a
            nominal adult.
    """

    joints: np.ndarray
    fps: float
    subject: str
    name: str
    description: str = ""
    scale_known: bool = True

    def __post_init__(self) -> None:
        j = self.joints
        if not isinstance(j, np.ndarray) or j.ndim != 3 or j.shape[1:] != (17, 3) or len(j) == 0:
            raise ShapeError(f"Motion {self.name!r}: joints must be (T>0, 17, 3), got "
                             f"{getattr(j, 'shape', type(j).__name__)}")
        if j.dtype != np.float32:
            raise ShapeError(f"Motion {self.name!r}: joints must be float32, got {j.dtype}")
        if not np.isfinite(j).all():
            raise ShapeError(f"Motion {self.name!r}: joints contain NaN or infinite values")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ShapeError(f"Motion {self.name!r}: fps must be a positive number, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return len(self.joints)


@dataclass(frozen=True)
class ManifestEntry:
    """One MANIFEST.tsv row. frames/file_fps/capture_fps are None for files found without a manifest."""

    path: Path
    subject: str
    trial: str
    frames: int | None
    file_fps: float | None
    capture_fps: float | None
    description: str = ""


def read_bvh(path: Path | str, *, fps: float | None = None) -> tuple[np.ndarray, float, bool]:
    """Read a BVH file (plain or gzipped) of a known flavour into H36M17 world joints.

    Args:
        path: .bvh or .bvh.gz file.
        fps: Frame rate to report instead of the header's (1 / Frame Time).

    Returns:
        (joints (T, 17, 3) float32 metres Y-up, floor at y = 0; fps; scale_known).
    """
    joints, rate, known, _, _ = read_bvh_detail(Path(path), fps)
    return joints, rate, known


def _format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return _MOCAP_SUFFIXES.get(suffixes[-1]) if suffixes else None


def _norm_subject(s: str) -> str:
    return str(int(s)) if s.strip().isdigit() else s.strip()


def _ids(path: Path) -> tuple[str, str, str]:
    """(subject, trial, name) from a CMU-style file name like 16_01.amc.gz or scaled_131_03.bvh."""
    stem = path.name.split(".")[0]
    m = re.search(r"(\d+)_(\d+)", stem)
    if m:
        return _norm_subject(m.group(1)), str(int(m.group(2))), f"{int(m.group(1)):02d}_{int(m.group(2)):02d}"
    return _norm_subject(path.parent.name), "", stem


def _find_asf(amc_path: Path) -> Path:
    """The subject's skeleton beside an AMC file: <subject>.asf(.gz), else the folder's only .asf."""
    prefix = amc_path.name.split(".")[0].split("_")[0]
    for name in (f"{prefix}.asf", f"{prefix}.asf.gz"):
        if (amc_path.parent / name).is_file():
            return amc_path.parent / name
    found = sorted(p for p in amc_path.parent.iterdir() if re.search(r"\.asf(\.gz)?$", p.name, re.I))
    if len(found) == 1:
        return found[0]
    raise InputError(f"{amc_path}: cannot find its skeleton: expected {prefix}.asf or {prefix}.asf.gz in "
                     f"{amc_path.parent} ({len(found)} .asf files there)")


def load_motion(path: Path | str, *, fps: float | None = None, subject: str | None = None,
                description: str = "") -> Motion:
    """Read one mocap file, dispatching on its suffix (.bvh, .amc, each optionally .gz).

    Args:
        path: The file; an .amc needs its subject's .asf in the same folder.
        fps: Capture frame rate overriding the file's (CMU's daz-metres files say 120 but are 60).
        subject: Subject id; default from the file name (16_01.amc -> "16").
        description: Stored on the Motion.

    Returns:
        The raw motion (T-pose and glitch frames still in; see :func:`clean`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mocap file not found")
    subj, _, name = _ids(path)
    kind = _format(path)
    if kind == "bvh":
        joints, rate, known = read_bvh(path, fps=fps)
    elif kind == "amc":
        joints, rate = read_asf_amc(_find_asf(path), path)
        rate, known = fps or rate, True
    else:
        raise InputError(f"{path}: unknown mocap format; expected .bvh or .amc (optionally .gz)")
    return Motion(joints, float(rate), _norm_subject(subject) if subject else subj, name, description, known)


def resample(motion: Motion, fps: float) -> Motion:
    """Linearly interpolate a motion in time onto a new frame rate.

    Args:
        motion: Source motion; frame i is at time i / motion.fps.
        fps: Target rate; new frame k is at time k / fps, up to the last source frame's time.

    Returns:
        Motion with about T * fps / motion.fps frames (floor((T - 1) * fps / motion.fps) + 1).
    """
    if not fps > 0:
        raise ConfigError(f"resample: target fps must be positive, got {fps}")
    if fps == motion.fps:
        return motion
    n_src = motion.num_frames
    n = int(np.floor((n_src - 1) * fps / motion.fps + 1e-9)) + 1
    src = np.arange(n) * (motion.fps / fps)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_src - 1)
    i1 = np.minimum(i0 + 1, n_src - 1)
    w = (src - i0)[:, None, None]
    j = motion.joints.astype(np.float64)
    joints = ((1.0 - w) * j[i0] + w * j[i1]).astype(np.float32)
    return dataclasses.replace(motion, joints=joints, fps=float(fps))


def _tpose(joints: np.ndarray) -> np.ndarray:
    """(T,) bool: arms horizontal, straight and pointing apart (H36M17 joints (T, 17, 3))."""
    upper = {s: joints[:, e] - joints[:, sh] for s, sh, e in (("l", 11, 12), ("r", 14, 15))}
    fore = {s: joints[:, w] - joints[:, e] for s, e, w in (("l", 12, 13), ("r", 15, 16))}

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)

    ok = np.ones(len(joints), dtype=bool)
    for s in "lr":
        u, f = unit(upper[s]), unit(fore[s])
        ok &= (np.abs(u[:, 1]) < TPOSE_MAX_SLOPE) & (np.abs(f[:, 1]) < TPOSE_MAX_SLOPE)
        ok &= np.sum(u * f, axis=-1) > TPOSE_MIN_STRAIGHT
    return ok & (np.sum(unit(upper["l"]) * unit(upper["r"]), axis=-1) < TPOSE_MAX_APART)


def _glitch_steps(pelvis: np.ndarray, fps: float) -> np.ndarray:
    """Indices k of glitched steps (frame k -> k + 1) from pelvis positions (T, 3) in metres."""
    vel = np.diff(pelvis.astype(np.float64), axis=0) * fps
    if len(vel) < 2:
        return np.flatnonzero(np.linalg.norm(vel, axis=-1) > GLITCH_SPEED_MPS)
    dv = np.linalg.norm(np.diff(vel, axis=0), axis=-1)
    # |v[k] - v[k-1]| and |v[k] - v[k+1]|; the first and last steps are judged by their one neighbour.
    before = np.concatenate([[np.inf], dv])
    after = np.concatenate([dv, [np.inf]])
    isolated = np.minimum(before, after)
    return np.flatnonzero((np.linalg.norm(vel, axis=-1) > GLITCH_SPEED_MPS) | (isolated > GLITCH_DV_MPS))


def clean(motion: Motion) -> list[Motion]:
    """Drop leading T-pose frames and cut the motion at glitches.

    A glitched step is a pelvis move between consecutive frames faster than GLITCH_SPEED_MPS or out of
    line with both neighbouring steps (see GLITCH_DV_MPS). The motion is cut at every glitched step, so a
    single bad frame becomes a one-frame piece; pieces shorter than MIN_PIECE_S are dropped, and with
    them the glitched frames.

    Args:
        motion: Raw motion from :func:`load_motion`.

    Returns:
        The surviving pieces in time order; one keeps the name, several are named "<name>-1", "<name>-2"...
    """
    joints = motion.joints
    tpose = _tpose(joints)
    start = int(np.argmin(tpose)) if not tpose.all() else len(joints)
    cuts = [int(k) + 1 for k in _glitch_steps(joints[:, 0], motion.fps) if k + 1 > start]
    bounds = [start] + cuts + [len(joints)]
    spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if (b - a) / motion.fps >= MIN_PIECE_S]
    if len(spans) == 1 and spans[0] == (0, len(joints)):
        return [motion]
    return [dataclasses.replace(motion, joints=np.ascontiguousarray(joints[a:b]),
                                name=motion.name if len(spans) == 1 else f"{motion.name}-{k + 1}")
            for k, (a, b) in enumerate(spans)]


def load_manifest(root: Path | str) -> list[ManifestEntry]:
    """Read a manifest: root/MANIFEST.tsv, or a .tsv file given directly.

    Args:
        root: Folder holding MANIFEST.tsv, or a manifest file; paths in it are relative to its folder.

    Returns:
        One entry per row, paths absolute, subjects without leading zeros.
    """
    root = Path(root).resolve()
    path, root = (root, root.parent) if root.is_file() else (root / "MANIFEST.tsv", root)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        return [ManifestEntry(root / r["path"], _norm_subject(r["subject"]), r["trial"].strip(),
                              int(r["frames"]), float(r["file_fps"]), float(r["capture_fps"]),
                              r.get("description") or "") for r in rows]
    except OSError as e:
        raise InputError(f"{path}: cannot read manifest ({e})") from e
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"{path}: malformed manifest; need tab-separated columns path, subject, trial, "
                         f"frames, file_fps, capture_fps, description ({type(e).__name__}: {e})") from e


def _scan(root: Path) -> list[ManifestEntry]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and _format(p))
    return [ManifestEntry(p.resolve(), *_ids(p)[:2], None, None, None) for p in files]


def default_cache_dir() -> Path:
    """$POSE3D_CACHE/mocap, or ~/.cache/pose3d/mocap."""
    base = os.environ.get("POSE3D_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "pose3d") / "mocap"


def _cache_path(entry: ManifestEntry, fps: float, cache_dir: Path) -> Path:
    sources = [entry.path] + ([_find_asf(entry.path)] if _format(entry.path) == "amc" else [])
    try:
        stamps = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sources]
    except OSError as e:
        raise InputError(f"{entry.path}: mocap file not found ({e})") from e
    key = repr((READER_VERSION, stamps, float(fps), entry.capture_fps, entry.subject, entry.description))
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir / f"{entry.path.name.split('.')[0]}-{digest}.npz"


def _read_cache(path: Path) -> list[Motion] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            return [Motion(z[f"joints_{k}"], float(z["fps"]), str(z["subject"]), n, str(z["description"]),
                           bool(z["scale_known"])) for k, n in enumerate(names)]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, ShapeError):
        return None


def _write_cache(path: Path, motions: list[Motion], fps: float, entry: ManifestEntry) -> None:
    arrays = {f"joints_{k}": m.joints for k, m in enumerate(motions)}
    known = motions[0].scale_known if motions else True
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, names=np.array([m.name for m in motions], dtype=str), fps=fps,
                 subject=entry.subject, description=entry.description, scale_known=known, **arrays)
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs speed
        tmp.unlink(missing_ok=True)


def _load_entry(entry: ManifestEntry, fps: float, cache_dir: Path) -> list[Motion]:
    cache = _cache_path(entry, fps, cache_dir)
    cached = _read_cache(cache) if cache.is_file() else None
    if cached is not None:
        return cached
    raw = load_motion(entry.path, fps=entry.capture_fps, subject=entry.subject,
                      description=entry.description)
    motions = [resample(m, fps) for m in clean(raw)]
    _write_cache(cache, motions, fps, entry)
    return motions


def load_dataset(root: Path | str, *, fps: float = 50.0, subjects: set[str] | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 cache_dir: Path | None = None) -> list[Motion]:
    """Read, clean and resample every motion of a mocap folder, caching the result per file.

    Args:
        root: Folder with MANIFEST.tsv (its capture_fps wins over file headers), a manifest .tsv file, or a
            folder without one: every .bvh/.amc(.gz) under it, subject from the file name (16_01.amc) or
            else the folder name.
        fps: Output frame rate.
        subjects: Keep only these subjects ("6" and "06" both match subject 6).
        progress: Called as progress(done, total) after each file.
        cache_dir: Where parsed results go as .npz, keyed by path, mtime, size, fps and READER_VERSION;
            default :func:`default_cache_dir`.

    Returns:
        Motions (pieces after :func:`clean`) at ``fps``, in manifest / file-name order.
    """
    root = Path(root)
    if root.is_file():
        entries = load_manifest(root)
    elif root.is_dir():
        entries = load_manifest(root) if (root / "MANIFEST.tsv").is_file() else _scan(root)
    else:
        raise InputError(f"{root}: mocap folder or manifest not found")
    if subjects is not None:
        wanted = {_norm_subject(str(s)) for s in subjects}
        entries = [e for e in entries if e.subject in wanted]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    motions: list[Motion] = []
    for done, entry in enumerate(entries, 1):
        motions += _load_entry(entry, fps, cache_dir)
        if progress is not None:
            progress(done, len(entries))
    return motions
