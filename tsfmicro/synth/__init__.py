"""Synthetic micro-expression benchmark: real packaged face photos animated with FACS AUs.

    from tsfmicro.synth import SynthConfig, write_dataset, write_for_annotation
    write_dataset(SynthConfig(dataset="casme2", subjects=8), "/tmp/fake_casme2")
    write_for_annotation("CASME2-coding-20190701.xlsx", "/tmp/casme2_frames",
                         SynthConfig(dataset="casme2"))

Mode (a) writes a whole dataset (spreadsheet and frames) in a real layout; mode (b) renders
the frames an existing spreadsheet names. Either loads through tsfmicro.datasets. See
docs/synth.md.

Names are imported on first use (PEP 562), so the worker processes that render frames
import only numpy and OpenCV, not pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "SynthConfig": "tsfmicro.synth.config",
    "Levels": "tsfmicro.synth.config",
    "PRESETS": "tsfmicro.synth.config",
    "ACTION_UNITS": "tsfmicro.synth.aus",
    "EMOTION_AUS": "tsfmicro.synth.aus",
    "AuAction": "tsfmicro.synth.aus",
    "Event": "tsfmicro.synth.clips",
    "ClipSpec": "tsfmicro.synth.clips",
    "SOURCE_NAMES": "tsfmicro.synth.faces",
    "get_sources": "tsfmicro.synth.faces",
    "Renderer": "tsfmicro.synth.render",
    "RenderContext": "tsfmicro.synth.render",
    "SynthPlan": "tsfmicro.synth.plan",
    "plan_dataset": "tsfmicro.synth.plan",
    "plan_from_annotation": "tsfmicro.synth.plan",
    "SynthResult": "tsfmicro.synth.writer",
    "write_plan": "tsfmicro.synth.writer",
    "write_dataset": "tsfmicro.synth.writer",
    "write_for_annotation": "tsfmicro.synth.writer",
}

__all__ = [
    "ACTION_UNITS",
    "AuAction",
    "ClipSpec",
    "EMOTION_AUS",
    "Event",
    "Levels",
    "PRESETS",
    "RenderContext",
    "Renderer",
    "SOURCE_NAMES",
    "SynthConfig",
    "SynthPlan",
    "SynthResult",
    "get_sources",
    "plan_dataset",
    "plan_from_annotation",
    "write_dataset",
    "write_for_annotation",
    "write_plan",
]

if TYPE_CHECKING:
    from tsfmicro.synth.aus import ACTION_UNITS, EMOTION_AUS, AuAction
    from tsfmicro.synth.clips import ClipSpec, Event
    from tsfmicro.synth.config import PRESETS, Levels, SynthConfig
    from tsfmicro.synth.faces import SOURCE_NAMES, get_sources
    from tsfmicro.synth.plan import SynthPlan, plan_dataset, plan_from_annotation
    from tsfmicro.synth.render import RenderContext, Renderer
    from tsfmicro.synth.writer import SynthResult, write_dataset, write_for_annotation, write_plan


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tsfmicro.synth' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
