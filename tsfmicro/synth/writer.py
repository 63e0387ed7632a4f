"""Writing a synthetic copy to disk: frames in a process pool, then the spreadsheet.

Frame paths come from `tsfmicro.datasets.writers.frame_file` and the spreadsheet from
`write_annotation`, so what is written is exactly what the dataset loaders read. Every
file is written to a temporary name and renamed into place; the spreadsheet comes last, so
an interrupted run leaves no spreadsheet and fails to load instead of loading half a set.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tsfmicro.datasets.base import Policies
from tsfmicro.datasets.registry import get_adapter
from tsfmicro.datasets.writers import annotation_path, frame_file, write_annotation
from tsfmicro.errors import ConfigError, DataError
from tsfmicro.fileio import written_whole
from tsfmicro.synth.config import SynthConfig
from tsfmicro.synth.faces import get_sources
from tsfmicro.synth.plan import SynthPlan, plan_dataset, plan_from_annotation
from tsfmicro.synth.worker import Job, init_worker, render_job

PathLike = str | os.PathLike[str]

# Frames per job handed to a worker (one subject's clips are kept together).
_JOB_FRAMES = 32
# The most frames one copy may have: far above a real set written whole (CASME II's clips,
# onset to offset, hold tens of thousands of frames), below a typo that fills the disk.
MAX_FRAMES = 2_000_000


@dataclass(frozen=True)
class SynthResult:
    """What a run wrote."""

    root: Path  # the dataset folder (pass it to load_dataset / datasets inspect)
    dataset: str
    layout: str
    annotation: Path | None  # the spreadsheet written (mode a) or rendered for (mode b);
    # None for SMIC, which has none
    generated_annotation: bool  # True: mode (a) wrote `annotation` under root
    subjects: int
    clips: int
    frames: int
    seconds: float

    def inspect_command(self) -> str:
        """The command that checks the copy through the real loader."""
        parts = ["tsfmicro datasets inspect", f"--dataset {self.dataset}"]
        if self.dataset == "smic":
            parts.append(f"--protocol {self.layout}")  # SMIC's protocols name the subset
        elif len(get_adapter(self.dataset).layouts) > 1:
            parts.append(f"--layout {self.layout}")
        if not self.generated_annotation and self.annotation is not None:
            parts.append(f"--annotation {_quoted(self.annotation)}")
        parts.append(_quoted(self.root))
        return " ".join(parts)


def write_dataset(
    config: SynthConfig,
    out_dir: PathLike,
    workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> SynthResult:
    """Mode (a): generate a whole dataset (spreadsheet and frames) under `out_dir`."""
    return write_plan(plan_dataset(config), out_dir, workers, progress, overwrite)


def write_for_annotation(
    annotation: PathLike,
    out_dir: PathLike,
    config: SynthConfig,
    policies: Policies | None = None,
    workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> SynthResult:
    """Mode (b): render the frames an existing spreadsheet names, under `out_dir`.

    Nothing of the spreadsheet is copied; load the result with
    load_dataset(config.dataset, out_dir, annotation=annotation, policies=policies).
    """
    plan = plan_from_annotation(annotation, config, policies)
    return write_plan(plan, out_dir, workers, progress, overwrite)


def write_plan(
    plan: SynthPlan,
    out_dir: PathLike,
    workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> SynthResult:
    """Render and write a plan; `workers` processes (default: every core, 1: in-process)."""
    started = time.perf_counter()
    root = Path(out_dir)
    if plan.frame_count > MAX_FRAMES:
        raise ConfigError(
            f"this synthetic copy would have {plan.frame_count} frames; synth writes at most "
            f"{MAX_FRAMES} (fewer subjects or clips, or no --full-clips)"
        )
    _prepare_folder(root, plan, overwrite)
    jobs = list(_jobs(plan, root))
    sources = get_sources(plan.context.source_indices())
    count = min(workers or _cores(), len(jobs))
    with _progress_bar(plan.frame_count, progress) as bar:
        if count <= 1:
            for job in jobs:
                bar.update(render_job(plan.context, job))
        else:
            _run_pool(plan, jobs, sources, count, bar)
    sheet: Path | None = Path(plan.source)
    if plan.annotation is not None:
        sheet = _write_sheet(plan, root) if get_adapter(plan.dataset).annotation_file else None
    return SynthResult(
        root=root,
        dataset=plan.dataset,
        layout=plan.layout,
        annotation=sheet,
        generated_annotation=plan.annotation is not None,
        subjects=len(plan.context.subjects),
        clips=len(plan.clips),
        frames=plan.frame_count,
        seconds=time.perf_counter() - started,
    )


def _run_pool(plan: SynthPlan, jobs: list[Job], sources, count: int, bar) -> None:
    """Jobs over `count` spawned processes (spawn: torch and OpenCV thread pools do not
    survive fork safely, and workers need neither the parent's torch nor its pandas)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(count, context, initializer=init_worker, initargs=(sources,)) as pool:
        futures = [pool.submit(render_job, plan.context, job) for job in jobs]
        try:
            for future in as_completed(futures):
                bar.update(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _jobs(plan: SynthPlan, root: Path) -> Iterator[Job]:
    """Clips with their output paths, grouped by subject into jobs of ~_JOB_FRAMES frames."""
    job: list = []
    frames = 0
    subject = None
    for clip in sorted(plan.clips, key=lambda c: (c.subject, c.clip, c.first)):
        if job and (clip.subject != subject or frames >= _JOB_FRAMES):
            yield tuple(job)
            job, frames = [], 0
        subject = clip.subject
        targets = tuple(
            (n, str(_frame_path(plan, root, clip.subject, clip.clip, clip.emotion, n)))
            for n in clip.frames
        )
        job.append((clip, targets))
        frames += len(targets)
    if job:
        yield tuple(job)


def _frame_path(plan: SynthPlan, root: Path, subject: str, clip: str, emotion: str, n: int):
    return frame_file(plan.dataset, root, subject, clip, n, layout=plan.layout, emotion=emotion)


def _prepare_folder(root: Path, plan: SynthPlan, overwrite: bool) -> None:
    """Create `root` and check that it is writable and holds no copy to be overwritten."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".synth-probe-"):
            pass
    except OSError as exc:
        raise DataError(f"cannot write to output folder {root}: {exc.strerror or exc}") from exc
    if overwrite:
        return
    adapter = get_adapter(plan.dataset)
    folder = next(lay.folder for lay in adapter.layouts if lay.name == plan.layout)
    frames = root / folder
    existing = [frames] if frames.is_dir() and any(frames.iterdir()) else []
    if plan.annotation is not None and get_adapter(plan.dataset).annotation_file:
        sheet = annotation_path(plan.dataset, root)
        if sheet.exists():
            existing.append(sheet)
    if existing:
        raise DataError(
            f"{existing[0]} already exists; choose an empty folder or pass overwrite=True "
            "(CLI: --overwrite)"
        )


def _write_sheet(plan: SynthPlan, root: Path) -> Path:
    """The annotation spreadsheet in the dataset's format, written atomically."""
    path = annotation_path(plan.dataset, root)
    with written_whole(path) as temporary:
        write_annotation(plan.dataset, plan.annotation, temporary)
    return path


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class _NoBar:
    def update(self, count: int) -> None:
        """Progress is not shown."""


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[object]:
    """A tqdm bar over the frames on stderr, or one that does nothing."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm import tqdm

    # disable=None: no bar where stderr is not a terminal (a log gets no '\r' redraws)
    with tqdm(total=total, unit="frame", desc="synth", file=sys.stderr, disable=None) as bar:
        yield bar


def _quoted(path: Path) -> str:
    return shlex.quote(str(path))
