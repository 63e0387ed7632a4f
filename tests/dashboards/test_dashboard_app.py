"""Every dashboard page under streamlit.testing's AppTest, against a real MLflow store filled by
a small real search (dash_store): no exception, and the tables hold what MLflow holds."""

from __future__ import annotations

import time
import zipfile
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from dashboard_support import (
    CLASSES,
    EMPTY_EXPERIMENT,
    EXPERIMENT,
    MODEL,
    NESTED_EXPERIMENT,
    NESTED_SEARCH,
    SEARCH,
    SUBJECTS,
    app_test,
)

from search.schema import KIND_TRIAL, STATE_FAILED, Tag, score_metric

from services import free_port, mlflow_server

pytestmark = pytest.mark.slow

PAGES = ["views/leaderboard.py", "views/overview.py", "views/trial.py", "views/search.py",
         "views/registry.py"]
LEADERBOARD_COLUMNS = {"rank", "source", "mode", "trial", "search", "fusion", "temporal_depth",
                       "spatial_depth", "lr", "ACC", "ACC 95% CI", "UF1", "UF1 95% CI", "UAR",
                       "UAR 95% CI", "started", "run_id", "details"}


def no_exception(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def tables(at) -> list:
    return [d.value for d in at.dataframe]


def table(at, *columns: str):
    """The first table on the page that has all these columns (tables carry no key)."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert found, f"no table with columns {columns}"
    return found[0]


def charts(at) -> list:
    return list(at.get("vega_lite_chart"))


def expected_final_ranking(store) -> list[str]:
    runs = store.trial_runs("complete")
    runs.sort(key=lambda r: (-r.data.metrics["final_uf1"], r.info.start_time))
    return [r.info.run_id for r in runs]


def test_the_search_left_complete_trials_with_every_mode(dash_store):
    complete = dash_store.trial_runs("complete")
    assert len(complete) >= 2
    for run in complete:
        assert {"final_uf1", "val_uf1", "oracle_uf1"} <= set(run.data.metrics)


def test_leaderboard_ranks_complete_trials_with_intervals(dash_store, monkeypatch):
    at = app_test(dash_store.uri, monkeypatch).run()
    no_exception(at)
    board = table(at, "details")
    assert LEADERBOARD_COLUMNS <= set(board.columns)
    measured = board[board["source"] == "measured here"]
    assert measured["run_id"].tolist() == expected_final_ranking(dash_store)
    assert measured["rank"].tolist() == list(range(1, len(measured) + 1))
    assert set(measured["mode"]) == {"final (leak-free)"}
    assert set(measured["search"]) == {SEARCH}
    truth = {r.info.run_id: r.data.metrics for r in dash_store.trial_runs("complete")}
    for _, row in measured.iterrows():
        m = truth[row["run_id"]]
        assert row["UF1"] == pytest.approx(m["final_uf1"])
        assert row["ACC"] == pytest.approx(m["final_acc"])
        assert row["UF1 95% CI"] == f"{m['final_uf1_ci_lo']:.2f}–{m['final_uf1_ci_hi']:.2f}"
    # The synthetic set has no published figure: no reference row mixed into its table ...
    assert (board["source"] == "measured here").all()
    # ... but the published figures are listed, marked as reported, unknown cells empty.
    refs = table(at, "selection", "note")
    casme = refs[(refs["dataset"] == "casme2") & (refs["protocol"] == "5class")]
    assert sorted(casme["ACC"]) == [0.8225, 0.875]
    assert casme["UF1"].isna().all() and casme["UAR"].isna().all()
    assert refs["source"].str.contains("2505.16372").all()


def test_leaderboard_marks_trials_tied_with_their_search_best(dash_store, monkeypatch):
    at = app_test(dash_store.uri, monkeypatch).run()
    no_exception(at)
    board = table(at, "details")
    assert "vs search best" in board.columns
    truth = {r.info.run_id: r.data.metrics for r in dash_store.trial_runs("complete")}
    marks = dict(zip(board["run_id"], board["vs search best"], strict=True))
    best = expected_final_ranking(dash_store)[0]
    assert marks[best] == "best"  # the search's champion
    for run_id, mark in marks.items():
        m = truth[run_id]
        if m["tie_diff"] == m["tie_diff_ci_lo"] == m["tie_diff_ci_hi"] == 0:
            assert mark == "best"  # the champion (or a trial predicting exactly as it does)
            continue
        word = "tied" if m["tied_with_best"] == 1.0 else "below"
        assert mark == (f"{word}: {m['tie_diff']:+.3f} [{m['tie_diff_ci_lo']:+.2f}, "
                        f"{m['tie_diff_ci_hi']:+.2f}]")
        assert (m["tie_diff_ci_lo"] <= 0 <= m["tie_diff_ci_hi"]) == (word == "tied")
    assert any("vs search best" in c.value and "tied" in c.value for c in at.caption)


def test_leaderboard_mode_filter_marks_oracle_rows_optimistic(dash_store, monkeypatch):
    at = app_test(dash_store.uri, monkeypatch).run()
    at.multiselect(key="lb_modes").set_value(["final", "oracle"]).run()
    no_exception(at)
    board = table(at, "details")
    n = len(dash_store.trial_runs("complete"))
    assert (board["mode"] == "oracle ⚠ optimistic").sum() == n
    assert (board["mode"] == "final (leak-free)").sum() == n
    assert any("optimistic" in w.value for w in at.warning)
    oracle = board[board["mode"] == "oracle ⚠ optimistic"]
    truth = {r.info.run_id: r.data.metrics["oracle_uf1"] for r in dash_store.trial_runs()
             if "oracle_uf1" in r.data.metrics}
    assert oracle["UF1"].tolist() == sorted(oracle["UF1"], reverse=True)
    assert all(row.UF1 == pytest.approx(truth[row.run_id]) for row in oracle.itertuples())


def test_leaderboard_filters_by_fusion_and_search(dash_store, monkeypatch):
    complete = dash_store.trial_runs("complete")
    fusion = complete[0].data.params["fusion"]
    at = app_test(dash_store.uri, monkeypatch).run()
    at.multiselect(key="lb_fusions").set_value([fusion]).run()
    no_exception(at)
    board = table(at, "details")
    assert set(board["fusion"]) == {fusion}
    assert len(board) == sum(r.data.params["fusion"] == fusion for r in complete)
    at.multiselect(key="lb_fusions").set_value([])
    at.multiselect(key="lb_searches").set_value([SEARCH]).run()
    assert len(table(at, "details")) == len(complete)
    at.toggle(key="lb_date_on").set_value(True).run()
    day = datetime.fromtimestamp(complete[0].info.start_time / 1000, UTC).date()
    at.date_input(key="lb_dates").set_value((day, day)).run()
    assert len(table(at, "details")) == sum(
        datetime.fromtimestamp(r.info.start_time / 1000, UTC).date() == day for r in complete)
    later = day + timedelta(days=1)
    at.date_input(key="lb_dates").set_value((later, later)).run()
    no_exception(at)
    assert not [d for d in at.dataframe if "details" in d.value.columns]
    assert any("No complete trial matches" in i.value for i in at.info)


def test_empty_experiment_gets_a_plain_message(dash_store, monkeypatch):
    at = app_test(dash_store.uri, monkeypatch).run()
    no_exception(at)
    assert any(EMPTY_EXPERIMENT in i.value and "no trial runs" in i.value for i in at.info)


def test_not_ranked_trials_are_listed_with_their_reason(dash_store, tmp_path, monkeypatch):
    store = dash_store.copy(tmp_path / "copy")
    client = store.client()
    exp = client.get_experiment_by_name(EXPERIMENT)
    run = client.create_run(exp.experiment_id, tags={
        Tag.KIND: KIND_TRIAL, Tag.SEARCH: SEARCH, Tag.TRIAL_ID: "deadbeef",
        Tag.DATASET: "synthetic-casme2", Tag.PROTOCOL: "5class", Tag.STATE: STATE_FAILED,
        Tag.REASON: "Traceback ...\nRuntimeError: CUDA out of memory (test)"})
    # a partial score must not rank
    client.log_metric(run.info.run_id, score_metric("final", "uf1"), 0.99)
    client.set_terminated(run.info.run_id, "FAILED")

    at = app_test(store.uri, monkeypatch).run()
    no_exception(at)
    board = table(at, "details")
    assert run.info.run_id not in set(board["run_id"])
    skipped = table(at, "reason")
    row = skipped[skipped["run_id"] == run.info.run_id].iloc[0]
    assert row["state"] == "failed"
    assert row["reason"] == "RuntimeError: CUDA out of memory (test)"

    at.query_params["run"] = run.info.run_id
    at.switch_page("views/trial.py").run()
    no_exception(at)
    assert any("failed" in w.value and "not a result" in w.value for w in at.warning)


def test_overview_shows_the_best_trial_per_experiment(dash_store, monkeypatch):
    at = app_test(dash_store.uri, monkeypatch).run()
    at.switch_page("views/overview.py").run()
    no_exception(at)
    overview = table(at, "best trial")
    best = overview[overview["dataset"] == "synthetic-casme2"].iloc[0]
    assert best["run_id"] == expected_final_ranking(dash_store)[0]
    assert best["complete trials"] == len(dash_store.trial_runs("complete"))
    empty = overview[overview["dataset"] == "empty-set"].iloc[0]
    assert empty["best trial"] == "no trials yet"
    assert len(charts(at)) == 1


def test_trial_page_shows_a_trials_results(dash_store, monkeypatch):
    best = expected_final_ranking(dash_store)[0]
    at = app_test(dash_store.uri, monkeypatch)
    at.query_params["run"] = best
    at.run()
    at.switch_page("views/trial.py").run()
    no_exception(at)
    assert at.selectbox(key="tr_run").value == best
    assert any(c.value == best for c in at.code)  # the MLflow run id, to copy
    scores = table(at, "ACC fold mean")
    assert scores["mode"].tolist() == ["final (leak-free)", "val (leak-free)",
                                       "oracle ⚠ optimistic", "published-oracle ⚠ optimistic"]
    metrics = dash_store.client().get_run(best).data.metrics
    assert scores["UF1"].iloc[0] == pytest.approx(metrics["final_uf1"])
    params = table(at, "parameter", "searched")
    assert {"fusion", "temporal_depth", "lr", "epochs"} <= set(params["parameter"])
    assert params[params["parameter"] == "epochs"]["value"].iloc[0] == "2"
    per_class = table(at, "recall", "precision")
    assert per_class["class"].tolist() == list(CLASSES)
    assert per_class["recall"].tolist() == pytest.approx(
        [metrics[f"final_recall_{c}"] for c in CLASSES])
    assert len(table(at, "subject", "n", "uf1")) == SUBJECTS
    folds = table(at, "host", "Ray node", "oracle_epoch")
    assert len(folds) == SUBJECTS
    client = dash_store.client()
    runs = {r.data.params["subject"]: r.data.params for r in client.search_runs(
        [client.get_run(best).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{best}' and tags.`tsfmicro.kind` = 'fold'")}
    for row in folds.to_dict("records"):  # the host each fold ran on, not a hex node id
        assert row["host"] == runs[row["subject"]]["host"] and row["host"]
        assert row["Ray node"] == runs[row["subject"]]["worker"][:8]
    assert len(charts(at)) == 5  # per class, confusion, per subject, curves, partial objective

    at.radio(key="tr_mode").set_value("oracle").run()
    no_exception(at)
    per_class = table(at, "recall", "precision")
    assert per_class["recall"].tolist() == pytest.approx(
        [metrics[f"oracle_recall_{c}"] for c in CLASSES])


def test_search_page_analyses_the_search(dash_store, monkeypatch):
    at = app_test(dash_store.uri, monkeypatch).run()
    at.switch_page("views/search.py").run()
    no_exception(at)
    runs = dash_store.trial_runs()
    assert at.metric[0].value == str(len(runs))
    assert at.metric[1].value == str(len(dash_store.trial_runs("complete")))
    importance = table(at, "η² (variance share)")
    assert {"temporal_depth", "spatial_depth", "fusion", "lr"} == set(importance["parameter"])
    assert "η² (variance share)" in importance
    fusion = table(at, "median", "best")
    assert fusion["trials"].sum() == len(dash_store.trial_runs("complete"))
    gap = table(at, "gap (oracle - final)")
    assert (gap["gap (oracle - final)"] == gap["oracle"] - gap["final"]).all()
    assert (gap["gap (oracle - final)"] >= -1e-9).all()  # oracle picks the best epoch
    assert len(charts(at)) == 7  # intervals, best so far x2, parallel, importance, fusion, gap


def search_run(store):
    client = store.client()
    exp = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([exp.experiment_id], filter_string=(
        f"tags.`tsfmicro.kind` = 'search' and tags.`tsfmicro.search` = '{SEARCH}'"))
    return run


def test_search_page_shows_search_best_bias_corrected_and_nested(dash_store, monkeypatch):
    run = search_run(dash_store)
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    at = app_test(dash_store.uri, monkeypatch).run()
    at.switch_page("views/search.py").run()
    no_exception(at)
    shown = {x.label: x.value for x in at.metric}
    assert shown["search-best ⚠ optimistic"] == f"{m['search_best_uf1']:.3f}"
    assert shown["bias-corrected (BBC-CV)"] == f"{m['bbc_uf1']:.3f}"
    assert shown["nested"] == "not run"
    assert m["search_best_uf1"] == pytest.approx(max(
        r.data.metrics["final_uf1"] for r in dash_store.trial_runs("complete")))
    figures = table(at, "figure", "what it means")
    assert figures["figure"].tolist() == ["search-best ⚠ optimistic",
                                          "bias-corrected (BBC-CV)", "nested"]
    assert figures["UF1"].iloc[1] == pytest.approx(m["bbc_uf1"])
    assert figures["UF1 95% CI"].tolist()[1:] == [
        f"[{m['bbc_uf1_ci_lo']:.3f}, {m['bbc_uf1_ci_hi']:.3f}]", "not run"]
    captions = " ".join(c.value for c in at.caption)
    assert f"UF1 95% CI [{m['bbc_uf1_ci_lo']:.3f}, {m['bbc_uf1_ci_hi']:.3f}]" in captions
    assert "biased up" in captions and "the figure to report" in captions
    assert "Not run for this search" in captions
    assert f"{int(m['n_tied'])} of {int(m['n_trials'])} trials are tied" in captions

    at.radio(key="se_metric").set_value("acc").run()
    no_exception(at)
    shown = {x.label: x.value for x in at.metric}
    assert shown["bias-corrected (BBC-CV)"] == f"{m['bbc_acc']:.3f}"


def test_registry_page_shows_the_champion_and_how_to_pull_it(dash_store, monkeypatch):
    at = app_test(dash_store.uri, monkeypatch).run()
    at.switch_page("views/registry.py").run()
    no_exception(at)
    champion = dash_store.client().get_model_version_by_alias(MODEL, "champion")
    assert any(f"champion: version {champion.version}" in m.value for m in at.markdown)
    code = [c.value for c in at.code]
    v = champion.version
    assert any(f'mlflow.pyfunc.load_model("models:/{MODEL}/{v}")' in c for c in code)
    assert any(c.startswith(f"tsfmicro pull {MODEL}/{v} --tracking-uri {dash_store.uri}\n")
               for c in code)
    assert any(f"mlflow models serve -m models:/{MODEL}/{v}" in c for c in code)
    assert any(f"`{MODEL}@champion`" in c.value for c in at.caption)
    shown = {m.label: m.value for m in at.metric}
    assert shown["final UF1"] == f"{float(champion.tags['final_uf1']):.3f}"
    versions = table(at, "aliases")
    assert versions["aliases"].iloc[0] == "champion"
    assert len(at.get("download_button")) == 1


def test_registry_code_loads_the_version(dash_store, monkeypatch, tmp_path):
    """The registry page's pyfunc code, run as shown, loads the version it names and predicts
    on a real onset/apex pair of the search's data."""
    at = app_test(dash_store.uri, monkeypatch).run()
    at.switch_page("views/registry.py").run()
    no_exception(at)
    (python,) = [c.value for c in at.code if "mlflow.pyfunc.load_model" in c.value]
    clip = sorted((dash_store.folder / "data").rglob("*.jpg"))[0].parent
    frames = sorted(clip.glob("*.jpg"))  # one clip's first frames: an onset and a later one
    assert len(frames) >= 2, "the synthetic set's frames"
    python = python.replace('"onset.jpg"', repr(str(frames[0]))).replace(
        '"apex.jpg"', repr(str(frames[1])))
    namespace: dict = {"print": lambda *a: None}
    monkeypatch.chdir(tmp_path)
    exec(compile(python, "<registry page>", "exec"), namespace)
    prediction = namespace["model"].predict(namespace["pairs"])
    assert set(CLASSES) <= set(prediction.columns) and prediction["label"].iloc[0] in CLASSES


def test_registry_page_shows_the_serve_code_of_the_version(dash_store, monkeypatch):
    """The registry page shows the `mlflow models serve` and `curl` lines of
    `tables.load_code` for the version it selects; tests/search/test_search_portable.py runs
    exactly those lines by bash (a real `--env-manager uv` environment and server, once)."""
    from dashboards.tables import load_code

    at = app_test(dash_store.uri, monkeypatch).run()
    at.switch_page("views/registry.py").run()
    no_exception(at)
    (code,) = [c.value for c in at.code if "mlflow models serve" in c.value]
    version = dash_store.client().get_model_version_by_alias(MODEL, "champion").version
    assert code == load_code(MODEL, version, dash_store.uri)["serve"]
    assert "--env-manager uv" in code and "curl " in code


def test_every_table_draws_missing_values_as_empty_cells(dash_store, monkeypatch):
    """Streamlit draws a missing value as "None" unless told otherwise: every table on every
    page is told to leave it empty."""
    at = app_test(dash_store.uri, monkeypatch).run()
    seen = 0
    for page in PAGES:
        at.switch_page(page).run()
        no_exception(at)
        for frame in at.dataframe:
            assert frame.proto.HasField("placeholder") and frame.proto.placeholder == "", page
            seen += 1
    assert seen >= 10


def test_model_download_holds_the_weights(dash_store):
    from dashboards.store import model_zip

    version = dash_store.client().get_model_version_by_alias(MODEL, "champion").version
    names = zipfile.ZipFile(BytesIO(model_zip(dash_store.uri, MODEL, int(version)))).namelist()
    assert any(n.endswith("weights.pt") for n in names)
    assert any(n.endswith("tsfmicro_model.json") for n in names)
    assert any(n.endswith("MLmodel") for n in names)


def test_every_page_over_an_mlflow_server(dash_store, tmp_path, monkeypatch):
    """The same store served by `mlflow server`: the pages read it over HTTP."""
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "server.db").write_bytes((dash_store.folder / "mlflow.db").read_bytes())
    with mlflow_server(folder) as uri:
        at = app_test(uri, monkeypatch).run()
        no_exception(at)
        assert table(at, "details")["run_id"].tolist() == expected_final_ranking(dash_store)
        for page in PAGES[1:]:
            at.switch_page(page).run()
            no_exception(at)
            assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_unreachable_server_gives_a_message_quickly(page, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    at = app_test(uri, monkeypatch).run()
    at.switch_page(page)
    started = time.monotonic()
    at.run()
    assert time.monotonic() - started < 10
    no_exception(at)
    assert any("not available" in e.value and uri in e.value for e in at.error)


@pytest.mark.parametrize("page", PAGES)
def test_empty_store_gives_a_message(page, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    MlflowClient(uri).search_experiments()  # creates the database, with no tsfmicro experiment
    at = app_test(uri, monkeypatch).run()
    at.switch_page(page).run()
    no_exception(at)
    assert any("tsfmicro" in i.value and "yet" in i.value for i in at.info)


def test_missing_sqlite_store_is_not_created(tmp_path, monkeypatch):
    path = tmp_path / "nothing.db"
    at = app_test(f"sqlite:///{path}", monkeypatch).run()
    no_exception(at)
    assert any("no MLflow store" in e.value for e in at.error)
    assert not path.exists()


def nested_runs(store):
    client = store.client()
    exp = client.get_experiment_by_name(NESTED_EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], filter_string=(
        "tags.`tsfmicro.kind` = 'search'"))  # fmt: skip
    return {r.data.tags["tsfmicro.search"]: r for r in runs}


def test_search_page_shows_a_nested_search_beside_its_flat_one(dash_nested_store, monkeypatch):
    """A nested search is selectable on the Search page: its nested figure beside the flat
    search's search-best and BBC, its outer folds and what they chose; the flat search's
    page shows the nested figure too."""
    runs = nested_runs(dash_nested_store)
    nested, flat = runs[NESTED_SEARCH].data.metrics, runs[f"{NESTED_SEARCH}-flat"].data.metrics
    at = app_test(dash_nested_store.uri, monkeypatch).run()
    at.switch_page("views/search.py").run()
    no_exception(at)
    box = at.selectbox(key="se_search")
    assert NESTED_SEARCH in box.options[0] + " ".join(box.options)
    at.selectbox(key="se_search").set_value(NESTED_SEARCH).run()
    no_exception(at)
    shown = {x.label: x.value for x in at.metric}
    assert shown["nested"] == f"{nested['nested_uf1']:.3f}"
    assert shown["bias-corrected (BBC-CV)"] == f"{flat['bbc_uf1']:.3f}"
    assert shown["search-best ⚠ optimistic"] == f"{flat['search_best_uf1']:.3f}"
    figures = table(at, "figure", "what it means")
    assert figures["UF1 95% CI"].iloc[2] == (
        f"[{nested['nested_uf1_ci_lo']:.3f}, {nested['nested_uf1_ci_hi']:.3f}]")
    captions = " ".join(c.value for c in at.caption)
    assert f"the flat search `{NESTED_SEARCH}-flat`" in captions
    assert "registers nothing" in captions
    outer = table(at, "outer fold", "test subjects", "chosen trial")
    assert outer["outer fold"].tolist() == [1, 2]
    subjects = sorted(s for cell in outer["test subjects"] for s in cell.split(", "))
    assert len(subjects) == 4  # every subject held out once
    choices = table(at, "parameter", "value", "outer folds")
    for _, group in choices.groupby("parameter"):
        assert group["outer folds"].sum() == 2  # each outer fold chose one value
    # the flat search's page: its own search-best and BBC, and the nested figure beside them
    at.selectbox(key="se_search").set_value(f"{NESTED_SEARCH}-flat").run()
    no_exception(at)
    shown = {x.label: x.value for x in at.metric}
    assert shown["nested"] == f"{nested['nested_uf1']:.3f}"
    assert shown["bias-corrected (BBC-CV)"] == f"{flat['bbc_uf1']:.3f}"
    assert f"the nested search `{NESTED_SEARCH}`" in " ".join(c.value for c in at.caption)
