"""Weight-space interpolation of a fine-tuned lifter with the one it started from (WiSE-FT).

Fine-tuning the lifter on the 2D stage's own output (``detected`` in the training config) teaches it the 2D
stage's habits, and it partly unlearns exact 2D. Averaging the two networks' weights, ``(1 - alpha) * base +
alpha * tuned``, keeps most of the gain on the new data and most of the old accuracy (Wortsman et al., "Robust
fine-tuning of zero-shot models", CVPR 2022): both start from the same weights, so they lie in one basin where
the average is itself a good network. ``alpha`` is chosen on the validation subjects.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError, ModelError
from pipeline.lifting.checkpoint import load_checkpoint, save_checkpoint


def interpolate_weights(base: str | Path, tuned: str | Path, alpha: float, out: str | Path) -> None:
    """Write ``(1 - alpha) * base + alpha * tuned`` as a lifter checkpoint.

    Args:
        base: The lifter fine-tuning started from.
        tuned: The fine-tuned lifter (same architecture and input contract).
        alpha: Weight of ``tuned``, in [0, 1].
        out: Destination ``.pt``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--alpha must be in [0, 1], got {alpha}")
    first, first_meta = load_checkpoint(base)
    second, meta = load_checkpoint(tuned)
    if first.config != second.config or (first_meta["train_fps"], first_meta["torso_from_limbs"]) != (
            meta["train_fps"], meta["torso_from_limbs"]):
        raise ModelError(f"{base} and {tuned} are different lifters (architecture, rate or input torso)")
    a, b = first.state_dict(), second.state_dict()
    # Batch-norm step counters are integers: keep the tuned network's.
    second.load_state_dict({k: (1 - alpha) * a[k] + alpha * b[k] if b[k].is_floating_point() else b[k] for k in b})
    # Keep the tuned run's training config (best.pt stores it directly, last.pt inside its resume state).
    config = meta["extra"].get("config") or meta["extra"].get("train_state", {}).get("config")
    save_checkpoint(out, second, train_fps=meta["train_fps"], torso_from_limbs=meta["torso_from_limbs"],
                    extra={"interpolated": {"base": str(base), "tuned": str(tuned), "alpha": alpha}, "config": config})
