"""Per-dataset scores of a search's trials, written by the search's own MLflow callback
(search.tracking.MlflowTracker) for random fold predictions, without Ray or training (the
shared dash_datasets_store, dashboard_support.searched_trials): a pooled multi-dataset protocol
(the composite's megc2019) logs each part's ACC/UF1/UAR as part/<dataset>/<mode>_<metric>, a
cross-dataset one (lodo) each held-out dataset's as held_out/..., a single dataset neither; the
CLI leaderboards show them. Slow only for the shared store's creation (~40 s at load 30)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from search.leaderboard import format_compact_leaderboard, format_leaderboard, leaderboard
from search.schema import Tag, part_metric
from tsfmicro import metrics as M

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(dash_datasets_store):
    """(uri, client, {protocol: trial runs}) of the shared per-dataset store."""
    found, ids = dash_datasets_store
    client = found.client()
    return found.uri, client, {p: [client.get_run(r) for r in runs] for p, runs in ids.items()}


def test_a_pooled_trial_logs_each_parts_own_scores(store, tmp_path):
    uri, client, runs = store
    run = runs["megc2019"][0]
    assert run.data.tags[Tag.STATE] == "complete"
    assert run.data.tags[Tag.PARTS] == "casme2,samm,smic" and Tag.HELD_OUT not in run.data.tags
    # each part's figures equal its own samples' scores in the predictions the trial logged
    path = client.download_artifacts(run.info.run_id, "predictions.parquet", str(tmp_path))
    pred = pd.read_parquet(path)
    for mode in ("final", "published-oracle"):
        rows = pred[pred["mode"] == mode]
        for part in ("casme2", "samm", "smic"):
            own = rows[rows["key"].str.startswith(part + "/")]
            cm = M.confusion_matrix(own["label"].to_numpy(), own["pred"].to_numpy(), 3)
            acc = M.scores(M.confusion_matrix(own["label"].to_numpy(),
                                              own["acc_pred"].to_numpy(), 3))["acc"]  # fmt: skip
            m = run.data.metrics
            assert m[part_metric(part, mode, "uf1")] == pytest.approx(M.scores(cm)["uf1"])
            assert m[part_metric(part, mode, "uar")] == pytest.approx(M.scores(cm)["uar"])
            assert m[part_metric(part, mode, "acc")] == pytest.approx(acc)


def test_cross_dataset_and_single_dataset_trials_log_no_parts(store):
    _, _, runs = store
    lodo = runs["lodo"][0].data
    assert lodo.tags[Tag.HELD_OUT] == "casme2,samm,smic" and Tag.PARTS not in lodo.tags
    assert {k.split("/")[0] for k in lodo.metrics if "/" in k} == {"held_out"}
    assert np.isfinite(lodo.metrics["held_out/samm/final_uf1"])
    single = runs["hs"][0].data
    assert Tag.PARTS not in single.tags and Tag.HELD_OUT not in single.tags
    assert not [k for k in single.metrics if k.startswith(("part/", "held_out/"))]


def test_the_cli_leaderboards_show_a_per_part_column(store):
    uri, _, runs = store
    board = leaderboard(uri, "tsfmicro/composite/megc2019")
    assert sorted(board["parts"]) == ["casme2,samm,smic"] * 2
    text = format_leaderboard(board, "final", "uar")
    m = runs["megc2019"][0].data.metrics
    cell = ", ".join(f"{p} {m[part_metric(p, 'final', 'uar')]:.3f}"
                     for p in ("casme2", "samm", "smic"))  # fmt: skip
    assert "per part (UAR)" in text and cell in text and "held out" not in text
    # the end-of-search board keeps the per-part column too
    assert "per part (UF1)" in format_compact_leaderboard(board)
    lodo = runs["lodo"][0].data.metrics
    text = format_leaderboard(leaderboard(uri, "tsfmicro/composite/lodo"))
    cell = ", ".join(f"{p} {lodo[f'held_out/{p}/final_uf1']:.3f}"
                     for p in ("casme2", "samm", "smic"))  # fmt: skip
    assert "held out (UF1)" in text and cell in text and "per part" not in text
    hs = format_leaderboard(leaderboard(uri, "tsfmicro/smic/hs"))
    assert "per part" not in hs and "held out" not in hs
