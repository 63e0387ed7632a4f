"""A search's progress while Tune runs its trials, on stderr.

    display = Display.on(sys.stderr, total=4, label="final UF1", enabled=True)
    with showing("my-search", display):
        tuner.fit()          # run_config callbacks include TuneProgress("my-search")

On a terminal it is one line, redrawn in place at most once a second and whenever a trial
ends: trials finished of the total (and running), the best score so far (complete trials
only, the rule the leaderboard ranks by), time elapsed since the search began and an
estimate of the time left. Elsewhere (a pipe, a log file, CI) it prints one plain line per
finished trial and no carriage return. `enabled=False` (`tsfmicro search --quiet`) prints
nothing.

Tune pickles its callbacks with the experiment, and a resumed search runs the pickled ones,
so `TuneProgress` holds only the search's name: it finds the display of the process that
runs it through `showing`, and does nothing when there is none.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ray.tune import Callback

from search.schema import FOLDS_DONE, N_FOLDS, OBJECTIVE, STATE_COMPLETE, STATE_FAILED

REDRAW_S = 1.0  # the live line is redrawn at most this often (and whenever a trial ends)
CLEAR = "\x1b[K"  # erase to the end of the line
STATE_PRUNED_LINE = "pruned"


def duration(seconds: float) -> str:
    """45s, 3m05s, 1h02m."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class TrialState:
    """What the display knows of one trial, from its last result."""

    trial_id: str
    folds_done: int = 0
    n_folds: int = 0
    objective: float | None = None
    finished: str | None = None  # complete, pruned or failed, once the trial has ended

    def work(self) -> float:
        """The share of its work done: 1 once ended, else folds done of its folds."""
        if self.finished is not None:
            return 1.0
        return self.folds_done / self.n_folds if self.n_folds else 0.0


@dataclass
class Display:
    """The progress of one search (see the module docstring). `stream` None: silent."""

    stream: TextIO | None
    total: int
    label: str  # what the objective is, e.g. "final UF1"
    live: bool = False
    started: float = field(default_factory=time.perf_counter)  # the search's start
    budget_s: float | None = None  # --time-budget: no trial starts after it
    trials: dict[str, TrialState] = field(default_factory=dict)
    _tune_started: float | None = None
    _work_at_start: float = 0.0
    _drawn: float = 0.0  # when the live line was last drawn (0: not on screen)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def on(
        cls,
        stream: TextIO,
        total: int,
        label: str,
        enabled: bool = True,
        started: float | None = None,
        budget_s: float | None = None,
    ) -> Display:
        """A display on `stream`: live when it is a terminal, plain lines otherwise."""
        live = False
        with contextlib.suppress(AttributeError, ValueError, OSError):
            live = bool(stream.isatty())
        return cls(
            stream=stream if enabled else None,
            total=total,
            label=label,
            live=live and enabled,
            started=time.perf_counter() if started is None else started,
            budget_s=budget_s,
        )

    # ---- what Tune tells it ---------------------------------------------------------------

    def begin(self, trials: list[Any]) -> None:
        """Tune's loop starts; a resumed search's trials already ended are counted."""
        with self._lock:
            self._tune_started = time.perf_counter()
            for trial in trials:
                if str(trial.status) == "PENDING":
                    continue
                self._observe(trial)
                if str(trial.status) in ("TERMINATED", "ERROR"):
                    self._end(trial, error=str(trial.status) == "ERROR")
            self._work_at_start = self.work()
        done = self.done()
        if done and self.stream is not None and not self.live:
            self._write(f"resumed: {done} of {self.total} trials ended before\n")
        self.refresh(force=True)

    def result(self, trial: Any) -> None:
        with self._lock:
            self._observe(trial)

    def ended(self, trial: Any, error: bool = False) -> None:
        """A trial ended (its last result is in): a plain line, or the live line redrawn."""
        with self._lock:
            self._observe(trial)
            state = self._end(trial, error)
            if state is None:
                return
            line = self.trial_line(state)
        if self.live:
            self.refresh(force=True)
        elif self.stream is not None:
            self._write(line + "\n")

    def refresh(self, force: bool = False) -> None:
        """Redraw the live line (at most every REDRAW_S unless forced)."""
        if not self.live or self.stream is None:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_S:
            return
        width = max(20, shutil.get_terminal_size((120, 24)).columns - 1)
        with self._lock:
            line = self.status_line(now)
        self._drawn = now
        self._write("\r" + line[:width] + CLEAR)

    def clear(self) -> None:
        """Erase the live line (something else is about to be written in its place)."""
        if self.live and self._drawn:
            self._write("\r" + CLEAR)
            self._drawn = 0.0

    def close(self) -> None:
        """Tune's loop ended: the live line is drawn once more and left on its own line."""
        if self.live and self.stream is not None and self._drawn:
            self.refresh(force=True)
            self._write("\n")
            self._drawn = 0.0

    # ---- what it shows ---------------------------------------------------------------------

    def done(self) -> int:
        return sum(1 for t in self.trials.values() if t.finished is not None)

    def running(self) -> int:
        return sum(1 for t in self.trials.values() if t.finished is None)

    def work(self) -> float:
        """Trials' worth of work done (an ended trial counts whole)."""
        return sum(t.work() for t in self.trials.values())

    def best(self) -> TrialState | None:
        complete = [
            t
            for t in self.trials.values()
            if t.finished == STATE_COMPLETE and t.objective is not None
        ]
        return max(complete, key=lambda t: t.objective) if complete else None

    def remaining(self, now: float) -> float | None:
        """Seconds left at the pace of this run of Tune's loop (None before any progress)."""
        if self._tune_started is None:
            return None
        gained = self.work() - self._work_at_start
        spent = now - self._tune_started
        if gained <= 0 or spent <= 0:
            return None
        left = max(0.0, self.total - self.work()) * spent / gained
        if self.budget_s is not None:
            left = min(left, max(0.0, self.budget_s - (now - self.started)))
        return left

    def timing(self, now: float) -> str:
        left = self.remaining(now)
        if self.done() >= self.total:
            return f"{duration(now - self.started)} elapsed"
        return f"{duration(now - self.started)} elapsed, " + (
            f"about {duration(left)} left" if left is not None else "time left unknown yet"
        )

    def best_text(self) -> str:
        best = self.best()
        if best is None:
            return f"best {self.label}: none yet"
        return f"best {self.label} {best.objective:.3f} ({best.trial_id})"

    def status_line(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        running = self.running()
        return (
            f"trials {self.done()}/{self.total} done"
            + (f", {running} running" if running else "")
            + f" | {self.best_text()} | {self.timing(now)}"
        )

    def trial_line(self, state: TrialState) -> str:
        what = state.finished
        if state.finished == STATE_COMPLETE and state.objective is not None:
            what = f"complete, {self.label} {state.objective:.3f}"
        elif state.finished != STATE_FAILED and state.n_folds:
            what = f"{state.finished} after {state.folds_done}/{state.n_folds} folds"
        return (
            f"trial {self.done()}/{self.total} {state.trial_id} {what} | {self.best_text()} "
            f"| {self.timing(time.perf_counter())}"
        )

    # ---- inside --------------------------------------------------------------------------

    def _observe(self, trial: Any) -> TrialState:
        state = self.trials.setdefault(trial.trial_id, TrialState(trial.trial_id))
        result = getattr(trial, "last_result", None) or {}
        state.folds_done = int(result.get(FOLDS_DONE, state.folds_done) or 0)
        state.n_folds = int(result.get(N_FOLDS, state.n_folds) or 0)
        value = result.get(OBJECTIVE)
        if isinstance(value, int | float):
            state.objective = float(value)
        return state

    def _end(self, trial: Any, error: bool) -> TrialState | None:
        state = self.trials[trial.trial_id]
        if state.finished is not None:
            return None
        if error:
            state.finished = STATE_FAILED
        elif state.n_folds and state.folds_done >= state.n_folds:
            state.finished = STATE_COMPLETE
        else:
            state.finished = STATE_PRUNED_LINE
        return state

    def _write(self, text: str) -> None:
        if self.stream is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()


_SHOWN: dict[str, Display] = {}


# the loggers whose handlers write while Tune runs: the search's own (through the root
# logger, or logging.lastResort where it has none) and its dependencies' own handlers
LOGGERS = ("", "ray", "ray.tune", "ray.train", "mlflow", "optuna")


class _ClearLiveLine(logging.Filter):
    """On a handler: a record about to be written first clears the live line, so it is
    printed in its place rather than through it; the line is drawn again below it."""

    def __init__(self, display: Display) -> None:
        super().__init__()
        self.display = display

    def filter(self, record: logging.LogRecord) -> bool:
        self.display.clear()
        return True


@contextlib.contextmanager
def showing(search: str, display: Display) -> Iterator[Display]:
    """`display` is the one TuneProgress(search) draws on while Tune's loop runs."""
    handlers: list[logging.Handler] = []
    if display.live:
        handlers = [h for name in LOGGERS for h in logging.getLogger(name).handlers]
        handlers += [logging.lastResort] if logging.lastResort is not None else []
    clearing = _ClearLiveLine(display)
    for handler in handlers:
        handler.addFilter(clearing)
    _SHOWN[search] = display
    try:
        yield display
    finally:
        _SHOWN.pop(search, None)
        for handler in handlers:
            handler.removeFilter(clearing)
        display.close()


class TuneProgress(Callback):
    """Feeds the display of search `search` (see `showing`) from Tune's loop."""

    def __init__(self, search: str) -> None:
        self.search = search

    def _display(self) -> Display | None:
        return _SHOWN.get(self.search)

    def setup(self, **info: Any) -> None:  # before the loop; trials are not known yet
        pass

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        display = self._display()
        if display is not None and display._tune_started is None:
            display.begin(trials)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any
    ) -> None:
        display = self._display()
        if display is not None:
            display.result(trial)
            display.refresh()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        display = self._display()
        if display is not None:
            display.ended(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        display = self._display()
        if display is not None:
            display.ended(trial, error=True)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        display = self._display()
        if display is not None:
            for trial in trials:
                if trial.trial_id not in display.trials and str(trial.status) == "RUNNING":
                    display.result(trial)
            display.refresh()
