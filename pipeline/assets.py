"""Shipped assets -- trained weights, their model cards, the YAML configs -- found wherever pose3d runs from.

The repository keeps them in its top-level ``weights/`` and ``configs/`` folders; the wheel's build
configuration maps those folders into the package as ``pipeline/assets/weights`` and
``pipeline/assets/configs``. :func:`asset_dir` looks in the package first and in the checkout second, so
an installed wheel and a source checkout (editable or not) behave alike, whatever the current folder.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ModelError

PACKAGE_DIR = Path(__file__).resolve().parent
KINDS = ("weights", "configs")


def asset_dir(kind: str) -> Path:
    """The folder of one kind of shipped asset.

    Args:
        kind: "weights" or "configs".

    Returns:
        ``pipeline/assets/<kind>`` inside an installed package, else the checkout's ``<kind>/`` folder.

    Raises:
        ModelError: neither exists (a broken install).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown asset kind {kind!r}; one of {', '.join(KINDS)}")
    for folder in (PACKAGE_DIR / "assets" / kind, PACKAGE_DIR.parent / kind):
        if folder.is_dir():
            return folder
    raise ModelError(f"pose3d's shipped {kind} are missing: neither {PACKAGE_DIR / 'assets' / kind} nor "
                     f"{PACKAGE_DIR.parent / kind} exists (reinstall pose3d)")


def shipped_weights(filename: str) -> Path:
    """A shipped checkpoint (``lifter.pt``, ``trajectory.pt``, ``ankle.pt``) in the package's weights folder.

    ``$POSE3D_WEIGHTS_DIR`` does not move these: it names the folder of the downloaded YOLO / mmpose files
    (:func:`pipeline.io.weights.weights_dir`); another lifter is given by its path (``--weights``).
    """
    return asset_dir("weights") / filename


def shipped_config(name: str) -> Path:
    """A shipped YAML config by file name, e.g. ``run.yaml`` or ``ablation/baseline.yaml``."""
    return asset_dir("configs") / name


def in_checkout() -> bool:
    """Whether pose3d runs from a source checkout (its assets are the repository's folders, not package data)."""
    return not (PACKAGE_DIR / "assets").is_dir()
