"""Lifter checkpoints: the weights with their architecture, training rate and input torso (docs/formats.md).

Ours are ``torch.save`` dictionaries of tensors and plain data that load with ``weights_only=True``; official
VideoPose3D ``.bin`` files (weights under ``model_pos``) load when the caller gives the architecture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.config import from_dict, to_dict
from pipeline.errors import ModelError
from pipeline.lifting.model import LifterConfig, TemporalModel

CHECKPOINT_FORMAT = "pose3d-lifter"
# What numpy arrays pickle into; enough to read official VideoPose3D checkpoints without the full unpickler.
_NUMPY_PICKLE_GLOBALS = [np.core.multiarray._reconstruct, np.ndarray, np.dtype,
                         *{type(np.dtype(t)) for t in ("uint32", "float64", "int64", "float32")}]


def save_checkpoint(path, model: TemporalModel, *, train_fps: float, torso_from_limbs: bool = False,
                    extra: dict | None = None) -> None:
    """Write a checkpoint that stores the architecture and its input contract next to the weights (atomic rename).

    Args:
        path: Destination ``.pt`` file.
        model: The lifter.
        train_fps: Frame rate the lifter was trained at, Hz.
        torso_from_limbs: The network trained on a 2D pelvis, spine and thorax rebuilt from the hips and
            shoulders (``augment.torso_from_limbs``), so inference must rebuild them too.
        extra: JSON-able metadata (training state, metrics, command).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": 2, "lifter": to_dict(model.config),
               "train_fps": float(train_fps), "input_torso": "limbs" if torso_from_limbs else "mocap",
               "state_dict": model.state_dict(), "extra": extra or {}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path, config: LifterConfig | None = None, map_location: str = "cpu") -> tuple[TemporalModel, dict]:
    """Load our checkpoint, or an official VideoPose3D one (weights under ``model_pos``).

    Args:
        path: Checkpoint file.
        config: Architecture; required for official checkpoints (they do not store it), and when given for
            ours it must match what the checkpoint stores.
        map_location: Torch device for the tensors.

    Returns:
        (model in eval mode, the checkpoint's metadata: ``train_fps``, ``torso_from_limbs`` and ``extra``).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"lifter weights not found: {path} (train with `pose3d train` or pass --weights)")
    try:
        # Never the full unpickler (arbitrary code): ours holds only tensors and plain data; official
        # VideoPose3D files also pickle numpy arrays (optimizer and random state), which we allow by name.
        with torch.serialization.safe_globals(_NUMPY_PICKLE_GLOBALS):
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure means "not a checkpoint we can read"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelError(f"{path}: not a readable lifter checkpoint ({type(exc).__name__}: {reason})") from None
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        stored = from_dict(LifterConfig, data["lifter"], f"{path}:lifter")
        if config is not None and config != stored:
            raise ModelError(f"{path}: stores architecture {stored}, which differs from the one given ({config})")
        config, state = stored, data["state_dict"]
        meta = {"train_fps": data["train_fps"], "torso_from_limbs": _input_torso(data, path), "extra": data["extra"]}
    elif isinstance(data, dict) and "model_pos" in data:
        if config is None:
            raise ModelError(f"{path}: an official VideoPose3D checkpoint stores no architecture; "
                             "give it (e.g. --arch 3,3,3,3,3 --channels 1024)")
        # Human3.6M's 2D torso is the mocap's own, like our version-1 checkpoints'.
        state, meta = data["model_pos"], {"train_fps": 50.0, "torso_from_limbs": False,
                                          "extra": {"source": "videopose3d"}}
    else:
        raise ModelError(f"{path}: neither a pose3d checkpoint nor a VideoPose3D one (no 'model_pos')")
    model = TemporalModel(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{path}: weights do not fit architecture {config} ({first})") from None
    return model.eval(), meta


def _input_torso(data: dict, path) -> bool:
    """Whether a pose3d checkpoint's network expects the torso rebuilt from the limbs."""
    if data.get("version", 1) >= 2:
        if data.get("input_torso") not in ("limbs", "mocap"):
            raise ModelError(f"{path}: input_torso must be 'limbs' or 'mocap', got {data.get('input_torso')!r}")
        return data["input_torso"] == "limbs"
    # Version 1 kept the flag only inside the training config that `pose3d train` stored in extra.
    augment = ((data.get("extra") or {}).get("config") or {}).get("augment") or {}
    return bool(augment.get("torso_from_limbs", False))
