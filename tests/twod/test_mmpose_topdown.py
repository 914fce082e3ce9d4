"""mmpose top-down backend: shapes, crops, batching, flip test, errors and checkpoint loading (random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.errors import ModelError, ShapeError
from pipeline.io import weights
from pipeline.io.weights import MODELS, WeightsMissingError
from pipeline.twod.mmpose_topdown import MMPoseConfig, MMPoseEstimator, pose_models

ASPECT = 192 / 256  # width / height of every model's input here
BOXES = np.array([[10, 20, 110, 220], [150, 30, 230, 200], [200, 100, 318, 238]], np.float32)


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def _build(model: str, seed: int = 0, weights_dir=None, **kwargs) -> MMPoseEstimator:
    torch.manual_seed(seed)  # random weights, the same for every build with this seed
    return MMPoseEstimator(MMPoseConfig(model=model, **kwargs), device="cpu", weights_dir=weights_dir)


@pytest.fixture(scope="module", params=["hrnet-w32", "rtmpose-m"])
def estimator(request) -> MMPoseEstimator:
    return _build(request.param, checkpoint="none")


def _crop_regions(boxes: np.ndarray, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """mmpose's crop of each box: padded around its centre, then grown to the 3:4 input aspect."""
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) * padding
    w = np.maximum(size[:, 0], size[:, 1] * ASPECT)
    return centre, np.stack([w, w / ASPECT], axis=1)


def test_outputs_lie_in_their_crops(estimator):
    keypoints, scores = estimator.estimate(_image(), BOXES)
    assert keypoints.shape == (3, 17, 2) and keypoints.dtype == np.float32
    assert scores.shape == (3, 17) and scores.dtype == np.float32
    assert np.isfinite(keypoints).all() and ((scores >= 0) & (scores <= 1)).all()
    centre, size = _crop_regions(BOXES)
    offset = np.abs(keypoints - centre[:, None]) / size[:, None]  # 0.5: the crop's edge
    found = scores > 0
    assert (offset[found] <= 0.5 + 1e-4).all()
    # Joints not found (raw score <= 0) sit one output cell (1/48 of the crop) past its top-left corner.
    assert (offset <= 0.5 + 1 / 48 + 1e-4).all()


def test_batch_equals_one_at_a_time(estimator):
    image = _image()
    keypoints, scores = estimator.estimate(image, BOXES)
    for i, box in enumerate(BOXES):
        k, s = estimator.estimate(image, box[None])
        np.testing.assert_allclose(k[0], keypoints[i], atol=1e-2)
        np.testing.assert_allclose(s[0], scores[i], atol=1e-4)


def test_chunks_of_batch_size_match_one_batch():
    small = _build("rtmpose-m", checkpoint="none", batch_size=2)
    big = _build("rtmpose-m", checkpoint="none")
    for got, want in zip(small.estimate(_image(), BOXES), big.estimate(_image(), BOXES)):
        np.testing.assert_allclose(got, want, atol=1e-2)


def test_no_boxes_skips_the_model(estimator, monkeypatch):
    monkeypatch.setattr(estimator, "_inference_topdown", lambda *a, **k: pytest.fail("model ran"))
    keypoints, scores = estimator.estimate(_image(), np.zeros((0, 4), np.float32))
    assert keypoints.shape == (0, 17, 2) and scores.shape == (0, 17)
    assert keypoints.dtype == scores.dtype == np.float32


def test_flip_test_runs_the_mirrored_crop():
    plain = _build("rtmpose-m", checkpoint="none")
    flipped = _build("rtmpose-m", checkpoint="none", flip_test=True)
    assert flipped.model.test_cfg["flip_test"] and not plain.model.test_cfg["flip_test"]
    keypoints, scores = flipped.estimate(_image(), BOXES)
    assert keypoints.shape == (3, 17, 2) and np.isfinite(keypoints).all() and ((scores >= 0) & (scores <= 1)).all()
    assert not np.allclose(keypoints, plain.estimate(_image(), BOXES)[0])  # same weights: the flip changed it


def test_unknown_model_lists_known_ones():
    with pytest.raises(ModelError, match="hrnet-w32"):
        MMPoseEstimator(MMPoseConfig(model="hrnet-w99", checkpoint="none"))
    with pytest.raises(ModelError, match="unknown pose model 'yolo11n'"):  # a detector is not a pose model
        MMPoseEstimator(MMPoseConfig(model="yolo11n", checkpoint="none"))
    assert set(pose_models()) == {"hrnet-w32", "hrnet-w48", "rtmpose-m", "rsn-50", "mspn-50"}


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(WeightsMissingError, match=MODELS["hrnet-w32"].filename):
        MMPoseEstimator(MMPoseConfig(checkpoint="auto"), weights_dir=tmp_path)
    with pytest.raises(WeightsMissingError, match="nothing.pth"):
        MMPoseEstimator(MMPoseConfig(checkpoint=str(tmp_path / "nothing.pth")))


class _Foreign:
    """A class torch's safe loader does not know: stands for code hidden in a checkpoint."""


def test_checkpoint_round_trip(tmp_path):
    source = _build("rtmpose-m", seed=0, checkpoint="none")
    state = source.model.state_dict()
    # openmmlab's layout; dataset_meta holds numpy arrays, which torch's default safe loader refuses.
    meta = {"mmpose_version": "1.1.0", "dataset_meta": source.model.dataset_meta}
    assert any(isinstance(v, np.ndarray) for v in meta["dataset_meta"].values())
    torch.save({"state_dict": state, "meta": meta}, tmp_path / MODELS["rtmpose-m"].filename)
    want = source.estimate(_image(), BOXES)

    other = _build("rtmpose-m", seed=1, checkpoint="none")  # different random weights ...
    assert not np.allclose(other.estimate(_image(), BOXES)[0], want[0])
    loaded = _build("rtmpose-m", seed=1, checkpoint="auto", weights_dir=tmp_path)  # ... replaced by the file's
    for got, expected in zip(loaded.estimate(_image(), BOXES), want):
        np.testing.assert_allclose(got, expected, atol=1e-4)

    # A DataParallel "module." prefix is dropped; an explicit path works like "auto".
    prefixed = tmp_path / "prefixed.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "meta": meta}, prefixed)
    np.testing.assert_allclose(_build("rtmpose-m", seed=1, checkpoint=str(prefixed)).estimate(_image(), BOXES)[0],
                               want[0], atol=1e-4)


def test_bad_checkpoints_are_model_errors(tmp_path):
    state = _build("rtmpose-m", checkpoint="none").model.state_dict()
    partial = tmp_path / "partial.pth"
    torch.save({"state_dict": {k: v for k, v in state.items() if not k.startswith("head.")}}, partial)
    with pytest.raises(ModelError, match="does not fit rtmpose-m: .* weights missing"):
        _build("rtmpose-m", checkpoint=str(partial))
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": state, "meta": {"x": _Foreign()}}, unsafe)
    with pytest.raises(ModelError, match="refused by torch's safe loader"):  # no checksum: never unpickled
        _build("rtmpose-m", checkpoint=str(unsafe))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="garbage.pth"):
        _build("rtmpose-m", checkpoint=str(garbage))


def test_only_a_verified_file_is_fully_unpickled(tmp_path, monkeypatch):
    state = _build("rtmpose-m", checkpoint="none").model.state_dict()
    torch.save({"state_dict": state, "meta": {"x": _Foreign()}}, tmp_path / MODELS["rtmpose-m"].filename)
    def result(ok: bool, checked: str) -> weights.VerifyResult:
        return weights.VerifyResult("rtmpose-m", tmp_path, True, 1, "", ok, "", checked)

    for ok, checked in ((False, "sha256"), (True, "sha256-prefix"), (True, "size")):
        monkeypatch.setattr(weights, "verify", lambda name, directory, r=result(ok, checked): r, raising=False)
        with pytest.raises(ModelError, match="refused by torch's safe loader.*--trust-weights"):
            _build("rtmpose-m", checkpoint="auto", weights_dir=tmp_path)  # a prefix does not rule out a forgery
    monkeypatch.setattr(weights, "verify", lambda name, directory: result(True, "sha256"))
    _build("rtmpose-m", checkpoint="auto", weights_dir=tmp_path)  # the complete SHA-256 verified: loads


def test_trust_weights_allows_a_full_unpickle_of_your_own_file(tmp_path):
    state = _build("rtmpose-m", checkpoint="none").model.state_dict()
    own = tmp_path / "own.pth"
    torch.save({"state_dict": state, "meta": {"x": _Foreign()}}, own)
    with pytest.raises(ModelError, match="refused by torch's safe loader"):
        _build("rtmpose-m", checkpoint=str(own))
    MMPoseEstimator(MMPoseConfig(model="rtmpose-m", checkpoint=str(own)), device="cpu", trust_weights=True)


def test_mmpose_0x_checkpoint_keys_are_renamed(tmp_path):
    """The published HRNet files are mmpose 0.x ones: their head is called ``keypoint_head``."""
    source = _build("hrnet-w32", seed=0, checkpoint="none")
    old = {k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k: v
           for k, v in source.model.state_dict().items()}  # a plain dict: no per-module versions, as in 0.x
    assert any(k.startswith("keypoint_head.") for k in old)
    torch.save({"state_dict": old, "meta": {}}, tmp_path / "old.pth")
    loaded = _build("hrnet-w32", seed=1, checkpoint=str(tmp_path / "old.pth"))
    got = loaded.model.state_dict()
    for name, value in source.model.state_dict().items():
        assert torch.equal(got[name], value), name


def test_box_padding_and_bad_boxes():
    tight = _build("rtmpose-m", checkpoint="none", box_padding=1.0)
    step = next(s for s in tight.model.cfg.test_dataloader.dataset.pipeline if s["type"] == "GetBBoxCenterScale")
    assert step["padding"] == 1.0 and tight.input_size == (192, 256)
    keypoints, scores = tight.estimate(_image(), BOXES)
    centre, size = _crop_regions(BOXES, padding=1.0)
    assert (np.abs(keypoints - centre[:, None]) / size[:, None] <= 0.5 + 1 / 48 + 1e-4).all()
    with pytest.raises(ShapeError):
        tight.estimate(_image(), np.zeros((2, 5), np.float32))
    with pytest.raises(ShapeError):
        tight.estimate(_image().astype(np.float32), BOXES)
    k, s = tight.estimate(_image(), np.array([[50, 50, 50, 50]], np.float32))  # a 0-px box: no crash
    assert np.isfinite(k).all() and np.isfinite(s).all()
