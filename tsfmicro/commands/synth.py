"""`tsfmicro synth`: write a synthetic micro-expression dataset in a real layout.

    tsfmicro synth --dataset casme2 --subjects 8 --clips-per-subject 10 OUT_DIR
    tsfmicro synth --dataset samm --difficulty hard --full-clips OUT_DIR
    tsfmicro synth --dataset casme2 --from-annotation CASME2-coding-20190701.xlsx OUT_DIR

The first two generate a whole dataset (spreadsheet and frames, mode a); the last renders
the frames an existing spreadsheet names (mode b) and copies nothing of it. Either copy
loads through `tsfmicro.datasets` and `tsfmicro datasets inspect`. See docs/synth.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# Flags that shape a generated dataset (mode a) and mean nothing for --from-annotation.
_GENERATE_ONLY = {
    "subjects": "--subjects",
    "clips_per_subject": "--clips-per-subject",
    "classes": "--classes",
}
# Flags that only apply to --from-annotation (mode b).
_ANNOTATION_ONLY = {"au_source": "--aus", "policy": "--policy"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic micro-expression dataset in a real dataset layout",
        description="Animate real packaged face photos with FACS action units and write the "
        "frames (and, unless --from-annotation, the annotation spreadsheet) exactly where "
        "the dataset loaders look for them.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write the copy to")
    p.add_argument("--dataset", required=True, help="casme2, samm, casme3, mmew or smic")
    p.add_argument(
        "--layout",
        help="frame layout, e.g. raw or cropped; smic: the subset hs, vis or nir "
        "(default: the first)",
    )

    gen = p.add_argument_group("generated dataset (mode a)")
    gen.add_argument("--subjects", type=int, help="synthetic subjects (default 8)")
    gen.add_argument("--clips-per-subject", type=int, help="clips per subject (default 10)")
    gen.add_argument(
        "--classes",
        help="comma-separated emotions, e.g. happiness,surprise (default: the dataset's "
        "default protocol)",
    )

    ann = p.add_argument_group("frames for an existing spreadsheet (mode b)")
    ann.add_argument(
        "--from-annotation", type=Path, metavar="FILE", help="render the frames this sheet names"
    )
    ann.add_argument(
        "--aus",
        dest="au_source",
        help="emotion (default): AUs from each row's emotion; annotation: from its AU column",
    )
    ann.add_argument(
        "--policy",
        action="append",
        metavar="FIELD=VALUE",
        help="loader quirk policy the frames must satisfy, e.g. missing_apex=middle",
    )

    look = p.add_argument_group("look and difficulty")
    look.add_argument("--difficulty", help="easy, medium (default) or hard")
    look.add_argument("--amplitude-px", type=float, help="peak expression motion at a 224 px face")
    look.add_argument("--noise-std", type=float, help="sensor noise in grey levels")
    look.add_argument("--head-motion-px", type=float, help="largest head drift at a 224 px face")
    look.add_argument("--blink-rate", type=float, help="distractor blinks per second")
    look.add_argument("--frame-size", metavar="WxH", help="frame size, e.g. 320x240")
    look.add_argument("--no-optional-aus", action="store_true", help="only each class's core AUs")
    look.add_argument("--full-clips", action="store_true", help="every frame onset..offset")
    look.add_argument("--seed", type=int, help="random seed (default 0)")

    run_group = p.add_argument_group("running")
    run_group.add_argument("--workers", type=int, help="processes (default: every core)")
    run_group.add_argument(
        "--overwrite", action="store_true", help="write into a folder that holds a copy already"
    )
    run_group.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def build_config(args: argparse.Namespace) -> Any:
    """The SynthConfig the flags describe (unset flags keep the config's defaults)."""
    from tsfmicro.errors import ConfigError
    from tsfmicro.synth.config import SynthConfig

    mode_b = args.from_annotation is not None
    wrong = _GENERATE_ONLY if mode_b else _ANNOTATION_ONLY
    for name, flag in wrong.items():
        if getattr(args, name) is not None:
            other = "a generated dataset" if mode_b else "--from-annotation"
            raise ConfigError(f"{flag} is for {other} only")
    values = {
        "dataset": args.dataset,
        "layout": args.layout,
        "subjects": args.subjects,
        "clips_per_subject": args.clips_per_subject,
        "classes": _classes(args.classes),
        "au_source": args.au_source,
        "difficulty": args.difficulty,
        "amplitude_px": args.amplitude_px,
        "noise_std": args.noise_std,
        "head_motion_px": args.head_motion_px,
        "blink_rate_hz": args.blink_rate,
        "frame_size": _frame_size(args.frame_size),
        "seed": args.seed,
    }
    if args.no_optional_aus:
        values["optional_aus"] = False
    if args.full_clips:
        values["full_clips"] = True
    return SynthConfig(**{k: v for k, v in values.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from tsfmicro.errors import ConfigError
    from tsfmicro.synth.writer import write_dataset, write_for_annotation

    config = build_config(args)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    options = {"workers": args.workers, "progress": not args.quiet, "overwrite": args.overwrite}
    if args.from_annotation is None:
        result = write_dataset(config, args.out_dir, **options)
    else:
        result = write_for_annotation(
            args.from_annotation, args.out_dir, config, _policies(args.policy), **options
        )
    _print_summary(result)
    return 0


def _print_summary(result: Any) -> None:
    from tsfmicro.datasets.registry import get_adapter

    adapter = get_adapter(result.dataset)
    rate = result.frames / max(result.seconds, 1e-9)
    print(
        f"wrote {result.frames} frames ({result.clips} clips, {result.subjects} subjects) of a "
        f"synthetic {adapter.title} copy, layout {result.layout}, in {result.seconds:.1f} s "
        f"({rate:.0f} frames/s)"
    )
    folder = next(lay.folder for lay in adapter.layouts if lay.name == result.layout)
    print(f"frames:     {result.root / folder}")
    if result.annotation is None:
        print("annotation: none (SMIC: clips and classes are in the folder names)")
    else:
        kind = "written" if result.generated_annotation else "rendered for (not copied)"
        print(f"annotation: {result.annotation} ({kind})")
    print(f"inspect:    {result.inspect_command()}")


def _classes(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _frame_size(text: str | None) -> tuple[int, int] | None:
    from tsfmicro.errors import ConfigError

    if text is None:
        return None
    width, sep, height = text.lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise ConfigError(f"--frame-size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240")
    return int(width), int(height)


def _policies(values: list[str] | None) -> Any:
    import dataclasses

    from tsfmicro.datasets.base import Policies
    from tsfmicro.errors import ConfigError

    known = [f.name for f in dataclasses.fields(Policies)]
    pairs = {}
    for value in values or []:
        name, sep, rest = (part.strip() for part in value.partition("="))
        if not sep or not name or not rest:
            raise ConfigError(f"--policy {value!r}: expected FIELD=VALUE")
        if name not in known:
            raise ConfigError(f"--policy {value!r}: unknown field (fields: {', '.join(known)})")
        pairs[name] = rest
    return Policies(**pairs)
