"""What a search prints while it runs: one live line on a terminal, plain lines elsewhere,
nothing with --quiet; harmless dependency output dropped at its source (search.progress,
search.quiet)."""

from __future__ import annotations

import io
import logging
import os
import pickle
import pty
import re
import select
import subprocess
import sys
import time
import warnings
from types import SimpleNamespace

import pytest

from search import quiet
from search.progress import CLEAR, Display, TuneProgress, duration, showing

from services import service_env


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def trial(trial_id, status="RUNNING", done=0, total=4, objective=None):
    result = {"folds_done": done, "n_folds": total}
    if objective is not None:
        result["objective"] = objective
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=result)


def drive(display: Display) -> None:
    """Two trials through TuneProgress: one complete, one stopped early (pruned)."""
    progress = TuneProgress("s")
    a, b = trial("aaaa0001"), trial("bbbb0002")
    with showing("s", display):
        progress.on_step_begin(iteration=1, trials=[a, b])
        a.last_result.update(folds_done=2, objective=0.4)
        progress.on_trial_result(iteration=2, trials=[a, b], trial=a, result=a.last_result)
        a.last_result.update(folds_done=4, objective=0.5)
        progress.on_trial_complete(iteration=3, trials=[a, b], trial=a)
        b.last_result.update(folds_done=1, objective=0.9)
        progress.on_trial_complete(iteration=4, trials=[a, b], trial=b)
        progress.on_step_end(iteration=4, trials=[a, b])


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    drive(Display.on(out, total=3, label="final UF1"))
    text = out.getvalue()
    assert "\r" not in text and CLEAR not in text
    lines = text.splitlines()
    assert len(lines) == 2  # one per finished trial, nothing else
    assert lines[0].startswith(
        "trial 1/3 aaaa0001 complete, final UF1 0.500 | best final UF1 0.500 (aaaa0001) | "
    )
    # a trial stopped early is never the best, whatever its partial score
    assert lines[1].startswith(
        "trial 2/3 bbbb0002 pruned after 1/4 folds | best final UF1 0.500 (aaaa0001) | "
    )
    assert re.search(r"\| \d+s elapsed, about \d+s left$", lines[1])


def test_one_line_redrawn_in_place_on_a_terminal():
    out = Terminal()
    drive(Display.on(out, total=2, label="final UF1"))
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # left on its own line at the end
    frames = [frame.removesuffix(CLEAR) for frame in text.rstrip("\n").split("\r")[1:]]
    assert len(frames) >= 3 and all(CLEAR not in f for f in frames)
    assert frames[0] == (
        "trials 0/2 done, 2 running | best final UF1: none yet | 0s elapsed, time left unknown yet"
    )
    assert frames[-1].startswith("trials 2/2 done | best final UF1 0.500 (aaaa0001) | ")
    assert frames[-1].endswith(" elapsed")  # nothing left to estimate


def test_quiet_prints_nothing_and_no_display_means_no_output(capsys):
    out = Terminal()
    drive(Display.on(out, total=2, label="final UF1", enabled=False))
    assert out.getvalue() == ""
    progress = TuneProgress("nobody-shows-this")  # e.g. an inner search in a Ray worker
    progress.on_trial_complete(iteration=1, trials=[], trial=trial("x"))
    assert capsys.readouterr() == ("", "")


def test_a_log_record_takes_the_live_lines_place_and_the_line_comes_back_below():
    out = Terminal()
    handler = logging.StreamHandler(out)
    ray_logger = logging.getLogger("ray")
    ray_logger.addHandler(handler)
    try:
        display = Display.on(out, total=2, label="final UF1")
        with showing("s", display):
            display.begin([trial("a")])
            logging.getLogger("ray.tune.somewhere").warning("a warning that matters")
            display.refresh()
        logging.getLogger("ray.tune.somewhere").warning("after the trials")
    finally:
        ray_logger.removeHandler(handler)
    lines = out.getvalue().split("\n")
    assert lines[0].startswith("\rtrials 0/2 done, 1 running")
    assert lines[0].endswith(CLEAR + "\r" + CLEAR + "a warning that matters")
    assert lines[1].startswith("\rtrials 0/2 done, 1 running") and lines[1].endswith(CLEAR)
    assert lines[2:] == ["after the trials", ""]  # the filter went with the display


def test_the_callback_pickles_without_its_display():
    """Tune pickles callbacks with the experiment and runs the pickled ones on --resume."""
    out = Terminal()
    with showing("s", Display.on(out, total=1, label="final UF1")):
        again = pickle.loads(pickle.dumps(TuneProgress("s")))
        assert again.search == "s" and again._display() is not None
    assert again._display() is None


def test_a_resumed_search_counts_what_ended_before_and_estimates_from_its_own_pace():
    out = io.StringIO()
    display = Display.on(out, total=4, label="final UF1", started=time.perf_counter() - 100)
    display.begin([trial("old1", "TERMINATED", 4, 4, 0.3), trial("old2", "ERROR", 1, 4)])
    assert out.getvalue() == "resumed: 2 of 4 trials ended before\n"
    assert display.remaining(time.perf_counter()) is None  # no pace of its own yet
    running = trial("new1", done=2)
    display.result(running)
    assert display.work() == pytest.approx(2.5)
    left = display.remaining(display._tune_started + 10)
    assert left == pytest.approx(1.5 * 10 / 0.5)  # 1.5 trials left at 0.5 trial per 10 s
    assert display.best().trial_id == "old1"


def test_time_budget_caps_the_estimate_and_durations_read():
    display = Display.on(io.StringIO(), total=10, label="x", started=0.0, budget_s=60)
    display.begin([])
    display._tune_started = 0.0
    display.result(trial("a", done=1, total=10))
    assert display.remaining(30.0) == pytest.approx(30.0)  # 2970 s at its pace; budget: 30
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]


def test_known_harmless_records_and_warnings_are_dropped_and_nothing_else(caplog):
    quiet.silence_dependencies()
    for name, prefix in quiet.DROPPED_RECORDS:
        logger = logging.getLogger(name)
        with caplog.at_level(logging.INFO, logger=name):
            caplog.clear()
            logger.warning(prefix + " (and the rest of the message)")
            logger.warning("another message of the same logger")
            assert [r.getMessage() for r in caplog.records] == [
                "another message of the same logger"
            ], name
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet._done = False  # the filters again, inside this catch_warnings
        quiet.silence_dependencies()

        class ExperimentalWarning(Warning):  # as Optuna's: a direct Warning subclass
            pass

        warnings.warn(
            "Study.set_metric_names is experimental (supported from v3.2.0).",
            ExperimentalWarning,
            stacklevel=1,
        )
        warnings.warn("Study.something_else is experimental", ExperimentalWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["Study.something_else is experimental"]
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"


def test_the_board_a_search_ends_with_fits_120_columns():
    """Only the hyperparameters that differ get a column; the ranked metric keeps its
    interval and each trial its Δ to the champion (tsfmicro leaderboard has every column)."""
    import pandas as pd

    from search.leaderboard import format_compact_leaderboard
    from search.schema import CI_HI, CI_LO, TieMetric

    base = {"experiment": "tsfmicro/synthetic-casme2/5class", "search": "s", "state": "complete",
            "run_id": "r", "eval_mode": "final", "objective_name": "uf1", "reason": None,
            "weight_decay": 0.05, "batch_size": 16, "epochs": 12, "class_weighting": "none",
            "temporal_mixer": "masa", "final_uar": 0.5, "oracle_uf1": 0.9}  # fmt: skip
    rows = []
    for i, (depth, fusion, lr, uf1) in enumerate(
            [(8, "early", 0.00233, 0.566), (7, "late", 0.00249, 0.502),
             (5, "s2t", 0.000443, 0.285)]):  # fmt: skip
        rows.append(
            {
                **base,
                "trial": f"trial{i:03d}",
                "temporal_depth": depth,
                "spatial_depth": 4,
                "fusion": fusion,
                "lr": lr,
                "final_acc": uf1 + 0.01,
                "final_uf1": uf1,
                "final_uf1_ci_lo": uf1 - 0.1,
                "final_uf1_ci_hi": uf1 + 0.1,
                "tied_with_best": i < 2,
                TieMetric.DIFF: uf1 - 0.566,
                TieMetric.DIFF + CI_LO: 0.0 if i == 0 else uf1 - 0.7,
                TieMetric.DIFF + CI_HI: 0.0 if i == 0 else uf1 - 0.4 + 0.3 * (i == 1),
            }
        )
    board = pd.DataFrame([*rows, {**base, "trial": "cut00001", "state": "pruned",
                                  "reason": "stopped after 2 of 8 folds"}])  # fmt: skip
    text = format_compact_leaderboard(board, "final", "uf1")
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120, text
    header = lines[1].split()
    assert header[:6] == ["#", "trial", "temporal_depth", "fusion", "lr", "ACC"]
    assert "spatial_depth" not in header and "oracle" not in text
    assert lines[3].split()[1:5] == ["trial000", "8", "early", "0.00233"]
    assert lines[3].endswith("0.566 [0.47,0.67]  0.500  +0.000 [+0.00,+0.00] best")
    assert lines[4].endswith("tied") and not lines[5].endswith("tied")
    assert (
        "same in every trial: spatial_depth 4, weight_decay 0.05, batch_size 16, epochs 12, "
        "class_weighting none, temporal_mixer masa"
    ) in " ".join(line.strip() for line in lines)
    assert lines[-1] == "   cut00001: pruned stopped after 2 of 8 folds"


# ---- a real search, its stderr on a terminal ------------------------------------------------

SEARCH = ["--dataset", "toy", "--preset", "micro", "--toy-subjects", "2", "--toy-per-subject",
          "4", "--trials", "2", "--set", "epochs=1", "--no-register"]  # fmt: skip
TUNE_OUTPUT = ("Trial status", "Configuration for experiment", "View detailed results",
               "Logical resource usage", "tensorboard")  # fmt: skip


def read_pty(fd: int, proc: subprocess.Popen, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed (Linux: EIO)
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


@pytest.mark.slow
def test_a_search_on_a_terminal_redraws_one_line_and_prints_its_result_once(tmp_path):
    """stderr on a pseudo-terminal (a person watching), stdout to a pipe (the result kept)."""
    leader, follower = pty.openpty()
    os.set_blocking(leader, False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsfmicro.cli", "search", "--name", "pty2", *SEARCH,
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage-path", str(tmp_path / "runs")],
        cwd=tmp_path, env={**service_env(), "COLUMNS": "120"}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=follower)  # fmt: skip
    os.close(follower)
    try:
        err = read_pty(leader, proc, timeout=600).decode(errors="replace")
        out = proc.stdout.read().decode()
        assert proc.wait(60) == 0, err[-3000:] + out[-3000:]
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    err = err.replace("\r\n", "\n")  # the terminal's own newline translation
    # the live line: drawn with '\r' and redrawn in place (a log record, if one comes, takes
    # its place and the line is drawn again below it), left on a line of its own at the end
    segments = [[s.replace(CLEAR, "") for s in line.split("\r")] for line in err.split("\n")]
    frames = [s for line in segments for s in line if s.startswith("trials ")]
    shown = [next((s for s in reversed(line) if s), "") for line in segments]  # on screen
    assert len(frames) >= 3 and any(len(line) > 2 for line in segments), err[-3000:]
    assert frames[0].startswith("trials 0/2 done"), err[-3000:]
    assert [s for s in shown if "trials " in s and not s.startswith("trials ")] == []
    assert re.fullmatch(
        r"trials 2/2 done \| best final UF1 \d\.\d{3} \(\w+\) \| (\d+m)?\d+s elapsed",
        [s for s in shown if s.startswith("trials ")][-1],
    ), err[-3000:]
    assert any("s left" in f for f in frames[1:-1])  # an estimate once a trial made progress
    assert all(len(f) <= 119 for f in frames)  # fits the terminal: never wraps
    for text in (err, out):
        assert not any(word in text for word in TUNE_OUTPUT), text[-3000:]
        assert not any(prefix in text for _, prefix in quiet.DROPPED_RECORDS)
        assert "Warning" not in text and "Traceback" not in text
    # the result on stdout: no carriage return, the leaderboard once, no line twice
    assert "\r" not in out
    assert out.count("leaderboard by final UF1") == 1
    result = [line for line in out.splitlines() if line.strip() and not set(line) <= {"-"}]
    assert len(result) == len(set(result)), out
    assert out.rstrip().splitlines()[-2].startswith("search pty2: 2 trials in ")
    assert out.rstrip().splitlines()[-1].startswith("  MLflow experiment 'tsfmicro/toy/3class'")
    # the board and the honest estimates fit 120 columns (the last line names a temp path)
    assert max(len(line) for line in out.rstrip().splitlines()[:-1]) <= 120, out
