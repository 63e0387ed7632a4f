"""`tsfmicro predict`: class probabilities from a model folder for an onset/apex pair or a clip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="run a model folder (e.g. from `tsfmicro pull`) on an onset/apex pair or a clip",
        description="Crop the face (MTCNN on the onset, the same square on the apex) and print "
        "class probabilities. A clip folder's first frame is the onset and its apex is the "
        "frame whose face crop differs most from the onset's.",
    )
    p.add_argument("--model", type=Path, required=True, help="model folder (tsfmicro_model.json)")
    p.add_argument("--onset", type=Path, help="onset frame image")
    p.add_argument("--apex", type=Path, help="apex frame image")
    p.add_argument("--clip", type=Path, help="folder of a clip's frames (instead of a pair)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tsfmicro.errors import InputError
    from tsfmicro.inference import Predictor

    if args.clip is None and (args.onset is None or args.apex is None):
        raise InputError("give --onset and --apex, or --clip")
    predictor = Predictor.load(args.model, device=args.device)
    if args.clip is not None:
        prediction = predictor.predict_clip(args.clip)
    else:
        prediction = predictor.predict_files(args.onset, args.apex)
    if args.json:
        print(json.dumps(prediction.to_dict(), indent=2))
        return 0
    print(
        f"onset {prediction.onset}\napex  {prediction.apex}"
        + ("" if prediction.face_found else "\n(no face found: centred crop used)")
    )
    for name, p in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<14} {p:.3f}")
    print(f"predicted: {prediction.label}")
    return 0
