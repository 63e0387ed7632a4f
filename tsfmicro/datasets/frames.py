"""Where a dataset keeps its frames on disk, and finding them.

A `FrameLayout` describes one shipped layout: the top folder, the folders down to a clip,
and the frame file name (with variants, e.g. SAMM's padded and unpadded numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tsfmicro.datasets.base import FrameNaming
from tsfmicro.errors import DataError

NameStyle = Literal["plain", "padded", "unpadded"]


@dataclass(frozen=True)
class FrameLayout:
    """One on-disk layout of a dataset's frames."""

    name: str  # e.g. raw, cropped
    folder: str  # top folder under the dataset root, e.g. CASME2_RAW_selected
    # Folders from `folder` down to a clip's frames; "{subject}", "{clip}" and "{emotion}"
    # are filled in, anything else is literal (CAS(ME)3's "color").
    clip_parts: tuple[str, ...]
    # Frame file names, canonical first: (style, template); the template has {n} and may
    # have {subject}. Style says which Policies.frame_naming setting accepts it.
    frame_names: tuple[tuple[NameStyle, str], ...]

    def clip_relpath(self, subject: str, clip: str, emotion: str) -> Path:
        """Path of a clip's folder relative to the layout folder."""
        values = {"{subject}": subject, "{clip}": clip, "{emotion}": emotion}
        return Path(*(values.get(part, part) for part in self.clip_parts))

    def templates(self, subject: str, naming: FrameNaming) -> list[str]:
        """Accepted frame file templates (with only {n} left), canonical first."""
        accepted = {"auto": {"plain", "padded", "unpadded"}, "padded": {"plain", "padded"}}
        styles = accepted.get(naming, {"plain", "unpadded"})
        safe_subject = subject.replace("{", "{{").replace("}", "}}")
        return [
            template.replace("{subject}", safe_subject)
            for style, template in self.frame_names
            if style in styles
        ]


class FrameFinder:
    """Resolves clip folders and frame files under one layout folder.

    Folder names are matched exactly first and case-insensitively as a fallback (MMEW's
    emotion folders, copies renamed on case-insensitive file systems).
    """

    def __init__(self, base: Path, layout: FrameLayout, naming: FrameNaming) -> None:
        self.base = base
        self.layout = layout
        self.naming = naming
        self._listings: dict[Path, dict[str, str]] = {}

    def clip_dir(self, subject: str, clip: str, emotion: str) -> Path:
        path = self.base
        for part in self.layout.clip_relpath(subject, clip, emotion).parts:
            path = self._child(path, part)
        return path

    def find(self, clip_dir: Path, subject: str, n: int) -> tuple[Path | None, int]:
        """The frame file for number n and the index of the template that named it.

        Returns (None, 0) when no accepted name exists.
        """
        for index, template in enumerate(self.layout.templates(subject, self.naming)):
            candidate = clip_dir / template.format(n=n)
            if candidate.is_file():
                return candidate, index
        return None, 0

    def template(self, subject: str, index: int) -> str:
        return self.layout.templates(subject, self.naming)[index]

    def _child(self, parent: Path, name: str) -> Path:
        exact = parent / name
        if exact.is_dir() or not parent.is_dir():
            return exact
        if parent not in self._listings:
            self._listings[parent] = {p.name.casefold(): p.name for p in parent.iterdir()}
        return parent / self._listings[parent].get(name.casefold(), name)


@dataclass(frozen=True)
class Probe:
    """A sample used to recognise a layout when its folder name is not there."""

    subject: str
    clip: str
    emotion: str
    frame: int


def check_dataset_folder(root: Path) -> None:
    """Fail with a clear message when a dataset folder is missing or empty."""
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    if not any(root.iterdir()):
        raise DataError(f"dataset folder is empty: {root}")


def locate_frames(
    root: Path,
    layouts: Sequence[FrameLayout],
    layout_name: str | None,
    naming: FrameNaming,
    probes: Sequence[Probe],
    title: str,
) -> tuple[Path, FrameLayout]:
    """Find the layout folder of a dataset copy; returns (layout folder, layout).

    A layout is recognised by its folder under `root` (or `root` being that folder). When
    none is there, `root` itself is taken as the layout folder if one of the probe samples'
    frames is found in it. Several layouts present without `layout_name` is an error: the
    choice changes the images, so it is left to the user.
    """
    candidates = list(layouts)
    if layout_name is not None:
        candidates = [lay for lay in layouts if lay.name == layout_name]
        if not candidates:
            names = ", ".join(lay.name for lay in layouts)
            raise DataError(f"{title} has no layout {layout_name!r} (layouts: {names})")
    found = [(base, lay) for lay in candidates for base in _layout_folders(root, lay)]
    if len({lay.name for _, lay in found}) > 1:
        names = ", ".join(lay.name for _, lay in found)
        raise DataError(
            f"{root}: holds {title} frames in more than one layout ({names}); "
            "choose one with layout= (CLI: --layout)"
        )
    if found:
        return found[0]
    matching = [lay for lay in candidates if _probe_matches(root, lay, naming, probes)]
    if len(matching) == 1:
        return root, matching[0]
    expected = " or ".join(str(root / lay.folder) for lay in candidates)
    raise DataError(f"{root}: no {title} frames found (expected {expected})")


def _layout_folders(root: Path, layout: FrameLayout) -> list[Path]:
    """The layout folder under root, else root itself when it is named like it."""
    if (root / layout.folder).is_dir():
        return [root / layout.folder]
    if root.name.casefold() == layout.folder.casefold():
        return [root]
    return []


def _probe_matches(
    root: Path, layout: FrameLayout, naming: FrameNaming, probes: Sequence[Probe]
) -> bool:
    finder = FrameFinder(root, layout, naming)
    for probe in probes:
        clip_dir = finder.clip_dir(probe.subject, probe.clip, probe.emotion)
        if finder.find(clip_dir, probe.subject, probe.frame)[0] is not None:
            return True
    return False
