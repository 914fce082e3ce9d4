"""WiSE-FT weight interpolation (pipeline/training/interpolate.py)."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import ConfigError, ModelError
from pipeline.lifting.checkpoint import load_checkpoint, save_checkpoint
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.training.interpolate import interpolate_weights


def _lifter(path, seed: int, channels: int = 16):
    torch.manual_seed(seed)
    save_checkpoint(path, TemporalModel(LifterConfig(filter_widths=(3, 3), channels=channels)), train_fps=50.0,
                    torso_from_limbs=True)
    return path


def test_interpolation_is_a_weighted_average_of_the_two_lifters(tmp_path):
    base, tuned = _lifter(tmp_path / "a.pt", 0), _lifter(tmp_path / "b.pt", 1)
    a, b = (load_checkpoint(p)[0].state_dict() for p in (base, tuned))
    for alpha in (0.0, 0.3, 1.0):
        interpolate_weights(base, tuned, alpha, tmp_path / "mix.pt")
        mixed, meta = load_checkpoint(tmp_path / "mix.pt")
        assert meta["torso_from_limbs"] and meta["extra"]["interpolated"]["alpha"] == alpha
        for key, value in mixed.state_dict().items():
            if value.is_floating_point():
                assert torch.allclose(value, (1 - alpha) * a[key] + alpha * b[key], atol=1e-6), key


def test_only_the_same_lifter_and_a_fraction_are_accepted(tmp_path):
    base, other = _lifter(tmp_path / "a.pt", 0), _lifter(tmp_path / "c.pt", 2, channels=32)
    with pytest.raises(ModelError, match="different lifters"):
        interpolate_weights(base, other, 0.5, tmp_path / "mix.pt")
    with pytest.raises(ConfigError):
        interpolate_weights(base, base, 1.5, tmp_path / "mix.pt")
