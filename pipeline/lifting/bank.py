"""Long-term pose bank and its fusion into the lifter's short-term window (paper 003, V3D-LSFM).

The lifter sees a short window of 2D poses (27 frames) around each frame. Paper 003 keeps a *long-term
bank* of diverse key 2D poses from the track and, before the temporal convolutions run, puts the bank
poses that resemble the centre frame into that window, so a fast, jerky window becomes more continuous.

What follows the paper:

* **Similarity, eq. (2)**: ``S(A, B) = 1 - sum_i ||A_i - B_i|| / (J * avg_bone_length(B))`` with A moved
  onto B's centre. 1 for the same pose, falling as the joints move apart (it can go below 0).
* **Algorithm 1, greedy progressive insertion**: frames are offered in time order. While the bank holds
  fewer than ``capacity`` poses (80), a candidate enters when its similarity to *every* stored pose is
  below ``threshold`` (0.7). When full, such a candidate replaces the stored pose with the largest
  accumulated similarity ``AS_i = sum_{j != i} S(b_i, b_j)`` (the most redundant one), which greedily keeps
  the bank's total AS small. The pseudo-code's per-member loop is read as the text states it ("less than
  the threshold with all stored frames"), so a candidate enters at most once.
* **Online / offline**: online, the bank used at frame t holds only frames < t (streams); offline, the bank
  is built over the whole clip and used for every frame.
* **Alternative symmetric fusion**: for each centre frame, the bank poses whose similarity to it exceeds
  ``fusion_threshold`` are sorted best first and inserted into the window alternately just left and just
  right of the centre (best pair innermost); the window's own frames move outwards and the outermost ones
  drop out, so the window keeps the network's receptive field. The fusion is not learned: the paper fuses
  before the convolutions and trains the plain TCN ("before operating convolution in TCN, keyframes are
  collected ... and local 2D poses are fused with them"), so it works with any trained lifter as is and
  needs no training switch.

Our adaptations, and why:

* **Normalisation**: each pose is centred on its joint centroid and divided by its own mean 2D bone length
  before eq. (2). The paper only translates A, so S(A, B) changes with how large A appears and is not
  symmetric; with both poses at unit mean bone length eq. (2)'s denominator is 1 for both and S is
  symmetric and invariant to where and how large the person is in the image.
* **Distant frames only**: bank poses from frames already inside the window (|frame - t| <= half the
  receptive field) are not inserted: they are there already (offline, the bank even holds t itself).
* **Pairs**: an even number of bank poses is inserted (the least similar odd one is dropped), so both
  halves of the window get the same number: the paper's "balance of left and right". ``max_fused`` can
  cap the count; by default (None) only the window does, as in the paper. Few poses qualify anyway:
  bank poses are mutually dissimilar, so a frame resembles few of them (on the validation subjects, 0 or
  2 per window in 94% of frames offline, 99% online, never more than 6). A causal lifter has no right half: its bank poses go
  just before the last (output) frame, best nearest.
* **Placement**: an inserted pose is moved and scaled onto the centre frame's centroid and size, otherwise
  a pose from elsewhere in the image would read as a jump of the whole body.

Everything works in whatever 2D coordinates the lifter takes (similarity ignores position and size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import ConfigError, ShapeError
from pipeline.lifting.model import TemporalModel, flip_2d, flip_3d, infer
from pipeline.skeleton import H36M17

MODES = ("off", "online", "offline")
_PARENTS = np.array([p for p in H36M17.parents if p >= 0])
_CHILDREN = np.array([c for c, p in enumerate(H36M17.parents) if p >= 0])


@dataclass(frozen=True)
class PoseBankConfig:
    """Settings of the long-term pose bank (``lift.pose_bank`` in ``configs/run.yaml``).

    Attributes:
        mode: 'off' (plain lifter), 'online' (bank from past frames only) or 'offline' (whole clip).
        capacity: Most poses the bank holds (paper: 80).
        threshold: A candidate enters only when its similarity to every stored pose is below this (0.7).
        fusion_threshold: Bank poses at least this similar to the centre frame are fused into its window.
        max_fused: Most bank poses fused into one window (even); None: as many as the window holds.
        pairs: Fuse bank poses in left/right pairs only (an odd last one is dropped); False alternates
            left, right, left... and an odd count leaves the left half one pose longer.
    """

    mode: str = "off"
    capacity: int = 80
    threshold: float = 0.7
    fusion_threshold: float = 0.7
    max_fused: int | None = None
    pairs: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"pose_bank.mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.capacity < 1:
            raise ConfigError(f"pose_bank.capacity must be at least 1, got {self.capacity}")
        if self.max_fused is not None and (self.max_fused < 0 or self.max_fused % 2):
            raise ConfigError(f"pose_bank.max_fused must be an even count >= 0 or null, got {self.max_fused}")


def normalize_for_similarity(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre each pose on its joint centroid and scale it to unit mean bone length.

    Args:
        poses: (..., 17, 2) H36M-17 2D poses, any units.

    Returns:
        (normalised (..., 17, 2), centroid (..., 1, 2), mean bone length (..., 1, 1)) in the input's units.
    """
    if poses.shape[-2:] != (H36M17.num_joints, 2):
        raise ShapeError(f"pose bank expects (..., 17, 2) H36M-17 poses, got {poses.shape}")
    centre = poses.mean(axis=-2, keepdims=True)
    bones = np.linalg.norm(poses[..., _CHILDREN, :] - poses[..., _PARENTS, :], axis=-1)
    scale = np.maximum(bones.mean(axis=-1), 1e-9)[..., None, None]
    return (poses - centre) / scale, centre, scale


def similarity_normalized(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Eq. (2) on poses already normalised by :func:`normalize_for_similarity`: (..., J, 2) -> (...)."""
    return 1.0 - np.linalg.norm(a - b, axis=-1).mean(axis=-1)


def pose_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Paper 003's pose similarity, eq. (2), invariant to position and size (see the module docstring).

    Args:
        a, b: (..., 17, 2) 2D poses, broadcastable against each other.

    Returns:
        (...) similarity: 1 for equal poses up to translation and scale, smaller as they differ.
    """
    return similarity_normalized(normalize_for_similarity(np.asarray(a, float))[0],
                                 normalize_for_similarity(np.asarray(b, float))[0])


class PoseBank:
    """Algorithm 1's long-term bank: stored poses, their frames and accumulated similarities.

    Args:
        capacity: Most poses held.
        threshold: Insertion threshold on the similarity to every stored pose.
    """

    def __init__(self, capacity: int, threshold: float) -> None:
        self.capacity, self.threshold, self.size = capacity, threshold, 0
        self._poses = np.zeros((capacity, H36M17.num_joints, 2))
        self._frames = np.full(capacity, -1, dtype=np.int64)
        self._pair = np.zeros((capacity, capacity))  # similarity between stored poses, 0 on the diagonal
        self._acc = np.zeros(capacity)

    @property
    def frames(self) -> np.ndarray:
        """(K,) frame indices of the stored poses (slot order)."""
        return self._frames[: self.size].copy()

    @property
    def accumulated(self) -> np.ndarray:
        """(K,) accumulated similarity AS of each stored pose to the others (slot order)."""
        return self._acc[: self.size].copy()

    def similarities(self, pose: np.ndarray) -> np.ndarray:
        """(K,) eq. (2) similarity of a normalised (17, 2) pose to each stored pose."""
        return similarity_normalized(self._poses[: self.size], pose)

    def offer(self, frame: int, pose: np.ndarray, sims: np.ndarray | None = None) -> bool:
        """Offer frame ``frame``'s normalised pose (17, 2); return whether it entered the bank.

        ``sims`` may pass :meth:`similarities` of the same pose when the caller already has them.
        """
        sims = self.similarities(pose) if sims is None else sims
        if self.size and sims.max() >= self.threshold:
            return False
        n = self.size
        if n < self.capacity:
            slot, sims = n, np.append(sims, 0.0)
            self.size = n = n + 1
        else:
            slot = int(np.argmax(self._acc[:n]))  # the most redundant pose goes
            self._acc[:n] -= self._pair[:n, slot]
            sims = sims.copy()
            sims[slot] = 0.0
        self._pair[slot, :n] = self._pair[:n, slot] = sims
        self._acc[:n] += sims
        self._acc[slot] = sims.sum()
        self._poses[slot], self._frames[slot] = pose, frame
        return True


@dataclass(frozen=True)
class FusionPlan:
    """Which bank poses go into each frame's window, best first.

    Attributes:
        sources: (T, M) int frame whose pose is fused into frame t's window; -1 where none.
        similarity: (T, M) float eq. (2) similarity of that pose to frame t (NaN where none).
        bank_frames: (K,) int frames held by the bank after the last frame (offline: the bank used).
    """

    sources: np.ndarray
    similarity: np.ndarray
    bank_frames: np.ndarray

    def __post_init__(self) -> None:
        if self.sources.ndim != 2 or self.similarity.shape != self.sources.shape or self.bank_frames.ndim != 1:
            raise ShapeError(f"FusionPlan: sources {self.sources.shape} and similarity "
                             f"{self.similarity.shape} must both be (T, M), bank_frames (K,)")
        if np.any((self.sources < -1) | (self.sources >= len(self.sources))):
            raise ShapeError("FusionPlan.sources must hold frame indices of the track or -1")

    @property
    def counts(self) -> np.ndarray:
        """(T,) number of bank poses fused into each frame's window."""
        return (self.sources >= 0).sum(axis=1)


def _choose(sims: np.ndarray, members: np.ndarray, config: PoseBankConfig, half: int, causal: bool):
    """Per frame, the fused members: (T, M) sources and similarities from (T, K) sims / member frames."""
    t = np.arange(len(sims))[:, None]
    ok = (sims >= config.fusion_threshold) & (members >= 0) & (np.abs(members - t) > half)
    keyed = np.where(ok, sims, -np.inf)
    room = half if causal else 2 * half
    most = room if config.max_fused is None else min(config.max_fused, room)
    order = np.argsort(-keyed, axis=1, kind="stable")[:, :most]
    count = np.minimum(ok.sum(axis=1), most)
    count = count - count % 2 if config.pairs and not causal else count
    used = np.arange(order.shape[1])[None] < count[:, None]
    sources = np.where(used, np.take_along_axis(members, order, axis=1), -1)
    return sources, np.where(used, np.take_along_axis(keyed, order, axis=1), np.nan)


def plan_fusion(poses: np.ndarray, config: PoseBankConfig, receptive_field: int, causal: bool = False) -> FusionPlan:
    """Build the bank over a track and pick the bank poses fused into every frame's window.

    Args:
        poses: (T, 17, 2) finite 2D track, any units.
        config: Bank settings; ``mode`` must be 'online' or 'offline'.
        receptive_field: The lifter's window length (odd).
        causal: The lifter's output frame is the window's last (else its centre).

    Returns:
        A :class:`FusionPlan`; M is at most ``config.max_fused`` and the window's free slots.
    """
    if config.mode not in ("online", "offline"):
        raise ConfigError(f"plan_fusion needs pose_bank mode 'online' or 'offline', got {config.mode!r}")
    if poses.ndim != 3 or not np.isfinite(poses).all():
        raise ShapeError(f"pose bank expects a finite (T, 17, 2) track, got {poses.shape}")
    norm = normalize_for_similarity(poses.astype(np.float64))[0]
    bank = PoseBank(config.capacity, config.threshold)
    half = receptive_field - 1 if causal else receptive_field // 2
    if config.mode == "online":
        members = np.full((len(norm), config.capacity), -1, dtype=np.int64)
        sims = np.full((len(norm), config.capacity), -np.inf)
        for t, pose in enumerate(norm):
            s = bank.similarities(pose)
            members[t, : bank.size], sims[t, : bank.size] = bank.frames, s
            bank.offer(t, pose, s)
    else:
        for t, pose in enumerate(norm):
            bank.offer(t, pose)
        members = np.broadcast_to(bank.frames, (len(norm), bank.size))
        sims = np.concatenate([similarity_normalized(norm[a: a + 512, None], norm[None, bank.frames])
                               for a in range(0, len(norm), 512)]) if len(norm) else np.zeros((0, bank.size))
    sources, similarity = _choose(sims, members, config, half, causal)
    return FusionPlan(sources, similarity, bank.frames)


def window_sources(counts: np.ndarray, receptive_field: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Layout of fused windows: per slot, the frame offset of a window frame, or the rank of a bank pose.

    Args:
        counts: (F,) bank poses fused into each window.
        receptive_field: Window length.
        causal: Output frame at the window end (bank poses just before it) instead of its centre.

    Returns:
        (offsets (F, RF) int, frame offset from the output frame for window slots; ranks (F, RF) int, index
        into the frame's best-first bank poses, -1 for window slots). Non-causal, the slots at distance r
        from the centre take ranks 2(r-1) on the left and 2(r-1)+1 on the right: the alternative symmetric
        order; window frames keep their order and move out by counts/2.
    """
    anchor = receptive_field - 1 if causal else receptive_field // 2
    rel = np.arange(receptive_field)[None] - anchor
    # An odd count puts its extra pose on the left: alternation starts there.
    side = counts[:, None] if causal else np.where(rel < 0, (counts[:, None] + 1) // 2, counts[:, None] // 2)
    dist = np.abs(rel)
    is_bank = (dist >= 1) & (dist <= side)
    ranks = np.where(is_bank, (dist - 1) if causal else 2 * (dist - 1) + (rel > 0), -1)
    offsets = np.where(is_bank, 0, rel - np.sign(rel) * side)
    return offsets, ranks


def fused_windows(poses: np.ndarray, plan: FusionPlan, receptive_field: int,
                  causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The lifter input windows of every frame that has bank poses to fuse.

    Args:
        poses: (T, 17, 2) the track the plan was made on.
        plan: Its fusion plan.
        receptive_field: Window length.
        causal: As in :func:`plan_fusion`.

    Returns:
        (frames (F,) int, windows (F, RF, 17, 2) in the track's units). Window frames beyond the track's
        ends repeat its end frames, as the lifter's padding does; bank poses sit on the centre's centroid
        and size.
    """
    frames = np.flatnonzero(plan.counts > 0)
    offsets, ranks = window_sources(plan.counts[frames], receptive_field, causal)
    windows = poses[np.clip(frames[:, None] + offsets, 0, len(poses) - 1)]
    if len(frames):
        norm, centre, scale = normalize_for_similarity(poses.astype(np.float64))
        src = np.take_along_axis(plan.sources[frames], np.maximum(ranks, 0), axis=1)
        aligned = norm[src] * scale[frames, None] + centre[frames, None]
        windows = np.where((ranks >= 0)[..., None, None], aligned, windows).astype(poses.dtype)
    return frames, windows


@torch.no_grad()
def lift_windows(model: TemporalModel, windows: np.ndarray, *, flip: bool = True, device: str = "cpu",
                 batch: int = 2048) -> np.ndarray:
    """Lift one output frame per window with the strided pass.

    Args:
        model: The lifter.
        windows: (F, RF, 17, 2) input windows in the lifter's coordinates.
        flip: Average with the mirrored windows (test-time augmentation, as :func:`pipeline.lifting.model.infer`).
        device: Torch device.
        batch: Windows per forward pass (bounds memory).

    Returns:
        (F, 17, 3) pelvis-relative camera-frame metres.
    """
    model = model.eval().to(device)
    outs = []
    for a in range(0, len(windows), batch):
        x = torch.as_tensor(windows[a: a + batch], dtype=torch.float32, device=device)
        out = model.forward_strided(x)[:, 0]
        if flip:
            out = (out + flip_3d(model.forward_strided(flip_2d(x))[:, 0])) / 2
        outs.append(out.cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, model.config.num_joints, 3), np.float32)


def infer_with_bank(model: TemporalModel, keypoints: np.ndarray, config: PoseBankConfig | None, *,
                    flip: bool = True, device: str = "cpu", chunk: int = 0) -> np.ndarray:
    """Lift a whole sequence, fusing long-term bank poses into the windows (plain :func:`infer` when off).

    Args:
        model: The lifter.
        keypoints: (T, 17, 2) finite normalised screen coordinates at the lifter's rate.
        config: Bank settings (None or mode 'off': no bank).
        flip: Flip test-time augmentation.
        device: Torch device.
        chunk: As in :func:`pipeline.lifting.model.infer`.

    Returns:
        (T, 17, 3) pelvis-relative camera-frame metres; frames without bank poses to fuse are exactly the
        plain lifter's output.
    """
    out = infer(model, keypoints, flip=flip, device=device, chunk=chunk)
    if config is None or config.mode == "off" or config.max_fused == 0:
        return out
    rf, causal = model.receptive_field, model.config.causal
    frames, windows = fused_windows(keypoints, plan_fusion(keypoints, config, rf, causal), rf, causal)
    out[frames] = lift_windows(model, windows, flip=flip, device=device)
    return out
