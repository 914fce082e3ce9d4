"""A detections dataset: rendered mocap run through the 2D stage exactly as ``pose3d run`` does, with its truth.

The lifter trains on projected mocap plus synthetic noise, which is not what the 2D stage really gets
wrong (hips and shoulders placed high, depth-ambiguous limbs, left/right confusions on turning bodies,
missed frames). ``pose3d build-detections`` renders motions of the training subjects (random cameras,
distances, looks and scenes; a share of small figures), runs each clip through the 2D stage and the 2D
clean-up, and stores what the lifter would be fed next to the exact 3D, one file per clip, so that a
long build can be stopped and resumed (existing files are kept) and any part of it reproduced from its
seed.

File ``clip_SEED.npz`` (one per rendered clip, seed = the build's seed + clip number):

- ``frames`` (T,) int64: frames of the clip the evaluated track covers (the longest track);
- ``keypoints`` (T, 17, 2) float32 COCO-17 pixels after clean-up (NaN where unseen), ``scores`` (T, 17);
- ``poses3d`` (T, 17, 3) float32 H36M-17 camera-frame metres, pelvis-relative; ``keypoints2d`` (T, 17, 2)
  their exact projections, pixels;
- ``width``, ``height``, ``fps``, ``focal``, ``center`` (2,), ``motion``, ``subject``, ``seed``, ``small`` (bool).

A clip where the 2D stage found nobody is stored with T = 0, so that a resumed build does not render it again.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline.errors import ConfigError, OutputError
from pipeline.evaluation import metrics
from pipeline.evaluation.synth import SynthConfig, synthesize, write_clip
from pipeline.evaluation.video import slice_motion
from pipeline.io.export import atomic_save_npz
from pipeline.io.ffmpeg import probe
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import infer
from pipeline.run import RunConfig, clean_tracks, two_d_pass
from pipeline.skeleton import H36M_LIMB_JOINTS
from pipeline.training.detected import DetectedRun, read_folder
from pipeline.training.mocap import Motion


@dataclass(frozen=True)
class DetectionsConfig:
    """What ``pose3d build-detections`` renders.

    Attributes:
        clips: Clips in the dataset (files ``clip_<seed + i>.npz`` for i < clips).
        seconds: Length of each clip, seconds (a random stretch of a random motion at least this long).
        small_share: Fraction of clips filmed from 2.5-4x farther than the closest framing (small figures).
        seed: Seed of the first clip; clip i uses seed + i for its motion, stretch, camera, look and scene.
        width, height: Image size, pixels.
    """

    clips: int = 1000
    seconds: float = 4.0
    small_share: float = 0.25
    seed: int = 0
    width: int = 960
    height: int = 540

    def __post_init__(self) -> None:
        if self.clips < 1 or not self.seconds > 0 or not 0 <= self.small_share <= 1:
            raise ConfigError(f"bad DetectionsConfig: clips={self.clips}, seconds={self.seconds}, "
                              f"small_share={self.small_share}")


@dataclass(frozen=True)
class BuildSummary:
    """What one build call did.

    Attributes:
        made: Clips rendered and run in this call.
        kept: Clips already in the folder (a resumed build).
        frames: Frames of the tracks stored by this call.
        seconds: Wall time of this call.
    """

    made: int
    kept: int
    frames: int
    seconds: float


def prepare_folder(folder: str | Path) -> Path:
    """The dataset folder, created when missing.

    Raises:
        OutputError: it is a file, or cannot be created.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot be the dataset folder ({exc.strerror})") from None
    return folder


def clip_path(folder: Path, seed: int) -> Path:
    """The file of the clip rendered with ``seed``."""
    return folder / f"clip_{seed:06d}.npz"


def build_detections(motions: Sequence[Motion], folder: str | Path, config: DetectionsConfig,
                     run_config: RunConfig | None = None,
                     progress: Callable[[int, int], None] | None = None) -> BuildSummary:
    """Render, run and store the clips missing from ``folder``.

    Args:
        motions: Training-subject motions at 30 fps (never the validation or test subjects).
        folder: Dataset folder (created if missing); clips already there are kept.
        config: How many clips, how long, how small.
        run_config: Pipeline settings (defaults: the shipped 2D stage and clean-up).
        progress: Called with (clips done, clips total), counting the kept ones.

    Returns:
        A :class:`BuildSummary`.
    """
    long_enough = [m for m in motions if len(m.joints) >= config.seconds * m.fps]
    if not long_enough:
        raise ConfigError(f"no motion is {config.seconds:g} s long")
    folder = prepare_folder(folder)
    run_config = run_config or RunConfig()
    t0, made, kept, frames = time.perf_counter(), 0, 0, 0
    with tempfile.TemporaryDirectory(prefix="pose3d-detections-") as tmp:
        for i in range(config.clips):
            seed = config.seed + i
            if clip_path(folder, seed).exists():
                kept += 1
            else:
                frames += _build_clip(long_enough, folder, seed, config, run_config, Path(tmp))
                made += 1
            if progress:
                progress(i + 1, config.clips)
    return BuildSummary(made, kept, frames, time.perf_counter() - t0)


def _build_clip(motions: Sequence[Motion], folder: Path, seed: int, config: DetectionsConfig,
                run_config: RunConfig, tmp: Path) -> int:
    """Render clip ``seed``, run the pipeline on it, store the longest track with its truth; returns its frames."""
    rng = np.random.default_rng(seed)
    motion = motions[int(rng.integers(len(motions)))]
    length = len(motion.joints) / motion.fps
    motion = slice_motion(motion, float(rng.uniform(0.0, length - config.seconds)), config.seconds)
    small = bool(rng.random() < config.small_share)
    synth = SynthConfig(width=config.width, height=config.height, seed=seed)
    if small:
        synth = dataclasses.replace(synth, camera=dataclasses.replace(synth.camera, distance_scale=(2.5, 4.0)))
    clip = synthesize(motion, synth)
    video = tmp / f"clip_{seed}.mp4"
    write_clip(clip, video)
    tracks, _ = two_d_pass(video, probe(video), run_config)
    tracks = clean_tracks(tracks, run_config, clip.fps)
    video.unlink()
    track = max(tracks, key=len) if tracks else None
    keep = track.frames < clip.num_frames if track is not None else np.zeros(0, bool)
    picked = track.frames[keep] if track is not None else np.zeros(0, np.int64)
    empty = np.zeros((0, 17, 2), np.float32)
    cam = clip.camera
    atomic_save_npz(
        clip_path(folder, seed), frames=picked.astype(np.int64),
        keypoints=track.keypoints[keep] if track is not None else empty,
        scores=track.scores[keep] if track is not None else np.zeros((0, 17), np.float32),
        poses3d=(clip.poses3d[picked] - clip.poses3d[picked, :1]).astype(np.float32),
        keypoints2d=clip.keypoints2d[picked], width=np.int64(cam.width), height=np.int64(cam.height),
        fps=np.float64(clip.fps), focal=np.float64(cam.focal), center=np.asarray(cam.center, np.float64),
        motion=np.array(motion.name), subject=np.array(motion.subject), seed=np.int64(seed), small=np.bool_(small))
    return len(picked)


@dataclass(frozen=True)
class DetectedScore:
    """A lifter's error on one group of stored detections (13 limb joints, at the lifter's rate).

    Attributes:
        name: Group name ('all', 'normal', 'small').
        clips: Clips with a track in the group.
        frames: Frames scored.
        mpjpe, p_mpjpe: Frame-weighted position errors, mm.
        mpjve: Frame-weighted velocity error, mm per frame at the lifter's rate.
    """

    name: str
    clips: int
    frames: int
    mpjpe: float
    p_mpjpe: float
    mpjve: float


def score_detections(folder: str | Path, lifter: Lifter, held_out: Sequence[str], min_frames: int = 15,
                     flip: bool = True) -> list[DetectedScore]:
    """Lift every stored detected track of a folder and score it against its truth (``pose3d evaluate-detections``).

    Lifting stored tracks takes seconds where re-rendering and re-running the 2D stage takes minutes, so a
    validation-subject folder (``build-detections --subjects 3,7,12``) compares many lifters on the same 2D.

    Args:
        folder: A detections folder of held-out subjects only.
        lifter: The lifter under test.
        held_out: The validation and test subjects (a clip of anyone else is an error: the lifter trained on them).
        min_frames: Shortest run scored, frames at the clips' rate.
        flip: Flip test-time augmentation.

    Returns:
        Rows 'all', 'normal' and 'small' (a group without clips is left out).
    """
    runs = read_folder(folder, lifter.train_fps, min_frames, held_out, training=False)
    errors = [_run_errors(run, lifter, flip) for run in runs]
    rows = []
    for name, keep in (("all", lambda r: True), ("normal", lambda r: not r.small), ("small", lambda r: r.small)):
        picked = [(run, e) for run, e in zip(runs, errors) if keep(run)]
        if picked:
            w = np.array([len(run.x) for run, _ in picked], float)
            e = np.array([err for _, err in picked])
            mean = (e * w[:, None]).sum(0) / w.sum()
            rows.append(DetectedScore(name, len({run.clip for run, _ in picked}), int(w.sum()), *mean.tolist()))
    return rows


def _run_errors(run: DetectedRun, lifter: Lifter, flip: bool) -> tuple[float, float, float]:
    """(MPJPE, P-MPJPE, MPJVE) of one run in mm over the limb joints."""
    pred = infer(lifter.model, run.x, flip=flip, device=lifter.device, chunk=20_000)
    joints = list(H36M_LIMB_JOINTS)
    pred, truth = pred[:, joints] - pred[:, :1], run.y[:, joints]
    return (1000 * metrics.mpjpe(pred, truth), 1000 * metrics.p_mpjpe(pred, truth),
            1000 * metrics.mpjve(pred, truth))


def format_scores(rows: Sequence[DetectedScore]) -> str:
    """A Markdown table of the rows."""
    lines = ["| group | clips | frames | MPJPE mm | P-MPJPE mm | MPJVE mm/frame |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.clips} | {r.frames} | {r.mpjpe:.1f} | {r.p_mpjpe:.1f} | {r.mpjve:.2f} |" for r in rows]
    return "\n".join(lines)
