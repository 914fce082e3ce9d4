"""Stage 4: per-frame people with ids -> one :class:`~pipeline.types.Track` per person.

Rules:

* A track holds every frame from its first to its last sighting. Frames where the person was missing for
  at most ``max_gap_s`` are filled by linear interpolation of each keypoint between the sightings on either
  side, flagged ``interpolated=True``, and given the interpolated scores times ``interpolated_score`` (so a
  filled frame is never mistaken for a seen one, yet is still drawn faintly).
* A longer absence splits the track. The first kept piece keeps the tracker's id; each later piece gets the
  next free id above every id the tracker used, in order of start frame.
* Pieces shorter than ``min_length_s`` are dropped.
* Nothing is ever filled with zeros: a frame nobody covers is simply absent from every track.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from pipeline.errors import ConfigError, ShapeError
from pipeline.types import Detections, Track


@dataclass(frozen=True)
class TrackConfig:
    """How tracks are assembled from per-frame sightings.

    Attributes:
        max_gap_s: Longest absence, seconds, filled by interpolation; longer ones split the track.
        min_length_s: Tracks shorter than this (first to last frame), seconds, are dropped.
        interpolated_score: Factor applied to the interpolated scores of filled-in frames, in [0, 1].
    """

    max_gap_s: float = 0.5
    min_length_s: float = 0.5
    interpolated_score: float = 0.5

    def __post_init__(self) -> None:
        if self.max_gap_s < 0 or self.min_length_s < 0 or not 0 <= self.interpolated_score <= 1:
            raise ConfigError(f"bad TrackConfig: max_gap_s={self.max_gap_s}, min_length_s={self.min_length_s}, "
                              f"interpolated_score={self.interpolated_score}")


class TrackBuilder:
    """Collects per-frame sightings by track id, then builds tracks.

    Args:
        config: Gap, length and score rules.
    """

    def __init__(self, config: TrackConfig | None = None) -> None:
        self.config = config or TrackConfig()
        # id -> frame -> (keypoints (17, 2), scores (17,), person score)
        self._seen: dict[int, dict[int, tuple[np.ndarray, np.ndarray, float]]] = defaultdict(dict)

    def add(self, frame_index: int, detections: Detections, keypoints: np.ndarray, scores: np.ndarray) -> None:
        """Record one frame's people; those with track id -1 are ignored.

        Args:
            frame_index: 0-based frame number.
            detections: The frame's boxes with track ids (N people).
            keypoints: (N, 17, 2) COCO-17 pixels.
            scores: (N, 17) joint confidences in [0, 1].
        """
        n = len(detections)
        if np.shape(keypoints) != (n, 17, 2) or np.shape(scores) != (n, 17):
            raise ShapeError(f"frame {frame_index}: need keypoints ({n}, 17, 2) and scores ({n}, 17), got "
                             f"{np.shape(keypoints)} and {np.shape(scores)}")
        for i, track_id in enumerate(detections.track_ids.tolist()):
            if track_id < 0:
                continue
            old = self._seen[track_id].get(frame_index)
            # A tracker gives one box per id per frame; should two arrive, keep the more confident.
            if old is None or detections.scores[i] > old[2]:
                self._seen[track_id][frame_index] = (np.asarray(keypoints[i], np.float32),
                                                     np.asarray(scores[i], np.float32), float(detections.scores[i]))

    def build(self, num_frames: int, fps: float) -> list[Track]:
        """Turn the sightings into tracks.

        Args:
            num_frames: Frames in the video; sightings must lie in [0, num_frames).
            fps: Frame rate, Hz (turns the seconds in the config into frames).

        Returns:
            Tracks sorted by id; each has consecutive frames.
        """
        if not fps > 0:
            raise ShapeError(f"fps must be positive, got {fps}")
        max_gap = int(np.floor(self.config.max_gap_s * fps + 1e-9))
        min_len = int(np.ceil(self.config.min_length_s * fps - 1e-9))
        pieces: list[tuple[int, int, np.ndarray]] = []  # (tracker id, piece number, frames)
        for track_id, seen in self._seen.items():
            frames = np.array(sorted(seen), np.int64)
            if frames[0] < 0 or frames[-1] >= num_frames:
                raise ShapeError(f"track {track_id}: frame {frames[-1] if frames[-1] >= 0 else frames[0]} "
                                 f"outside [0, {num_frames})")
            splits = np.flatnonzero(np.diff(frames) - 1 > max_gap) + 1
            kept = [p for p in np.split(frames, splits) if p[-1] - p[0] + 1 >= max(min_len, 1)]
            pieces += [(track_id, k, p) for k, p in enumerate(kept)]
        next_id = max(self._seen, default=0) + 1
        tracks = []
        # Later pieces are numbered in order of start frame so the ids do not depend on dict order.
        for track_id, k, frames in sorted(pieces, key=lambda p: (p[1] > 0, p[2][0], p[0])):
            new_id = track_id
            if k > 0:
                new_id, next_id = next_id, next_id + 1
            tracks.append(self._piece(new_id, frames, self._seen[track_id]))
        return sorted(tracks, key=lambda t: t.track_id)

    def _piece(self, track_id: int, seen_frames: np.ndarray, seen: dict) -> Track:
        """One track over ``seen_frames[0] .. seen_frames[-1]``, short gaps filled by interpolation."""
        frames = np.arange(seen_frames[0], seen_frames[-1] + 1, dtype=np.int64)
        rows = seen_frames - frames[0]
        keypoints = np.full((len(frames), 17, 2), np.nan, np.float32)
        scores = np.zeros((len(frames), 17), np.float32)
        keypoints[rows] = np.stack([seen[f][0] for f in seen_frames.tolist()])
        scores[rows] = np.stack([seen[f][1] for f in seen_frames.tolist()])
        interpolated = np.ones(len(frames), bool)
        interpolated[rows] = False
        missing = np.flatnonzero(interpolated)
        if len(missing):
            # np.interp per coordinate: each missing row blends the sightings just before and after it.
            flat_kp, flat_sc = keypoints.reshape(len(frames), -1), scores
            for col in range(flat_kp.shape[1]):
                flat_kp[missing, col] = np.interp(missing, rows, flat_kp[rows, col])
            for col in range(17):
                flat_sc[missing, col] = np.interp(missing, rows, scores[rows, col]) * self.config.interpolated_score
        return Track(track_id, frames, keypoints, scores, interpolated)


def build_tracks(per_frame: Iterable[tuple[int, Detections, np.ndarray, np.ndarray]], num_frames: int,
                 fps: float, config: TrackConfig | None = None) -> list[Track]:
    """Build tracks from per-frame sightings in one call.

    Args:
        per_frame: (frame_index, detections with track ids (N), keypoints (N, 17, 2) px, scores (N, 17)).
        num_frames: Frames in the video.
        fps: Frame rate, Hz.
        config: Gap, length and score rules.

    Returns:
        Tracks sorted by id (see the module docstring for the rules).
    """
    builder = TrackBuilder(config)
    for frame_index, detections, keypoints, scores in per_frame:
        builder.add(frame_index, detections, keypoints, scores)
    return builder.build(num_frames, fps)
