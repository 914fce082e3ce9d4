"""The offline 2D stage in one object: people -> COCO-17 keypoints -> identities -> tracks.

``pose3d run`` feeds it frames in order::

    with TwoDStage(TwoDConfig(), fps=video.fps) as stage:
        for frame in frames:
            result = stage.process(frame)      # this frame's people, with track ids
        tracks = stage.finish(num_frames)      # whole tracks, gaps filled or split
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.detect import PersonTracker, TrackerConfig
from pipeline.keypoints_mediapipe import MediaPipeConfig, MediaPipePose
from pipeline.tracks import TrackBuilder, TrackConfig
from pipeline.types import Detections, Frame, Track


@dataclass(frozen=True)
class TwoDConfig:
    """Settings of the 2D stage.

    Attributes:
        mediapipe: The keypoint backend (multi-person search by masking).
        tracker: Identity tracking.
        tracks: Gap filling, splitting and minimum length.
    """

    mediapipe: MediaPipeConfig = field(default_factory=MediaPipeConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    tracks: TrackConfig = field(default_factory=TrackConfig)


@dataclass(frozen=True)
class FrameResult:
    """One frame's people after tracking.

    Attributes:
        index: Frame number.
        detections: (N) boxes, person scores and track ids (-1: not yet confirmed by the tracker).
        keypoints: (N, 17, 2) float32 COCO-17 pixels.
        scores: (N, 17) float32 joint confidences in [0, 1].
    """

    index: int
    detections: Detections
    keypoints: np.ndarray
    scores: np.ndarray


class TwoDStage:
    """Runs MediaPipe, the tracker and the track builder frame by frame.

    Args:
        config: Stage settings.
        fps: Video frame rate, Hz (scales the tracker's buffer and the track rules).
    """

    def __init__(self, config: TwoDConfig | None = None, fps: float = 30.0) -> None:
        self.config = config or TwoDConfig()
        self.fps = fps
        self._pose = MediaPipePose(self.config.mediapipe)
        self._tracker = PersonTracker(self.config.tracker, fps)
        self._builder = TrackBuilder(self.config.tracks)
        self._frames = 0

    def __enter__(self) -> "TwoDStage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._pose.close()

    def process(self, frame: Frame) -> FrameResult:
        """Find, identify and record the people in one frame (frames must come in order).

        Args:
            frame: The decoded frame.

        Returns:
            The frame's people with their track ids.
        """
        people = self._pose.estimate(frame.image)
        if people:
            found = Detections(np.stack([p.box for p in people]), np.array([p.score for p in people], np.float32),
                               np.full(len(people), -1, np.int64))
            keypoints = np.stack([p.keypoints for p in people])
            scores = np.stack([p.scores for p in people])
        else:
            found = Detections.empty()
            keypoints, scores = np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32)
        tracked = self._tracker.update(found, frame.image)  # empty frames too: lost tracks must age
        self._builder.add(frame.index, tracked, keypoints, scores)
        self._frames = max(self._frames, frame.index + 1)
        return FrameResult(frame.index, tracked, keypoints, scores)

    def finish(self, num_frames: int | None = None) -> list[Track]:
        """Build the tracks from everything processed so far.

        Args:
            num_frames: Frames in the video; defaults to one past the last processed frame.

        Returns:
            Tracks sorted by id.
        """
        return self._builder.build(self._frames if num_frames is None else num_frames, self.fps)
