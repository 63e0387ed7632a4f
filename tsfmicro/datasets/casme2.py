"""CASME II (Yan et al. 2014): 200 fps, 26 subjects, 255 coded clips.

Annotation `CASME2-coding-20190701.xlsx`, sheet `Sheet1`, header on row 1; the Subject cell
holds "01".."26" (text) and the folder is sub01..sub26. Two layouts ship: the raw release
`CASME2_RAW_selected/sub01/EP02_01f/img46.jpg` and the cropped one
`Cropped/sub01/EP02_01f/reg_img46.jpg`; file numbers equal the spreadsheet's.
"""

from __future__ import annotations

from tsfmicro.datasets.adapter import DatasetAdapter
from tsfmicro.datasets.base import cell_text, make_protocol
from tsfmicro.datasets.frames import FrameLayout
from tsfmicro.datasets.sheets import Column, SheetSpec

NAME = "casme2"
NEGATIVE = ("repression", "disgust", "fear", "sadness")

PROTOCOLS = (
    make_protocol(
        NAME,
        "5class",
        {
            "happiness": ("happiness",),
            "repression": ("repression",),
            "disgust": ("disgust",),
            "surprise": ("surprise",),
            "others": ("others",),
        },
        dropped=("sadness", "fear"),
        description="The usual CASME II protocol: five classes; sadness (4) and fear (2) "
        "dropped. 249 samples, 26 subjects on the 2019-07-01 sheet.",
    ),
    make_protocol(
        NAME,
        "3class",
        {"negative": NEGATIVE, "positive": ("happiness",), "surprise": ("surprise",)},
        dropped=("others",),
        description="As the TSFmicro authors ran it: negative = repression, disgust, fear, "
        "sadness; positive = happiness; surprise; others dropped. 156 samples, 25 subjects.",
    ),
    make_protocol(
        NAME,
        "megc2019",
        {
            "negative": ("repression", "disgust"),
            "positive": ("happiness",),
            "surprise": ("surprise",),
        },
        dropped=("others", "fear", "sadness"),
        description="The CASME II part of the MEGC 2019 composite: negative = repression, "
        "disgust; positive = happiness; surprise; only the samples of the shipped MEGC 2019 "
        "list (tsfmicro/datasets/data/megc2019.csv). 145 samples, 24 subjects.",
        sample_list="megc2019",
        published=(145, 24, (88, 32, 25)),
    ),
)


def subject_folder(value: object) -> str:
    """Subject cell ("01", 1, or already "sub01") -> folder name sub01."""
    text = cell_text(value)
    if text.casefold().startswith("sub"):
        text = text[3:]
    if not text.isdigit():
        raise ValueError("expected a subject number such as 01")
    return f"sub{int(text):02d}"


ADAPTER = DatasetAdapter(
    name=NAME,
    title="CASME II",
    fps=200,
    annotation_file="CASME2-coding-20190701.xlsx",
    sheet=SheetSpec(
        sheet="Sheet1",
        columns=(
            Column("subject", ("Subject",)),
            Column("clip", ("Filename",)),
            Column("onset", ("OnsetFrame",)),
            Column("apex", ("ApexFrame",)),
            Column("offset", ("OffsetFrame",)),
            Column("action_units", ("Action Units",), required=False),
            Column("emotion", ("Estimated Emotion",)),
            Column("objective_class", ("Objective Classes",), required=False),
        ),
    ),
    layouts=(
        FrameLayout(
            name="raw",
            folder="CASME2_RAW_selected",
            clip_parts=("{subject}", "{clip}"),
            frame_names=(("plain", "img{n}.jpg"),),
        ),
        FrameLayout(
            name="cropped",
            folder="Cropped",
            clip_parts=("{subject}", "{clip}"),
            frame_names=(("plain", "reg_img{n}.jpg"),),
        ),
    ),
    protocols=PROTOCOLS,
    default_protocol="5class",
    subject_folder=subject_folder,
    label_style="lower",
)
