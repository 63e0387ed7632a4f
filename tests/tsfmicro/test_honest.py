"""Honest leaderboards (tsfmicro.honest) on constructed predictions with a known answer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tsfmicro import honest as H
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.metrics import METRICS, confusion_matrix, scores, subject_bootstrap

K = 3


def subject_names(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(n)]


def draw(rng, p, subjects, per_class=4, k=K):
    """Balanced labels per subject; each prediction right with probability p, otherwise one
    of the other classes uniformly. Expected pooled ACC, UAR and (for large n) UF1 are p."""
    y = np.tile(np.repeat(np.arange(k), per_class), len(subjects))
    subj = np.repeat(subjects, k * per_class)
    right = rng.random(y.size) < p
    wrong = (y + rng.integers(1, k, y.size)) % k
    return subj, y, np.where(right, y, wrong)


def only(pred, keep):
    """The predictions of the subjects in `keep` (a pruned trial)."""
    subj, y, yp = pred
    sel = np.isin(subj, list(keep))
    return subj[sel], y[sel], yp[sel]


def direct(preds, trial, multiset, k=K):
    """Scores of the concatenated samples of the subjects in `multiset` (repeats repeated)."""
    subj, y, yp = preds[trial]
    idx = np.concatenate([np.flatnonzero(subj == s) for s in multiset] or [np.array([], int)])
    return scores(confusion_matrix(y[idx], yp[idx], k))


def multiset(counts, names):
    return [names[s] for s in range(len(names)) for _ in range(int(counts[s]))]


# --------------------------------------------------------------------------- bias


def test_equal_configurations_search_best_is_biased_up_bbc_is_not():
    """50 trials of the same true quality p = 0.6 on 20 subjects x 12 samples.

    One trial's pooled score has a standard error of sqrt(p(1 - p) / 240) = 0.032, so the
    best of 50 is expected about 2.25 standard errors (0.07) above p: search-best must be
    clearly above p. BBC estimates the selected configuration out of bag, which is p. Its
    spread over data sets is at most that one-trial standard error (0.021 measured over 30
    data sets), so the mean over 10 independent data sets has a standard error of about
    0.007: |mean BBC - p| < 0.02 is about three standard errors, while the search-best
    bias must exceed 0.05. Every single data set must also show search-best > BBC.
    """
    p, n_sets = 0.6, 10
    names = subject_names(20)
    best, corrected = [], []
    for seed in range(n_sets):
        rng = np.random.default_rng(seed)
        data = H.subject_confusions({t: draw(rng, p, names) for t in range(50)}, K)
        sb = H.search_best(data, n_boot=500, seed=seed)
        bb = H.bbc(data, n_boot=500, seed=seed)
        assert sb.uf1 > p + 0.03
        assert sb.uf1 > bb.uf1 + 0.02
        assert bb.uf1_ci[0] < p < bb.uf1_ci[1]
        assert sb.to_dict()["optimistic"] is True and bb.to_dict()["optimistic"] is False
        # Selection spreads over many equal trials.
        assert sum(n > 0 for n in bb.picked.values()) >= 10
        best.append([sb.acc, sb.uf1, sb.uar])
        corrected.append([bb.acc, bb.uf1, bb.uar])
    best_bias = np.mean(best, axis=0) - p
    bbc_bias = np.mean(corrected, axis=0) - p
    assert np.all(best_bias > 0.05), best_bias
    assert np.all(np.abs(bbc_bias) < 0.02), bbc_bias


# --------------------------------------------------------------------------- one winner


@pytest.fixture
def one_winner():
    """Trial "t3" right 85 % of the time, "t6" its exact copy, the other eight right 50 %
    (20 subjects x 12 samples)."""
    rng = np.random.default_rng(11)
    names = subject_names(20)
    preds = {f"t{t}": draw(rng, 0.5, names) for t in range(10)}
    preds["t3"] = draw(rng, 0.85, names)
    preds["t6"] = preds["t3"]
    return preds, H.subject_confusions(preds, K)


def test_one_better_configuration_is_picked_and_estimated(one_winner):
    preds, data = one_winner
    sb = H.search_best(data, n_boot=1000, seed=3)
    bb = H.bbc(data, n_boot=1000, seed=3)
    assert sb.champion == "t3"  # t6 has the same scores and loses the tie (later index)
    assert bb.picked["t3"] >= 0.99 * bb.n_used
    assert bb.picked["t6"] == 0
    assert sum(bb.picked.values()) == bb.n_used == bb.n_boot - bb.skipped_resamples
    own = direct(preds, "t3", subject_names(20))
    for m in METRICS:
        # One trial's standard error is sqrt(0.85 * 0.15 / 240) = 0.023: within 2.5 of them.
        assert getattr(bb, m) == pytest.approx(0.85, abs=0.06)
        # With no real choice to make, BBC is the trial's own out-of-bag performance, which
        # averages to its pooled score (up to the small bias of a ratio of sums).
        assert getattr(bb, m) == pytest.approx(own[m], abs=0.015)
        assert getattr(sb, m) == pytest.approx(own[m])


def test_ties_with_one_better_configuration(one_winner):
    _, data = one_winner
    rows = H.ties(data, n_boot=1000, seed=3)
    table = H.ties_frame(rows)
    assert list(table.index) == list(data.trials)
    assert list(table.index[table["is_champion"]]) == ["t3"]
    assert table.loc["t3", "diff"] == 0 and table.loc["t3", "tied_with_best"]
    assert table.loc["t3", "share_at_least_as_good"] == 1.0
    for t in [f"t{t}" for t in range(10) if t not in (3, 6)]:
        assert not table.loc[t, "tied_with_best"]
        assert table.loc[t, "diff_hi"] < 0
        assert table.loc[t, "share_at_least_as_good"] < 0.01
        assert table.loc[t, "diff"] < -0.2
    # The exact copy: difference 0 in every resample, at least as good in every resample.
    assert table.loc["t6", "tied_with_best"]
    assert table.loc["t6", "diff"] == table.loc["t6", "diff_lo"] == table.loc["t6", "diff_hi"] == 0
    assert table.loc["t6", "share_at_least_as_good"] == 1.0


def test_equally_good_independent_configurations_are_mostly_tied():
    """Two configurations of the same quality (p = 0.85, independent predictions) and three
    poor ones (p = 0.5), over 20 data sets. The 95 % interval of the difference between two
    equal configurations contains 0 about 95 % of the time (a little less, since the
    champion is the luckier of the two); at least 80 % is asserted. The poor ones, 0.35
    (about ten standard errors) behind, are never tied."""
    names = subject_names(20)
    tied, poor_tied, shares = 0, 0, []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        preds = {f"p{t}": draw(rng, 0.5, names) for t in range(3)}
        preds["a"] = draw(rng, 0.85, names)
        preds["b"] = draw(rng, 0.85, names)
        rows = {r.trial: r for r in H.ties(H.subject_confusions(preds, K), n_boot=300, seed=1)}
        champ = next(t for t, r in rows.items() if r.is_champion)
        assert champ in ("a", "b")
        other = rows["b" if champ == "a" else "a"]
        tied += other.tied_with_best
        shares.append(other.share_at_least_as_good)
        poor_tied += sum(rows[f"p{t}"].tied_with_best for t in range(3))
    assert tied >= 16, tied
    assert poor_tied == 0
    # The luckier one is the champion, so the other wins fewer than half of the resamples,
    # but a fair share of them.
    assert 0.05 < np.mean(shares) < 0.5


def test_identical_configurations_as_champion_tie():
    """When the champion has an exact copy, the copy is tied: difference 0 everywhere,
    share 1 (at least as good in every resample)."""
    rng = np.random.default_rng(5)
    names = subject_names(12)
    good = draw(rng, 0.8, names)
    preds = {"a": draw(rng, 0.4, names), "b": good, "c": good}
    data = H.subject_confusions(preds, K)
    rows = {r.trial: r for r in H.ties(data, n_boot=400, seed=1)}
    assert rows["b"].is_champion  # the earliest of the two equal ones
    assert rows["c"].tied_with_best and rows["c"].diff == 0 and rows["c"].diff_ci == [0, 0]
    assert rows["c"].share_at_least_as_good == 1.0
    assert not rows["a"].tied_with_best
    assert H.bbc(data, n_boot=400, seed=1).picked["c"] == 0


# --------------------------------------------------------------------------- pruned


@pytest.fixture
def with_pruned():
    """10 complete trials (p = 0.6), two pruned after 5 subjects with a great start
    (p = 0.95) and one that failed before any fold."""
    rng = np.random.default_rng(2)
    names = subject_names(15)
    preds = {f"t{t}": draw(rng, 0.6, names) for t in range(10)}
    first = names[:5]
    ordered = {}
    for t in range(10):
        ordered[f"t{t}"] = preds[f"t{t}"]
        if t == 2:
            ordered["p2"] = only(draw(rng, 0.95, names), first)
        if t == 5:
            ordered["p5"] = only(draw(rng, 0.95, names), first)
    ordered["failed"] = (np.array([], str), np.array([], int), np.array([], int))
    data = H.subject_confusions(ordered, K, subjects=names)
    complete = H.subject_confusions(preds, K, subjects=names)
    return ordered, data, complete


def test_pruned_trials_are_excluded_from_selection(with_pruned):
    _, data, complete = with_pruned
    assert data.n_trials == 13 and list(data.complete).count(False) == 3
    bb = H.bbc(data, n_boot=300, seed=4)
    assert bb.excluded_trials == ["p2", "p5", "failed"]
    assert bb.to_dict()["n_excluded"] == 3 and bb.n_trials == 13
    assert set(bb.picked) == {f"t{t}" for t in range(10)}
    # Same resamples, same selection: exactly as if the pruned trials were not there.
    alone = H.bbc(complete, n_boot=300, seed=4)
    for key in ("acc", "uf1", "uar", "acc_ci", "uf1_ci", "uar_ci", "picked", "n_used"):
        assert bb.to_dict()[key] == alone.to_dict()[key]
    sb = H.search_best(data, n_boot=300, seed=4)
    assert sb.champion.startswith("t") and sb.excluded_trials == bb.excluded_trials
    assert sb.to_dict() | {"excluded_trials": [], "n_excluded": 0, "n_trials": 10} == (
        H.search_best(complete, n_boot=300, seed=4).to_dict()
    )
    with pytest.raises(InputError, match="champion 'p2'"):
        H.search_best(data, champion="p2")


def test_ties_of_pruned_trials_use_common_subjects(with_pruned):
    preds, data, _ = with_pruned
    n_boot, seed = 60, 9
    rows = {r.trial: r for r in H.ties(data, n_boot=n_boot, seed=seed)}
    champ = next(r.trial for r in rows.values() if r.is_champion)
    names = list(data.subjects)
    first = names[:5]
    counts = H.resample_counts(len(names), n_boot, seed)
    for t in ("p2", "p5"):
        row = rows[t]
        assert not row.complete and row.n_subjects == 5
        assert row.value == pytest.approx(direct(preds, t, first)["uf1"])
        assert row.champion_value == pytest.approx(direct(preds, champ, first)["uf1"])
        assert row.diff == pytest.approx(row.value - row.champion_value)
        # The paired bootstrap, recomputed sample by sample on the drawn common subjects.
        diffs = []
        for c in counts:
            drawn = multiset(c[:5], first)
            if drawn:
                diffs.append(direct(preds, t, drawn)["uf1"] - direct(preds, champ, drawn)["uf1"])
        assert row.n_used == len(diffs) == int((counts[:, :5].sum(axis=1) > 0).sum())
        assert row.diff_ci == pytest.approx(np.quantile(diffs, [0.025, 0.975]).tolist())
        assert row.share_at_least_as_good == pytest.approx(np.mean(np.array(diffs) >= 0))
    failed = rows["failed"]
    assert failed.n_subjects == 0 and failed.n_used == 0 and not failed.tied_with_best
    assert np.isnan(failed.diff) and np.isnan(failed.share_at_least_as_good)
    # Complete trials use every subject.
    assert all(r.n_subjects == 15 and r.n_used == n_boot for r in rows.values() if r.complete)


# --------------------------------------------------------------------------- shortcut


def test_pooled_scores_match_concatenated_samples():
    rng = np.random.default_rng(7)
    names = subject_names(9)
    preds = {}
    for t in range(4):
        # Unequal subjects and classes, so that absent classes and weights matter.
        subj = rng.choice(names, 150)
        y = rng.integers(0, 4, 150)
        preds[t] = (subj, y, np.where(rng.random(150) < 0.5, y, rng.integers(0, 4, 150)))
    preds[4] = only(preds[0], names[:4])  # a pruned trial
    data = H.subject_confusions(preds, 4, check_labels=False)
    counts = H.resample_counts(len(names), 5, seed=13)
    got = H.pooled_scores(data, counts)
    for b, c in enumerate(counts):
        for t in range(5):
            mine = multiset(c, names) if t < 4 else multiset(c[:4], names[:4])
            want = direct(preds, t, mine, k=4)
            for m in METRICS:
                assert got[m][b, t] == pytest.approx(want[m], nan_ok=True)
    one = H.pooled_scores(data, np.ones(len(names)), trials=[2])
    assert one["uf1"].shape == (1,)
    assert one["uf1"][0] == pytest.approx(direct(preds, 2, names, k=4)["uf1"])


def test_bbc_matches_a_direct_implementation():
    """A slow, sample-level BBC: select on concatenated in-bag samples (earliest wins),
    score on the concatenated out-of-bag ones. Three subjects, so some resamples have no
    out-of-bag subject and are skipped."""
    rng = np.random.default_rng(21)
    names = subject_names(3)
    preds = {t: draw(rng, 0.55, names, per_class=3) for t in range(5)}
    preds[5] = preds[1]  # exact tie with an earlier trial: never selected
    data = H.subject_confusions(preds, K)
    n_boot, seed = 80, 6
    got = H.bbc(data, objective="acc", n_boot=n_boot, seed=seed)
    kept, picked, skipped = [], np.zeros(6, int), 0
    for c in H.resample_counts(3, n_boot, seed):
        oob = [names[s] for s in range(3) if c[s] == 0]
        if not oob:
            skipped += 1
            continue
        inbag = [direct(preds, t, multiset(c, names))["acc"] for t in range(6)]
        t = int(np.argmax(inbag))
        picked[t] += 1
        kept.append(direct(preds, t, oob))
    assert skipped > 0 and got.skipped_resamples == skipped and got.n_used == len(kept)
    assert got.picked == {str(t): int(n) for t, n in enumerate(picked)}
    assert got.picked["5"] == 0
    for m in METRICS:
        values = np.array([s[m] for s in kept])
        assert getattr(got, m) == pytest.approx(values.mean())
        assert getattr(got, f"{m}_ci") == pytest.approx(np.quantile(values, [0.025, 0.975]))


def test_search_best_intervals_equal_metrics_subject_bootstrap():
    rng = np.random.default_rng(8)
    names = subject_names(10)
    preds = {t: draw(rng, 0.5 + 0.05 * t, names) for t in range(4)}
    data = H.subject_confusions(preds, K)
    sb = H.search_best(data, objective="uar", n_boot=300, seed=17)
    subj, y, yp = preds[int(sb.champion)]
    want = subject_bootstrap(y, yp, subj, K, n_boot=300, seed=17)
    for m in METRICS:
        assert getattr(sb, m) == pytest.approx(scores(confusion_matrix(y, yp, K))[m])
        assert sb.to_dict()[f"{m}_ci"] == pytest.approx(list(want[m]))


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_result(one_winner):
    _, data = one_winner
    first = H.leaderboard(data, n_boot=200, seed=12)
    again = H.leaderboard(data, n_boot=200, seed=12)
    assert first == again
    other = H.leaderboard(data, n_boot=200, seed=13)
    assert other["bbc"]["uf1_ci"] != first["bbc"]["uf1_ci"]
    assert set(first["bbc"]) >= {
        "uf1",
        "acc",
        "uar",
        "uf1_ci",
        "acc_ci",
        "uar_ci",
        "n_boot",
        "n_trials",
        "excluded_trials",
        "skipped_resamples",
        "objective",
        "seed",
        "picked",
    }
    assert set(first["search_best"]) >= set(first["bbc"]) - {"picked", "n_used"}


def test_input_errors(one_winner):
    preds, data = one_winner
    for fn in (H.bbc, H.search_best, H.ties):
        with pytest.raises(ConfigError, match="n_boot"):
            fn(data, n_boot=0)
        with pytest.raises(ConfigError, match="objective"):
            fn(data, objective="f1")
        with pytest.raises(ConfigError, match="seed"):
            fn(data, seed=-1)
        with pytest.raises(ConfigError, match="level"):
            fn(data, level=1.5)
        with pytest.raises(InputError, match="data must be"):
            fn(data.cms)
    one_subject = H.SubjectConfusions(data.cms[:, :1])
    with pytest.raises(InputError, match="at least 2"):
        H.bbc(one_subject)
    pruned = np.array(data.cms)
    pruned[:, 0] = 0
    with pytest.raises(InputError, match="no eligible trial"):
        H.bbc(H.SubjectConfusions(pruned))
    with pytest.raises(InputError, match="cms must have shape"):
        H.SubjectConfusions(data.cms[0])
    with pytest.raises(InputError, match="has has shape"):
        H.SubjectConfusions(data.cms, has=np.ones((2, 2), bool))
    with pytest.raises(InputError, match="trials has 2 ids"):
        H.SubjectConfusions(data.cms, trials=["a", "b"])
    with pytest.raises(InputError, match="weights has shape"):
        H.pooled_scores(data, np.ones(3))
    with pytest.raises(InputError, match="equal length"):
        H.subject_confusions({"x": (["a", "b"], [0, 1], [0])}, K)
    with pytest.raises(InputError, match="outside"):
        H.subject_confusions({"x": (["a", "b"], [0, 1], [0, 7])}, K)
    with pytest.raises(InputError, match="different true labels"):
        H.subject_confusions({"x": (["a"], [0], [0]), "y": (["a"], [1], [1])}, K)
    with pytest.raises(InputError, match="not in subjects"):
        H.subject_confusions({"x": (["a", "b"], [0, 1], [0, 1])}, K, subjects=["a", "c"])
    with pytest.raises(InputError, match="champion 'nope'"):
        H.ties(data, champion="nope")


# --------------------------------------------------------------------------- size


def test_search_sized_case_runs():
    """B = 2000 resamples, C = 100 trials, S = 68 subjects, K = 5 (time printed, not
    asserted; well under a second per figure on two cores)."""
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 4, (100, 68, 5, 5))
    has = np.ones((100, 68), bool)
    has[60:, 20:] = False  # pruned trials
    data = H.SubjectConfusions(cms * has[..., None, None], has)
    start = time.perf_counter()
    result = H.leaderboard(data, n_boot=2000, seed=0)
    print(f"B=2000 C=100 S=68 K=5: {time.perf_counter() - start:.2f} s for all three figures")
    assert len(result["ties"]) == 100 and result["bbc"]["n_excluded"] == 40
