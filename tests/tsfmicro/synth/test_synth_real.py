"""Mode (b) on the real CASME II and SAMM spreadsheets, and MTCNN on generated onsets.

The real sheets are licensed and live outside the repository (../shared/annotations or
$TSFMICRO_SHARED/annotations); these tests skip where they are absent. Nothing of them is
copied: frames go to a temporary folder and the loader reads the original sheet.
"""

from __future__ import annotations

import numpy as np
import pytest

from tsfmicro.datasets import load_dataset
from tsfmicro.synth.config import SynthConfig
from tsfmicro.synth.faces import SOURCE_NAMES
from tsfmicro.synth.plan import plan_dataset
from tsfmicro.synth.render import Renderer
from tsfmicro.synth.writer import write_for_annotation

REAL = [
    ("casme2", "CASME2-coding-20190701.xlsx", 249, 26, 156, 25),
    ("samm", "SAMM_Micro_FACS_Codes_v2.xlsx", 136, 27, 133, 28),
]


@pytest.mark.parametrize(("dataset", "sheet", "five", "five_subj", "three", "three_subj"), REAL)
def test_frames_for_the_real_sheet_load_with_the_real_counts(
    tmp_path, ds_shared_annotations, dataset, sheet, five, five_subj, three, three_subj
):
    annotation = ds_shared_annotations / sheet
    config = SynthConfig(dataset=dataset, frame_size=(64, 64), noise_std=0.0)
    result = write_for_annotation(annotation, tmp_path, config, workers=2)
    assert not result.generated_annotation and result.annotation == annotation
    assert not list(tmp_path.glob("*.xlsx"))  # the licensed sheet is not copied
    table = load_dataset(dataset, tmp_path, annotation=annotation)  # strict: every frame
    assert (len(table), table.samples["subject"].nunique()) == (five, five_subj)
    assert table.report.missing_frames == []
    three_class = load_dataset(dataset, tmp_path, protocol="3class", annotation=annotation)
    assert (len(three_class), three_class.samples["subject"].nunique()) == (three, three_subj)
    quirky = table.samples[table.samples["quirks"] != ""]
    assert len(quirky) == 2  # "/" apex and apex == onset (CASME II); two out of range (SAMM)


@pytest.mark.slow
def test_mtcnn_finds_a_face_in_nearly_every_generated_onset():
    """At least 99 % of onset frames over subjects covering every one of the 103 source
    faces (default look and difficulty, so with noise, blinks and head motion)."""
    import torch
    from facenet_pytorch import MTCNN

    subjects = len(SOURCE_NAMES) + 5
    plan = plan_dataset(SynthConfig(subjects=subjects, clips_per_subject=1, seed=3))
    renderer = Renderer(plan.context)
    sources = {renderer.identity(clip.subject).source for clip in plan.clips}
    assert sources == set(SOURCE_NAMES)
    onsets = np.stack([renderer.frame(clip, clip.events[0].onset) for clip in plan.clips])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        boxes, _ = MTCNN(keep_all=True, device="cpu").detect(onsets)
    finally:
        torch.set_num_threads(threads)
    found = sum(b is not None and len(b) > 0 for b in boxes)
    assert found >= 0.99 * len(onsets), f"faces found in {found} of {len(onsets)} onsets"
