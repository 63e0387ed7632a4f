"""SAMM (Davison et al. 2016): 200 fps grayscale, 29 subjects, 159 micro-expressions.

Annotation `SAMM_Micro_FACS_Codes_v2.xlsx`, sheet `MICRO_ONLY`: notes fill rows 1-13 and the
header is the row holding `Subject` (row 14 in the release). Labels are capitalised
("Anger"). Frames: `SAMM/006/006_1_2/006_05562.jpg`, the number zero-padded to 5 digits;
some copies drop the padding (`006_5562.jpg`), so both names are accepted.
"""

from __future__ import annotations

from tsfmicro.datasets.adapter import DatasetAdapter
from tsfmicro.datasets.base import cell_text, make_protocol
from tsfmicro.datasets.frames import FrameLayout
from tsfmicro.datasets.sheets import Column, SheetSpec

NAME = "samm"
NEGATIVE = ("anger", "contempt", "disgust", "fear", "sadness")

PROTOCOLS = (
    make_protocol(
        NAME,
        "5class",
        {
            "anger": ("anger",),
            "contempt": ("contempt",),
            "happiness": ("happiness",),
            "surprise": ("surprise",),
            "other": ("other",),
        },
        dropped=("disgust", "fear", "sadness"),
        description="Five classes; disgust, fear and sadness dropped. 136 samples, "
        "27 subjects on the v2 sheet.",
    ),
    make_protocol(
        NAME,
        "3class",
        {"negative": NEGATIVE, "positive": ("happiness",), "surprise": ("surprise",)},
        dropped=("other",),
        description="negative = anger, contempt, disgust, fear, sadness; positive = "
        "happiness; surprise; other dropped. 133 samples, 28 subjects (the MEGC 2019 part).",
    ),
    make_protocol(
        NAME,
        "megc2019",
        {"negative": NEGATIVE, "positive": ("happiness",), "surprise": ("surprise",)},
        dropped=("other",),
        description="The SAMM part of the MEGC 2019 composite, kept to the shipped MEGC 2019 "
        "list (on the v2 sheet it equals 3class). 133 samples, 28 subjects.",
        sample_list="megc2019",
        published=(133, 28, (92, 26, 15)),
    ),
)


def subject_folder(value: object) -> str:
    """Subject cell ("006" or 6) -> folder name 006."""
    text = cell_text(value)
    if not text.isdigit():
        raise ValueError("expected a subject number such as 006")
    return f"{int(text):03d}"


ADAPTER = DatasetAdapter(
    name=NAME,
    title="SAMM",
    fps=200,
    annotation_file="SAMM_Micro_FACS_Codes_v2.xlsx",
    sheet=SheetSpec(
        sheet="MICRO_ONLY",
        columns=(
            Column("subject", ("Subject",)),
            Column("clip", ("Filename",)),
            Column("inducement_code", ("Inducement Code",), required=False),
            Column("onset", ("Onset Frame",)),
            Column("apex", ("Apex Frame",)),
            Column("offset", ("Offset Frame",)),
            Column("micro", ("Micro",), required=False),
            Column("action_units", ("Action Units",), required=False),
            Column("emotion", ("Estimated Emotion",)),
            Column("objective_class", ("Objective Classes",), required=False),
            Column("notes", ("Notes",), required=False),
        ),
    ),
    layouts=(
        FrameLayout(
            name="samm",
            folder="SAMM",
            clip_parts=("{subject}", "{clip}"),
            frame_names=(
                ("padded", "{subject}_{n:05d}.jpg"),
                ("unpadded", "{subject}_{n}.jpg"),
            ),
        ),
    ),
    protocols=PROTOCOLS,
    default_protocol="5class",
    subject_folder=subject_folder,
    label_style="capitalized",
)
