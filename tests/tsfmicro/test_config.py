"""ModelConfig/TrainConfig: the depth rule, presets, and clear errors for bad values."""

import pytest

from tsfmicro.config import (
    PRESETS,
    MachineConfig,
    ModelConfig,
    TrainConfig,
    preset,
    split_train_record,
    stage_depths,
)
from tsfmicro.errors import ConfigError


def test_paper_depth_five_gives_published_stages():
    assert stage_depths(5) == (1, 1, 2, 1)
    assert ModelConfig().stage_depths == (1, 1, 2, 1)


@pytest.mark.parametrize(
    "total, expected",
    [
        (1, (0, 0, 1, 0)),
        (2, (0, 0, 1, 1)),
        (3, (0, 1, 1, 1)),
        (4, (1, 1, 1, 1)),
        (6, (1, 1, 3, 1)),
        (9, (1, 1, 6, 1)),
    ],
)
def test_depth_rule(total, expected):
    assert stage_depths(total) == expected
    assert sum(stage_depths(total)) == total


def test_paper_preset_is_the_published_configuration():
    cfg = preset("paper")
    assert (cfg.image_size, cfg.fusion, cfg.temporal_depth, cfg.spatial_depth) == (
        224,
        "late",
        5,
        2,
    )
    assert cfg.temporal_widths == (64, 128, 256, 512)
    assert cfg.spatial_heads == 4 and cfg.head_width == 1024 and cfg.grid_size == 14
    assert set(PRESETS) >= {"paper", "tiny"}


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("fusion", "middle", "fusion"),
        ("temporal_depth", 0, "temporal_depth"),
        ("spatial_depth", 0, "spatial_depth"),
        ("image_size", 100, "multiple of 16"),
        ("num_classes", 1, "num_classes"),
        ("temporal_mixer", "mamba", "temporal_mixer"),
        ("drop_path", 1.5, "drop_path"),
        ("spatial_heads", 3, "spatial_heads"),
    ],
)
def test_bad_model_values_name_the_field(field, value, words):
    with pytest.raises(ConfigError, match=words):
        ModelConfig(**{field: value})


def test_bad_train_values_name_the_field():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="MachineConfig.device"):
        MachineConfig(device="gpu0")
    with pytest.raises(ConfigError, match="class_weighting"):
        TrainConfig(class_weighting="inverse")


def test_the_recipe_and_the_machine_are_apart():
    """A record from before the split (one dict with both) still reads; the recipe alone
    refuses a machine field and says where it belongs."""
    recipe, machine = split_train_record({"epochs": 3, "device": "cpu", "compile": "aot_eager"})
    assert recipe == TrainConfig(epochs=3)
    assert machine == MachineConfig(device="cpu", compile="aot_eager")
    assert not {"device", "amp", "compile"} & set(TrainConfig().to_dict())
    with pytest.raises(ConfigError, match="device: machine settings"):
        TrainConfig.from_dict({"epochs": 3, "device": "cpu"})
    with pytest.raises(ConfigError, match="unknown MachineConfig field"):
        MachineConfig.from_dict({"lr": 0.1})


def test_round_trip_and_unknown_fields():
    cfg = preset("tiny", fusion="s2t", temporal_depth=7)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="retnet_depth"):
        ModelConfig.from_dict({"retnet_depth": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
    train = TrainConfig(epochs=3, class_weighting="balanced")
    assert TrainConfig.from_dict(train.to_dict()) == train


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        ModelConfig().fusion = "early"  # type: ignore[misc]
