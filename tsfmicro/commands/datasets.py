"""`tsfmicro datasets`: check a dataset copy on disk, list datasets and protocols.

    tsfmicro datasets inspect --dataset casme2 /data/CASME2
    tsfmicro datasets inspect --dataset samm --annotation SAMM_Micro_FACS_Codes_v2.xlsx
    tsfmicro datasets inspect --dataset composite --part casme2=/data/CASME2 --part samm=/data/SAMM
    tsfmicro datasets list

inspect exits 0 when the copy is usable, 1 when it is not (missing, unreadable or too small
frames, no samples), 2 on bad input (missing spreadsheet, sheet or column, unknown label, empty
folder).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="inspect micro-expression dataset copies; list datasets and protocols",
        description="Micro-expression datasets: validate a copy on disk, list protocols.",
    )
    actions = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)

    inspect = actions.add_parser(
        "inspect",
        help="validate a dataset copy and print counts, quirks and missing frames",
        description="Load a copy leniently, decode every onset and apex frame, and print "
        "counts per class and subject, every quirk with the policy applied, and every missing "
        "or unreadable frame. Exit 0: usable; 1: not usable; 2: bad input.",
    )
    inspect.add_argument(
        "path",
        nargs="?",
        help="dataset folder (composite: a folder with casme2/, samm/ ... sub-folders); "
        "omit to check the annotation alone",
    )
    inspect.add_argument("--dataset", required=True, help="casme2, samm, casme3, mmew or composite")
    inspect.add_argument("--protocol", help="e.g. 5class, 3class (default: the dataset's first)")
    inspect.add_argument(
        "--annotation",
        action="append",
        metavar="FILE",
        help="annotation spreadsheet (default: its real name in PATH); composite: PART=FILE, "
        "repeatable",
    )
    inspect.add_argument(
        "--layout", action="append", help="frame layout, e.g. raw or cropped; composite: PART=L"
    )
    inspect.add_argument(
        "--part", action="append", metavar="PART=PATH", help="composite: folder of one part"
    )
    inspect.add_argument(
        "--policy",
        action="append",
        metavar="FIELD=VALUE",
        help="override a quirk policy, e.g. missing_apex=drop (see docs/datasets.md)",
    )
    inspect.add_argument("--no-decode", action="store_true", help="do not decode the frames")
    inspect.add_argument("--json", action="store_true", help="print a JSON report instead")
    inspect.set_defaults(handler=run_inspect)

    listing = actions.add_parser("list", help="list datasets, protocols and class order")
    listing.set_defaults(handler=run_list)


def run_inspect(args: argparse.Namespace) -> int:
    from tsfmicro.datasets import Policies
    from tsfmicro.datasets.inspection import inspect_dataset, unusable_reasons

    policies = Policies.from_dict(_pairs(args.policy, "--policy"))
    root, annotation, layout = _sources(args)
    with _quiet_library_log():
        table = inspect_dataset(
            args.dataset,
            root,
            protocol=args.protocol,
            annotation=annotation,
            layout=layout,
            policies=policies,
            decode=not args.no_decode,
        )
    reasons = unusable_reasons(table)
    if args.json:
        print(json.dumps(_summary(table, reasons), indent=2))
    else:
        print(_text_report(table, reasons))
    return 1 if reasons else 0


def run_list(args: argparse.Namespace) -> int:
    from tsfmicro.datasets import composite, cross, list_datasets, list_protocols

    for dataset in list_datasets():
        print(dataset)
        for protocol in list_protocols(dataset):
            print(f"  {protocol.name}: {', '.join(protocol.class_names)}")
            if protocol.dropped:
                print(f"    dropped: {', '.join(sorted(protocol.dropped))}")
            print(f"    {protocol.description}")
        if dataset == composite.NAME:  # the cross-dataset family (tsfmicro.datasets.cross)
            print(f"  {cross.A_TO_B[0]}: the classes A and B share")
            print(f"    {cross.A_TO_B[1]}")
    return 0


def _sources(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """PATH/--part, --annotation and --layout as load_dataset wants them."""
    from tsfmicro.errors import DataError

    if args.dataset == "composite":
        parts = _pairs(args.part, "--part")
        if parts and args.path:
            raise DataError("composite: give PATH or --part, not both")
        annotation = _pairs(args.annotation, "--annotation") or None
        layout = _pairs(args.layout, "--layout") or None
        return parts or args.path, annotation, layout
    if args.part:
        raise DataError("--part is for --dataset composite only")
    for flag, values in (("--annotation", args.annotation), ("--layout", args.layout)):
        if values and len(values) > 1:
            raise DataError(f"{flag} given {len(values)} times; {args.dataset} takes one")
    return args.path, _first(args.annotation), _first(args.layout)


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    from tsfmicro.errors import ConfigError

    pairs = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ConfigError(f"{flag} {value!r}: expected NAME=VALUE")
        pairs[name.strip()] = rest.strip()
    return pairs


@contextlib.contextmanager
def _quiet_library_log() -> Iterator[None]:
    """The report prints every quirk already; keep the library's log lines off stderr."""
    logger = logging.getLogger("tsfmicro.datasets")
    handler = logging.NullHandler()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _summary(table: Any, reasons: list[str]) -> dict[str, Any]:
    from dataclasses import asdict

    from tsfmicro.datasets.inspection import published_check

    report = table.report
    samples = table.samples
    return {
        "dataset": report.dataset,
        "protocol": report.protocol,
        "class_names": list(table.class_names),
        "annotation": report.annotation,
        "rows_read": report.rows_read,
        "frames_dir": report.frames_dir,
        "layout": report.layout,
        "samples": len(samples),
        "subjects": int(samples["subject"].nunique()),
        "per_class": table.class_counts(),
        "per_subject": {
            subject: {str(k): int(v) for k, v in group["label_name"].value_counts().items()}
            for subject, group in samples.groupby("subject", sort=True)
        },
        "dropped_by_protocol": report.dropped_by_protocol,
        **_folds(samples),
        "issue_counts": report.issue_counts(),
        "issues": [asdict(i) for i in report.issues],
        "missing_frames": [asdict(m) for m in report.missing_frames],
        "unreadable_frames": [asdict(u) for u in report.unreadable_frames],
        "small_frames": [asdict(u) for u in report.small_frames],
        "frames_decoded": report.frames_decoded,
        "grayscale_frames": report.grayscale_frames,
        "published_counts": published_check(table),
        "list_missing": report.list_missing,
        "usable": not reasons,
        "problems": reasons,
    }


def _text_report(table: Any, reasons: list[str]) -> str:
    import pandas as pd

    from tsfmicro.datasets.inspection import published_check

    report, samples = table.report, table.samples
    names = list(table.class_names)
    lines = [
        f"dataset     {report.dataset}, protocol {report.protocol}",
        f"annotation  {report.annotation} ({report.rows_read} rows)",
    ]
    if report.frames_dir:
        lines.append(f"frames      {report.frames_dir} (layout {report.layout})")
    else:
        lines.append("frames      not checked (no dataset folder given)")
    lines.append(f"samples     {len(samples)} in {samples['subject'].nunique()} subjects")
    if "per_fold" in _folds(samples):  # a cross-dataset protocol: folds by dataset
        held = ", ".join(f"{k} {v}" for k, v in _folds(samples)["per_fold"].items())
        lines.append(f"folds       by dataset: {held}")
    if report.dropped_by_protocol:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(report.dropped_by_protocol.items()))
        lines.append(f"dropped by the protocol: {dropped}")
    lines += ["", "per class:"]
    lines += [f"  {i} {name:<12} {n}" for i, (name, n) in enumerate(table.class_counts().items())]
    check = published_check(table)
    if check is not None:
        verdict = "this copy matches" if check["matches"] else "this copy differs"
        lines.append(f"published: {table.protocol.published.line()}: {verdict}")
    if report.list_missing:
        listed = table.protocol.sample_list
        lines.append(
            f"{len(report.list_missing)} sample(s) of the {listed} list not in this copy, "
            f"first: {', '.join(report.list_missing[:5])}"
        )
    if len(samples):
        for column, title in (("dataset", "per dataset"), ("subject", "per subject")):
            if column == "dataset" and samples["dataset"].nunique() < 2:
                continue
            counts = pd.crosstab(samples[column], samples["label_name"])
            counts = counts.reindex(columns=names, fill_value=0)
            counts["total"] = counts.sum(axis=1)
            counts.columns.name = None
            lines += ["", f"{title}:", _indent(counts.to_string())]
    lines += ["", f"quirks ({len(report.issues)}, policy applied):"]
    lines += [f"  {issue.line()}" for issue in report.issues]
    missing_rows = len({(m.file, m.row) for m in report.missing_frames})
    lines += ["", f"missing frames ({len(report.missing_frames)} in {missing_rows} rows):"]
    lines += [f"  {m.line()}" for m in report.missing_frames]
    if report.frames_dir:
        lines += [
            "",
            f"frames decoded: {report.frames_decoded} (grayscale: {report.grayscale_frames})",
        ]
        lines += [f"unreadable frames ({len(report.unreadable_frames)}):"]
        lines += [f"  {u.line()}" for u in report.unreadable_frames]
        lines += [f"frames too small for face detection ({len(report.small_frames)}):"]
        lines += [f"  {u.line()}" for u in report.small_frames]
    status = "usable" if not reasons else "NOT USABLE: " + "; ".join(reasons)
    lines += ["", f"status: {status}"]
    return "\n".join(lines)


def _folds(samples: Any) -> dict[str, Any]:
    """{"per_fold": samples per held-out dataset (and "train only")} for a cross-dataset
    protocol's table (tsfmicro.datasets.cross), else {}."""
    from tsfmicro.datasets.cross import FOLD_COLUMN, fold_counts

    return {"per_fold": fold_counts(samples)} if FOLD_COLUMN in samples.columns else {}


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
