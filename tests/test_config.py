"""Tests for pipeline/config.py: YAML loading, type checks, typo suggestions, and the shipped configs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pipeline.config import from_dict, load_config, to_dict
from pipeline.errors import ConfigError
from pipeline.lifting.model import LifterConfig
from pipeline.run import RunConfig
from pipeline.training.ankle import AnkleTrainConfig
from pipeline.training.config import AugmentConfig, CameraConfig, LossConfig, TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.y*ml"))


def custom_config() -> TrainConfig:
    return TrainConfig(
        data="/tmp/mocap", fps=30.0, test_subjects=("1", "9"), val_subjects=(), epochs=3, samples_per_epoch=10,
        batch_size=8, lr=5e-4, lr_decay=0.9, bn_momentum=(0.2, 0.01), seed=7,
        lifter=LifterConfig(filter_widths=(3, 3, 3, 3), channels=64, dropout=0.1, causal=True),
        camera=CameraConfig(azimuth_deg=(-90.0, 90.0), sizes=((640, 480), (480, 640)), margin=0.1),
        augment=AugmentConfig(flip=0.0, rate_intervals=(1, 2), rate_prob=0.3),
        loss=LossConfig(velocity=0.0, frames=5),
    )


def test_dict_round_trip():
    cfg = custom_config()
    plain = to_dict(cfg)
    assert plain["lifter"]["filter_widths"] == [3, 3, 3, 3]                 # tuples become lists
    assert plain["camera"]["sizes"] == [[640, 480], [480, 640]]
    assert from_dict(TrainConfig, plain) == cfg
    assert from_dict(TrainConfig, to_dict(TrainConfig())) == TrainConfig()


def test_yaml_round_trip(tmp_path):
    cfg = custom_config()
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    loaded = load_config(TrainConfig, path)
    assert loaded == cfg
    assert isinstance(loaded.lifter, LifterConfig) and loaded.lifter.receptive_field == 81


def test_lists_become_tuples(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("test_subjects: ['3', '4']\nlifter:\n  filter_widths: [3, 3]\ncamera:\n  sizes: [[100, 200]]\n")
    cfg = load_config(TrainConfig, path)
    assert cfg.test_subjects == ("3", "4") and isinstance(cfg.test_subjects, tuple)
    assert cfg.lifter.filter_widths == (3, 3) and isinstance(cfg.lifter.filter_widths, tuple)
    assert cfg.camera.sizes == ((100, 200),) and isinstance(cfg.camera.sizes[0], tuple)
    hash(cfg)   # frozen and hashable all the way down


def test_partial_file_keeps_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\nloss:\n  velocity: 0.5\n")
    cfg = load_config(TrainConfig, path)
    assert cfg == replace(TrainConfig(), epochs=2, loss=replace(LossConfig(), velocity=0.5))


def test_empty_file_and_none_path(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(TrainConfig, path) == TrainConfig()
    assert load_config(TrainConfig, None) == TrainConfig()


def test_overrides_win_and_none_is_ignored(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\ndata: /from/file\n")
    cfg = load_config(TrainConfig, path, {"epochs": 9, "data": None})
    assert cfg.epochs == 9 and cfg.data == "/from/file"


def test_unknown_key_suggests_closest(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("epoch: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, path)
    msg = str(info.value)
    assert "'epoch'" in msg and "did you mean 'epochs'" in msg and str(path) in msg


def test_unknown_nested_key_suggests_closest(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("lifter:\n  chanels: 8\n")
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, path)
    msg = str(info.value)
    assert "lifter" in msg and "'chanels'" in msg and "did you mean 'channels'" in msg


@pytest.mark.parametrize("key,closest", [("batchsize", "batch_size"), ("lr_decy", "lr_decay"),
                                         ("val_subject", "val_subjects"), ("camra", "camera")])
def test_more_typos(key, closest):
    with pytest.raises(ConfigError, match=f"did you mean '{closest}'"):
        from_dict(TrainConfig, {key: 1})


@pytest.mark.parametrize("data", [
    {"epochs": "ten"},
    {"epochs": 10.5},
    {"epochs": True},
    {"seed": None},
    {"data": 5},
    {"test_subjects": "2"},
    {"test_subjects": [2, 14]},
    {"bn_momentum": [0.1]},
    {"bn_momentum": [0.1, 0.01, 0.001]},
    {"lifter": 5},
    {"lifter": {"causal": "yes"}},
    {"lifter": {"filter_widths": 3}},
    {"lifter": {"filter_widths": [3, 4]}},    # even width: LifterConfig's own check
    {"lifter": {"dropout": 1.0}},
    {"lifter": {"channels": 0}},
    {"camera": {"sizes": [[1920, 1080, 3]]}},
    {"camera": {"sizes": [1920, 1080]}},
])
def test_wrong_types_raise(data):
    with pytest.raises(ConfigError):
        from_dict(TrainConfig, data)


def test_nested_not_a_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        from_dict(TrainConfig, {"loss": [1, 2]})


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n"])
def test_file_not_a_mapping(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="mapping"):
        load_config(TrainConfig, path)


def test_ints_accepted_for_floats():
    cfg = from_dict(TrainConfig, {"lr": 1, "fps": 25, "camera": {"fov_deg": [40, 60]}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert isinstance(cfg.fps, float) and cfg.camera.fov_deg == (40.0, 60.0)
    assert all(isinstance(v, float) for v in cfg.camera.fov_deg)


@pytest.mark.parametrize("value", ["abc", True, [1.0], None])
def test_float_field_rejects_non_numbers(value):
    with pytest.raises(ConfigError):
        from_dict(TrainConfig, {"lr": value})


def test_float_field_reads_yaml_exponent_strings(tmp_path):
    # PyYAML (YAML 1.1) reads `lr: 1e-3` as the string "1e-3"; a user means the number.
    path = tmp_path / "lr.yaml"
    path.write_text("lr: 1e-3\n")
    assert load_config(TrainConfig, path).lr == pytest.approx(0.001)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(TrainConfig, bad)


@pytest.mark.parametrize("path", CONFIGS or [None], ids=[p.name for p in CONFIGS] or ["no-configs"])
def test_shipped_configs_load(path):
    if path is None:
        pytest.skip("configs/ holds no YAML files yet")

    cls = RunConfig if path.name.startswith("run") else AnkleTrainConfig if path.name == "train_ankle.yaml" \
        else TrainConfig
    cfg = load_config(cls, path)
    assert from_dict(cls, to_dict(cfg)) == cfg
    if cls is TrainConfig:
        assert cfg.lifter.receptive_field >= 1


def test_run_config_file_is_the_defaults():
    path = Path(__file__).resolve().parents[1] / "configs" / "run.yaml"
    assert load_config(RunConfig, path) == RunConfig()


def test_yaml_bare_off_is_the_word_off(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lift:\n  pose_bank:\n    mode: off\n")
    assert load_config(RunConfig, path).lift.pose_bank.mode == "off"
