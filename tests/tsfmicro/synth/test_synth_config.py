"""The synthetic benchmark's configuration and its emotion -> action unit table (no images)."""

from __future__ import annotations

import numpy as np
import pytest

from tsfmicro.datasets import get_adapter, list_datasets
from tsfmicro.errors import ConfigError, DataError
from tsfmicro.synth.aus import (
    ACTION_UNITS,
    EMOTION_AUS,
    action_field,
    canonical_emotion,
    choose_actions,
    format_aus,
    parse_aus,
)
from tsfmicro.synth.config import PRESETS, SynthConfig
from tsfmicro.synth.plan import plan_dataset
from tsfmicro.synth.seeding import rng_for

SINGLE_DATASETS = [name for name in list_datasets() if name != "composite"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subjects": 0}, "subjects must be a positive integer"),
        ({"clips_per_subject": -2}, "clips_per_subject must be a positive integer"),
        ({"dataset": "smicx"}, "unknown dataset 'smicx'"),
        ({"layout": "aligned"}, "CASME II has no layout 'aligned'"),
        ({"difficulty": "insane"}, "difficulty='insane'"),
        ({"classes": ("happiness", "boredom")}, "unknown class 'boredom' for CASME II"),
        ({"classes": ()}, "classes is empty"),
        ({"classes": ("happiness", "Happiness")}, "given twice"),
        ({"amplitude_px": -1.0}, "amplitude_px must be >= 0"),
        ({"frame_size": (32, 240)}, "both sides must be >= 64"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
    ],
)
def test_bad_config_names_the_field(changes, message):
    with pytest.raises((ConfigError, DataError), match=message):
        SynthConfig(**changes)


def test_classes_take_the_datasets_spelling():
    config = SynthConfig(dataset="casme3", classes=("Happiness", "sadness", "Others"))
    assert config.classes == ("happy", "sad", "others")
    samm = SynthConfig(dataset="samm", classes=("others", "anger"))
    assert samm.classes == ("other", "anger")


def test_default_classes_are_the_default_protocols():
    assert SynthConfig().class_labels() == (
        "happiness",
        "repression",
        "disgust",
        "surprise",
        "others",
    )
    assert SynthConfig(dataset="samm").class_labels() == (
        "anger",
        "contempt",
        "happiness",
        "surprise",
        "other",
    )
    assert len(SynthConfig(dataset="mmew").class_labels()) == 7


def test_levels_follow_the_preset_unless_set():
    hard = SynthConfig(difficulty="hard").levels()
    assert hard == PRESETS["hard"]
    mixed = SynthConfig(difficulty="easy", amplitude_px=1.5, noise_std=0.0).levels()
    assert mixed.amplitude_px == 1.5 and mixed.noise_std == 0.0
    assert mixed.blink_rate_hz == PRESETS["easy"].blink_rate_hz
    amplitudes = [PRESETS[name].amplitude_px for name in ("easy", "medium", "hard")]
    assert amplitudes == sorted(amplitudes, reverse=True)


def test_layout_defaults():
    assert SynthConfig().look().frame_size == (320, 240)
    assert SynthConfig(layout="cropped").look().face_fraction > SynthConfig().look().face_fraction
    assert SynthConfig(dataset="samm").look().grayscale
    assert SynthConfig(dataset="samm", grayscale=False, frame_size=(100, 80)).look() == (
        SynthConfig(dataset="samm", grayscale=False, frame_size=(100, 80)).look()
    )
    assert SynthConfig(frame_size=(100, 80)).look().frame_size == (100, 80)


@pytest.mark.parametrize("dataset", SINGLE_DATASETS)
def test_every_emotion_a_loader_knows_has_action_units(dataset):
    for emotion in get_adapter(dataset).emotions:
        assert canonical_emotion(emotion) in EMOTION_AUS, (dataset, emotion)


@pytest.mark.parametrize("dataset", SINGLE_DATASETS)
def test_classes_of_a_protocol_have_different_core_aus(dataset):
    """Within each protocol, no two classes render the same required AUs, and 'others'
    uses AUs no other class uses, so every class is a coherent and distinct motion."""
    for protocol in get_adapter(dataset).protocols:
        cores = {}
        for name, group in protocol.classes:
            for emotion in group:
                spec = EMOTION_AUS[canonical_emotion(emotion)]
                cores[(name, emotion)] = (frozenset(spec.required), spec.unilateral)
        by_core = {}
        for key, core in cores.items():
            by_core.setdefault(core, set()).add(key[0])
        assert all(len(names) == 1 for names in by_core.values()), (protocol.id, by_core)
    others = set(EMOTION_AUS["others"].pick_from)
    used = {
        au
        for name, spec in EMOTION_AUS.items()
        if name != "others"
        for au in spec.required + spec.optional
    }
    assert others and not others & used


def test_choose_actions_is_seeded_and_respects_the_table():
    first = choose_actions("happy", rng_for(0, "x"))
    assert first == choose_actions("happy", rng_for(0, "x"))
    seen = set()
    for i in range(40):
        actions = choose_actions("contempt", rng_for(0, i))
        assert {a.au for a in actions} <= {12, 14} and 14 in {a.au for a in actions}
        assert len({a.side for a in actions}) == 1 and actions[0].side != "both"
        seen.add(actions[0].side)
        assert all(0.7 <= a.intensity <= 1.0 for a in actions)
        core = choose_actions("surprise", rng_for(1, i), optional=False)
        assert [a.au for a in core] == [1, 2]
    assert seen == {"left", "right"}


def test_au_strings_round_trip():
    actions = parse_aus("4+7+L10")
    assert [(a.au, a.side) for a in actions] == [(4, "both"), (7, "both"), (10, "right")]
    assert format_aus(parse_aus("R12A+R14A")) == "R12+R14"
    assert [a.intensity for a in parse_aus("R12A+14E")] == pytest.approx([0.6, 1.0])
    assert parse_aus("43+61+unknown") == ()  # AUs we do not draw are skipped


def test_action_field_peaks_at_one_where_the_au_acts():
    landmarks = np.array([[40.0, 50], [80, 50], [60, 75], [45, 95], [75, 95]])
    field = action_field(landmarks, parse_aus("12"), (140, 120))
    magnitude = np.hypot(field[..., 0], field[..., 1])
    assert magnitude.max() == pytest.approx(1.0)
    row, col = np.unravel_index(magnitude.argmax(), magnitude.shape)
    corners = landmarks[3:]
    assert np.hypot(*(corners - (col, row)).T).min() < 8  # at a mouth corner
    assert field[95, 75, 1] < 0 and field[95, 75, 0] > 0  # right corner goes up and out
    assert set(ACTION_UNITS) >= {1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45}


@pytest.mark.parametrize("dataset", SINGLE_DATASETS)
def test_generated_plan_is_balanced_and_timed_at_the_frame_rate(dataset):
    config = SynthConfig(dataset=dataset, subjects=3, clips_per_subject=14)
    plan = plan_dataset(config)
    table = plan.annotation
    classes = config.class_labels()
    for _, rows in table.groupby("subject"):
        counts = rows["emotion"].value_counts()
        assert set(counts.index) == set(classes)
        assert counts.max() - counts.min() <= 1  # balanced per subject
    fps = get_adapter(dataset).fps
    length = (table["offset"] - table["onset"]) / fps
    assert length.between(0.19, 0.51).all()
    assert ((table["onset"] < table["apex"]) & (table["apex"] < table["offset"])).all()
    assert table[["subject", "clip"]].drop_duplicates().shape[0] == len(table)
    frames = 3 if dataset == "smic" else 2  # SMIC: onset, apex and offset (no annotation)
    assert all(len(clip.frames) == frames for clip in plan.clips)
