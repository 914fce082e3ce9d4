"""Tests for pipeline/lifting/model.py: the temporal model, padding, inference, flips, checkpoints and resampling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.camera import normalize_screen
from pipeline.config import to_dict
from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.checkpoint import load_checkpoint, save_checkpoint
from pipeline.lifting.lifter import Lifter, resolve_device
from pipeline.lifting.model import LifterConfig, TemporalModel, flip_2d, flip_3d, infer, pad_sequence, resample_time
from pipeline.skeleton import H36M17
from pipeline.training.grow import grow
from tests.support.synth import randomize_bn

C = 16  # tiny models throughout


def make_model(widths=(3, 3, 3), causal=False, channels=C, seed=0) -> TemporalModel:
    torch.manual_seed(seed)
    model = TemporalModel(LifterConfig(filter_widths=widths, channels=channels, causal=causal, dropout=0.1))
    return randomize_bn(model, seed)


def random_2d(t, b=None, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (t, 17, 2) if b is None else (b, t, 17, 2)
    return torch.randn(shape, generator=gen) * 0.3


# --------------------------------------------------------------------------------------------------------------
# TemporalModel


@pytest.mark.parametrize("widths,causal", [((3, 3, 3), False), ((3, 3, 3, 3), False), ((1, 1, 1), False),
                                           ((3, 3, 3), True), ((3, 5), False), ((5,), True)])
def test_model_shapes(widths, causal):
    model = make_model(widths, causal)
    rf = int(np.prod(widths))
    assert model.receptive_field == rf == model.config.receptive_field
    x = random_2d(rf + 9, b=2)
    out = model(x)
    assert out.shape == (2, 10, 17, 3)
    assert out.dtype == torch.float32
    assert model.forward_strided(random_2d(rf, b=3)).shape == (3, 1, 17, 3)


@pytest.mark.parametrize("widths,rf", [((3, 3, 3), 27), ((3, 3, 3, 3), 81), ((3, 3, 3, 3, 3), 243), ((1, 1, 1), 1),
                                       ((3, 5, 7), 105)])
def test_receptive_field_is_product(widths, rf):
    assert LifterConfig(filter_widths=widths).receptive_field == rf


def test_model_output_is_pelvis_relative():
    out = make_model()(random_2d(40, b=2))
    assert torch.equal(out[:, :, 0], torch.zeros_like(out[:, :, 0]))
    assert out[:, :, 1:].abs().sum() > 0


@pytest.mark.parametrize("shape", [(1, 30, 17, 3), (30, 17, 2), (1, 30, 16, 2)])
def test_model_rejects_bad_input(shape):
    with pytest.raises(ShapeError):
        make_model()(torch.zeros(shape))


@pytest.mark.parametrize("widths,causal", [((3, 3, 3), False), ((3, 3, 3), True), ((3, 5), False), ((3, 5), True),
                                           ((3, 3, 3, 3), True)])
def test_forward_equals_forward_strided(widths, causal):
    """The dilated sequence pass and the strided one-frame pass share weights and agree frame by frame."""
    model = make_model(widths, causal)
    rf = model.receptive_field
    x = random_2d(23, b=1, seed=1)
    padded = pad_sequence(x, rf, causal)
    with torch.no_grad():
        dense = model(padded)[0]                                     # (T, J, 3)
        windows = padded[0].unfold(0, rf, 1).permute(0, 3, 1, 2)      # (T, rf, J, 2)
        strided = model.forward_strided(windows)[:, 0]
    assert dense.shape == strided.shape == (23, 17, 3)
    torch.testing.assert_close(strided, dense, atol=2e-5, rtol=1e-4)
    assert dense.std() > 1e-3


def test_forward_strided_differs_from_a_misaligned_window():
    # Guard the previous test: the strided output really depends on which window it sees.
    model = make_model()
    x = random_2d(40, b=1, seed=2)
    with torch.no_grad():
        a = model.forward_strided(x[:, 0:27])
        b = model.forward_strided(x[:, 1:28])
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("causal", [True, False])
def test_causality(causal):
    model = make_model((3, 3, 3), causal)
    x = random_2d(60, seed=3).numpy()
    t0 = 30
    changed = x.copy()
    changed[t0 + 1:] += np.random.default_rng(0).normal(size=changed[t0 + 1:].shape).astype(np.float32)
    a = infer(model, x, flip=False)
    b = infer(model, changed, flip=False)
    np.testing.assert_array_equal(a[: t0 - 13], b[: t0 - 13])  # far from the change: unaffected either way
    if causal:
        np.testing.assert_allclose(a[: t0 + 1], b[: t0 + 1], atol=1e-6)
        # ...and the past does matter.
        past = x.copy()
        past[t0 - 5] += 1.0
        assert np.abs(infer(model, past, flip=False)[t0] - a[t0]).max() > 1e-4
    else:
        assert np.abs(a[t0] - b[t0]).max() > 1e-4
        assert np.abs(a[t0 - 12] - b[t0 - 12]).max() > 1e-6   # last frame whose window reaches t0 + 1


# --------------------------------------------------------------------------------------------------------------
# pad_sequence


def test_pad_sequence_symmetric():
    x = random_2d(5, b=2)
    out = pad_sequence(x, 9, causal=False)
    assert out.shape == (2, 5 + 9 - 1, 17, 2)
    assert torch.equal(out[:, 4:9], x)
    for i in range(4):
        assert torch.equal(out[:, i], x[:, 0])
        assert torch.equal(out[:, 9 + i], x[:, -1])


def test_pad_sequence_causal_pads_left_only():
    x = random_2d(5, b=2)
    out = pad_sequence(x, 9, causal=True)
    assert out.shape == (2, 13, 17, 2)
    assert torch.equal(out[:, 8:], x)
    assert torch.equal(out[:, :8], x[:, :1].expand(-1, 8, -1, -1))


def test_pad_sequence_rf1_is_identity():
    x = random_2d(5, b=1)
    assert torch.equal(pad_sequence(x, 1, False), x)
    assert torch.equal(pad_sequence(x, 1, True), x)


# --------------------------------------------------------------------------------------------------------------
# infer


@pytest.mark.parametrize("t", [1, 5, 26, 27, 200])
@pytest.mark.parametrize("causal", [False, True])
def test_infer_shapes_and_pelvis(t, causal):
    model = make_model((3, 3, 3), causal)
    out = infer(model, random_2d(t, seed=t).numpy(), flip=True)
    assert out.shape == (t, 17, 3)
    assert isinstance(out, np.ndarray) and np.isfinite(out).all()
    assert np.array_equal(out[:, 0], np.zeros((t, 3), np.float32))


def test_infer_equals_model_on_padded_sequence():
    model = make_model()
    x = random_2d(50, seed=4)
    out = infer(model, x.numpy(), flip=False)
    with torch.no_grad():
        ref = model(pad_sequence(x[None], 27, False))[0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 7, 64, 199, 500])
@pytest.mark.parametrize("causal", [False, True])
def test_infer_chunked_equals_single_pass(chunk, causal):
    model = make_model((3, 3, 3), causal)
    x = random_2d(200, seed=5).numpy()
    whole = infer(model, x, flip=True, chunk=0)
    np.testing.assert_allclose(infer(model, x, flip=True, chunk=chunk), whole, atol=1e-5, rtol=1e-5)


def test_infer_short_sequence_sees_replicated_ends():
    # A single frame is replicated to the whole receptive field: the output equals the strided pass on that.
    model = make_model()
    x = random_2d(1, seed=6)
    out = infer(model, x.numpy(), flip=False)
    with torch.no_grad():
        ref = model.forward_strided(x[None].expand(1, 27, 17, 2))[0]
    np.testing.assert_allclose(out, ref.numpy(), atol=2e-5)


@pytest.mark.parametrize("bad", [np.zeros((10, 17, 3)), np.zeros((17, 2)), np.full((10, 17, 2), np.nan)])
def test_infer_rejects_bad_keypoints(bad):
    with pytest.raises(ShapeError):
        infer(make_model(), bad.astype(np.float32))


def test_infer_leaves_model_in_eval_mode_and_is_deterministic():
    model = make_model().train()
    x = random_2d(30, seed=7).numpy()
    a = infer(model, x)
    assert not model.training
    np.testing.assert_array_equal(a, infer(model, x))


# --------------------------------------------------------------------------------------------------------------
# flips


def test_flip_2d_is_an_involution_and_mirrors():
    x = random_2d(4, b=2)
    f = flip_2d(x)
    assert torch.equal(flip_2d(f), x)
    perm = H36M17.flip_permutation()
    assert torch.equal(f[..., 4, 0], -x[..., 1, 0])     # l_hip <- mirrored r_hip
    assert torch.equal(f[..., 4, 1], x[..., 1, 1])
    assert torch.equal(f[..., 0, :], x[..., 0, :] * torch.tensor([-1.0, 1.0]))
    assert torch.equal(f, x[..., perm, :] * torch.tensor([-1.0, 1.0]))
    assert torch.equal(x, random_2d(4, b=2)), "flip_2d must not modify its input"


def test_flip_3d_is_an_involution_and_mirrors():
    y = torch.randn(3, 17, 3)
    f = flip_3d(y)
    assert torch.equal(flip_3d(f), y)
    assert torch.equal(f[:, 16], y[:, 13] * torch.tensor([-1.0, 1.0, 1.0]))   # r_wrist <- mirrored l_wrist
    assert torch.equal(f[:, 10], y[:, 10] * torch.tensor([-1.0, 1.0, 1.0]))   # head stays head


def test_flip_tta_is_flip_equivariant():
    model = make_model()
    x = random_2d(40, seed=8)
    a = infer(model, x.numpy(), flip=True)
    b = infer(model, flip_2d(x).numpy(), flip=True)
    np.testing.assert_allclose(b, flip_3d(torch.from_numpy(a)).numpy(), atol=1e-5)
    # Without TTA a random model is not equivariant (the averaging is what makes it so).
    a0 = infer(model, x.numpy(), flip=False)
    b0 = infer(model, flip_2d(x).numpy(), flip=False)
    assert np.abs(b0 - flip_3d(torch.from_numpy(a0)).numpy()).max() > 1e-3
    # TTA is the average of the plain and the mirrored pass.
    np.testing.assert_allclose(a, (a0 + flip_3d(torch.from_numpy(b0)).numpy()) / 2, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_round_trip(tmp_path):
    model = make_model((3, 3), causal=True)
    path = tmp_path / "sub" / "lifter.pt"
    save_checkpoint(path, model, train_fps=30, extra={"epoch": 4, "note": "x"})
    assert path.is_file() and not list(tmp_path.rglob("*.tmp"))
    loaded, meta = load_checkpoint(path)
    assert loaded.config == model.config and not loaded.training
    assert meta["train_fps"] == 30.0 and meta["extra"] == {"epoch": 4, "note": "x"}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = random_2d(20, seed=9).numpy()
    np.testing.assert_array_equal(infer(loaded, x), infer(model, x))
    # Giving the same architecture is fine, a different one is refused.
    load_checkpoint(path, LifterConfig(filter_widths=(3, 3), channels=C, causal=True, dropout=0.1))
    with pytest.raises(ModelError, match="differs"):
        load_checkpoint(path, LifterConfig(filter_widths=(3, 3, 3), channels=C, causal=True, dropout=0.1))
    with pytest.raises(ModelError):
        load_checkpoint(path, LifterConfig(filter_widths=(3, 3), channels=C, causal=False, dropout=0.1))


def test_official_checkpoint_needs_architecture(tmp_path):
    model = make_model((3, 3, 3))
    path = tmp_path / "pretrained.bin"
    torch.save({"model_pos": model.state_dict()}, path)
    loaded, meta = load_checkpoint(path, model.config)
    assert meta["train_fps"] == 50.0
    x = random_2d(30, seed=10).numpy()
    np.testing.assert_array_equal(infer(loaded, x), infer(model, x))
    with pytest.raises(ModelError, match="architecture"):
        load_checkpoint(path)
    with pytest.raises(ModelError, match="do not fit"):
        load_checkpoint(path, LifterConfig(filter_widths=(3, 3, 3, 3), channels=C))


def test_official_checkpoint_with_training_state_loads(tmp_path):
    # The layout of VideoPose3D's run.py checkpoints (e.g. pretrained_h36m_cpn.bin).
    model = make_model((3, 3))
    opt = torch.optim.Adam(model.parameters(), amsgrad=True)
    path = tmp_path / "pretrained_h36m_cpn.bin"
    torch.save({"epoch": 80, "lr": 1e-5, "random_state": np.random.RandomState(1234).get_state(),
                "optimizer": opt.state_dict(), "model_pos": model.state_dict(), "model_traj": None,
                "random_state_semi": None}, path)
    loaded, _ = load_checkpoint(path, model.config)
    assert loaded.config == model.config


def test_load_checkpoint_missing_and_unreadable(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ModelError):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelError, match="model_pos"):
        load_checkpoint(other, LifterConfig(channels=C))


# --------------------------------------------------------------------------------------------------------------
# resampling, Lifter, devices


def test_resample_time_linear_signal():
    t_in = np.arange(31) / 30.0
    values = np.stack([2.0 * t_in + 1.0, -0.5 * t_in], -1)[:, None, :].repeat(17, axis=1)   # (31, 17, 2)
    out = resample_time(values, 30.0, 50.0)
    assert out.shape == (51, 17, 2)
    t_out = np.arange(51) / 50.0
    np.testing.assert_allclose(out[:, 3, 0], 2.0 * t_out + 1.0, atol=1e-12)
    np.testing.assert_allclose(out[:, 3, 1], -0.5 * t_out, atol=1e-12)
    down = resample_time(values, 30.0, 10.0)
    assert down.shape == (11, 17, 2)
    np.testing.assert_allclose(down[:, 0, 0], 2.0 * np.arange(11) / 10.0 + 1.0, atol=1e-12)


def test_resample_time_lengths_and_identity():
    values = np.random.default_rng(0).normal(size=(40, 3))
    np.testing.assert_allclose(resample_time(values, 25.0, 25.0), values, atol=1e-12)
    assert resample_time(values, 25.0, 50.0, length=17).shape == (17, 3)
    held = resample_time(values, 25.0, 50.0, length=200)     # past the end: last sample held
    np.testing.assert_array_equal(held[-1], values[-1])
    assert resample_time(values[:1], 25.0, 50.0).shape == (1, 3)
    # there and back again keeps a linear signal exactly
    lin = np.linspace(0, 1, 40)[:, None]
    back = resample_time(resample_time(lin, 25.0, 50.0), 50.0, 25.0, length=40)
    np.testing.assert_allclose(back, lin, atol=1e-12)
    # 25 -> 60 Hz rounds the length up (95 samples, 1/150 s past the end, holding the last value), so only
    # the final frame of the round trip is off.
    back = resample_time(resample_time(lin, 25.0, 60.0), 60.0, 25.0, length=40)
    np.testing.assert_allclose(back[:-1], lin[:-1], atol=1e-12)
    assert abs(back[-1, 0] - lin[-1, 0]) < 0.5 * (lin[1, 0] - lin[0, 0])


def _pixels(t, w=1280, h=720, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([w / 2, h / 2]) + rng.normal(size=(1, 17, 2)) * 60
    return (base + np.cumsum(rng.normal(size=(t, 17, 2)), axis=0)).astype(np.float32)


def test_lifter_same_rate_matches_infer():
    model = make_model()
    lifter = Lifter(model, train_fps=50)
    kp = _pixels(30)
    out = lifter.lift(kp, 1280, 720, fps=50.0)
    ref = infer(model, normalize_screen(kp.astype(np.float64), 1280, 720).astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_lifter_gives_the_network_the_torso_its_checkpoint_trained_on(tmp_path):
    model = make_model()
    kp = _pixels(30)
    for flag in (False, True):
        path = tmp_path / f"torso_{flag}.pt"
        save_checkpoint(path, model, train_fps=50.0, torso_from_limbs=flag)
        lifter = Lifter.load(path, "cpu")
        assert lifter.torso_from_limbs == flag
        out, rebuilt = lifter.lift(kp, 1280, 720, 50.0), lifter.lift(rebuild_torso(kp), 1280, 720, 50.0)
        assert np.allclose(out, rebuilt, atol=1e-6) == flag


def _version_1(path, model, extra):
    """Write the checkpoint layout pose3d wrote before the input torso had a field of its own."""
    torch.save({"format": "pose3d-lifter", "version": 1, "lifter": to_dict(model.config), "train_fps": 50.0,
                "state_dict": model.state_dict(), "extra": extra}, path)


def test_version_1_checkpoints_read_the_torso_from_their_training_config(tmp_path):
    model = make_model()
    for flag in (False, True):
        _version_1(tmp_path / "v1.pt", model, {"config": {"augment": {"torso_from_limbs": flag}}})
        assert Lifter.load(tmp_path / "v1.pt", "cpu").torso_from_limbs == flag
    _version_1(tmp_path / "old.pt", model, {"epoch": 3})  # no training config stored: the mocap torso
    assert not Lifter.load(tmp_path / "old.pt", "cpu").torso_from_limbs


def test_checkpoint_with_an_unknown_input_torso_is_refused(tmp_path):
    path = tmp_path / "bad.pt"
    save_checkpoint(path, make_model(), train_fps=50.0)
    data = torch.load(path, weights_only=True)
    torch.save({**data, "input_torso": "coco"}, path)
    with pytest.raises(ModelError, match="input_torso"):
        load_checkpoint(path)


@pytest.mark.parametrize("fps", [25.0, 30.0, 100.0, 59.94])
def test_lifter_other_rate_returns_input_length(fps):
    lifter = Lifter(make_model(), train_fps=50)
    kp = _pixels(37)
    out = lifter.lift(kp, 1280, 720, fps=fps)
    assert out.shape == (37, 17, 3) and np.isfinite(out).all()
    assert np.array_equal(out[:, 0], np.zeros((37, 3), np.float32))


def test_lifter_rejects_bad_keypoints():
    lifter = Lifter(make_model(), train_fps=50)
    kp = _pixels(10)
    kp[3, 4] = np.nan
    with pytest.raises(ShapeError):
        lifter.lift(kp, 1280, 720, 50.0)
    with pytest.raises(ShapeError):
        lifter.lift(_pixels(10)[:, :16], 1280, 720, 50.0)


def test_lifter_load(tmp_path):
    model = make_model((3, 3))
    save_checkpoint(tmp_path / "l.pt", model, train_fps=25)
    lifter = Lifter.load(tmp_path / "l.pt", device="cpu")
    assert lifter.train_fps == 25.0 and lifter.device == "cpu"
    with pytest.raises(ModelError):
        Lifter.load(tmp_path / "missing.pt", device="cpu")


def test_resolve_device_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    for dev in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device(dev)
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


def test_resolve_device_with_gpu_reported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_pelvis_scale_input_is_invariant_to_position_and_size():
    x = np.random.default_rng(0).normal(0, 0.1, (40, 17, 2)).astype(np.float32)
    moved = x * 2.5 + np.array([0.3, -0.2], np.float32)
    for norm, invariant in (("pelvis_scale", True), ("screen", False)):
        torch.manual_seed(0)
        model = randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16, input_norm=norm)))
        same = np.allclose(infer(model, x), infer(model, moved), atol=1e-4)
        assert same == invariant, norm


def test_unknown_input_norm_is_a_config_error():
    with pytest.raises(ConfigError, match="input_norm"):
        LifterConfig(input_norm="bbox")


def test_pelvis_scale_pos_sees_position_but_not_size():
    x = np.random.default_rng(1).normal(0, 0.1, (40, 17, 2)).astype(np.float32)
    torch.manual_seed(0)
    model = randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16, input_norm="pelvis_scale_pos")))

    base = infer(model, x, flip=False)
    scaled_about_pelvis = (x - x[:, :1]) * 2.0 + x[:, :1]
    assert np.allclose(base, infer(model, scaled_about_pelvis, flip=False), atol=1e-4)
    assert not np.allclose(base, infer(model, x + np.float32([0.4, 0.0]), flip=False), atol=1e-4)
    # The strided training pass and the dilated pass still agree.
    win = torch.from_numpy(x[:9])[None]
    full = model(win)
    assert torch.allclose(model.forward_strided(win), full, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_grown_lifter_starts_as_its_source(causal):
    source = make_model((3, 3), causal).eval()
    deeper = replace(source.config, filter_widths=(3, 3, 3))
    x = random_2d(60, b=1)
    with torch.no_grad():
        silent = grow(source, deeper, gate=0.0).eval()
        assert silent.receptive_field == 27
        # The wider context trims 18 more frames (9 at each end, or 18 at the start when causal); every
        # frame it keeps is the source's.
        kept = source(x)[:, 18:] if causal else source(x)[:, 9:-9]
        np.testing.assert_allclose(silent(x).numpy(), kept.numpy(), atol=1e-5)
        windows = x.unfold(1, 27, 1)[0].permute(0, 3, 1, 2)  # (34, 27, 17, 2)
        np.testing.assert_allclose(silent.forward_strided(windows)[:, 0].numpy(), silent(x)[0].numpy(), atol=1e-5)
        gated = grow(source, deeper).eval()
        gap = (gated(x) - silent(x)).abs().max().item()
        assert 0.0 < gap < 0.05 * silent(x).abs().max().item()
    # The new block's parameters train: its gate passes gradients.
    gated.train()
    gated(x).sum().backward()
    assert gated.layers_bn[3].weight.grad.abs().sum() > 0 and gated.layers_conv[2].weight.grad.abs().sum() > 0


def test_grow_refuses_anything_but_appended_kernel_widths():
    source = make_model((3, 3))
    for bad in (replace(source.config, filter_widths=(3, 3)), replace(source.config, filter_widths=(3, 5, 3)),
                replace(source.config, filter_widths=(3, 3, 3), channels=2 * C),
                replace(source.config, filter_widths=(3, 3, 3), causal=True)):
        with pytest.raises(ConfigError, match="cannot grow"):
            grow(source, bad)
