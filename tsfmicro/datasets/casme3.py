"""CAS(ME)3 Part A (Li et al. 2022): 860 micro-expressions of 94 subjects.

Built from the published description, not checked against the real file. Annotation
`cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`, sheet `label`, header row 1. (Subject, Filename)
is not unique, so the sample key adds the onset. Frames:
`part_A/spNO.1/a/color/166.jpg` (plain frame number; `depth/` sits beside `color/`).
"""

from __future__ import annotations

from tsfmicro.datasets.adapter import DatasetAdapter
from tsfmicro.datasets.base import cell_text, make_protocol
from tsfmicro.datasets.frames import FrameLayout
from tsfmicro.datasets.sheets import Column, SheetSpec

NAME = "casme3"
NEGATIVE = ("anger", "disgust", "fear", "sad")

PROTOCOLS = (
    make_protocol(
        NAME,
        "7class",
        {e: (e,) for e in ("anger", "disgust", "fear", "happy", "sad", "surprise", "others")},
        description="All seven emotions of Part A.",
    ),
    make_protocol(
        NAME,
        "4class",
        {
            "negative": NEGATIVE,
            "positive": ("happy",),
            "surprise": ("surprise",),
            "others": ("others",),
        },
        description="negative = anger, disgust, fear, sad; positive = happy; surprise; others.",
    ),
    make_protocol(
        NAME,
        "3class",
        {"negative": NEGATIVE, "positive": ("happy",), "surprise": ("surprise",)},
        dropped=("others",),
        description="The 4-class grouping without others; used by the composite protocol.",
    ),
)


def subject_folder(value: object) -> str:
    """Subject cell ("spNO.1", or a bare number) -> folder name spNO.1."""
    text = cell_text(value)
    if text.isdigit():
        return f"spNO.{int(text)}"
    if not text.casefold().startswith("spno."):
        raise ValueError("expected a subject such as spNO.1")
    return text


ADAPTER = DatasetAdapter(
    name=NAME,
    title="CAS(ME)3 Part A",
    fps=30,  # Part A colour video; not stated in the reference
    annotation_file="cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    sheet=SheetSpec(
        sheet="label",
        columns=(
            Column("subject", ("Subject",)),
            Column("clip", ("Filename",)),
            Column("onset", ("Onset",)),
            Column("apex", ("Apex",)),
            Column("offset", ("Offset",)),
            Column("action_units", ("AU",), required=False),
            Column("objective_class", ("Objective class", "Objective classes"), required=False),
            Column("emotion", ("emotion",)),
        ),
    ),
    layouts=(
        FrameLayout(
            name="part_a",
            folder="part_A",
            clip_parts=("{subject}", "{clip}", "color"),
            frame_names=(("plain", "{n}.jpg"),),
        ),
    ),
    protocols=PROTOCOLS,
    default_protocol="7class",
    subject_folder=subject_folder,
    label_style="lower",
    key_with_onset=True,
)
