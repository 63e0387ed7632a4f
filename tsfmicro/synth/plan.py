"""What to render: a `SynthPlan` of clips, from a config (mode a) or a spreadsheet (mode b).

Mode (a) invents a dataset: subjects, clips balanced over the classes per subject, frame
numbers consistent with the dataset's frame rate, and the annotation table to write. Mode
(b) reads an existing annotation through the dataset's own loader and plans exactly the
frames that loader will look for (the onset and the apex after its quirk policies).
"""

from __future__ import annotations

import contextlib
import logging
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tsfmicro.datasets import smic
from tsfmicro.datasets.base import Policies, normalise_label
from tsfmicro.datasets.registry import get_adapter
from tsfmicro.datasets.train_pairs import candidate_frames, jitter_range
from tsfmicro.errors import DataError
from tsfmicro.synth.aus import (
    EMOTION_AUS,
    AuAction,
    canonical_emotion,
    choose_actions,
    format_aus,
    parse_aus,
)
from tsfmicro.synth.clips import ClipSpec, Event
from tsfmicro.synth.config import SynthConfig
from tsfmicro.synth.render import RenderContext
from tsfmicro.synth.seeding import rng_for

PathLike = str | os.PathLike[str]

# Expression timing (Yan et al. 2013: micro-expressions last at most 500 ms).
DURATION_SECONDS = (0.2, 0.5)  # onset to offset
APEX_FRACTION = (0.3, 0.6)  # where the apex falls between onset and offset


@dataclass(frozen=True)
class SynthPlan:
    """Everything needed to write a synthetic copy: the render context, the clips, and
    (mode a) the annotation table to write; `source` says where the rows came from."""

    context: RenderContext
    dataset: str
    layout: str
    clips: tuple[ClipSpec, ...]
    annotation: pd.DataFrame | None  # mode (a): rows for writers.write_annotation
    source: str  # "generated" or the annotation file of mode (b)

    @property
    def config(self) -> SynthConfig:
        return self.context.config

    @property
    def frame_count(self) -> int:
        return sum(len(clip.frames) for clip in self.clips)


def plan_dataset(config: SynthConfig) -> SynthPlan:
    """Mode (a): a whole synthetic dataset in the layout of `config.dataset`."""
    classes = config.class_labels()
    fps = _fps(config)
    subjects = tuple(_subject_name(config.dataset, i) for i in range(config.subjects))
    clips, rows = [], []
    for position, subject in enumerate(subjects):
        per_class: dict[str, int] = {}
        for index, emotion in enumerate(_subject_emotions(config, position, subject, classes)):
            per_class[emotion] = per_class.get(emotion, 0) + 1
            clip_name = _clip_name(config.dataset, subject, index)
            if config.dataset == "smic":
                clip_name = smic.clip_name(subject, emotion, per_class[emotion])
            event = _generated_event(config, fps, subject, clip_name, emotion)
            clips.append(_clip(config, config.full_clips, subject, clip_name, (event,)))
            rows.append(
                {
                    "subject": subject,
                    "clip": clip_name,
                    "onset": event.onset,
                    "apex": event.apex,
                    "offset": event.offset,
                    "emotion": emotion,
                    "action_units": format_aus(event.actions),
                }
            )
    context = RenderContext(config, float(fps), subjects)
    return SynthPlan(
        context, config.dataset, config.layout_name(), tuple(clips), pd.DataFrame(rows), "generated"
    )


def _fps(config: SynthConfig) -> int:
    """The frame rate of the dataset's layout (SMIC's subsets differ: HS 100, VIS/NIR 25)."""
    if config.dataset == "smic":
        return smic.SUBSETS[config.layout_name()][1]
    return get_adapter(config.dataset).fps


def _subject_emotions(
    config: SynthConfig, position: int, subject: str, classes: tuple[str, ...]
) -> list[str]:
    """A subject's clip emotions: the classes in turn, so each subject's counts differ by
    at most one; the classes left over after whole rounds continue where the previous
    subject's stopped, so the totals balance too. Then a seeded random order."""
    count, k = config.clips_per_subject, len(classes)
    start = position * (count % k)
    emotions = [classes[(start + index) % k] for index in range(count)]
    rng_for(config.seed, "order", subject).shuffle(emotions)
    return emotions


def _generated_event(
    config: SynthConfig, fps: float, subject: str, clip: str, emotion: str
) -> Event:
    """Timing at the dataset's frame rate, AUs and amplitude for one generated clip. The
    timing stream does not see the emotion, so frame numbers carry no label information."""
    timing = rng_for(config.seed, "timing", subject, clip)
    onset = int(timing.integers(1, round(fps) + 1))
    length = max(2, round(timing.uniform(*DURATION_SECONDS) * fps))
    apex = onset + max(1, min(length - 1, round(timing.uniform(*APEX_FRACTION) * length)))
    if config.dataset == "smic":
        # No apex annotation: the loader's default apex is the clip's middle frame, and the
        # clip's first and last frame are its onset and offset, so all three are written.
        apex = onset + length // 2
    return _event(config, subject, clip, emotion, onset, apex, onset + length, "")


def _event(
    config: SynthConfig,
    subject: str,
    clip: str,
    emotion: str,
    onset: int,
    apex: int,
    offset: int,
    annotated_aus: str,
) -> Event:
    """An expression event: AUs from the emotion (or the annotation, in mode (b) with
    au_source="annotation"), and its amplitude with the per-clip jitter."""
    rng = rng_for(config.seed, "expression", subject, clip, onset)
    actions: tuple[AuAction, ...] = ()
    if config.au_source == "annotation":
        actions = parse_aus(annotated_aus)
    if not actions:
        actions = choose_actions(emotion, rng, config.optional_aus)
    jitter = config.amplitude_jitter
    amplitude = config.levels().amplitude_px * rng.uniform(1 - jitter, 1 + jitter)
    return Event(emotion, onset, apex, offset, actions, float(amplitude))


def _clip(
    config: SynthConfig, full: bool, subject: str, clip: str, events: tuple[Event, ...]
) -> ClipSpec:
    """A clip with the frames to write: onset and apex of each event (with the training-pair
    candidates when config.pair_frames), or every frame."""
    frames: set[int] = set()
    for event in events:
        if full:
            frames.update(range(event.start, event.end + 1))
        else:
            frames.update((event.onset, event.apex))
            if config.dataset == "smic":  # the loader reads onset and offset from the files
                frames.add(event.offset)
            if config.pair_frames:
                r = jitter_range(config.dataset, event.onset, event.apex)
                frames.update(candidate_frames(event.onset, event.apex, r))
    return ClipSpec(subject, clip, events[0].emotion, events, tuple(sorted(frames)))


def _subject_name(dataset: str, index: int) -> str:
    """On-disk subject folder of the index-th synthetic subject, in the dataset's style."""
    if dataset == "casme2":
        return f"sub{index + 1:02d}"
    if dataset == "samm":
        return f"{index + 6:03d}"  # SAMM's subjects start at 006
    if dataset == "casme3":
        return f"spNO.{index + 1}"
    if dataset == "smic":
        return f"s{index + 1}"
    return f"S{index + 1:02d}"


def _clip_name(dataset: str, subject: str, index: int) -> str:
    """The clip's Filename in the dataset's style (EP02_01f, 006_1_2, a, S01_03)."""
    if dataset == "casme2":
        return f"EP{index + 1:02d}_01f"
    if dataset == "samm":
        return f"{subject}_{index % 7 + 1}_{index // 7 + 1}"
    if dataset == "casme3":
        return _letters(index)
    return f"{subject}_{index + 1:02d}"


def _letters(index: int) -> str:
    """a..z, A..Z, then aa, ab, ...: CAS(ME)3 names a subject's clips by letters."""
    alphabet = string.ascii_lowercase + string.ascii_uppercase
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, len(alphabet))
        name = alphabet[rest] + name
    return name


def plan_from_annotation(
    annotation: PathLike, config: SynthConfig, policies: Policies | None = None
) -> SynthPlan:
    """Mode (b): the frames that `config.dataset`'s loader will look for in `annotation`.

    The sheet is read through the dataset's adapter under every protocol of the dataset,
    so rows one protocol drops are still rendered; apexes are the ones the loader
    resolves under `policies` (default Policies()), so quirky rows ("/" apex, apex outside
    the clip) get the frames the loader will then look for. Rows that a policy settles by
    reading the frames (max_difference) get every frame onset..offset.
    """
    path = Path(annotation)
    if config.dataset == "smic":
        raise DataError("SMIC has no annotation spreadsheet; generate a copy instead (mode a)")
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    policies = policies or Policies()
    samples = _annotated_samples(config.dataset, path, policies)
    by_clip: dict[tuple[str, str], list[Event]] = {}
    full: set[tuple[str, str]] = set()
    for row in samples.to_dict("records"):
        key = (row["subject"], row["clip"])
        by_clip.setdefault(key, []).append(
            _event(
                config,
                row["subject"],
                row["clip"],
                row["emotion"],
                int(row["onset"]),
                int(row["apex"]),
                int(row["offset"]),
                row["action_units"],
            )
        )
        if _needs_clip(row["quirks"], policies):
            full.add(key)
    clips = []
    for (subject, clip), events in by_clip.items():
        events.sort(key=lambda e: (e.onset, e.apex))
        wants_full = config.full_clips or (subject, clip) in full
        clips.append(_clip(config, wants_full, subject, clip, tuple(events)))
    subjects = tuple(sorted({clip.subject for clip in clips}))
    fps = float(get_adapter(config.dataset).fps)
    context = RenderContext(config, fps, subjects)
    return SynthPlan(context, config.dataset, config.layout_name(), tuple(clips), None, str(path))


def _annotated_samples(dataset: str, path: Path, policies: Policies) -> pd.DataFrame:
    """Every row any protocol keeps, as loaded (policy-resolved apex), once per sheet row."""
    adapter = get_adapter(dataset)
    tables = []
    with _quiet_loader_log():
        for protocol in adapter.protocols:
            table = adapter.load(None, protocol.name, path, None, policies, require_frames=False)
            tables.append(table.samples)
    samples = pd.concat(tables, ignore_index=True).drop_duplicates("source_row")
    for emotion in samples["emotion"]:
        if canonical_emotion(normalise_label(emotion)) not in EMOTION_AUS:
            raise DataError(f"{path}: no action units known for emotion {emotion!r}")
    return samples.sort_values("source_row", kind="stable")


def _needs_clip(quirks: str, policies: Policies) -> bool:
    """Whether a row's apex was settled by a max_difference policy (which reads frames)."""
    kinds = [kind for kind in quirks.split(",") if kind]
    return any(getattr(policies, kind, None) == "max_difference" for kind in kinds)


@contextlib.contextmanager
def _quiet_loader_log() -> Iterator[None]:
    """Planning loads the sheet once per protocol; keep its quirk lines off the log (the
    loader reports them again when the copy is loaded)."""
    logger = logging.getLogger("tsfmicro.datasets")
    disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = disabled
