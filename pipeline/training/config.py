"""Training configuration: one frozen dataclass per concern of ``pose3d train``, loaded from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import ConfigError
from pipeline.lifting.model import LifterConfig


@dataclass(frozen=True)
class CameraConfig:
    """Ranges of the random virtual cameras used to make training pairs.

    Attributes:
        azimuth_deg: Camera azimuth around the subject, degrees.
        elevation_deg: Camera elevation above the horizon, degrees.
        fov_deg: Field of view across the image's longer side, degrees.
        roll_deg: Maximum absolute camera roll, degrees.
        sizes: (width, height) image sizes in pixels, sampled uniformly.
        distance_scale: Camera distance as a multiple of the closest distance that keeps the subject in frame
            (sampled log-uniformly).
        margin: Fraction of the image kept free at the borders.
        off_centre: Pan/tilt the camera so the subject lands anywhere in the frame (False: always centred).
    """

    azimuth_deg: tuple[float, float] = (0.0, 360.0)
    elevation_deg: tuple[float, float] = (0.0, 30.0)
    fov_deg: tuple[float, float] = (40.0, 75.0)
    roll_deg: float = 5.0
    sizes: tuple[tuple[int, int], ...] = ((1920, 1080), (1280, 720), (1080, 1920), (1440, 1080), (1080, 1080))
    distance_scale: tuple[float, float] = (1.0, 6.0)
    margin: float = 0.05
    off_centre: bool = True


@dataclass(frozen=True)
class EvolveConfig:
    """Evolutionary pose augmentation (paper 004): crossover, mutation and natural selection of windows.

    See :mod:`pipeline.training.evolve` for how whole temporal windows are evolved and the joint-angle limits.

    Attributes:
        fraction: Share of the training windows replaced by evolved offspring (0 disables evolution).
        generations: Rounds of crossover + mutation + selection each evolved window goes through.
        mutation_sigma_deg: Standard deviation of the mutation's rotation angle, degrees.
        floor_tolerance: How far (metres) an offspring's lowest joint may sink below the lowest point its
            receiving parent reaches in the window before the offspring is rejected.
    """

    fraction: float = 0.0
    generations: int = 2
    mutation_sigma_deg: float = 15.0
    floor_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"augment.evolve.fraction must be in [0, 1], got {self.fraction}")
        if self.generations < 1 or self.mutation_sigma_deg < 0.0 or self.floor_tolerance < 0.0:
            raise ConfigError(f"augment.evolve: generations must be >= 1 and mutation_sigma_deg, floor_tolerance "
                              f">= 0, got {self.generations}, {self.mutation_sigma_deg}, {self.floor_tolerance}")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-pair augmentation.

    Attributes:
        flip: Probability of a horizontal flip (left/right swapped).
        clean_fraction: Fraction of samples given exact 2D (no detector noise).
        noise_px: Range of 2D Gaussian noise sigma as a fraction of the person's height in pixels.
        drop_prob: Per joint-frame probability that a joint is replaced by a stale/wrong detection.
        swap_prob: Per frame probability that a left/right limb pair is swapped (detector confusion).
        bone_scale: Max relative per-bone length change (symmetric left/right).
        global_scale: Max relative whole-body size change.
        rate_intervals: Frame intervals for multi-rate sampling (paper 003): a multi-rate window takes every
            s-th frame, s drawn uniformly from the entries above 1 (entries equal to 1 are ignored).
        rate_prob: Share of the windows that are multi-rate; the other windows keep the original rate.
        evolve: Evolutionary pose augmentation (paper 004); off by default.
        torso_from_limbs: Rebuild the 2D pelvis, spine and thorax from the hips and shoulders
            (:func:`pipeline.keypoints.rebuild_torso`, as for a 2D model's COCO-17 keypoints), so the lifter
            trains on the torso it is given at run time rather than the mocap's own.
    """

    flip: float = 0.5
    clean_fraction: float = 0.4
    noise_px: tuple[float, float] = (0.002, 0.02)
    drop_prob: float = 0.01
    swap_prob: float = 0.005
    bone_scale: float = 0.06
    global_scale: float = 0.05
    rate_intervals: tuple[int, ...] = (1, 3, 5, 7)
    rate_prob: float = 0.0
    evolve: EvolveConfig = field(default_factory=EvolveConfig)
    torso_from_limbs: bool = False

    def __post_init__(self) -> None:
        if any(s < 1 for s in self.rate_intervals) or not 0.0 <= self.rate_prob <= 1.0:
            raise ConfigError(f"augment: rate_intervals must be >= 1 and rate_prob in [0, 1], got "
                              f"{self.rate_intervals} and {self.rate_prob}")
        if self.rate_prob > 0.0 and not any(s > 1 for s in self.rate_intervals):
            raise ConfigError(f"augment: rate_prob is {self.rate_prob} but rate_intervals {self.rate_intervals} "
                              "holds no interval above 1; add e.g. 3, 5, 7")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (paper 000): MPJPE plus velocity, acceleration and temporal limb-length terms.

    Attributes:
        velocity: alpha, weight of the velocity-difference term (0 disables it).
        acceleration: beta, weight of the acceleration-difference term.
        limb_length: gamma, weight of the temporal limb-length invariance term.
        frames: Consecutive output frames per sample used by the temporal terms (>= 3 for acceleration).
        bone: Weight of paper 004's bone term, the mean L1 distance between predicted and ground-truth bone
            vectors (0 disables it; works with any ``frames``).
    """

    velocity: float = 2.0
    acceleration: float = 10.0
    limb_length: float = 1.5
    frames: int = 3
    bone: float = 0.0


@dataclass(frozen=True)
class SemiSupervisedConfig:
    """Paper 002's semi-supervised back-projection (:mod:`pipeline.training.semisup`); off while ``labeled_subjects`` is empty.

    Attributes:
        labeled_subjects: Training subjects whose 3D is used; the other training subjects give 2D only.
        unlabeled_weight: Weight of the 2D back-projection error of the unlabelled batch (0: the supervised
            baseline on the same labelled data, trained by the same code).
        bone_weight: Weight of the bone-length L2 term: the unlabelled batch's mean bone lengths against the
            labelled batch's.
        trajectory: The trajectory network trained alongside (its own weights, as the paper).
        warmup_epochs: Epochs of labelled data only before the unlabelled terms start (the paper starts
            back-projection once the supervised model is reasonable).
    """

    labeled_subjects: tuple[str, ...] = ()
    unlabeled_weight: float = 1.0
    bone_weight: float = 1.0
    trajectory: LifterConfig = field(default_factory=lambda: LifterConfig(
        channels=256, input_norm="pelvis_scale_pos_size", target="trajectory"))
    warmup_epochs: int = 1

    def __post_init__(self) -> None:
        if self.unlabeled_weight < 0 or self.bone_weight < 0 or self.warmup_epochs < 0:
            raise ConfigError(f"bad semi-supervised settings: {self}")
        if self.trajectory.target != "trajectory":
            raise ConfigError("semi.trajectory must be a trajectory network (target: trajectory)")


@dataclass(frozen=True)
class DetectedConfig:
    """Training on the 2D stage's own output (``pose3d build-detections`` clips); off while ``folder`` is None.

    Attributes:
        folder: Detections folder (clips of training subjects only).
        share: Share of each pose batch drawn from detected windows (the rest: projected mocap).
        error_share: Share of the mocap windows whose 2D gets a window of the 2D stage's real error (the learned
            noise model: :meth:`pipeline.training.detected.DetectedWindows.errors`) instead of synthetic noise.
        min_frames: Detected runs shorter than this (frames at the clips' rate) are not used.
    """

    folder: str | None = None
    share: float = 0.5
    error_share: float = 0.0
    min_frames: int = 15

    def __post_init__(self) -> None:
        if not (0.0 <= self.share <= 1.0 and 0.0 <= self.error_share <= 1.0) or self.min_frames < 2:
            raise ConfigError(f"detected: share and error_share must be in [0, 1] and min_frames >= 2, got "
                              f"{self.share}, {self.error_share}, {self.min_frames}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``pose3d train`` needs besides the command line.

    Attributes:
        data: Mocap root (folder with MANIFEST.tsv or .bvh/.amc files).
        fps: Training frame rate, Hz. Inputs at other rates are resampled to it.
        test_subjects: Subjects held out for the final evaluation (never trained or tuned on).
        val_subjects: Subjects held out for model selection during training.
        epochs: Passes; one epoch is ``samples_per_epoch`` random windows.
        samples_per_epoch: Random windows per epoch.
        batch_size: Windows per optimisation step.
        lr: Initial learning rate (AMSGrad, as VideoPose3D).
        lr_decay: Multiplicative learning-rate decay per epoch.
        anneal_epoch: From this epoch on the rate decays by ``anneal_decay`` per epoch instead (a final
            anneal); None keeps ``lr_decay`` throughout.
        anneal_decay: Per-epoch decay from ``anneal_epoch`` on.
        bn_momentum: (start, end) batch-norm momentum, decayed exponentially over the epochs.
        seed: Random seed.
        init: Checkpoint whose weights start the run: fine-tuning when its stored architecture equals
            ``lifter``; growing it when ``lifter`` only appends kernel widths (:func:`pipeline.training.grow.grow`,
            e.g. receptive field 27 -> 81). None starts from random weights. Ignored when resuming from
            ``last.pt``; not for semi-supervised runs.
        lifter, camera, augment, loss: Sub-configurations.
        semi: Semi-supervised back-projection (paper 002); off by default.
        detected: Detected 2D from rendered clips mixed in (issue 18); off by default.
    """

    data: str = "../shared/data/mocap/cmu"
    fps: float = 50.0
    test_subjects: tuple[str, ...] = ("2", "8", "17")
    val_subjects: tuple[str, ...] = ("3", "7", "12")
    epochs: int = 40
    samples_per_epoch: int = 200_000
    batch_size: int = 1024
    lr: float = 1e-3
    lr_decay: float = 0.95
    anneal_epoch: int | None = None
    anneal_decay: float = 1.0
    bn_momentum: tuple[float, float] = (0.1, 0.001)
    seed: int = 0
    init: str | None = None
    lifter: LifterConfig = field(default_factory=LifterConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    semi: SemiSupervisedConfig = field(default_factory=SemiSupervisedConfig)
    detected: DetectedConfig = field(default_factory=DetectedConfig)

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of an epoch: ``lr * lr_decay^epoch``, then ``anneal_decay`` per epoch after
        ``anneal_epoch``."""
        if self.anneal_epoch is None or epoch <= self.anneal_epoch:
            return self.lr * self.lr_decay ** epoch
        return self.lr * self.lr_decay ** self.anneal_epoch * self.anneal_decay ** (epoch - self.anneal_epoch)
