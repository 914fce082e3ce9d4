"""The main job (``pose3d run``): video in, tracked 2D and 3D skeletons out.

Two streaming passes over the video keep memory bounded whatever its length:

1. decode (downscaled for the 2D stage) -> people, keypoints, identities -> tracks;
2. clean each track's 2D (:mod:`pipeline.cleanup`); lift every track to 3D in one pass each; write the
   requested exports; then decode again at full size -> render -> H.264 with the input's audio. Every
   output is written beside its destination and moved into place only when all of them are complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from pipeline.assets import shipped_weights
from pipeline.cleanup.cleaner import CleanConfig, Cleaner
from pipeline.config import load_config
from pipeline.errors import ConfigError, ModelError
from pipeline.io.export import EXPORT_FORMATS, export_files, export_tracks
from pipeline.io.ffmpeg import probe
from pipeline.io.outputs import StagedOutputs, check_input, check_outputs, folders_for
from pipeline.io.video import MP4_SUFFIXES, VideoReader, VideoWriter
from pipeline.keypoints import coco_to_h36m, fill_gaps
from pipeline.lifting.bank import PoseBankConfig
from pipeline.lifting.contacts import ContactConfig
from pipeline.lifting.fit import FitConfig
from pipeline.lifting.lifter import Lifter, resolve_device
from pipeline.lifting.skeletons import fit_tracks
from pipeline.lifting.trajectory import TrajectoryLifter, check_fov, focal_from_fov
from pipeline.lifting.world import estimate_world
from pipeline.render.renderer import Renderer, frames_of
from pipeline.render.style import RenderConfig
from pipeline.twod.stage import FrameResult, TwoDConfig, TwoDModels, TwoDStage, resolve_backend
from pipeline.types import Frame, Timeline, Track, VideoInfo


@dataclass(frozen=True)
class LiftStageConfig:
    """Settings of the lifting stage.

    Attributes:
        weights: Lifter checkpoint; None uses the shipped ``weights/lifter.pt``.
        flip: Flip test-time augmentation.
        pose_bank: Long-term pose bank fused into the lifter's windows (paper 003, :mod:`pipeline.lifting.bank`).
        trajectory: Also estimate where each person is (camera-frame pelvis positions, :mod:`pipeline.lifting.trajectory`):
            exported as ``root3d`` and world-frame joints, and drawn as movement over the floor.
        trajectory_weights: Trajectory checkpoint; None uses the shipped ``weights/trajectory.pt``.
        fov_deg: The camera's field of view across the longer image side, degrees, for the trajectory's metric
            depth; None assumes 55 degrees (depth then scales with how wrong that guess is).
        fit: One constant-bone skeleton per person (:mod:`pipeline.lifting.fit`); ``poses3d`` become its joints.
        contacts: Foot contacts, and foot locking with the trajectory (:mod:`pipeline.lifting.contacts`).
    """

    weights: str | None = None
    flip: bool = True
    pose_bank: PoseBankConfig = field(default_factory=PoseBankConfig)
    trajectory: bool = False
    trajectory_weights: str | None = None
    fov_deg: float | None = None
    fit: FitConfig = field(default_factory=FitConfig)
    contacts: ContactConfig = field(default_factory=ContactConfig)

    def __post_init__(self) -> None:
        if self.fov_deg is not None:
            check_fov(self.fov_deg)


@dataclass(frozen=True)
class RunConfig:
    """Everything ``pose3d run`` needs besides the file names (``configs/run.yaml``).

    Attributes:
        decode_max_size: Longest image side given to the 2D stage, pixels (keypoints are mapped back to
            full resolution); 0 keeps the original size.
        device: 'auto', 'cpu' or 'cuda' for the networks that use torch.
        weights_dir: Where the downloaded YOLO / mmpose weights live (None: :func:`pipeline.io.weights.weights_dir`).
        fetch_weights: With backend "auto", download missing YOLO/mmpose weights when the host is online.
        crf: H.264 quality of the output video, 0-51 (lower is better and bigger; 18-28 typical).
        twod, clean, lift, render: Stage settings (clean: the 2D clean-up before lifting, pipeline/cleanup/cleaner.py).
    """

    decode_max_size: int = 1280
    device: str = "auto"
    weights_dir: str | None = None
    fetch_weights: bool = True
    crf: int = 20
    twod: TwoDConfig = field(default_factory=TwoDConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    lift: LiftStageConfig = field(default_factory=LiftStageConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be in 0-51 (libx264's range; 18-28 is typical), got {self.crf}")
        if self.decode_max_size < 0:
            raise ConfigError(f"decode_max_size must be >= 0 (0 keeps the original size), got {self.decode_max_size}")


def load_run_config(path: str | Path | None) -> RunConfig:
    """Read ``configs/run.yaml``-style YAML (None: defaults)."""
    return load_config(RunConfig, path)


def with_choices(config: RunConfig, *, backend: str | None = None, weights_dir: str | Path | None = None,
                 device: str | None = None, weights: str | Path | None = None, layout: str | None = None,
                 pose_bank: str | None = None, trajectory: bool | None = None,
                 fov_deg: float | None = None, trust_weights: bool = False, fit: bool | None = None) -> RunConfig:
    """``config`` with the command line's choices applied; None (False for ``trust_weights``) keeps the
    config's value."""
    lift = config.lift
    if weights:
        lift = replace(lift, weights=str(weights))
    if pose_bank:
        lift = replace(lift, pose_bank=replace(lift.pose_bank, mode=pose_bank))
    if trajectory is not None:
        lift = replace(lift, trajectory=trajectory)
    if fov_deg is not None:
        lift = replace(lift, fov_deg=fov_deg)
    if fit is not None:
        lift = replace(lift, fit=replace(lift.fit, enabled=fit))
    twod = replace(config.twod, backend=backend) if backend else config.twod
    twod = replace(twod, trust_weights=True) if trust_weights else twod
    return replace(config, lift=lift, twod=twod,
                   weights_dir=str(weights_dir) if weights_dir else config.weights_dir, device=device or config.device,
                   render=replace(config.render, layout=layout) if layout else config.render)


@dataclass(frozen=True)
class Progress:
    """A progress report: ``stage`` ('2d', 'lift', 'fit', 'render', 'export'), units done/total (frames or tracks)."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class RunResult:
    """What a run produced.

    Attributes:
        video: The input's properties.
        tracks: Tracks with 3D poses.
        output: The rendered video (None when rendering was skipped).
        exports: Written export files.
        seconds: Wall time per stage ('2d', 'clean' when on, 'lift', 'fit', 'render', 'export').
        frames: Frames decoded in the 2D pass.
        backend: The 2D backend that ran ('offline', 'mediapipe' or 'yolo-mmpose').
        notices: One-line remarks for the user (why "auto" fell back to the offline models, why nobody was tracked,
            frames that could not be decoded).
        timeline: Presentation time of every decoded frame, and how many could not be decoded.
    """

    video: VideoInfo
    tracks: list[Track]
    output: Path | None
    exports: list[Path]
    seconds: dict[str, float]
    frames: int
    backend: str = ""
    notices: tuple[str, ...] = ()
    timeline: Timeline | None = None


def two_d_pass(path: Path, info: VideoInfo, config: RunConfig,
               report: Callable[[str, int, int], None] | None = None, models: TwoDModels | None = None,
               on_frame: Callable[[FrameResult, float], None] | None = None) -> tuple[list[Track], Timeline]:
    """Pass 1: people and keypoints on (downscaled) frames.

    Args:
        path: The video.
        info: Its properties (frame rate, frame count for progress).
        config: Uses ``decode_max_size``, ``device``, ``weights_dir`` and ``twod``.
        report: Progress callback (stage, done, total).
        models: Loaded yolo-mmpose networks to reuse.
        on_frame: Called with each frame's people and the decoding scale (their pixels are the video's
            times that scale).

    Returns:
        Tracks in the video's pixels, and the presentation time of every decoded frame.
    """
    times: list[float] = []
    device = resolve_device(config.device)
    with VideoReader(path, max_size=config.decode_max_size or None) as reader, \
            TwoDStage(config.twod, fps=info.fps, device=device, weights_dir=config.weights_dir,
                      models=models) as stage:
        for batch in _batches(reader, stage.batch_size):
            results = stage.process_batch(batch)
            if on_frame:
                for result in results:
                    on_frame(result, reader.scale)
            times += [frame.time for frame in batch]
            if report:
                report("2d", len(times), info.num_frames)
        tracks = stage.finish(len(times))
    # Times that step backwards (broken muxers) are held, as the video writer holds them: never a failure.
    held = np.maximum.accumulate(np.array(times, np.float64)) if times else np.zeros(0)
    timeline = Timeline(held, skipped=max(0, info.num_frames - len(times)))
    # Keypoints were found on frames scaled by reader.scale; map them back to the video's pixels.
    return [replace(t, keypoints=(t.keypoints / reader.scale).astype(np.float32)) for t in tracks], timeline


def clean_tracks(tracks: Sequence[Track], config: RunConfig, fps: float) -> list[Track]:
    """Stage 2: each track's 2D clean-up as configured (the tracks unchanged when it is off)."""
    if not config.clean.enabled:
        return list(tracks)
    cleaner = Cleaner(config.clean)
    return [cleaner.clean(t, fps) for t in tracks]


def _batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Consecutive frames in lists of ``size`` (the last may be shorter)."""
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def lift_tracks(tracks: Sequence[Track], lifter: Lifter, info: VideoInfo, flip: bool = True,
                report: Callable[[str, int, int], None] | None = None,
                bank: PoseBankConfig | None = None, trajectory: TrajectoryLifter | None = None,
                fov_deg: float | None = None) -> list[Track]:
    """Lift each track to 3D (COCO-17 -> H36M-17, gaps interpolated, resampled to the lifter's rate).

    Args:
        tracks: Tracks with 2D keypoints (NaN where unseen).
        lifter: The loaded lifter.
        info: Video size and frame rate.
        flip: Flip test-time augmentation.
        report: Progress callback (stage, done, total).
        bank: Long-term pose bank settings (None: none); each run of a track gets its own bank.
        trajectory: A loaded trajectory model; with it ``root3d`` is set too.
        fov_deg: Camera field of view for the trajectory (None: the model's default guess).

    Returns:
        The same tracks with ``poses3d`` (T, 17, 3) metres set (and ``root3d`` (T, 3) with a trajectory).
    """
    focal = None if fov_deg is None else focal_from_fov(info.width, info.height, fov_deg)
    lifted = []
    for i, track in enumerate(tracks):
        h36m, _ = coco_to_h36m(track.keypoints, track.scores)
        # A re-identified person's track jumps over the frames they were away: lift each run on its own.
        runs = [fill_gaps(h36m[r]) for r in np.split(np.arange(len(track)), np.flatnonzero(np.diff(track.frames) > 1) + 1)]
        poses = np.concatenate([lifter.lift(kp, info.width, info.height, info.fps, flip=flip, bank=bank) for kp in runs])
        roots = None if trajectory is None else np.concatenate(
            [trajectory.lift(kp, info.width, info.height, info.fps, focal=focal, flip=flip) for kp in runs])
        lifted.append(replace(track, poses3d=poses, root3d=roots))
        if report:
            report("lift", i + 1, len(tracks))
    return lifted


def load_trajectory(config: LiftStageConfig, device: str) -> TrajectoryLifter | None:
    """The trajectory model the lift settings ask for (None when ``trajectory`` is off)."""
    if not config.trajectory:
        return None
    path = Path(config.trajectory_weights) if config.trajectory_weights else shipped_weights("trajectory.pt")
    if not path.is_file():
        raise ModelError(f"trajectory weights not found: {path} (train them with `pose3d train --config "
                         "configs/trajectory.yaml`, pass --trajectory-weights, or run without --trajectory)")
    return TrajectoryLifter.load(path, resolve_device(device))


def _render_pass(path: Path, output: Path, temp: Path, info: VideoInfo, tracks: list[Track], config: RunConfig,
                 report) -> None:
    """Pass 2: full-size frames, skeletons drawn, encoded with the input's audio into ``temp``, which the
    caller moves to ``output``."""
    world = estimate_world(tracks)
    render = config.render
    if world is not None:  # widen the scene to hold everyone's path (pelvis positions, plus a margin)
        spread = max(np.abs(world.apply(t.root3d)[:, [0, 2]]).max() for t in tracks if t.root3d is not None)
        render = replace(render, scene_width_m=max(render.scene_width_m, 2.0 * float(spread) + 1.5))
    renderer = Renderer(render, info.width, info.height, info.fps)
    people_at = frames_of(tracks, world, trail_frames=round(render.trail_s * info.fps))
    width, height = renderer.output_size
    with VideoReader(path) as reader, VideoWriter(temp, width=width, height=height, fps=info.fps, audio_from=path,
                                                 crf=config.crf, final=output) as writer:
        for frame in reader:
            writer.write(renderer.render(frame.image, people_at(frame.index), frame.time), frame.time)
            report("render", frame.index + 1, info.num_frames)


def check_run_files(path: str | Path, output: str | Path | None, exports: Sequence[str | Path]) -> Path:
    """Check a run's files before any work: the input is a regular file, and no output overwrites it or
    another output, has an unknown suffix, or lies in a folder that refuses new files.

    Returns:
        The input as a Path.

    Raises:
        InputError, ConfigError, OutputError: one line saying which file and what to do.
    """
    path = check_input(path, "video")
    check_outputs([path], ([("--out", output, MP4_SUFFIXES)] if output is not None else [])
                  + [("--export", e, EXPORT_FORMATS) for e in exports])
    return path


def check_fit_for(config: RunConfig, suffixes: Sequence[str]) -> None:
    """Refuse a BVH export (suffix ``.bvh``) when the skeleton fit it is made of is off, before any work.

    Raises:
        ConfigError: one line saying what to change.
    """
    if not config.lift.fit.enabled and any(s.lower() == ".bvh" for s in suffixes):
        raise ConfigError("a BVH export needs the fitted skeleton: drop --no-fit (or set lift.fit.enabled)")


def run_video(path: str | Path, output: str | Path | None, config: RunConfig | None = None,
              exports: Sequence[str | Path] = (), progress: Callable[[Progress], None] | None = None,
              lifter: Lifter | None = None, models: TwoDModels | None = None) -> RunResult:
    """Run the whole pipeline on one video.

    Args:
        path: Input video (any container/codec ffmpeg reads).
        output: Rendered MP4 (H.264) path, or None to skip rendering.
        config: Settings (defaults when None).
        exports: Data files to write; the suffix picks the format (.json, .npz, .csv, .bvh: one file per person,
            a name ending in angles.csv: joint angles; pipeline/io/export.py).
        progress: Called with :class:`Progress` reports.
        lifter: A loaded lifter to reuse (default: load ``config.lift.weights``).
        models: Loaded yolo-mmpose networks to reuse (default: load them for this video).

    Returns:
        A :class:`RunResult`.
    """
    config = config or RunConfig()
    path = check_run_files(path, output, exports)   # everything is checked before the first frame is decoded
    check_fit_for(config, [Path(e).suffix for e in exports])
    info = probe(path)
    report = (lambda stage, done, total: progress(Progress(stage, done, total))) if progress else (lambda *a: None)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    lifter = lifter or Lifter.load(config.lift.weights, config.device)
    trajectory = load_trajectory(config.lift, config.device)
    twod, notice = resolve_backend(config.twod, config.weights_dir, config.fetch_weights,
                                   lambda name, done, total: report(f"download {name}", done, total or 0))
    config = replace(config, twod=twod)
    tracks, timeline = two_d_pass(path, info, config, report, models)
    seconds["2d"] = time.perf_counter() - t0
    if config.clean.enabled:
        t0 = time.perf_counter()
        tracks = clean_tracks(tracks, config, info.fps)
        seconds["clean"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracks = lift_tracks(tracks, lifter, info, config.lift.flip, report, bank=config.lift.pose_bank,
                         trajectory=trajectory, fov_deg=config.lift.fov_deg)
    seconds["lift"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracks = fit_tracks(tracks, timeline, info.fps, config.lift.fit, config.lift.contacts, report)
    seconds["fit"] = time.perf_counter() - t0
    # Every output goes to a temporary file beside its destination; all are moved into place together once
    # the last is complete, so a failed or interrupted run leaves none behind.
    files = [f for target in exports for f in export_files(target, tracks)]
    finals = ([output] if output is not None else []) + [path for path, _ in files]
    with folders_for(finals), StagedOutputs(finals) as staged:
        t0 = time.perf_counter()
        for i, (target, track_id) in enumerate(files):
            export_tracks(target, tracks, info, timeline, into=staged.temp(target), track_id=track_id)
            report("export", i + 1, len(files))
        seconds["export"] = time.perf_counter() - t0
        if output is not None:
            t0 = time.perf_counter()
            _render_pass(path, Path(output), staged.temp(output), info, tracks, config, report)
            seconds["render"] = time.perf_counter() - t0
        staged.commit()
    notices = [notice] if notice else []
    notices += _why_nobody(info, timeline, config) if not tracks else []
    if timeline.skipped:
        notices.append(f"{timeline.skipped} of {info.num_frames} frames could not be decoded and were skipped "
                       "(frame numbers count the decoded frames; the exports give each one's time)")
    return RunResult(info, tracks, Path(output) if output else None, [path for path, _ in files], seconds,
                     len(timeline.times), twod.backend, tuple(notices), timeline)


def _why_nobody(info: VideoInfo, timeline: Timeline, config: RunConfig) -> list[str]:
    """A one-line hint for a run that tracked nobody."""
    shortest = config.twod.tracks.min_length_s
    span = float(timeline.times[-1] - timeline.times[0]) if len(timeline.times) else 0.0
    if span < shortest:
        return [f"nobody tracked: the video shows {len(timeline.times)} frame(s) over {span:.2f} s, and tracks "
                f"shorter than twod.tracks.min_length_s = {shortest:g} s are dropped"]
    return [f"nobody tracked: no person was found for {shortest:g} s (twod.tracks.min_length_s) or longer"]
