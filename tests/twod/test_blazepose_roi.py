"""BlazePose's landmark model on detected people's regions (pipeline/twod/blazepose_roi.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.twod.blazepose_roi import MODELS, BlazePoseCrops, CropConfig, aligned_region, landmark_model
from tests.support import walk


def test_aligned_region_is_centred_on_the_hips_and_turned_upright():
    cx, cy, side, rotation = aligned_region(np.array([100.0, 200.0]), np.array([100.0, 120.0]))   # head above
    assert (cx, cy, side) == (100.0, 200.0, 200.0) and rotation == pytest.approx(0.0)
    assert aligned_region(np.array([100.0, 200.0]), np.array([180.0, 200.0]))[3] == pytest.approx(math.pi / 2)
    assert abs(aligned_region(np.array([100.0, 200.0]), np.array([100.0, 280.0]))[3]) == pytest.approx(math.pi)


def test_every_model_file_is_there():
    for name in MODELS:
        assert landmark_model(name).stat().st_size > 1_000_000


@pytest.mark.parametrize("model", MODELS)
def test_each_model_puts_the_walkers_keypoints_in_frame_pixels(model):
    index = 40
    box = walk.truth_box(index)
    with BlazePoseCrops(CropConfig(model=model)) as crops:
        keypoints, scores = crops.estimate(walk.frame(index), box[None])
        nobody, none = crops.estimate(np.full((540, 960, 3), 90, np.uint8), np.array([[10, 10, 60, 120]]))
    height = box[3] - box[1]
    error = np.linalg.norm(keypoints[0, walk.COCO_LIMBS] - walk.TRUTH[index, walk.H36M_LIMBS], axis=-1).mean()
    assert error < 0.08 * height and scores[0, walk.COCO_LIMBS].mean() > 0.5
    assert np.isnan(nobody).all() and (none == 0).all()


def test_a_neighbour_in_the_region_does_not_take_the_keypoints():
    """Two walkers side by side: each box gets its own person's keypoints (the region is not re-detected)."""
    index = 40
    image, box = walk.frame(index), walk.truth_box(index)
    shift = int(0.45 * (box[2] - box[0]) + 0.35 * (box[3] - box[1]))
    twins = image.copy()
    twins[:, shift:] = image[:, :-shift]                      # a copy of the walker to the right
    twins[:, : int(box[2]) + 2] = image[:, : int(box[2]) + 2]
    boxes = np.stack([box, box + [shift, 0, shift, 0]])
    with BlazePoseCrops() as crops:
        keypoints, _ = crops.estimate(twins, boxes)
    centres = np.nanmean(keypoints, axis=1)[:, 0]
    np.testing.assert_allclose(centres, (boxes[:, 0] + boxes[:, 2]) / 2, atol=0.2 * (box[2] - box[0]) + 10)


def test_bad_settings_and_inputs_raise():
    with pytest.raises(ConfigError, match="model"):
        CropConfig(model="huge")
    with pytest.raises(ConfigError):
        CropConfig(scale=0.5)
    with pytest.raises(ConfigError):
        CropConfig(max_offset=0.0)
    crops = BlazePoseCrops()
    with pytest.raises(ShapeError):
        crops.estimate(np.zeros((10, 10), np.uint8), np.zeros((0, 4)))
    crops.close()
    crops.close()
    with pytest.raises(ModelError, match="closed"):
        crops.estimate(walk.frame(0), np.zeros((0, 4)))
