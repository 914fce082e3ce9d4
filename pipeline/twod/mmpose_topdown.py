"""mmpose 1.x top-down COCO-17 keypoints: one network pass per frame over all of its person boxes.

The models are the "pose" entries of :data:`pipeline.io.weights.MODELS` (HRNet, RTMPose, RSN, MSPN), built
from the configs shipped inside the mmpose wheel (``mmpose/.mim/configs``). Crops are mmpose's own: each box
is centred, grown by ``box_padding`` and widened or heightened to the model's 3:4 input aspect
(``GetBBoxCenterScale`` + ``TopdownAffine``); keypoints come back in the full image's pixels.

Scores: heatmap models report the heatmap maximum (trained towards a unit-peak Gaussian, so it can overshoot
1 or go negative) and SimCC models (RTMPose) the smaller of the x and y logit maxima (not probabilities).
Both are clipped to [0, 1] (trained models' values mostly lie inside already: clipping caps the rare
overshoot and floors negatives, without rescaling); a joint whose
raw score is <= 0 was not found (mmpose then puts it one output cell beyond its crop's top-left corner) and
gets score 0.

Nothing here touches the network: pretrained-backbone URLs in the configs are dropped, and a checkpoint is
a local file or nothing ("none": random weights, for testing the pipeline).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.io import weights
from pipeline.io.weights import WeightsMissingError

NUM_JOINTS = 17


@dataclass(frozen=True)
class MMPoseConfig:
    """Settings of the mmpose top-down keypoint backend.

    Attributes:
        model: A "pose" entry of :data:`pipeline.io.weights.MODELS` ("hrnet-w32", "hrnet-w48", "rtmpose-m",
            "rsn-50", "mspn-50").
        checkpoint: "auto" (the model's file in the weights directory, see :func:`pipeline.io.weights.locate`),
            a checkpoint file path, or "none" (random weights: for testing the pipeline only).
        flip_test: Also run each crop mirrored and average (about twice the time, slightly more accurate).
        batch_size: Most crops per network pass.
        box_padding: Each box is grown by this factor around its centre before the crop (mmpose's default
            1.25), then to the model's aspect ratio.
    """

    model: str = "hrnet-w32"
    checkpoint: str = "auto"
    flip_test: bool = False
    batch_size: int = 32
    box_padding: float = 1.25

    def __post_init__(self) -> None:
        if self.batch_size < 1 or not self.box_padding > 0:
            raise ConfigError(f"MMPoseConfig: batch_size must be >= 1 and box_padding > 0, got "
                              f"{self.batch_size}, {self.box_padding}")


def pose_models() -> list[str]:
    """Names of the mmpose models in the weights table."""
    return [name for name, entry in weights.MODELS.items() if entry.kind == "pose"]


def config_file(name: str) -> Path:
    """The mmpose config file of pose model ``name``, inside the installed mmpose wheel.

    Raises:
        ModelError: unknown or non-pose model, or mmpose not installed.
    """
    entry = weights.MODELS.get(name)
    if entry is None or entry.kind != "pose":
        raise ModelError(f"unknown pose model {name!r}; known: {', '.join(pose_models())}")
    spec = importlib.util.find_spec("mmpose")  # finds the wheel without importing it (slow)
    if spec is None or spec.origin is None:
        raise ModelError("mmpose is not installed: reinstall pose3d with its dependencies (uv sync)")
    path = Path(spec.origin).parent / ".mim" / "configs" / entry.config
    if not path.is_file():
        raise ModelError(f"{name}: config {entry.config} is missing from the installed mmpose ({path})")
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence mmpose/mmcv/mmengine while importing and building: Python warnings and mmengine's logger.

    mmcv-lite warns at import that its compiled ops are absent, mmengine that pkg_resources is deprecated,
    and mmengine logs scope fallbacks at WARNING; none of it concerns the user, and a library never prints.
    The logger stays at ERROR afterwards, which also quiets mmpose during inference.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mmengine.logging import MMLogger  # deferred: heavy, only the mmpose path needs it

        # print_log(logger='current') goes to the newest MMLogger (created on first use, printing to stdout).
        MMLogger.get_current_instance().setLevel(logging.ERROR)
        yield


def _clear_init_cfgs(node: Any) -> None:
    """Drop every ``init_cfg`` and pretrained-weights path from a config tree, in place.

    Pretrained-backbone ``init_cfg``s name URLs (RTMPose's, HRNet's ImageNet weights): with them gone, no
    build step can reach for the network. Weights then come only from the checkpoint, or stay random.
    """
    if isinstance(node, dict):
        for key in list(node):
            if key == "init_cfg" or (key == "pretrained" and isinstance(node[key], str)):
                node[key] = None
            else:
                _clear_init_cfgs(node[key])
    elif isinstance(node, (list, tuple)):
        for item in node:
            _clear_init_cfgs(item)


def _build_config(config: MMPoseConfig):
    """Load and adapt the mmengine Config of ``config.model``: no init URLs, flip test, box padding."""
    from mmengine.config import Config  # deferred: heavy, only the mmpose path needs it

    # deferred: it imports mmcv and mmengine at its top (slow), which only the mmpose path needs
    from pipeline.twod import mmpose_compat

    cfg = Config.fromfile(str(config_file(config.model)))
    _clear_init_cfgs(cfg.model)
    mmpose_compat.adapt_config(cfg.model)
    cfg.model.setdefault("test_cfg", {})["flip_test"] = config.flip_test
    for step in cfg.test_dataloader.dataset.pipeline:
        if step["type"] == "GetBBoxCenterScale":
            step["padding"] = config.box_padding
    return cfg


def _numpy_globals() -> list:
    """The numpy functions and types that openmmlab checkpoints pickle (dataset_meta arrays, scalars).

    torch >= 2.6 loads with ``weights_only=True`` by default, which refuses any global not allow-listed;
    allowing these few reconstructs arrays without allowing arbitrary code.
    """
    if int(np.__version__.split(".")[0]) >= 2:  # numpy 2 renamed numpy.core to numpy._core
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    kinds = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
             np.float16, np.float32, np.float64, np.str_, np.object_)
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *{type(np.dtype(k)) for k in kinds}]


def _read_checkpoint(path: Path, verified: bool) -> dict:
    """Load a checkpoint file on the CPU without running code from it unless its checksum was verified.

    Args:
        path: The file.
        verified: Its complete SHA-256 matched the weights table, or the user trusts it (``--trust-weights``): a
            full unpickle is then allowed as a last resort.

    Returns:
        The loaded object (a dict with "state_dict", or a bare state dict).
    """
    try:
        # The safe loader with numpy's array types allowed: enough for openmmlab's checkpoints.
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not verified:
            reason = str(error).strip().splitlines()[0][:160]
            raise ModelError(f"{path}: refused by torch's safe loader ({reason}); a full unpickle can run code, so "
                             f"pose3d does it only for a file whose complete SHA-256 it knows, or with "
                             f"--trust-weights for a file of your own") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__})") from None
    # Checksum verified: the file is the published one, so a full unpickle runs only its authors' code.
    return torch.load(path, map_location="cpu", weights_only=False)


def _load_weights(model, path: Path, name: str, verified: bool) -> None:
    """Copy a checkpoint's weights into ``model``.

    mmpose's own load hooks rename mmpose 0.x keys (``keypoint_head.`` -> ``head.``); a DataParallel
    ``module.`` prefix is dropped. Keys the model lacks are ignored; weights it needs but the file lacks
    (bar BatchNorm counters) are an error.

    Raises:
        ModelError: unreadable file, or one that does not fit model ``name``.
    """
    ckpt = _read_checkpoint(path, verified)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelError(f"{path}: no state_dict in this checkpoint")
    if all(k.startswith("module.") for k in state):
        meta = getattr(state, "_metadata", None)
        state = OrderedDict((k[len("module."):], v) for k, v in state.items())
        if meta is not None:  # per-module versions steer mmpose's key-renaming hooks
            state._metadata = OrderedDict((k[len("module."):], v) for k, v in meta.items())
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches; the first line after torch's header names one
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ModelError(f"{path.name} does not fit {name}: {lines[min(1, len(lines) - 1)]}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelError(f"{path.name} does not fit {name}: {len(missing)} weights missing (first: {missing[0]})")


class MMPoseEstimator:
    """Top-down 2D keypoints with an mmpose model, all boxes of a frame in one batch.

    Args:
        config: Model, checkpoint, flip test, batch size, box padding.
        device: torch device ("cpu", "cuda", "cuda:1").
        weights_dir: Weights directory for ``checkpoint="auto"`` (default: see :func:`pipeline.io.weights.weights_dir`).
        trust_weights: Allow a full unpickle (which can run code from the file) of a checkpoint whose complete
            SHA-256 pose3d does not know, when torch's safe loader refuses it: for files of your own.

    Raises:
        ModelError: unknown model, or a checkpoint that cannot be loaded.
        WeightsMissingError: the checkpoint file is absent.
    """

    def __init__(self, config: MMPoseConfig | None = None, device: str = "cpu",
                 weights_dir: str | Path | None = None, trust_weights: bool = False) -> None:
        self.config = config or MMPoseConfig()
        name = self.config.model
        config_file(name)  # unknown model: fail before the slow import
        checkpoint, verified = self._checkpoint(weights_dir)
        verified = verified or trust_weights
        with _quiet():
            from mmpose.apis import inference_topdown, init_model  # deferred: heavy, mmpose path only

            # Weights are loaded below rather than by init_model, whose loader fails on torch >= 2.6.
            self.model = init_model(_build_config(self.config), None, device)
        if checkpoint is not None:
            _load_weights(self.model, checkpoint, name, verified)
        self._inference_topdown = inference_topdown
        self.device = device

    @property
    def input_size(self) -> tuple[int, int]:
        """The network's input crop (width, height), pixels."""
        step = next(s for s in self.model.cfg.test_dataloader.dataset.pipeline if s["type"] == "TopdownAffine")
        return tuple(step["input_size"])

    def _checkpoint(self, directory: str | Path | None) -> tuple[Path | None, bool]:
        """The checkpoint file (None for random weights) and whether its complete SHA-256 verified."""
        choice, name = self.config.checkpoint, self.config.model
        if choice == "none":
            return None, False
        if choice == "auto":
            path = weights.locate(name, directory)
            # A full unpickle needs the table's complete SHA-256 to match; the safe loader needs nothing.
            verify = getattr(weights, "verify", None)
            return path, bool(verify is not None and _safe_verify(verify, name, directory))
        path = Path(choice).expanduser()
        if not path.is_file():
            raise WeightsMissingError(f"{name} checkpoint not found: {path} (set checkpoint to an existing file, "
                                      f"'auto' or 'none')")
        return path, False  # a file of the user's: no published checksum to check it against

    def estimate(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """COCO-17 keypoints of the people in ``boxes``.

        Args:
            image: (H, W, 3) uint8 BGR frame.
            boxes: (N, 4) float x1 y1 x2 y2 pixels, one person each (boxes thinner than 1 px are grown to 1 px).

        Returns:
            keypoints (N, 17, 2) float32 full-image pixels, and scores (N, 17) float32 in [0, 1].
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ShapeError(f"image must be (H, W, 3) uint8, got {getattr(image, 'shape', type(image).__name__)}")
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.size == 0:
            boxes = np.zeros((0, 4), np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
            raise ShapeError(f"boxes must be finite (N, 4) x1 y1 x2 y2, got shape {boxes.shape}")
        keypoints = np.zeros((len(boxes), NUM_JOINTS, 2), np.float32)
        scores = np.zeros((len(boxes), NUM_JOINTS), np.float32)
        if len(boxes) == 0:
            return keypoints, scores
        centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)  # a 0-px box breaks the warp
        for start in range(0, len(boxes), self.config.batch_size):
            chunk = boxes[start:start + self.config.batch_size]
            # One test_step over the whole chunk (inference_topdown collates every box into one batch).
            samples = self._inference_topdown(self.model, image, chunk, bbox_format="xyxy")
            for i, sample in enumerate(samples, start=start):
                keypoints[i] = sample.pred_instances.keypoints[0]
                scores[i] = sample.pred_instances.keypoint_scores[0]
        return keypoints, np.clip(np.nan_to_num(scores, nan=0.0), 0.0, 1.0)


def _safe_verify(verify, name: str, directory: str | Path | None) -> bool:
    """Whether ``weights.verify`` matched the file's complete SHA-256; a failing check counts as not verified."""
    try:
        return bool(verify(name, directory).complete)
    except Exception:  # noqa: BLE001 - any failure of the check means "not verified", never a crash here
        return False
