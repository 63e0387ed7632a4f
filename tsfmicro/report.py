"""Plain-text tables of results, shared by the CLI commands."""

from __future__ import annotations

from collections.abc import Mapping

from tsfmicro.metrics import METRICS, MetricsReport

# A report's per-dataset scores (LosoResult.part_reports): its `extra` key, the table's title
# and the name column's header.
PER_DATASET = (
    ("held_out", "per held-out dataset (each scored on its own samples):", "held out"),
    ("parts", "per dataset part (each scored on its own samples; pooled above):", "part"),
)


def results_table(reports: Mapping[str, MetricsReport]) -> str:
    """One line per evaluation mode: pooled ACC, UF1, UAR with subject-bootstrap intervals,
    and the per-fold mean UF1 (labelled). Optimistic modes are marked. A run over several
    datasets adds each dataset's own scores (held out, or pooled parts)."""
    first = next(iter(reports.values()))
    level = int(round(first.ci_level * 100))
    header = (
        f"{'mode':<31}" + "".join(f"{m.upper():>22}" for m in METRICS) + f"{'fold-mean UF1':>15}"
    )
    lines = [
        f"{first.n_samples} samples, {first.n_subjects} subjects (LOSO folds); "
        f"pooled over all folds, [{level}% CI, bootstrap over subjects]",
        header,
        "-" * len(header),
    ]
    for mode, r in reports.items():
        label = f"{mode} (optimistic)" if r.extra.get("optimistic") else mode
        cells = "".join(
            f"{getattr(r, m):>8.3f} [{r.ci[m][0]:.3f},{r.ci[m][1]:.3f}]" for m in METRICS
        )
        lines.append(f"{label:<31}{cells}{r.fold_mean['uf1']:>15.3f}")
    for key, title, column in PER_DATASET:
        if not first.extra.get(key):
            continue
        lines += ["", title]
        lines.append(f"{'mode':<31}{column:<12}{'samples':>8}{'subjects':>9}"
                     + "".join(f"{m.upper():>8}" for m in METRICS))  # fmt: skip
        for mode, r in reports.items():
            for name, row in r.extra.get(key, {}).items():
                lines.append(
                    f"{mode:<31}{name:<12}{row['n']:>8}{row['n_subjects']:>9}"
                    + "".join(f"{row[m]:>8.3f}" for m in METRICS)
                )
    optimistic = [m for m, r in reports.items() if r.extra.get("optimistic")]
    if optimistic:
        lines.append(
            f"optimistic ({', '.join(optimistic)}): epochs chosen per subject on that "
            "subject's test data (published-oracle: the public scripts' ACC and UF1 epochs, "
            "chosen separately); not an estimate for new subjects."
        )
    return "\n".join(lines)
