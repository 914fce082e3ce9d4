"""The 2D stage in one object: people -> COCO-17 keypoints -> identities -> tracks.

Three backends fill the same containers:

* "yolo-mmpose" (the design's primary path): Ultralytics YOLO boxes, batched over frames -> tracker ->
  an mmpose top-down model on every tracked box of a frame in one batch.
* "offline" (the offline default; everything ships with pose3d): the bundled NanoDet person detector
  (:mod:`pipeline.twod.nanodet`) -> tracker -> BlazePose on each tracked person's crop
  (:class:`pipeline.twod.blazepose_roi.BlazePoseCrops`).
* "mediapipe" (the earlier offline path, kept for comparison): BlazePose finds people and keypoints together
  on the whole frame, a few large people at most, by painting over each one found -> tracker.

"auto" picks yolo-mmpose when its weights are in the weights directory or can be fetched, else offline
(:func:`resolve_backend`). ``pose3d run`` feeds the stage frames in order::

    with TwoDStage(TwoDConfig(backend="offline"), fps=video.fps) as stage:
        for batch in batches_of(frames, stage.batch_size):
            results = stage.process_batch(batch)   # these frames' people, with track ids
        tracks = stage.finish(num_frames)          # whole tracks, gaps filled or split, people re-identified
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import ConfigError, Pose3DError
from pipeline.io import weights
from pipeline.twod.blazepose import MediaPipeConfig, MediaPipeGraphs, MediaPipePose
from pipeline.twod.blazepose_roi import BlazePoseCrops, CropConfig
from pipeline.twod.detect import DetectorConfig, PersonTracker, TrackerConfig, YoloDetector, untrusted_detector
from pipeline.twod.mmpose_topdown import MMPoseConfig, MMPoseEstimator
from pipeline.twod.nanodet import NanoDetConfig, NanoDetDetector
from pipeline.twod.tracks import TrackBuilder, TrackConfig, appearance, every_joint_seen
from pipeline.types import Detections, Frame, Track

BACKENDS = ("auto", "offline", "mediapipe", "yolo-mmpose")


@dataclass(frozen=True)
class TwoDConfig:
    """Settings of the 2D stage.

    Attributes:
        backend: "auto", "offline", "mediapipe" or "yolo-mmpose" (see the module docstring).
        detector: YOLO person detector (yolo-mmpose).
        mmpose: Top-down keypoint model (yolo-mmpose).
        nanodet: The bundled person detector (offline).
        crops: BlazePose's landmark model on each tracked person's region (offline).
        mediapipe: BlazePose multi-person search by masking (mediapipe).
        tracker: Identity tracking.
        tracks: Gap filling, splitting, minimum length and re-identification.
        trust_weights: Allow the full unpickle (which can run code from the file) of YOLO / mmpose weight files
            whose complete SHA-256 pose3d does not know: for files of your own (``--trust-weights``).
    """

    backend: str = "auto"
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    mmpose: MMPoseConfig = field(default_factory=MMPoseConfig)
    nanodet: NanoDetConfig = field(default_factory=NanoDetConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    mediapipe: MediaPipeConfig = field(default_factory=MediaPipeConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    tracks: TrackConfig = field(default_factory=TrackConfig)
    trust_weights: bool = False

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown 2D backend {self.backend!r}; use one of {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class FrameResult:
    """One frame's people after tracking.

    Attributes:
        index: Frame number.
        detections: (N) boxes, person scores and track ids (-1: not yet confirmed by the tracker).
        keypoints: (N, 17, 2) float32 COCO-17 pixels (NaN for boxes the tracker did not keep, yolo-mmpose).
        scores: (N, 17) float32 joint confidences in [0, 1].
    """

    index: int
    detections: Detections
    keypoints: np.ndarray
    scores: np.ndarray


def _needed_weights(config: TwoDConfig) -> list[str]:
    """Table names of the yolo-mmpose files this config needs (untrained YAML / 'none' / paths need none)."""
    needed = [config.detector.model] if config.detector.model in weights.MODELS else []
    return needed + ([config.mmpose.model] if config.mmpose.checkpoint == "auto" else [])


def resolve_backend(config: TwoDConfig, weights_dir: str | Path | None = None, fetch: bool = True,
                    progress: Callable[[str, int, int | None], None] | None = None) -> tuple[TwoDConfig, str | None]:
    """Turn backend "auto" into a concrete one, fetching yolo-mmpose weights when allowed and possible.

    Args:
        config: Stage settings.
        weights_dir: Weights directory override.
        fetch: Try to download missing weights (connected hosts).
        progress: Download progress: (model name, bytes done, bytes total or None).

    Returns:
        (config with a concrete backend, a one-line notice when "auto" fell back to MediaPipe, else None).
    """
    if config.backend != "auto":
        return config, None
    missing = []
    for name in _needed_weights(config):
        try:
            weights.locate(name, weights_dir)
        except weights.WeightsMissingError:
            missing.append(name)
    tried = False
    for name in list(missing) if fetch else []:
        try:
            weights.fetch(name, weights_dir, progress=(lambda d, t, n=name: progress(n, d, t)) if progress else None)
            missing.remove(name)
        except Pose3DError:
            tried = True  # offline or unreachable: the notice below says what to do; the detail is noise here
            break
    if not missing:
        # mmpose checkpoints go through torch's safe loader; only the YOLO file would be unpickled in full.
        why = None if config.trust_weights else untrusted_detector(config.detector.model, weights_dir)
        if not why:
            return replace(config, backend="yolo-mmpose"), None
        return replace(config, backend="offline"), (
            f"using the bundled offline models: in {weights.weights_dir(weights_dir)}, {why}, and loading it "
            "could run code from the file; `pose3d weights fetch` it again, or pass --trust-weights if it is "
            "your own")
    files = ", ".join(weights.MODELS[n].filename for n in missing)
    why = "not downloadable from this host" if tried else "downloads disabled (fetch_weights: false)"
    return replace(config, backend="offline"), (
        f"using the bundled offline models: YOLO + mmpose weights missing in {weights.weights_dir(weights_dir)} "
        f"({files}), {why}; `pose3d weights fetch {' '.join(missing)}` on a connected host enables them")


@dataclass(frozen=True)
class TwoDModels:
    """The yolo-mmpose networks, loaded once and shared by the videos that follow.

    They keep no per-video state (the tracker and the track builder do), so ``pose3d batch`` loads one
    pair per worker and hands it to every clip.

    Attributes:
        detector: People boxes.
        keypoints: Top-down COCO-17 keypoints in those boxes.
    """

    detector: YoloDetector
    keypoints: MMPoseEstimator

    @classmethod
    def load(cls, config: TwoDConfig, device: str = "cpu",
             weights_dir: str | Path | None = None) -> "TwoDModels":
        """Load the detector and keypoint model that ``config`` names onto ``device``."""
        return cls(YoloDetector(config.detector, device, weights_dir, config.trust_weights),
                   MMPoseEstimator(config.mmpose, device, weights_dir, config.trust_weights))


class TwoDStage:
    """Runs the chosen backend, the tracker and the track builder frame by frame.

    Args:
        config: Stage settings; backend "auto" is resolved here without downloading (see
            :func:`resolve_backend` to allow downloads).
        fps: Video frame rate, Hz (scales the tracker's buffer and the track rules).
        device: Torch device for the yolo-mmpose networks.
        weights_dir: Weights directory override.
        models: Loaded yolo-mmpose networks to use (default: load them); unused by MediaPipe, whose
            graph follows people from frame to frame and so is made anew for each video.
    """

    def __init__(self, config: TwoDConfig | None = None, fps: float = 30.0, device: str = "cpu",
                 weights_dir: str | Path | None = None, models: TwoDModels | None = None) -> None:
        config, self.notice = resolve_backend(config or TwoDConfig(), weights_dir, fetch=False)
        self.config, self.fps = config, fps
        self._pose = self._detector = self._keypoints = None
        self._batch = 1
        if config.backend == "mediapipe":
            self._pose = MediaPipePose(config.mediapipe)
        elif config.backend == "offline":
            self._detector, self._keypoints = NanoDetDetector(config.nanodet), BlazePoseCrops(config.crops)
        else:
            models = models or TwoDModels.load(config, device, weights_dir)
            self._detector, self._keypoints = models.detector, models.keypoints
            self._batch = config.detector.batch_size
        self._tracker = PersonTracker(config.tracker, fps)
        self._builder = TrackBuilder(config.tracks)
        self._frames = 0

    @property
    def batch_size(self) -> int:
        """Frames :meth:`process_batch` should get at once (YOLO's batch; 1 for the offline backends)."""
        return self._batch

    def __enter__(self) -> "TwoDStage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for graph in (self._pose, self._keypoints):
            if isinstance(graph, MediaPipeGraphs):
                graph.close()

    def process(self, frame: Frame) -> FrameResult:
        """Find, identify and record the people in one frame (frames must come in order)."""
        return self.process_batch([frame])[0]

    def process_batch(self, frames: list[Frame]) -> list[FrameResult]:
        """Find, identify and record the people in consecutive frames.

        Args:
            frames: Decoded frames, in order, continuing the previous call's.

        Returns:
            Each frame's people with their track ids.
        """
        if self._detector is None:
            return [self._record(f, *self._mediapipe(f.image)) for f in frames]
        found = self._detector.detect_batch([f.image for f in frames])
        return [self._record(f, boxes, None) for f, boxes in zip(frames, found)]

    def _mediapipe(self, image: np.ndarray) -> tuple[Detections, tuple[np.ndarray, np.ndarray]]:
        people = self._pose.estimate(image)
        if not people:
            return Detections.empty(), (np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32))
        found = Detections(np.stack([p.box for p in people]), np.array([p.score for p in people], np.float32),
                           np.full(len(people), -1, np.int64))
        return found, (np.stack([p.keypoints for p in people]), np.stack([p.scores for p in people]))

    def _record(self, frame: Frame, found: Detections, points: tuple[np.ndarray, np.ndarray] | None) -> FrameResult:
        """Track one frame's people, estimate keypoints where still needed, and hand them to the builder."""
        tracked = self._tracker.update(found, frame.image)  # empty frames too: lost tracks must age
        if points is None:
            # Top-down keypoints only for boxes the tracker kept: unconfirmed boxes never reach a track.
            keypoints = np.full((len(tracked), 17, 2), np.nan, np.float32)
            scores = np.zeros((len(tracked), 17), np.float32)
            kept = np.flatnonzero(tracked.track_ids >= 0)
            if len(kept):
                keypoints[kept], scores[kept] = self._keypoints.estimate(frame.image, tracked.boxes[kept])
        else:
            keypoints, scores = points
        looks = [appearance(frame.image, box, kp, sc) if i >= 0 else None
                 for box, i, kp, sc in zip(tracked.boxes, tracked.track_ids.tolist(), keypoints, scores)]
        self._builder.add(frame.index, tracked, keypoints, scores, looks)
        self._frames = max(self._frames, frame.index + 1)
        return FrameResult(frame.index, tracked, keypoints, scores)

    def finish(self, num_frames: int | None = None) -> list[Track]:
        """Build the tracks from everything processed so far.

        Args:
            num_frames: Frames in the video; defaults to one past the last processed frame.

        Returns:
            Tracks sorted by id; a track whose keypointer never saw one of the joints during one of its runs
            (a box the landmark model found nobody in: a far-away or hidden person) is left out, since nothing
            can be lifted from it.
        """
        tracks = self._builder.build(self._frames if num_frames is None else num_frames, self.fps)
        return [t for t in tracks if every_joint_seen(t)]
