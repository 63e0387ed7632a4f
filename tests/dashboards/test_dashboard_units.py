"""The dashboard's pure parts: ranking and filters, analyses, reference figures, store probing
and the `tsfmicro dashboard` command. No search, no browser; seconds."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from dashboards import cli, store, tables
from search.schema import DEFAULT_TRACKING_URI
from tsfmicro.cli import build_parser

from services import free_port


def board(rows: list[dict]) -> pd.DataFrame:
    """A trial table shaped like search.leaderboard's, from a few fields per trial."""
    out = []
    for i, r in enumerate(rows):
        row = {"experiment": "tsfmicro/casme2/5class", "dataset": "casme2", "protocol": "5class",
               "search": r.get("search", "s"), "trial": f"t{i}", "state": r.get("state",
                                                                               "complete"),
               "reason": r.get("reason"), "run_id": f"run{i}",
               "started": pd.Timestamp(r.get("started", f"2026-01-0{1 + i % 9} 10:00"), tz="UTC"),
               "ended": pd.Timestamp(r.get("started", f"2026-01-0{1 + i % 9} 10:00"), tz="UTC")
               + pd.Timedelta(minutes=5),
               "fusion": r.get("fusion", "late"), "temporal_depth": r.get("depth", 4),
               "lr": r.get("lr", 1e-3), "searched": "temporal_depth,fusion,lr"}
        for mode in ("final", "oracle"):
            for m in ("acc", "uf1", "uar"):
                v = r.get(mode, 0.5) + (0.05 if mode == "oracle" else 0.0)
                row[f"{mode}_{m}"] = v
                row[f"{mode}_{m}_ci_lo"], row[f"{mode}_{m}_ci_hi"] = v - 0.1, v + 0.1
        out.append(row)
    return pd.DataFrame(out)


def test_only_complete_trials_rank_and_pruned_ones_are_listed_apart():
    b = board([{"final": 0.4}, {"final": 0.9, "state": "pruned", "reason": "a\nstopped early"},
               {"final": 0.6}, {"final": 0.7, "state": "failed", "reason": "boom"}])
    ranked = tables.ranked(b, ["final"], "uf1")
    assert ranked["trial"].tolist() == ["t2", "t0"]
    assert ranked["rank"].tolist() == [1, 2]
    skipped = tables.not_ranked(b)
    assert set(skipped["trial"]) == {"t1", "t3"}
    assert skipped.set_index("trial").loc["t1", "reason"] == "stopped early"


def test_each_mode_ranks_separately_and_oracle_is_flagged():
    b = board([{"final": 0.4, "oracle": 0.9}, {"final": 0.6, "oracle": 0.1}])
    ranked = tables.ranked(b, ["final", "oracle"], "uf1")
    final = ranked[ranked["mode"] == "final"]
    oracle = ranked[ranked["mode"] == "oracle"]
    assert final["trial"].tolist() == ["t1", "t0"] and oracle["trial"].tolist() == ["t0", "t1"]
    assert not final["optimistic"].any() and oracle["optimistic"].all()
    shown = tables.display(ranked, ["fusion"])
    assert set(shown["mode"]) == {"final (leak-free)", "oracle ⚠ optimistic"}
    assert shown["UF1 95% CI"].iloc[0] == "0.50–0.70"  # short, for a narrow column


def test_filters_by_search_fusion_and_date():
    b = board([{"search": "a", "fusion": "late", "started": "2026-01-01 10:00"},
               {"search": "b", "fusion": "early", "started": "2026-01-05 10:00"},
               {"search": "a", "fusion": "early", "started": "2026-01-09 10:00"}])
    assert tables.filter_trials(b, searches=["a"])["trial"].tolist() == ["t0", "t2"]
    assert tables.filter_trials(b, fusions=["early"])["trial"].tolist() == ["t1", "t2"]
    picked = tables.filter_trials(b, dates=(date(2026, 1, 2), date(2026, 1, 5)))
    assert picked["trial"].tolist() == ["t1"]
    assert tables.date_bounds(b) == (date(2026, 1, 1), date(2026, 1, 9))


def test_best_so_far_ignores_pruned_scores():
    b = board([{"final": 0.3}, {"final": 0.9, "state": "pruned"}, {"final": 0.5},
               {"final": 0.4}])
    progress = tables.best_so_far(b, "final_uf1")
    assert progress["best so far"].tolist() == [0.3, 0.3, 0.5, 0.5]
    assert np.isnan(progress["value"].iloc[1])
    assert progress["minutes"].iloc[0] == pytest.approx(5.0)


def test_eta_squared_finds_the_parameter_that_decides_the_score():
    rows = [{"fusion": f, "depth": d, "final": (0.8 if f == "late" else 0.3) + 0.001 * d}
            for f in ("late", "early") for d in (2, 3, 4, 5, 6)]
    scores = tables.eta_squared(board(rows), ["fusion", "temporal_depth"], "final_uf1")
    assert scores["fusion"] > 0.99 and scores["temporal_depth"] < 0.01


def test_fanova_agrees_on_a_clear_case():
    rng = np.random.default_rng(0)
    rows = [{"fusion": str(rng.choice(["late", "early", "t2s"])),
             "depth": int(rng.integers(2, 9)), "lr": float(10 ** rng.uniform(-4, -2))}
            for _ in range(24)]
    for r in rows:
        r["final"] = 0.2 + 0.08 * r["depth"]  # only the depth matters
    scores = tables.fanova(board(rows), ["fusion", "temporal_depth", "lr"], "final_uf1")
    assert max(scores, key=scores.get) == "temporal_depth"
    assert sum(scores.values()) == pytest.approx(1.0)
    table, note = tables.importance(board(rows[:2]), ["fusion", "temporal_depth"], "final_uf1")
    assert "fANOVA not computed" in note and "η² (variance share)" in table


def test_oracle_gap_groups_identical_configurations():
    b = board([{"final": 0.4, "oracle": 0.6, "depth": 2}, {"final": 0.5, "oracle": 0.7,
                                                           "depth": 2},
               {"final": 0.5, "oracle": 0.5, "depth": 3}])
    gap = tables.oracle_gap(b, ["temporal_depth"], "uf1")
    assert gap["configuration"].tolist() == ["temporal_depth=2", "temporal_depth=3"]
    assert gap["trials"].tolist() == [2, 1]
    assert gap["gap (oracle - final)"].tolist() == pytest.approx([0.25, 0.05])


def test_parallel_coordinates_positions():
    b = board([{"fusion": "late", "lr": 1e-4, "final": 0.2},
               {"fusion": "early", "lr": 1e-2, "final": 0.8},
               {"fusion": "t2s", "lr": 1e-3, "final": 0.5}])
    long = tables.parallel(b, ["fusion", "lr"], "final_uf1", "final UF1")
    lr = long[long["axis"] == "lr"].set_index("trial")["position"]
    assert lr.to_dict() == pytest.approx({"t0": 0.0, "t1": 1.0, "t2": 0.5})  # log scale
    fusion = long[long["axis"] == "fusion"].set_index("value")["position"]
    assert fusion.to_dict() == {"early": 0.0, "late": 0.5, "t2s": 1.0}
    score = long[long["axis"] == "final UF1"].set_index("trial")["position"]
    assert score["t1"] == 1.0 and score["t0"] == 0.0


def test_reference_file_cites_its_source_and_leaves_unknowns_empty():
    refs = tables.load_references(tables.REFERENCES)
    assert (refs["source"].str.contains("arXiv:2505.16372")).all()
    assert refs["selection"].str.contains("oracle").all()  # per-subject best epoch
    casme = refs[(refs["dataset"] == "casme2") & (refs["protocol"] == "5class")]
    assert dict(zip(casme["fusion"], casme["acc"], strict=True)) == {"late": 0.875,
                                                                      "early": 0.8225}
    assert refs[["uf1", "uar"]].isna().all().all()
    pairs = set(zip(refs["dataset"], refs["protocol"], strict=True))
    assert pairs == {("casme2", "5class"), ("casme2", "3class"), ("samm", "5class"),
                     ("samm", "3class"), ("casme3", "4class"), ("casme3", "7class")}
    assert refs.loc[~((refs["dataset"] == "casme2") & (refs["protocol"] == "5class")),
                    "acc"].isna().all()
    rows = tables.reference_rows(refs, [("casme2", "5class")])
    shown = tables.display(rows, [])
    assert set(shown["source"]) == {tables.REPORTED}
    assert shown["mode"].str.startswith("reported").all()
    assert shown["rank"].isna().all()


def test_reference_file_is_checked(tmp_path):
    def write(**cells: str):
        row = {c: "" for c in tables.REFERENCE_COLUMNS}
        row.update(dataset="casme2", protocol="5class", method="X", source="paper")
        row.update(cells)
        path = tmp_path / "refs.csv"
        pd.DataFrame([row]).to_csv(path, index=False)
        return path

    assert tables.load_references(write(acc="0.5"))["acc"].tolist() == [0.5]
    with pytest.raises(ValueError, match="cite its source"):
        tables.load_references(write(acc="0.5", source=" "))
    with pytest.raises(ValueError, match="fraction"):
        tables.load_references(write(acc="87.5"))  # a percentage, not a fraction


def test_overview_lists_every_experiment():
    b = board([{"final": 0.4}, {"final": 0.6}])
    experiments = pd.DataFrame([
        {"experiment_id": "1", "experiment": "tsfmicro/casme2/5class", "dataset": "casme2",
         "protocol": "5class"},
        {"experiment_id": "2", "experiment": "tsfmicro/samm/5class", "dataset": "samm",
         "protocol": "5class"}])
    refs = tables.load_references(tables.REFERENCES)
    table = tables.overview(b, experiments, refs, "final", "uf1")
    casme = table.iloc[0]
    assert casme["best trial"] == "t1" and casme["UF1"] == pytest.approx(0.6)
    assert casme["reported ACC (paper)"] == 0.875
    assert table.iloc[1]["best trial"] == "no trials yet"
    assert pd.isna(table.iloc[1]["reported ACC (paper)"])


def test_the_schema_keeps_the_names_existing_stores_hold():
    """search.schema is what the search writes and the dashboard reads: a renamed tag, metric
    or artifact would leave every store written before unreadable."""
    from search import schema as s

    assert s.Tag.KIND == "tsfmicro.kind" and s.Tag.STATE == "tsfmicro.state"
    assert s.experiment_name("casme2", "5class") == "tsfmicro/casme2/5class"
    assert s.model_name("casme2", "5class") == "tsfmicro-casme2-5class"
    assert s.score_metric("oracle", "uf1") + s.CI_LO == "oracle_uf1_ci_lo"
    assert s.fold_mean_metric("final", "acc") == "final_fold_mean_acc"
    assert s.class_metric("val", "recall", "happy face") == "val_recall_happy_face"
    assert s.partial_metric(s.report_key("final", "uf1")) == "partial_final_uf1"
    assert s.per_class_artifact("final") == "per_class_final.csv"
    assert s.run_filter({s.Tag.SEARCH: "x", s.Tag.KIND: s.KIND_TRIAL}, status="RUNNING") == (
        "attributes.status = 'RUNNING' and tags.`tsfmicro.search` = 'x' and "
        "tags.`tsfmicro.kind` = 'trial'")


def test_tracking_uri_from_arguments_then_environment():
    env = {"TSFMICRO_TRACKING_URI": "sqlite:///a.db", "MLFLOW_TRACKING_URI": "http://b"}
    assert store.tracking_uri(["--tracking-uri", "http://x:5000"], env) == "http://x:5000"
    assert store.tracking_uri(["--tracking-uri=http://y"], env) == "http://y"
    assert store.tracking_uri([], env) == "sqlite:///a.db"
    assert store.tracking_uri([], {"MLFLOW_TRACKING_URI": "http://b"}) == "http://b"
    assert store.tracking_uri(["-x"], {}) == DEFAULT_TRACKING_URI


def test_probe_fails_fast_and_creates_nothing(tmp_path):
    missing = tmp_path / "none.db"
    with pytest.raises(store.StoreError, match="no MLflow store"):
        store.probe(f"sqlite:///{missing}")
    assert not missing.exists()
    started = time.monotonic()
    with pytest.raises(store.StoreError, match="not available"):
        store.probe(f"http://127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 5
    env: dict[str, str] = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    store.fail_fast(env)
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"  # the user's own setting wins


def test_dashboard_command_wraps_streamlit_run(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call",
                        lambda command, env: calls.append((command, env)) or 0)
    args = build_parser().parse_args(["dashboard", "--tracking-uri", "http://m:5000",
                                      "--port", "8600"])
    assert args.handler(args) == 0
    command, env = calls[0]
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(cli.APP)
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.port") + 1] == "8600"
    assert command[-3:] == ["--", "--tracking-uri", "http://m:5000"]
    assert env["TSFMICRO_TRACKING_URI"] == "http://m:5000"
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert str(cli.APP.parent.parent) in env["PYTHONPATH"].split(":")
    assert "http://127.0.0.1:8600" in capsys.readouterr().out


def test_nothing_in_the_library_imports_streamlit():
    import pathlib

    library = pathlib.Path(tables.__file__).parents[1] / "tsfmicro"
    offenders = [str(p) for p in library.rglob("*.py") if "streamlit" in p.read_text()]
    assert not offenders


def test_tied_trials_are_marked_in_the_mode_their_search_optimised():
    from search.schema import CI_HI, CI_LO, TieMetric

    b = board([{"final": 0.6}, {"final": 0.55}, {"final": 0.2}, {"final": 0.5}])
    b["eval_mode"] = "final"
    ties = [(0.0, 0.0, 0.0, True), (-0.05, -0.15, 0.05, True), (-0.4, -0.5, -0.3, False),
            (None, None, None, None)]  # the last: a search without estimates
    for col, values in zip((TieMetric.DIFF, TieMetric.DIFF + CI_LO, TieMetric.DIFF + CI_HI,
                            "tied_with_best"), zip(*ties, strict=True), strict=True):
        b[col] = list(values)
    shown = tables.display(tables.ranked(b, ["final", "oracle"], "uf1"), [])
    final = shown[shown["mode"] == "final (leak-free)"].set_index("trial")
    assert final.loc["t0", tables.TIE_COLUMN] == "best"
    assert final.loc["t1", tables.TIE_COLUMN] == "tied: -0.050 [-0.15, +0.05]"
    assert final.loc["t2", tables.TIE_COLUMN] == "below: -0.400 [-0.50, -0.30]"
    assert final.loc["t3", tables.TIE_COLUMN] == ""
    # the ties are about the search's own mode: oracle rows carry no mark
    assert (shown[shown["mode"] == "oracle ⚠ optimistic"][tables.TIE_COLUMN] == "").all()


def test_the_three_figures_of_a_search_side_by_side():
    from search.schema import CI_HI, CI_LO, figure_metric

    row = {}
    for figure, value in (("search_best", 0.6), ("bbc", 0.4)):
        for m in ("acc", "uf1", "uar"):
            name = figure_metric(figure, m)
            row[name], row[name + CI_LO], row[name + CI_HI] = value, value - 0.1, value + 0.1
    table = tables.figures(row)
    assert table["figure"].tolist() == ["search-best ⚠ optimistic", "bias-corrected (BBC-CV)",
                                        "nested"]
    assert table["UF1"].tolist()[:2] == [0.6, 0.4] and np.isnan(table["UF1"].iloc[2])
    assert table["UF1 95% CI"].tolist() == ["[0.500, 0.700]", "[0.300, 0.500]", "not run"]
    assert table["optimistic"].tolist() == [True, False, False]
    assert table["what it means"].str.len().min() > 40
    assert tables.has_figure(row, "bbc") and not tables.has_figure(row, "nested")
    assert not tables.has_figure(None, "bbc")
    assert (tables.figures(None)["UF1 95% CI"] == "not run").all()


def test_search_runs_are_read_with_their_figures(tmp_path):
    from mlflow import MlflowClient

    from search.schema import KIND_SEARCH, KIND_TRIAL, Tag, figure_metric

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("tsfmicro/toy/3class")
    run = client.create_run(exp, tags={Tag.KIND: KIND_SEARCH, Tag.SEARCH: "s1",
                                       Tag.EVAL_MODE: "final", Tag.OBJECTIVE: "uf1",
                                       Tag.SHUFFLED_LABELS: "true"})
    client.log_metric(run.info.run_id, figure_metric("bbc", "uf1"), 0.31)
    client.create_run(exp, tags={Tag.KIND: KIND_TRIAL, Tag.SEARCH: "s1"})  # not a search run
    found = store.search_runs(client, uri)
    assert found["search"].tolist() == ["s1"] and bool(found["shuffled_labels"].iloc[0])
    row = tables.search_row(found, exp, "s1")
    assert row["bbc_uf1"] == 0.31 and pd.isna(row["search_best_uf1"])
    assert tables.search_row(found, exp, "other") is None


def test_the_figures_caption_says_what_they_are_over():
    row = {"eval_mode": "final", "objective_name": "uf1", "n_boot": 1000.0, "n_subjects": 8.0,
           "n_tied": 3.0, "n_trials": 8.0, "shuffled_labels": True}
    text = tables.figures_caption(row)
    assert "(final)" in text and "by UF1" in text and "1000 subject resamples of 8" in text
    assert "3 of 8 trials are tied" in text and "shuffled" in text
    # a nested search's own run holds its figure only: no counts, no tie sentence
    nested = tables.figures_caption({"eval_mode": "final", "objective_name": "uf1",
                                     "nested_uf1": 0.4})
    assert "tied" not in nested and nested.endswith("by UF1.")


# ---- the dashboard at 1600 px: columns, empty cells, interval colours, ticks, hosts, code ---


def tied_board() -> pd.DataFrame:
    """Four trials of one search that optimised final UF1, with their tie estimates: t0 the
    champion, t1 tied, t2 not tied; t3 has final scores but its search stored no estimates."""
    from search.schema import CI_HI, CI_LO, TieMetric

    b = board([{"final": 0.6}, {"final": 0.55}, {"final": 0.2}, {"final": 0.5, "search": "u"}])
    b["eval_mode"], b["objective_name"] = "final", "uf1"
    ties = [(0.0, 0.0, 0.0, True), (-0.05, -0.15, 0.05, True), (-0.4, -0.5, -0.3, False),
            (None, None, None, None)]
    for col, values in zip((TieMetric.DIFF, TieMetric.DIFF + CI_LO, TieMetric.DIFF + CI_HI,
                            "tied_with_best"), zip(*ties, strict=True), strict=True):
        b[col] = list(values)
    return b


def test_leaderboard_columns_fit_a_1600_px_page():
    rows = tables.ranked(tied_board(), ["final"], "uf1")
    shown = tables.with_details(tables.display(rows, ["fusion", "lr"]))
    visible = tables.leaderboard_columns(shown, "uf1")
    # the run id stays in the data (tests, links) but only the details link shows it
    assert "run_id" in shown and "run_id" not in visible and "source" not in visible
    assert shown["details"].tolist() == [f"trial?run={r}" for r in shown["run_id"]]
    # one interval column: the ranked metric's; the others stay in the data
    assert [c for c in visible if "CI" in c] == ["UF1 95% CI"]
    assert {"ACC 95% CI", "UAR 95% CI"} <= set(shown.columns)
    assert visible[:2] == ["rank", "trial"] and "search" in visible  # two searches: s and u
    assert "mode" not in visible  # one mode: the caption names it
    assert tables.shared_note(shown) == " in the final (leak-free) mode"
    two = tables.display(tables.ranked(tied_board(), ["final", "oracle"], "acc"), [])
    assert "mode" in tables.leaderboard_columns(two, "acc")
    assert tables.shared_note(two) == " within each evaluation mode"
    assert "ACC 95% CI" in tables.leaderboard_columns(two, "acc")
    one = tables.display(tables.ranked(board([{}, {}]), ["final"], "uf1"), [])
    assert "search" not in tables.leaderboard_columns(one, "uf1")
    assert tables.shared_note(one) == " in the final (leak-free) mode, all from search s"
    assert tables.ci_short(0.1234, 0.5) == "0.12–0.50" and tables.ci_short(None, 0.5) == ""


def test_leaderboard_columns_stay_within_the_page_with_every_column_needed():
    """The widest case: several modes and searches (mode and search shown) and the four
    searched parameters of the default space: the start time gives way, the rest fits."""
    params = ["temporal_depth", "spatial_depth", "fusion", "lr"]
    many = board([{"search": s} for s in ("a", "b", "c")]).assign(spatial_depth=3)
    wide = tables.with_details(tables.display(
        tables.ranked(many, ["final", "oracle"], "uf1"), params))
    visible = tables.leaderboard_columns(wide, "uf1")
    assert {"mode", "search", *params, "details"} <= set(visible)
    assert "started" not in visible
    assert sum(map(tables.column_width, visible)) <= tables.LEADERBOARD_BUDGET
    narrow = tables.with_details(tables.display(tables.ranked(many, ["final"], "uf1"), params))
    visible = tables.leaderboard_columns(narrow, "uf1")
    assert "started" in visible and "search" in visible and "mode" not in visible
    assert sum(map(tables.column_width, visible)) <= tables.LEADERBOARD_BUDGET
    assert tables.column_width("temporal_depth") >= 7 * len("temporal_depth")


def test_every_table_leaves_empty_cells_blank():
    """Every page's tables go through ui.table, which tells Streamlit to draw a missing value
    as an empty cell (it writes "None" by default)."""
    import ast
    import inspect
    import pathlib

    from dashboards import ui

    views = pathlib.Path(tables.__file__).with_name("views")
    calls = [
        f"{path.name}:{node.lineno}"
        for path in sorted(views.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("dataframe", "data_editor", "table")
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "ui")
    ]
    assert not calls, f"tables drawn without ui.table (empty cells would read None): {calls}"
    source = inspect.getsource(ui.table)
    assert 'placeholder=""' in source


def test_interval_bars_are_coloured_by_the_tie_test_where_it_exists():
    bars = tables.intervals(tables.ranked(tied_board(), ["final"], "uf1"), "uf1")
    status = bars.set_index("trial")["status"].to_dict()
    rule = bars.set_index("trial")["rule"].to_dict()
    assert status == {"t0": tables.BEST_STATUS, "t1": tables.TIED_STATUS,
                      "t2": tables.NOT_TIED_STATUS, "t3": tables.BEST_STATUS}
    # t3's search has no tie estimates: it is the best of its own search by overlap
    assert rule == {"t0": "paired test", "t1": "paired test", "t2": "paired test",
                    "t3": "overlap"}
    assert bars["label"].tolist() == ["t0", "t1", "t3", "t2"]  # ranked order
    row = bars.set_index("trial").loc["t1"]
    assert (row["value"], row["lo"], row["hi"]) == pytest.approx((0.55, 0.45, 0.65))


def test_interval_bars_fall_back_to_overlap_without_a_tie_test():
    b = tied_board()
    # ranked by ACC, the tie test (of UF1) does not apply: overlap with the best interval
    bars = tables.intervals(tables.ranked(b, ["final"], "acc"), "acc").set_index("trial")
    assert bars.loc["t0", "status"] == tables.BEST_STATUS  # 0.6 [0.5, 0.7]
    assert bars.loc["t1", "status"] == tables.OVERLAP_STATUS  # 0.55 [0.45, 0.65]
    assert bars.loc["t2", "status"] == tables.APART_STATUS  # 0.2 [0.1, 0.3]
    assert set(bars["rule"]) == {"overlap"}
    # in another mode than the one the search optimised: overlap too, labelled by mode
    both = tables.intervals(tables.ranked(b, ["final", "oracle"], "uf1"), "uf1")
    oracle = both[both["mode"] == "oracle"].set_index("trial")
    assert set(oracle["rule"]) == {"overlap"} and oracle.loc["t0", "label"] == "t0 · oracle"
    # a trial without an interval is said to have none
    b.loc[1, "final_acc_ci_lo"] = np.nan
    gone = tables.intervals(tables.ranked(b, ["final"], "acc"), "acc").set_index("trial")
    assert gone.loc["t1", "status"] == tables.NO_INTERVAL
    assert tables.intervals(tables.ranked(b.iloc[0:0], ["final"], "acc"), "acc").empty


def test_interval_chart_legend_names_the_rule_of_each_colour():
    from dashboards import charts

    bars = tables.intervals(tables.ranked(tied_board(), ["final"], "uf1"), "uf1")
    spec = charts.intervals(bars, "final UF1").to_dict()
    colour = next(layer["encoding"]["color"] for layer in spec["layer"]
                  if layer["encoding"]["color"].get("field") == "status")
    assert colour["title"] == tables.STATUS_TITLE
    assert colour["scale"]["domain"] == [tables.BEST_STATUS, tables.TIED_STATUS,
                                         tables.NOT_TIED_STATUS]  # only the rules used
    assert colour["scale"]["range"] == [tables.STATUS_COLOURS[s]
                                        for s in colour["scale"]["domain"]]
    assert "paired" in tables.TIED_STATUS and "interval" in tables.OVERLAP_STATUS


def test_log_axes_are_labelled_at_round_values():
    assert tables.log_ticks(1e-4, 3e-3) == pytest.approx([1e-4, 2e-4, 5e-4, 1e-3, 2e-3])
    assert tables.tick_text([1e-4, 2e-4, 5e-4, 1e-3], log=True) == ["1e-4", "2e-4", "5e-4",
                                                                    "1e-3"]
    assert tables.log_ticks(1e-6, 1.0) == pytest.approx([1e-6, 1e-4, 1e-2, 1.0])
    assert tables.tick_text(tables.log_ticks(0.01, 1.0), log=True) == ["0.01", "0.03", "0.1",
                                                                        "0.3", "1"]
    assert tables.nice_ticks(2, 8, integer=True) == [2, 4, 6, 8]
    assert tables.nice_ticks(0.3, 0.57) == pytest.approx([0.3, 0.4, 0.5])
    assert tables.nice_ticks(0.5, 0.5) == [0.5]


def test_parallel_coordinates_ticks_never_pile_up():
    """Learning rates clustered at the low end of a log axis (the case whose labels used to
    overlap): each axis gets a few round, distinct, well spaced labels, not one per trial."""
    rng = np.random.default_rng(0)
    lrs = [1.0e-4, 1.1e-4, 1.2e-4, 1.25e-4, 1.3e-4, 3e-3] + list(10 ** rng.uniform(-4, -2.5, 14))
    b = board([{"lr": lr, "depth": 2 + i % 7, "fusion": ("late", "early")[i % 2],
                "final": 0.2 + 0.02 * i} for i, lr in enumerate(lrs)])
    params = ["temporal_depth", "fusion", "lr"]
    ticks = tables.parallel_ticks(b, params, "final_uf1", "final UF1")
    assert set(ticks["axis"]) == {*params, "final UF1"}
    for axis, marks in ticks.groupby("axis"):
        positions = sorted(marks["position"])
        assert 2 <= len(marks) <= 6, (axis, marks)
        assert marks["text"].is_unique
        assert min(np.diff(positions)) >= 0.15, (axis, positions)  # 48 px apart at 320 px
        assert 0 <= positions[0] and positions[-1] <= 1
    lr = ticks[ticks["axis"] == "lr"]
    assert lr["text"].tolist() == ["1e-4", "2e-4", "5e-4", "1e-3", "2e-3"]
    long = tables.parallel(b, params, "final_uf1", "final UF1")
    at = dict(zip(lr["text"], lr["position"], strict=True))
    first = long[(long["axis"] == "lr") & (long["value"] == "0.0001")]["position"].iloc[0]
    assert first == pytest.approx(at["1e-4"])  # the ticks sit on the lines' scale
    assert list(ticks[ticks["axis"] == "fusion"]["text"]) == ["early", "late"]


def test_fold_runs_show_the_host_name_not_the_node_id():
    from search.schema import FoldParam

    node = "46f7c7c09a599fdf23aef912845e5aa48d884c58df798c0d11f329f7"
    folds = pd.DataFrame({FoldParam.SUBJECT: ["s1", "s2", "s3"],
                          FoldParam.HOST: ["gpu-node-1", None, None],
                          FoldParam.WORKER: [node, node, "local"],
                          FoldParam.DEVICE: ["cuda", "cuda", "cpu"], "run_id": ["a", "b", "c"]})
    shown = tables.fold_table(folds)
    assert shown.columns.tolist()[:4] == ["subject", "host", "Ray node", "device"]
    assert shown["host"].tolist() == ["gpu-node-1", "", ""]  # runs from before hosts: empty
    assert shown["Ray node"].tolist() == ["46f7c7c0", "46f7c7c0", "local"]
    assert "worker" not in shown
    old = tables.fold_table(folds.drop(columns=FoldParam.HOST))  # an older store's reader
    assert old["host"].tolist() == ["", "", ""]


def test_a_fold_records_its_host_and_old_fold_stores_still_load(tmp_path):
    """run_folds labels each fold with its host name beside the Ray node id; the fold store
    keeps it, and a fold stored before hosts were recorded loads with an empty host."""
    import json
    import socket

    from search import trial
    from tsfmicro.training.fold import FoldResult

    def fold(subject: str) -> FoldResult:
        empty = np.zeros(0, dtype=np.int64)
        return FoldResult(subject=subject, seed=1, train_index=empty, test_index=empty,
                          val_index=empty, val_subjects=[], test_probs=np.zeros((1, 0, 2)),
                          val_probs=np.zeros((1, 0, 2)), train_loss=np.zeros(1),
                          train_acc=np.zeros(1), seconds=1.0, train_samples=0, device="cpu",
                          worker="node-1", host=socket.gethostname())

    trial.store_fold(tmp_path, 0, fold("s1"))
    assert trial.load_stored_folds(tmp_path, ("s1",))["s1"].host == socket.gethostname()
    # an npz written before the host field: its meta has no "host"
    with np.load(tmp_path / "0000.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta.pop("host")
    np.savez(tmp_path / "0001.npz", meta=np.array(json.dumps({**meta, "subject": "s2"})),
             **arrays)
    old = trial.load_stored_folds(tmp_path, ("s1", "s2"))["s2"]
    assert old.host == "" and old.worker == "node-1"


def test_the_registry_shows_code_that_loads_each_version():
    import shlex

    from search.registry import parse_model_spec

    code = tables.load_code("tsfmicro-casme2-5class", 3, "sqlite:///mlflow.db")
    assert 'mlflow.pyfunc.load_model("models:/tsfmicro-casme2-5class/3")' in code["python"]
    assert 'mlflow.set_tracking_uri("sqlite:///mlflow.db")' in code["python"]
    compile(code["python"], "<registry>", "exec")  # valid Python
    pull, predict = code["pull"].splitlines()
    assert pull == "tsfmicro pull tsfmicro-casme2-5class/3 --tracking-uri sqlite:///mlflow.db"
    args = build_parser().parse_args(shlex.split(pull)[1:])  # the real `tsfmicro pull`
    assert parse_model_spec(args.model) == ("tsfmicro-casme2-5class", None, "3")
    # `predict` reads the folder `pull` writes (search.cli.run_pull names it)
    folder = args.out / args.model.replace("@", "_").replace("/", "_v")
    assert shlex.split(predict)[:4] == ["tsfmicro", "predict", "--model", str(folder)]
    build_parser().parse_args(shlex.split(predict)[1:])
    serve = shlex.split(code["serve"].split("\ncurl")[0].replace("\\\n", " "))
    assert serve[0] == "MLFLOW_TRACKING_URI=sqlite:///mlflow.db"
    assert serve[1:6] == ["mlflow", "models", "serve", "-m", "models:/tsfmicro-casme2-5class/3"]
    from mlflow.models.cli import commands

    commands.commands["serve"].make_context("serve", serve[4:])  # options mlflow accepts
    assert '"columns": ["onset_path", "apex_path"]' in code["serve"]


def test_registry_and_overview_tables_show_what_fits():
    versions = pd.DataFrame({"version": [2, 1], "eval_mode": ["val", "final"],
                             "final_uf1": [0.5, 0.4], "val_uf1": [0.6, 0.3],
                             "oracle_uf1": [0.7, 0.6], "run_id": ["a", "b"]})
    columns = ["version", "eval_mode", "final_uf1", "val_uf1", "oracle_uf1", "missing",
               "run_id"]
    assert tables.registry_columns(versions, columns) == ["version", "eval_mode", "final_uf1",
                                                          "val_uf1", "run_id"]
    refs = tables.load_references(tables.REFERENCES)
    shown = tables.references_display(refs)
    assert not any("CI" in c for c in tables.references_columns(shown))  # none published
    shown.loc[0, "ACC 95% CI"] = "[0.800, 0.900]"
    assert "ACC 95% CI" in tables.references_columns(shown)
    b = board([{"final": 0.4}, {"final": 0.6}])
    experiments = pd.DataFrame({"experiment": ["tsfmicro/casme2/5class"],
                                "dataset": ["casme2"], "protocol": ["5class"]})
    overview = tables.with_details(tables.overview(b, experiments, refs, "final", "uf1"))
    visible = tables.overview_columns(overview, "uf1")
    assert [c for c in visible if "CI" in c] == ["UF1 95% CI"]
    assert "run_id" not in visible and "mode" not in visible and "details" in visible
    assert overview["UF1 95% CI"].iloc[0] == "0.50–0.70"
    assert "reported by" in visible  # CASME II 5-class has a published ACC
    scores = tables.overview_scores(overview)
    assert scores.set_index("metric").loc["UF1", ["lo", "hi"]].tolist() == pytest.approx(
        [0.5, 0.7])
