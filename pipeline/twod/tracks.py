"""Stage 4: per-frame people with ids -> one :class:`~pipeline.types.Track` per person.

Rules:

* A track holds every frame from its first to its last sighting. Frames where the person was missing for
  at most ``max_gap_s`` are filled by linear interpolation of each keypoint between the sightings on either
  side, flagged ``interpolated=True``, and given the interpolated scores times ``interpolated_score`` (so a
  filled frame is never mistaken for a seen one, yet is still drawn faintly).
* A longer absence splits the track. The first kept piece keeps the tracker's id; each later piece gets the
  next free id above every id the tracker used, in order of start frame.
* Pieces shorter than ``min_length_s`` are dropped.
* Re-identification: the tracker forgets a person who is away longer than its buffer (behind someone, out
  of the frame). A piece that starts after another ended (within ``reid_max_gap_s``) and looks like it --
  cosine similarity of their mean appearance descriptors (:func:`appearance`) at least
  ``reid_similarity`` -- continues it: the two become one track with the earlier id, the frames between
  them absent (not interpolated). Best-matching pairs are joined first; each piece continues at most one.
* Nothing is ever filled with zeros: a frame nobody covers is simply absent from every track.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

import cv2
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
        reid_max_gap_s: Longest absence, seconds, after which a person can still be re-identified; 0 turns
            re-identification off.
        reid_similarity: Smallest appearance cosine similarity, in [0, 1], that joins two pieces.
    """

    max_gap_s: float = 0.5
    min_length_s: float = 0.5
    interpolated_score: float = 0.5
    reid_max_gap_s: float = 10.0
    reid_similarity: float = 0.92

    def __post_init__(self) -> None:
        if self.max_gap_s < 0 or self.min_length_s < 0 or not 0 <= self.interpolated_score <= 1 \
                or self.reid_max_gap_s < 0 or not 0 <= self.reid_similarity <= 1:
            raise ConfigError(f"bad TrackConfig: max_gap_s={self.max_gap_s}, min_length_s={self.min_length_s}, "
                              f"interpolated_score={self.interpolated_score}, reid_max_gap_s="
                              f"{self.reid_max_gap_s}, reid_similarity={self.reid_similarity}")


def appearance(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """Colour descriptor of a person: hue-saturation histograms of three horizontal bands of the box.

    Bands (head and shoulders, torso, legs) keep where a colour is worn; 16 hue x 4 saturation bins. On the
    two-kids clip this put the boy's pieces 0.95 apart and the boy and the girl at most 0.90.

    Args:
        image: (H, W, 3) uint8 BGR frame.
        box: (4,) x1 y1 x2 y2 pixels.

    Returns:
        (192,) float32 of unit length (square-rooted histograms, so the dot product of two descriptors is the
        Bhattacharyya coefficient of their histograms), or None for a box with no pixels in the frame.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    # The central 60% of the width: the sides of a person's box are mostly background.
    x1, x2 = x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1)
    x1, x2 = int(np.clip(x1, 0, w)), int(np.clip(np.ceil(x2), 0, w))
    y1, y2 = int(np.clip(y1, 0, h)), int(np.clip(np.ceil(y2), 0, h))
    if x2 - x1 < 2 or y2 - y1 < 6:
        return None
    hsv = cv2.cvtColor(cv2.resize(image[y1:y2, x1:x2], (16, 48), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
    parts = []
    for band in (hsv[:16], hsv[16:32], hsv[32:]):
        hist = cv2.calcHist([band], [0, 1], None, [16, 4], [0, 180, 0, 256]).ravel()
        parts.append(np.sqrt(hist / max(hist.sum(), 1e-9)))
    return (np.concatenate(parts) / np.sqrt(3.0)).astype(np.float32)


class TrackBuilder:
    """Collects per-frame sightings by track id, then builds tracks.

    Args:
        config: Gap, length and score rules.
    """

    def __init__(self, config: TrackConfig | None = None) -> None:
        self.config = config or TrackConfig()
        # id -> frame -> (keypoints (17, 2), scores (17,), person score)
        self._seen: dict[int, dict[int, tuple[np.ndarray, np.ndarray, float]]] = defaultdict(dict)
        self._looks: dict[int, dict[int, np.ndarray]] = defaultdict(dict)  # id -> frame -> appearance (192,)

    def add(self, frame_index: int, detections: Detections, keypoints: np.ndarray, scores: np.ndarray,
            looks: list[np.ndarray | None] | None = None) -> None:
        """Record one frame's people; those with track id -1 are ignored.

        Args:
            frame_index: 0-based frame number.
            detections: The frame's boxes with track ids (N people).
            keypoints: (N, 17, 2) COCO-17 pixels.
            scores: (N, 17) joint confidences in [0, 1].
            looks: N appearance descriptors (:func:`appearance`; None entries allowed) for re-identification.
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
                if looks is not None and looks[i] is not None:
                    self._looks[track_id][frame_index] = looks[i]

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
        named = []  # (id, tracker id, frames)
        # Later pieces are numbered in order of start frame so the ids do not depend on dict order.
        for track_id, k, frames in sorted(pieces, key=lambda p: (p[1] > 0, p[2][0], p[0])):
            new_id = track_id
            if k > 0:
                new_id, next_id = next_id, next_id + 1
            named.append((new_id, track_id, frames))
        tracks = []
        for chain in self._relink(named, fps):
            parts = [self._piece(named[chain[0]][0], frames, self._seen[tid]) for _, tid, frames in
                     (named[i] for i in chain)]
            tracks.append(parts[0] if len(parts) == 1 else Track(
                parts[0].track_id, *(np.concatenate([getattr(p, f) for p in parts])
                                     for f in ("frames", "keypoints", "scores", "interpolated"))))
        return sorted(tracks, key=lambda t: t.track_id)

    def _look(self, track_id: int, frames: np.ndarray) -> np.ndarray | None:
        """Mean appearance (unit length) of a tracker id over some frames; None when never described."""
        looks = [self._looks[track_id][f] for f in frames.tolist() if f in self._looks[track_id]]
        if not looks:
            return None
        mean = np.mean(looks, axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-9)

    def _relink(self, pieces: list[tuple[int, int, np.ndarray]], fps: float) -> list[list[int]]:
        """Group pieces (id, tracker id, frames) into people by appearance; chains of indices, in time order."""
        n, window = len(pieces), self.config.reid_max_gap_s * fps
        after, before = [-1] * n, [-1] * n
        looks = [self._look(tid, frames) for _, tid, frames in pieces]
        pairs = []
        for a in range(n):
            for b in range(n):
                gap = pieces[b][2][0] - pieces[a][2][-1]
                if 0 < gap <= window and looks[a] is not None and looks[b] is not None:
                    similarity = float(looks[a] @ looks[b])
                    if similarity >= self.config.reid_similarity:
                        pairs.append((similarity, a, b))
        # A chain only grows at its ends and pieces are joined forward in time, so chains never overlap.
        for _, a, b in sorted(pairs, reverse=True):
            if after[a] < 0 and before[b] < 0:
                after[a], before[b] = b, a
        chains = []
        for head in (i for i in range(n) if before[i] < 0):
            chain = [head]
            while after[chain[-1]] >= 0:
                chain.append(after[chain[-1]])
            chains.append(chain)
        return chains

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


def every_joint_seen(track: Track) -> bool:
    """Whether each run of a track (its frames without a gap) has every joint at least once: what gap filling,
    and so lifting, needs."""
    seen = np.isfinite(track.keypoints).all(axis=-1)
    runs = np.split(np.arange(len(track)), np.flatnonzero(np.diff(track.frames) > 1) + 1)
    return all(seen[run].any(axis=0).all() for run in runs)
