"""Stage 2: people detection and identity tracking across frames.

Detection: :class:`YoloDetector` runs an Ultralytics YOLO model (person class only, batched over frames);
the offline MediaPipe backend (:mod:`pipeline.twod.blazepose`) finds its own boxes. Identities come
from Ultralytics' maintained ByteTrack / BoT-SORT, fed with boxes from either. Both match boxes by motion
(Kalman-predicted IoU, BoT-SORT adds camera-motion compensation); a person who is lost for longer than
``track_buffer`` is re-identified by appearance afterwards (:mod:`pipeline.twod.tracks`).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

import cv2
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from pipeline.errors import ConfigError, ModelError
from pipeline.io import weights
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
    """Import Ultralytics' tracker classes (see :func:`import_ultralytics`). Returns ``ultralytics.trackers``."""
    return import_ultralytics("ultralytics.trackers")


def import_ultralytics(module: str = "ultralytics"):
    """Import an Ultralytics module without network access, pip installs, settings in $HOME or changed threads.

    Args:
        module: Dotted module name under ``ultralytics``.

    Returns:
        The module.
    """
    # Never probe the network (is_online() checks this first) and keep the settings file it writes on
    # first import out of $HOME: $POSE3D_CACHE/ultralytics, else a temp dir. setdefault: the user may override.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")  # it would pip-install missing extras at run time
    os.environ.setdefault("YOLO_VERBOSE", "False")  # the library never prints; Ultralytics logs at INFO otherwise
    cache = os.environ.get("POSE3D_CACHE")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(cache) / "ultralytics" if cache
                                                  else Path(tempfile.gettempdir()) / "pose3d-ultralytics"))
    # Importing ultralytics sets OMP_NUM_THREADS=1 and cv2.setNumThreads(0) for the whole process; undo both.
    threads, cv_threads, omp = torch.get_num_threads(), cv2.getNumThreads(), os.environ.get("OMP_NUM_THREADS")
    try:
        return importlib.import_module(module)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


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

        iou = box_iou(out[:, :4], boxes)
        rows, cols = linear_sum_assignment(-iou)
        index = np.full(len(out), -1, np.int64)
        keep = iou[rows, cols] > 0.3
        index[rows[keep]] = cols[keep]
        return index


@dataclass(frozen=True)
class DetectorConfig:
    """Ultralytics YOLO person detector settings.

    Attributes:
        model: A detector of :data:`pipeline.io.weights.MODELS` ("yolo11n"), a ``.pt`` file, or an Ultralytics
            model YAML ("yolo11n.yaml"), which builds the network untrained (pipeline testing only).
        conf: Smallest person confidence kept.
        iou: Non-maximum-suppression IoU threshold.
        imgsz: Network input size, pixels (longest side; letterboxed, aspect preserved).
        batch_size: Frames per forward pass.
        max_det: Most people per frame.
    """

    model: str = "yolo11n"
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    batch_size: int = 8
    max_det: int = 50

    def __post_init__(self) -> None:
        if not (0 <= self.conf <= 1 and 0 < self.iou <= 1) or self.imgsz < 32 or self.batch_size < 1 \
                or self.max_det < 1:
            raise ConfigError(f"bad DetectorConfig: conf={self.conf}, iou={self.iou}, imgsz={self.imgsz}, "
                              f"batch_size={self.batch_size}, max_det={self.max_det}")


def untrusted_detector(model: str, weights_dir: str | Path | None) -> str | None:
    """Why Ultralytics would unpickle ``model``'s file in full (running any code it holds) without pose3d
    knowing the file, or None when it may: a YAML (nothing unpickled), or a table model whose complete SHA-256
    matches.

    Returns:
        One line naming the file, e.g. "yolo11n.pt does not match its published SHA-256 (...)".
    """
    if model in weights.MODELS:
        check = weights.verify(model, weights_dir)
        return None if check.complete else f"{check.path.name} does not match its published SHA-256 ({check.reason})"
    if model.endswith((".yaml", ".yml")):
        return None
    return f"{model} is a file of unknown origin (pose3d knows no checksum for it)"


def _detector_source(model: str, weights_dir: str | Path | None, trust_weights: bool = False) -> str:
    """The file or YAML Ultralytics should load; never a bare name it would try to download.

    Ultralytics loads a ``.pt`` by unpickling it in full, which runs any code the file holds, so a file is
    loaded only when its complete SHA-256 matches the weights table, or with ``trust_weights``.
    """
    if model in weights.MODELS:
        if weights.MODELS[model].kind != "detector":
            raise ConfigError(f"{model!r} is a {weights.MODELS[model].kind} model, not a detector")
        source = str(weights.locate(model, weights_dir))
    elif model.endswith((".yaml", ".yml")):
        return model  # Ultralytics builds it from its bundled model definitions, untrained
    elif Path(model).is_file():
        source = model
    else:
        known = ", ".join(k for k, m in weights.MODELS.items() if m.kind == "detector")
        raise ModelError(f"detector {model!r} is neither a known model ({known}), a model YAML nor an existing file")
    why = None if trust_weights else untrusted_detector(model, weights_dir)
    if why:
        raise ModelError(f"{source}: not loaded, since loading a .pt file can run code and {why}; pass "
                         "--trust-weights if the file is your own")
    return source


class YoloDetector:
    """People boxes from an Ultralytics YOLO model (COCO class 0), several frames per forward pass.

    Args:
        config: Model and thresholds.
        device: "cpu" or "cuda[:N]".
        weights_dir: Weights directory override (see :func:`pipeline.io.weights.weights_dir`).
        trust_weights: Load a ``.pt`` whose complete SHA-256 pose3d does not know (a file of your own).
    """

    def __init__(self, config: DetectorConfig | None = None, device: str = "cpu",
                 weights_dir: str | Path | None = None, trust_weights: bool = False) -> None:
        self.config = config or DetectorConfig()
        self.device = device
        source = _detector_source(self.config.model, weights_dir, trust_weights)
        ultralytics = import_ultralytics()
        try:
            self._model = ultralytics.YOLO(source, task="detect")
        except Exception as exc:  # a corrupt or foreign .pt file
            raise ModelError(f"{source}: cannot load as an Ultralytics YOLO detector ({exc})") from exc

    def detect(self, image: np.ndarray) -> Detections:
        """People in one (H, W, 3) uint8 BGR image. Returns Detections with track_ids all -1."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """People in several frames, ``batch_size`` frames per forward pass.

        Args:
            images: (H, W, 3) uint8 BGR frames.

        Returns:
            One Detections per frame: boxes x1 y1 x2 y2 in the frame's pixels, person confidences, ids -1.
        """
        c, out = self.config, []
        threads = torch.get_num_threads()
        try:
            for start in range(0, len(images), c.batch_size):
                chunk = images[start:start + c.batch_size]
                results = self._model.predict(chunk, conf=c.conf, iou=c.iou, imgsz=c.imgsz, classes=[0],
                                              max_det=c.max_det, device=self.device, verbose=False,
                                              batch=len(chunk))
                out += [self._detections(r) for r in results]
        finally:
            torch.set_num_threads(threads)  # its predictor pins torch to cpu_count - 1 threads on CPU
        return out

    @staticmethod
    def _detections(result) -> Detections:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        xyxy = boxes.xyxy.cpu().numpy().astype(np.float32)
        conf = boxes.conf.cpu().numpy().astype(np.float32)
        return Detections(xyxy, conf, np.full(len(conf), -1, np.int64))
