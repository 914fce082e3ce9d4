"""Grow a trained lifter into a wider receptive field (training's ``init`` with appended kernel widths)."""

from __future__ import annotations

from dataclasses import replace

import torch

from pipeline.errors import ConfigError
from pipeline.lifting.model import LifterConfig, TemporalModel


def grow(source: TemporalModel, config: LifterConfig, gate: float = 1e-2) -> TemporalModel:
    """A deeper lifter that starts as ``source``: its blocks copied, the appended blocks nearly silent.

    Appending residual blocks (e.g. kernel widths 3,3,3 -> 3,3,3,3, receptive field 27 -> 81) keeps every
    existing parameter's name and place. Each new block's last batch-norm scale is set to ``gate``, so the
    block adds almost nothing at first (exactly nothing at 0) and fine-tuning opens it only as far as the
    longer context helps; a small non-zero gate keeps its ReLU, and so its gradients, alive.

    Args:
        source: The trained lifter.
        config: The deeper architecture: ``source``'s with kernel widths appended and nothing else changed.
        gate: Initial scale of the new blocks' output batch norm.

    Returns:
        The grown lifter (train mode).
    """
    old = source.config.filter_widths
    if replace(config, filter_widths=old) != source.config or config.filter_widths[:len(old)] != old \
            or len(config.filter_widths) <= len(old):
        raise ConfigError(f"cannot grow {source.config} into {config}: only kernel widths may be appended")
    model = TemporalModel(config)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    new_blocks = range(len(old) - 1, len(config.filter_widths) - 1)
    new_layers = {str(2 * b + i) for b in new_blocks for i in (0, 1)}  # layers_conv.N / layers_bn.N
    assert not unexpected and {k.split(".")[1] for k in missing} <= new_layers, (missing, unexpected)
    with torch.no_grad():
        for b in new_blocks:
            model.layers_bn[2 * b + 1].weight.fill_(gate)
            model.layers_bn[2 * b + 1].bias.zero_()
    return model
