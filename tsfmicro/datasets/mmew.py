"""MMEW (Ben et al. 2021): 90 fps, about 300 micro-expressions of 36 subjects.

Built from the published description, not checked against the real file: columns are
read by name from the first sheet, and a missing one is reported by name. Frames are
grouped by emotion, not subject: `Micro_Expression/<emotion>/<Filename>/<n>.jpg`.
"""

from __future__ import annotations

from tsfmicro.datasets.adapter import DatasetAdapter
from tsfmicro.datasets.base import cell_text, make_protocol
from tsfmicro.datasets.frames import FrameLayout
from tsfmicro.datasets.sheets import Column, SheetSpec

NAME = "mmew"
EMOTIONS = ("happiness", "surprise", "anger", "disgust", "fear", "sadness", "others")

PROTOCOLS = (
    make_protocol(
        NAME,
        "7class",
        {e: (e,) for e in EMOTIONS},
        description="All seven emotions as annotated; nothing dropped.",
    ),
    make_protocol(
        NAME,
        "3class",
        {
            "negative": ("anger", "disgust", "fear", "sadness"),
            "positive": ("happiness",),
            "surprise": ("surprise",),
        },
        dropped=("others",),
        description="negative = anger, disgust, fear, sadness; positive = happiness; "
        "surprise; others dropped. Used by the composite protocol.",
    ),
)


def subject_folder(value: object) -> str:
    """Subject cell as text (MMEW folders are per emotion, so this is only an id)."""
    text = cell_text(value)
    if not text:
        raise ValueError("blank")
    return text


ADAPTER = DatasetAdapter(
    name=NAME,
    title="MMEW",
    fps=90,
    annotation_file="MMEW_Micro_Exp.xlsx",
    sheet=SheetSpec(
        sheet=None,
        columns=(
            Column("subject", ("Subject",)),
            Column("clip", ("Filename",)),
            Column("onset", ("OnsetFrame", "Onset Frame")),
            Column("apex", ("ApexFrame", "Apex Frame")),
            Column("offset", ("OffsetFrame", "Offset Frame")),
            Column("action_units", ("Action Units",), required=False),
            Column("emotion", ("Estimated Emotion",)),
        ),
    ),
    layouts=(
        FrameLayout(
            name="micro_expression",
            folder="Micro_Expression",
            clip_parts=("{emotion}", "{clip}"),
            frame_names=(("plain", "{n}.jpg"),),
        ),
    ),
    protocols=PROTOCOLS,
    default_protocol="7class",
    subject_folder=subject_folder,
    label_style="any",
)
