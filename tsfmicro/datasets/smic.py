"""SMIC (Li et al. 2013): three subsets, no annotation spreadsheet, no apex annotation.

The dataset folder (SMIC's cropped or raw copy, e.g. `SMIC_all_cropped/`) holds one folder per
subset: `HS/` (100 fps high-speed camera, 164 clips of 16 subjects), `VIS/` and `NIR/` (25 fps
visual and near-infrared cameras, 71 clips of 8 subjects each). Clips are
`<subset>/<subject>/micro/<class>/<clip>/` with `<subject>` = s1, s2, ..., `<class>` one of
negative, positive, surprise, and `<clip>` = `<subject>_<ne|po|sur>_<nn>` (s1_ne_01). Other
folders beside `micro/` (SMIC's `non_micro/`) are not read. Frames are the numbered image files
of the clip folder (`reg_image036237.bmp` in the cropped HS copy, `image036237.bmp` in the raw
one, `reg_06387.bmp` in cropped VIS/NIR); the numbers come from the files, so any prefix and
zero padding is accepted, one per clip.

Onset and offset are the clip's first and last frame. SMIC has no apex annotation: the apex is
chosen by `Policies.unannotated_apex`, `middle` ((onset + offset) // 2, the default) or
`max_difference` (the frame differing most from the onset), and every clip records it as an
`unannotated_apex` issue. Protocols choose the subset: `hs` (default), `vis`, `nir`, and
`megc2019` (the HS clips of the MEGC 2019 list, which are all 164).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tsfmicro.datasets.adapter import find_protocol, missing_frames_message
from tsfmicro.datasets.base import (
    SAMPLE_COLUMNS,
    Issue,
    LoadReport,
    MissingFrame,
    MissingFramesError,
    Policies,
    Protocol,
    SampleTable,
    make_protocol,
)
from tsfmicro.datasets.frames import FrameLayout, check_dataset_folder
from tsfmicro.datasets.lists import keep_listed
from tsfmicro.datasets.samples import largest_difference_frame
from tsfmicro.errors import DataError

NAME = "smic"
PathLike = str | os.PathLike[str]

# Subset (the layout name) -> (its folder, frames per second).
SUBSETS: dict[str, tuple[str, int]] = {"hs": ("HS", 100), "vis": ("VIS", 25), "nir": ("NIR", 25)}
# Class folder -> the code in a clip's name.
CLASS_CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}
_CLASSES = {name: (name,) for name in CLASS_CODES}
CLIP_PART = "micro"  # the folder of a subject's micro-expression clips

# Published counts: HS from Li et al. 2013 and the MEGC 2019 list; VIS and NIR 71 clips of
# 8 subjects each (Li et al. 2013; the SMIC-E page of the University of Oulu).
PROTOCOLS = (
    make_protocol(
        NAME,
        "hs",
        _CLASSES,
        description="SMIC-HS (100 fps): every micro-expression clip, classes from the folder "
        "names. 164 samples, 16 subjects.",
        published=(164, 16, (70, 51, 43)),
    ),
    *(
        make_protocol(
            NAME,
            subset,
            _CLASSES,
            description=f"SMIC-{subset.upper()} (25 fps {camera}). 71 samples, 8 subjects.",
            published=(71, 8, (23, 28, 20)),
        )
        for subset, camera in (("vis", "visual camera"), ("nir", "near-infrared camera"))
    ),
    make_protocol(
        NAME,
        "3class",
        _CLASSES,
        description="SMIC-HS as a composite part (the same samples as hs; every dataset's "
        "3class protocol shares negative, positive, surprise). 164 samples, 16 subjects.",
        published=(164, 16, (70, 51, 43)),
    ),
    make_protocol(
        NAME,
        "megc2019",
        _CLASSES,
        description="The SMIC part of the MEGC 2019 composite: the HS clips of the shipped "
        "MEGC 2019 list (all of SMIC-HS). 164 samples, 16 subjects.",
        sample_list="megc2019",
        published=(164, 16, (70, 51, 43)),
    ),
)
PROTOCOL_SUBSET = {"hs": "hs", "vis": "vis", "nir": "nir", "3class": "hs", "megc2019": "hs"}

_CLIP_NAME = re.compile(r"(?P<subject>s\d+)_(?P<code>[a-z]+)_(?P<index>\d+)", re.IGNORECASE)
_SUBJECT = re.compile(r"s\d+", re.IGNORECASE)
_FRAME = re.compile(r"(?P<prefix>[^\d]*)(?P<number>\d+)(?P<ext>\.(?:bmp|jpe?g|png))", re.IGNORECASE)
_IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png")
_ERROR_LINES = 20


def _layout(name: str) -> FrameLayout:
    folder, _ = SUBSETS[name]
    digits = 6 if name == "hs" else 5
    return FrameLayout(
        name=name,
        folder=folder,
        clip_parts=("{subject}", CLIP_PART, "{emotion}", "{clip}"),
        frame_names=(("plain", f"image{{n:0{digits}d}}.bmp"),),
    )


def subject_folder(value: object) -> str:
    """A subject as its folder name: s1 (also from 1 or "s01")."""
    text = str(value).strip()
    number = text[1:] if text[:1] in ("s", "S") else text
    if not number.isdigit():
        raise ValueError("expected a subject such as s1")
    return f"s{int(number)}"


def clip_name(subject: str, emotion: str, index: int) -> str:
    """The clip folder name SMIC uses: s1_ne_01."""
    return f"{subject}_{CLASS_CODES[emotion]}_{index:02d}"


@dataclass(frozen=True)
class _Clip:
    subject: str
    clip: str
    emotion: str
    folder: Path
    template: str
    frames: tuple[int, ...]


@dataclass(frozen=True)
class SmicAdapter:
    """SMIC's adapter: the same interface as DatasetAdapter, its clips read from folders."""

    name: str = NAME
    title: str = "SMIC"
    fps: int = 100  # HS; VIS and NIR are 25 (SUBSETS)
    annotation_file: str | None = None
    layouts: tuple[FrameLayout, ...] = tuple(_layout(name) for name in SUBSETS)
    protocols: tuple[Protocol, ...] = PROTOCOLS
    default_protocol: str = "hs"
    label_style: str = "lower"
    key_with_onset: bool = False

    @property
    def emotions(self) -> frozenset[str]:
        return frozenset(CLASS_CODES)

    def subject_folder(self, value: object) -> str:
        return subject_folder(value)

    def protocol(self, name: str | None = None) -> Protocol:
        return find_protocol(self.title, self.protocols, name or self.default_protocol)

    def subset_fps(self, layout: str) -> int:
        return SUBSETS[layout][1]

    def spelling(self, emotion: str) -> str | None:
        return emotion

    def header(self, field: str) -> str:
        return "class folder" if field == "emotion" else f"{field} folder"

    def read_annotation(self, path: PathLike) -> pd.DataFrame:
        raise DataError(
            "SMIC has no annotation spreadsheet: its clips and classes are read from the "
            "folder names"
        )

    def load(
        self,
        root: PathLike | None,
        protocol: str | None = None,
        annotation: PathLike | None = None,
        layout: str | None = None,
        policies: Policies | None = None,
        require_frames: bool = True,
    ) -> SampleTable:
        """Read a SMIC copy: the subset the protocol names, one sample per clip folder.

        Folder names that do not parse (subject, class, clip, frame) are one DataError listing
        them all. With require_frames=True an apex frame missing from its clip (a gap in the
        numbers) raises MissingFramesError; otherwise it is only reported."""
        policies = policies or Policies()
        chosen = self.protocol(protocol)
        subset = PROTOCOL_SUBSET[chosen.name]
        if layout is not None:
            asked = layout.strip().casefold()
            if asked not in SUBSETS:
                raise DataError(
                    f"unknown SMIC subset {layout!r} (subsets: {', '.join(SUBSETS)}, folders "
                    f"{', '.join(f for f, _ in SUBSETS.values())})"
                )
            if asked != subset:
                raise DataError(
                    f"SMIC protocol {chosen.name} reads the {SUBSETS[subset][0]} subset, not "
                    f"{SUBSETS[asked][0]} (choose the protocol {asked} instead)"
                )
        if annotation is not None:
            raise DataError(
                f"SMIC has no annotation file (got {annotation}): clips and classes come from "
                "the folders; give the folder that holds HS/, VIS/ and NIR/"
            )
        if root is None:
            raise DataError(
                "SMIC: no dataset folder given (SMIC has no annotation; its clips are read "
                "from the folders)"
            )
        base = subset_folder(Path(root), subset)
        clips = scan_subset(base)
        report = LoadReport(
            dataset=self.name,
            protocol=chosen.id,
            annotation=str(base.resolve()),
            rows_read=len(clips),
            frames_dir=str(base.resolve()),
            layout=subset,
        )
        samples = _samples(self.name, chosen, clips, policies, report)
        samples = keep_listed(samples, chosen, report)
        report.issues.sort(key=lambda issue: issue.row)
        if require_frames and report.missing_frames:
            raise MissingFramesError(missing_frames_message(report), report)
        return SampleTable(samples=samples, protocol=chosen, report=report)


def subset_folder(root: Path, subset: str) -> Path:
    """The folder of one subset: `root/HS` (any case), or `root` itself when it is that one."""
    check_dataset_folder(root)
    folder = SUBSETS[subset][0]
    if root.name.casefold() == folder.casefold():
        return root
    children = {p.name.casefold(): p for p in root.iterdir() if p.is_dir()}
    if folder.casefold() in children:
        return children[folder.casefold()]
    present = sorted(p.name for p in children.values() if p.name.upper() in _FOLDERS)
    found = f"found {', '.join(present)}" if present else "no subset folder found"
    raise DataError(
        f"{root}: no SMIC {folder} subset ({found}; expected "
        f"{root / folder}/<subject>/{CLIP_PART}/<class>/<clip>/)"
    )


_FOLDERS = {folder for folder, _ in SUBSETS.values()}


def scan_subset(base: Path) -> list[_Clip]:
    """Every clip folder of a subset, sorted by subject number and clip name. Names that do
    not parse are collected and raised as one DataError naming each folder or file."""
    errors: list[str] = []
    clips: list[_Clip] = []
    subjects = sorted(
        (p for p in base.iterdir() if p.is_dir()),
        key=lambda p: (int(p.name[1:]) if _SUBJECT.fullmatch(p.name) else 10**9, p.name),
    )
    for subject_dir in subjects:
        if not _SUBJECT.fullmatch(subject_dir.name):
            errors.append(f"{subject_dir}: not a SMIC subject folder (expected s1, s2, ...)")
            continue
        subject = subject_folder(subject_dir.name)
        micro = subject_dir / CLIP_PART
        if not micro.is_dir():
            continue  # subjects without micro-expressions (SMIC-HS s7, s10, s16, s17)
        for class_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            emotion = class_dir.name.casefold()
            if emotion not in CLASS_CODES:
                errors.append(
                    f"{class_dir}: unknown SMIC class folder {class_dir.name!r} "
                    f"(expected {', '.join(CLASS_CODES)})"
                )
                continue
            for clip_dir in sorted(p for p in class_dir.iterdir() if p.is_dir()):
                clip = _clip(clip_dir, subject, emotion, errors)
                if clip is not None:
                    clips.append(clip)
    if errors:
        lines = errors[:_ERROR_LINES]
        if len(errors) > _ERROR_LINES:
            lines.append(f"... and {len(errors) - _ERROR_LINES} more")
        head = f"{len(errors)} problem(s) in the SMIC folder {base}:"
        raise DataError(errors[0] if len(errors) == 1 else "\n  ".join([head, *lines]))
    return clips


def _clip(folder: Path, subject: str, emotion: str, errors: list[str]) -> _Clip | None:
    match = _CLIP_NAME.fullmatch(folder.name)
    expected = f"expected {subject}_{CLASS_CODES[emotion]}_<number>, e.g. " + clip_name(
        subject, emotion, 1
    )
    if match is None:
        errors.append(f"{folder}: clip folder name {folder.name!r} does not parse ({expected})")
        return None
    if (
        subject_folder(match["subject"]) != subject
        or match["code"].casefold() != (CLASS_CODES[emotion])
    ):
        errors.append(
            f"{folder}: clip {folder.name!r} does not match its subject folder {subject!r} "
            f"and class folder {emotion!r} ({expected})"
        )
        return None
    numbers: dict[int, str] = {}
    styles: set[tuple[str, int, str]] = set()
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.casefold() not in _IMAGE_EXTENSIONS:
            continue
        frame = _FRAME.fullmatch(path.name)
        if frame is None:
            errors.append(f"{path}: frame file name does not parse (expected e.g. image036237.bmp)")
            return None
        digits = frame["number"]
        width = len(digits) if digits.startswith("0") else 0
        styles.add((frame["prefix"], width, frame["ext"]))
        numbers[int(digits)] = path.name
    if not numbers:
        errors.append(f"{folder}: clip folder holds no frames (.bmp, .jpg or .png)")
        return None
    prefixes = {(prefix, ext) for prefix, _, ext in styles}
    widths = {width for _, width, _ in styles if width}
    if len(prefixes) > 1 or len(widths) > 1:
        names = ", ".join(sorted({numbers[n] for n in list(numbers)[:3]}))
        errors.append(f"{folder}: frames named in more than one way (e.g. {names})")
        return None
    (prefix, ext), width = next(iter(prefixes)), (widths.pop() if widths else 0)
    # Widths: a zero-padded name fixes the width; unpadded numbers of one width keep it too.
    if not width:
        lengths = {len(str(n)) for n in numbers}
        width = lengths.pop() if len(lengths) == 1 else 0
    template = f"{prefix}{{n:0{width}d}}{ext}" if width else f"{prefix}{{n}}{ext}"
    if any(template.format(n=n) != name for n, name in numbers.items()):
        errors.append(f"{folder}: frame numbers padded inconsistently ({template!r})")
        return None
    return _Clip(subject, match.group(0), emotion, folder, template, tuple(sorted(numbers)))


def _samples(
    dataset: str, protocol: Protocol, clips: list[_Clip], policies: Policies, report: LoadReport
) -> pd.DataFrame:
    names = protocol.class_names
    rows = []
    for row, clip in enumerate(clips, start=1):
        label = protocol.label_of(clip.emotion)
        key = f"{dataset}/{clip.subject}/{clip.clip}"
        onset, offset = clip.frames[0], clip.frames[-1]
        policy = policies.unannotated_apex
        apex = (onset + offset) // 2
        action = f"apex set to the middle frame {apex}"
        if policy == "max_difference":
            apex = largest_difference_frame(clip.folder, clip.template, onset, offset)
            action = f"apex set to the frame of largest difference from onset, {apex}"
        report.add(
            Issue(
                "unannotated_apex",
                report.annotation,
                row,
                key,
                f"no apex annotation (clip frames {onset}..{offset})",
                f"{action} (Policies.unannotated_apex={policy!r})",
            )
        )
        apex_path = clip.folder / clip.template.format(n=apex)
        if not apex_path.is_file():
            report.missing_frames.append(
                MissingFrame(report.annotation, row, key, "apex", apex, str(apex_path))
            )
        rows.append(
            {
                "dataset": dataset,
                "subject": clip.subject,
                "clip": clip.clip,
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "emotion": clip.emotion,
                "label": label,
                "label_name": names[label],
                "key": key,
                "source_row": row,
                "onset_path": str((clip.folder / clip.template.format(n=onset)).resolve()),
                "apex_path": str(apex_path.resolve()) if apex_path.is_file() else "",
                "clip_dir": str(clip.folder.resolve()),
                "frame_template": clip.template,
                "action_units": "",
                "quirks": "unannotated_apex",
            }
        )
    frame = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    int_columns = ["onset", "apex", "offset", "label", "source_row"]
    frame[int_columns] = frame[int_columns].astype("int64")
    return frame


ADAPTER = SmicAdapter()
