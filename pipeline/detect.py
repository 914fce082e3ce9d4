"""Stage 2: people detection and identity tracking across frames.

Identities come from Ultralytics' maintained ByteTrack / BoT-SORT implementations, fed with boxes from
any detector (the MediaPipe backend in :mod:`pipeline.keypoints_mediapipe` today; a YOLO detector later). Both
trackers match boxes by motion (Kalman-predicted IoU) only -- no appearance -- so two people who cross
can swap identities, and a person who leaves for longer than ``track_buffer`` comes back with a new id.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

import numpy as np

from pipeline.errors import ConfigError
from pipeline.types import Detections


class PersonDetector(Protocol):
    """Anything that finds people in an image."""

    def detect(self, image: np.ndarray) -> Detections:
        """Find people in an (H, W, 3) uint8 BGR image. Returns Detections with track_ids all -1."""
        ...


@dataclass(frozen=True)
class TrackerConfig:
    """Identity tracker settings (names and defaults follow Ultralytics' bytetrack.yaml).

    Attributes:
        tracker: "bytetrack" or "botsort" (BoT-SORT adds camera-motion compensation; no ReID here).
        track_high_thresh: Detections scoring at least this are matched first.
        track_low_thresh: Detections between this and ``track_high_thresh`` only extend existing tracks.
        new_track_thresh: An unmatched detection scoring at least this starts a new track.
        track_buffer: Frames a lost track is kept for re-finding, at 30 fps; scaled to the video's rate.
        match_thresh: Largest matching cost (1 - IoU, score-fused) accepted in the first association.
        fuse_score: Fuse detection scores into the matching cost.
        gmc_method: BoT-SORT camera-motion compensation: "sparseOptFlow", "orb", "sift", "ecc" or "none".
    """

    tracker: str = "bytetrack"
    track_high_thresh: float = 0.25
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.25
    track_buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True
    gmc_method: str = "sparseOptFlow"

    def __post_init__(self) -> None:
        if self.tracker not in ("bytetrack", "botsort"):
            raise ConfigError(f"TrackerConfig.tracker must be 'bytetrack' or 'botsort', got {self.tracker!r}")
        if not 0 <= self.track_low_thresh <= self.track_high_thresh <= 1 or self.track_buffer < 0:
            raise ConfigError(f"need 0 <= track_low_thresh <= track_high_thresh <= 1 and track_buffer >= 0, got "
                              f"{self.track_low_thresh}, {self.track_high_thresh}, {self.track_buffer}")


def import_ultralytics_trackers():
    """Import Ultralytics' tracker classes without network access, settings in $HOME or changed threads.

    Returns:
        The ``ultralytics.trackers`` module.
    """
    import cv2
    import torch

    # Never probe the network (is_online() checks this first) and keep the settings file it writes on
    # first import out of $HOME: $POSE3D_CACHE/ultralytics, else a temp dir. setdefault: the user may override.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")  # the library never prints; Ultralytics logs at INFO otherwise
    cache = os.environ.get("POSE3D_CACHE")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(cache) / "ultralytics" if cache
                                                  else Path(tempfile.gettempdir()) / "pose3d-ultralytics"))
    # Importing ultralytics sets OMP_NUM_THREADS=1 and cv2.setNumThreads(0) for the whole process; undo both.
    threads, cv_threads, omp = torch.get_num_threads(), cv2.getNumThreads(), os.environ.get("OMP_NUM_THREADS")
    try:
        import ultralytics.trackers as trackers
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp
    return trackers


class _Boxes:
    """The slice of Ultralytics' ``Boxes`` interface its trackers read (conf, cls, xywh, xyxy, masks)."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray) -> None:
        self.xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, np.float32).reshape(-1)
        self.cls = np.zeros(len(self.conf), np.float32)  # every box is a person (class 0)

    @property
    def xywh(self) -> np.ndarray:
        return np.concatenate([(self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2, self.xyxy[:, 2:] - self.xyxy[:, :2]], 1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> "_Boxes":
        return _Boxes(self.xyxy[index], self.conf[index])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU. Args: a (N, 4), b (M, 4) x1 y1 x2 y2. Returns: (N, M) in [0, 1]."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class PersonTracker:
    """Gives each person's box a stable id across frames (ByteTrack or BoT-SORT from Ultralytics).

    Args:
        config: Tracker settings.
        fps: Video frame rate, Hz; ``track_buffer`` is scaled by fps / 30 as in ByteTrack.
    """

    def __init__(self, config: TrackerConfig | None = None, fps: float = 30.0) -> None:
        self.config = config or TrackerConfig()
        trackers = import_ultralytics_trackers()
        c = self.config
        args = SimpleNamespace(tracker_type=c.tracker, track_high_thresh=c.track_high_thresh,
                               track_low_thresh=c.track_low_thresh, new_track_thresh=c.new_track_thresh,
                               track_buffer=max(1, round(c.track_buffer * fps / 30.0)),
                               match_thresh=c.match_thresh, fuse_score=c.fuse_score,
                               gmc_method=c.gmc_method if c.gmc_method != "none" else None,
                               proximity_thresh=0.5, appearance_thresh=0.8, with_reid=False, model="auto")
        cls = trackers.BYTETracker if c.tracker == "bytetrack" else trackers.BOTSORT
        self._tracker = cls(args)

    def update(self, detections: Detections, image: np.ndarray | None = None) -> Detections:
        """Assign ids to one frame's detections (call once per frame, in order, also for empty frames).

        Args:
            detections: The frame's people (track_ids ignored).
            image: (H, W, 3) uint8 BGR frame; BoT-SORT uses it for camera-motion compensation.

        Returns:
            The same boxes and scores, in the same order, with track ids; -1 for boxes the tracker has not
            confirmed (a new person's first frame, low-score boxes matching no track).
        """
        out = self._tracker.update(_Boxes(detections.boxes, detections.scores), image)
        ids = np.full(len(detections), -1, np.int64)
        if len(out) and len(detections):
            for det, track_id in zip(self._detection_index(out, detections.boxes), out[:, 4]):
                if det >= 0:
                    ids[det] = int(track_id)
        return Detections(detections.boxes, detections.scores, ids)

    @staticmethod
    def _detection_index(out: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Input detection behind each tracker output row (-1: none).

        Ultralytics reports it in the last column; the outputs' boxes are Kalman-smoothed, so matching them
        back by IoU is the fallback for a tracker that does not.
        """
        if out.shape[1] >= 8:
            index = out[:, 7].astype(np.int64)
            if ((index >= 0) & (index < len(boxes))).all() and len(set(index.tolist())) == len(index):
                return index
        from scipy.optimize import linear_sum_assignment

        iou = box_iou(out[:, :4], boxes)
        rows, cols = linear_sum_assignment(-iou)
        index = np.full(len(out), -1, np.int64)
        keep = iou[rows, cols] > 0.3
        index[rows[keep]] = cols[keep]
        return index
