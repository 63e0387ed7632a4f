"""Our fusion variants against the authors' TSFmicro logits stored in tests/fixtures/.

benchmarks/reference_check.py ran the authors' classes (their repository, imported as it is)
on our seeded weights and inputs in float64 and stored their logits; here our model is
rebuilt from the same seeds, without the authors' code, and must give the same logits.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from tsfmicro.config import FUSIONS, PRESETS

REPO = Path(__file__).resolve().parents[3]
FIXTURE = json.loads((REPO / "tests" / "fixtures" / "reference_logits.json").read_text())


@functools.cache
def _check_script():
    """benchmarks/reference_check.py, for its seeded model and inputs (it imports no
    reference code until it is run)."""
    spec = importlib.util.spec_from_file_location(
        "reference_check", REPO / "benchmarks" / "reference_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_fixture_describes_our_seeds_and_real_variants():
    check = _check_script()
    assert (FIXTURE["weight_seed"], FIXTURE["input_seed"]) == (check.WEIGHT_SEED, check.INPUT_SEED)
    assert FIXTURE["preset"] == "paper" and FIXTURE["batch"] == check.BATCH
    assert set(FIXTURE["variants"]) <= set(FUSIONS)
    for v in FIXTURE["variants"].values():
        assert v["max_abs_diff_eval"] < 1e-12  # what the script measured, float64


def test_paper_preset_is_the_authors_late_fusion_model():
    late = FIXTURE["late_model"]
    assert PRESETS["paper"].config.fusion == late
    assert FIXTURE["variants"][late]["paper"] == "T-S (late)"
    assert FIXTURE["variants"][late]["class"] == "ts_micro"


@pytest.mark.slow
@pytest.mark.parametrize("fusion", sorted(FIXTURE["variants"]))
def test_our_logits_match_the_authors(fusion):
    check = _check_script()
    stored = FIXTURE["variants"][fusion]
    model = check.seeded_model(fusion, FIXTURE["weight_seed"]).eval()
    onset, apex = check.seeded_inputs(FIXTURE["input_seed"])
    with torch.no_grad():
        ours = model(onset, apex)
    theirs = torch.tensor(stored["logits_eval"], dtype=torch.float64)
    assert (ours - theirs).abs().max() < 1e-6, fusion
    assert sum(p.numel() for p in model.parameters()) == stored["params_ours"]
    if fusion == FIXTURE["late_model"]:  # train mode too: BatchNorm on batch statistics
        model.train()
        check.no_drop_path(model)
        with torch.no_grad():
            ours = model(onset, apex)
        theirs = torch.tensor(stored["logits_train"], dtype=torch.float64)
        assert (ours - theirs).abs().max() < 1e-6
