"""Cross-dataset protocols of the composite (tsfmicro.datasets.cross): the fold key column,
the parts they need, and the errors that name what is wrong. Tiny fake copies, no faces."""

from __future__ import annotations

import json

import pytest

from tsfmicro import cli
from tsfmicro.commands import datasets as datasets_command
from tsfmicro.datasets import get_protocol, list_protocols, load_dataset
from tsfmicro.datasets.base import make_protocol
from tsfmicro.datasets.cross import FOLD_COLUMN, parse, shared_classes
from tsfmicro.errors import DataError

CASME2_ROWS = [
    dict(subject="sub01", clip="EP01_01", onset=10, apex=12, offset=14, emotion="happiness"),
    dict(subject="sub01", clip="EP01_02", onset=10, apex=12, offset=14, emotion="others"),
    dict(subject="sub02", clip="EP02_01", onset=20, apex=22, offset=24, emotion="disgust"),
    dict(subject="sub02", clip="EP02_02", onset=30, apex=32, offset=34, emotion="surprise"),
]
SAMM_ROWS = [
    dict(subject="006", clip="006_1_2", onset=5, apex=7, offset=9, emotion="Anger"),
    dict(subject="007", clip="007_1_1", onset=5, apex=7, offset=9, emotion="Happiness"),
    dict(subject="007", clip="007_1_2", onset=5, apex=7, offset=9, emotion="Contempt"),
]


@pytest.fixture
def parts(ds_write_copy, tmp_path):
    """A composite folder with a CASME II and a SAMM part, two subjects each."""
    ds_write_copy("casme2", CASME2_ROWS, name="parts/casme2")
    ds_write_copy("samm", SAMM_ROWS, name="parts/samm", gray=True)
    return tmp_path / "parts"


def test_lodo_holds_out_each_part_by_its_dataset(parts):
    table = load_dataset("composite", parts, protocol="lodo")
    samples = table.samples
    assert table.protocol.id == "composite-lodo"
    assert table.class_names == ("negative", "positive", "surprise")
    assert (samples[FOLD_COLUMN] == samples["dataset"]).all()
    assert samples.groupby(FOLD_COLUMN).size().to_dict() == {"casme2": 3, "samm": 3}
    assert sorted(samples["subject"].unique()) == [
        "casme2/sub01",
        "casme2/sub02",
        "samm/006",
        "samm/007",
    ]


def test_train_on_one_dataset_test_on_another(parts):
    table = load_dataset("composite", parts, protocol="casme2-to-samm")
    samples = table.samples
    assert table.protocol.id == "composite-casme2-to-samm"
    held = samples[samples[FOLD_COLUMN] != ""]
    assert set(held["dataset"]) == {"samm"} and set(held[FOLD_COLUMN]) == {"samm"}
    assert (samples.loc[samples["dataset"] == "casme2", FOLD_COLUMN] == "").all()
    assert samples["label_name"].tolist() == [
        "positive",
        "negative",
        "surprise",
        "negative",
        "positive",
        "negative",
    ]
    assert table.report.dropped_by_protocol == {"casme2/others": 1}


def test_own_protocols_keep_only_the_classes_both_share(parts):
    table = load_dataset("composite", parts, protocol="casme2:5class-to-samm:5class")
    assert table.class_names == ("happiness", "surprise")
    assert table.samples.groupby("dataset").size().to_dict() == {"casme2": 2, "samm": 1}
    dropped = table.report.dropped_by_protocol
    assert dropped["casme2/disgust (not shared)"] == 1 and dropped["samm/anger (not shared)"] == 1


def test_a_missing_part_is_named_with_the_folder(ds_write_copy, tmp_path):
    ds_write_copy("casme2", CASME2_ROWS, name="only/casme2")
    with pytest.raises(DataError, match=r"needs the part\(s\) samm.*parts found: casme2") as exc:
        load_dataset("composite", tmp_path / "only", protocol="casme2-to-samm")
    assert str(tmp_path / "only") in str(exc.value)
    with pytest.raises(DataError, match="at least two parts; found casme2"):
        load_dataset("composite", tmp_path / "only", protocol="lodo")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("casme9-to-samm", "unknown dataset 'casme9'"),
        ("casme2-to-samm:9class", "SAMM has no protocol '9class'"),
        ("samm-to-samm", "names samm more than once"),
        ("casme2-to-samm+mmew", "one test dataset"),
    ],
)
def test_bad_names_say_what_is_wrong(name, message):
    with pytest.raises(DataError, match=message):
        get_protocol("composite", name)


def test_no_shared_class_names_both_datasets():
    a = make_protocol("a", "x", {"happy": ("happy",), "sad": ("sad",)})
    b = make_protocol("b", "y", {"joy": ("joy",), "fear": ("fear",)})
    with pytest.raises(DataError, match=r"a and b share no class \(a x: happy, sad; b y: joy"):
        shared_classes("a-to-b", {"a": a, "b": b})
    c = make_protocol("c", "z", {"sad": ("sad",), "joy": ("joy",)})
    with pytest.raises(DataError, match="share only 'sad'"):
        shared_classes("a-to-c", {"a": a, "c": c})
    d = make_protocol("d", "w", {"fear": ("fear",), "joy": ("joy", "glee")})
    assert shared_classes("b-to-d", {"b": b, "d": d}) == ("fear", "joy")  # the test's order
    assert parse("casme2+mmew-to-samm").train == (("casme2", "3class"), ("mmew", "3class"))


def test_lodo_is_listed_and_inspect_counts_the_folds(parts, monkeypatch, capsys):
    assert "lodo" in [p.name for p in list_protocols("composite")]
    monkeypatch.setattr(cli, "_subcommands", lambda: [datasets_command.add_parser])
    code = cli.main(["datasets", "inspect", "--dataset", "composite", "--protocol",
                     "casme2-to-samm", "--json", str(parts)])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["per_fold"] == {"samm": 3, "train only": 3}
    code = cli.main(["datasets", "inspect", "--dataset", "composite", "--protocol",
                     "casme2-to-smicx", str(parts)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "unknown dataset 'smicx'" in err and "Traceback" not in err
