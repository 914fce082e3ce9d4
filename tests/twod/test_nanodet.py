"""The bundled offline person detector (pipeline/twod/nanodet.py), and the offline backend end to end."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.errors import ModelError
from pipeline.io.video import read_frames
from pipeline.twod.blazepose import square_crop
from pipeline.twod.nanodet import BINS, INPUT_SIZE, NanoDetConfig, NanoDetDetector, decode, suppress, tiles
from pipeline.twod.stage import TwoDConfig, TwoDStage
from tests.support import walk


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_decode_reads_the_distance_distributions():
    """One confident cell on the stride-16 grid whose four sides each put all weight on one bin."""
    outputs = []
    for stride in (8, 16, 32):
        side = INPUT_SIZE // stride
        probs = np.full((1, side * side, 80), 0.01, np.float32)
        logits = np.zeros((1, side * side, 4 * BINS), np.float32)
        if stride == 16:
            cell = 5 * side + 7                                   # row 5, column 7
            probs[0, cell, 0] = 0.9
            for k, distance in enumerate((2, 3, 4, 5)):          # left, top, right, bottom, in strides
                logits[0, cell, k * BINS + distance] = 50.0
        outputs += [probs, logits]
    boxes, scores = decode(outputs[::-1], conf=0.5)               # any output order
    stride = INPUT_SIZE / (INPUT_SIZE // 16)
    cx, cy = 7 * stride, 5 * stride
    np.testing.assert_allclose(boxes, [[cx - 2 * stride, cy - 3 * stride, cx + 4 * stride, cy + 5 * stride]],
                               atol=1e-3)
    np.testing.assert_allclose(scores, [0.9])


def test_tiles_overlap_and_cover_the_frame():
    grid = tiles(1920, 1080, 640, 0.25)
    covered = np.zeros((1080, 1920), bool)
    for x1, y1, x2, y2 in grid:
        assert x2 - x1 == 640 and y2 - y1 == 640 and x2 <= 1920 and y2 <= 1080
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    xs = sorted({x1 for x1, *_ in grid})
    assert min(np.diff(xs)) <= 0.75 * 640                         # neighbours share a quarter at least
    assert tiles(1920, 1080, 0, 0.25) == [] and tiles(600, 400, 640, 0.25) == []


def test_suppress_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [50, 50, 60, 70]], np.float32)
    assert suppress(boxes, np.array([0.5, 0.9, 0.3], np.float32), 0.5, 10).tolist() == [1, 2]
    assert suppress(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5, 10).tolist() == []


def test_finds_the_walker_on_bundled_frames():
    detector = NanoDetDetector()
    for index in (0, 40, 85):
        found = detector.detect(walk.frame(index))
        ious = [_iou(box, walk.truth_box(index)) for box in found.boxes]
        assert max(ious, default=0.0) > 0.5, (index, found.boxes, walk.truth_box(index))
        assert (found.track_ids == -1).all() and (found.scores >= detector.config.conf).all()


def test_tiles_find_a_small_person():
    """The walker shrunk to about 45 px in a 1920 x 1080 frame: found with 640-px tiles."""
    image = walk.frame(40)
    scale = 45 / (walk.truth_box(40)[3] - walk.truth_box(40)[1])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((1080, 1920, 3), image[5, 5], np.uint8)
    y0, x0 = 600, 1100
    canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    truth = walk.truth_box(40) * scale + [x0, y0, x0, y0]
    found = NanoDetDetector(NanoDetConfig(tile=640)).detect(canvas)
    assert max((_iou(box, truth) for box in found.boxes), default=0.0) > 0.4, (found.boxes, truth)


def test_a_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load the person detector"):
        NanoDetDetector(path=tmp_path / "none.onnx")


def test_square_crop_keeps_the_aspect_and_maps_back():
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:150, 100:140] = 255                                   # a 40 x 100 "person"
    crop, to_image = square_crop(image, np.array([100, 50, 140, 150]), 1.25, 256)
    assert crop.shape == (256, 256, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    corners = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]], np.float64)
    np.testing.assert_allclose(corners @ to_image[:, :2].T + to_image[:, 2], [[100, 50], [140, 150]], atol=1.0)
    assert (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1) == pytest.approx(2.5, rel=0.05)


def test_offline_backend_tracks_the_walker():
    with TwoDStage(TwoDConfig(backend="offline"), fps=30.0) as stage:
        for frame in read_frames(walk.WALK):
            stage.process(frame)
        tracks = stage.finish()
    assert len(tracks) == 1 and len(tracks[0]) >= 0.95 * len(walk.TRUTH)
    assert np.isfinite(tracks[0].keypoints).all(axis=-1).mean() > 0.9
