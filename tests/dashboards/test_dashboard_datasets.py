"""The dashboard's per-dataset leaderboards and overview list every protocol a search can run,
here SMIC-HS, the MEGC 2019 composite (pooled: a per-part column) and leave-one-dataset-out
(cross-dataset: a held-out column), from trial runs the search's own MLflow callback wrote
(dash_datasets_store: no Ray, no training)."""

from __future__ import annotations

import pytest
from dashboard_support import DATASETS_SEARCHES, app_test

from dashboards import tables
from search.schema import held_out_metric, part_metric

pytestmark = pytest.mark.slow


def _cell(metrics: dict, name, datasets: tuple[str, ...]) -> str:
    return ", ".join(f"{d} {metrics[name(d, 'final', 'uf1')]:.3f}" for d in datasets)


def test_per_dataset_leaderboards_show_smic_megc2019_and_lodo(dash_datasets_store, monkeypatch):
    store, runs = dash_datasets_store
    client = store.client()
    at = app_test(store.uri, monkeypatch).run()
    assert not at.exception, [e.message for e in at.exception]
    headers = [s.value for s in at.subheader]
    for dataset, protocol in DATASETS_SEARCHES:
        assert f"{dataset} / {protocol}" in headers
    boards = {}  # run id -> the leaderboard (and its visible columns) that holds it
    for frame in at.dataframe:
        if "details" in frame.value.columns:
            for run_id in frame.value["run_id"].dropna():
                boards[run_id] = (frame.value, list(frame.proto.column_order))
    parts = ("casme2", "samm", "smic")

    pooled, shown = boards[runs["megc2019"][0]]
    assert set(pooled["run_id"].dropna()) == set(runs["megc2019"])  # its own table, 2 trials
    assert tables.PARTS_COLUMN in shown and tables.HELD_OUT_COLUMN not in pooled.columns
    for run_id in runs["megc2019"]:
        row = pooled[pooled["run_id"] == run_id].iloc[0]
        assert row[tables.PARTS_COLUMN] == _cell(client.get_run(run_id).data.metrics,
                                                 part_metric, parts)  # fmt: skip

    lodo, shown = boards[runs["lodo"][0]]
    assert tables.HELD_OUT_COLUMN in shown and tables.PARTS_COLUMN not in lodo.columns
    row = lodo[lodo["run_id"] == runs["lodo"][0]].iloc[0]
    assert row[tables.HELD_OUT_COLUMN] == _cell(client.get_run(runs["lodo"][0]).data.metrics,
                                                 held_out_metric, parts)  # fmt: skip

    smic, _ = boards[runs["hs"][0]]
    assert not {tables.PARTS_COLUMN, tables.HELD_OUT_COLUMN} & set(smic.columns)

    at.switch_page("views/overview.py").run()
    assert not at.exception, [e.message for e in at.exception]
    overview = next(d.value for d in at.dataframe if "best trial" in d.value.columns)
    listed = set(zip(overview["dataset"], overview["protocol"], strict=True))
    assert set(DATASETS_SEARCHES) <= listed
