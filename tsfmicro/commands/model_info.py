"""`tsfmicro model-info`: parameters and forward FLOPs per preset and fusion."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from tsfmicro.config import FUSIONS, PRESETS, TEMPORAL_MIXERS

    p = subparsers.add_parser(
        "model-info",
        help="print parameters and forward FLOPs per preset",
        description="Parameters and forward FLOPs per sample (one forward pass counted with "
        "torch's FLOP counter; 2 FLOPs per multiply-add) for each preset.",
    )
    p.add_argument(
        "--preset",
        action="append",
        choices=list(PRESETS),
        help="preset(s) to report (default: all)",
    )
    p.add_argument(
        "--fusion",
        action="append",
        choices=list(FUSIONS),
        help="fusion variant(s) (default: late, the paper's model)",
    )
    p.add_argument(
        "--mixer",
        choices=list(TEMPORAL_MIXERS),
        default="masa",
        help="temporal token mixer (default: masa)",
    )
    p.add_argument("--temporal-depth", type=int, help="override the temporal depth")
    p.add_argument("--spatial-depth", type=int, help="override the spatial depth")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tsfmicro.config import PRESETS, preset
    from tsfmicro.flops import model_cost

    rows = []
    for name in args.preset or list(PRESETS):
        for fusion in args.fusion or ["late"]:
            overrides = {"fusion": fusion, "temporal_mixer": args.mixer}
            if args.temporal_depth is not None:
                overrides["temporal_depth"] = args.temporal_depth
            if args.spatial_depth is not None:
                overrides["spatial_depth"] = args.spatial_depth
            cfg = preset(name, **overrides)
            cost = model_cost(cfg)
            rows.append(
                {
                    "preset": name,
                    "fusion": fusion,
                    "mixer": args.mixer,
                    "image_size": cfg.image_size,
                    "stages": list(cfg.stage_depths),
                    "spatial_depth": cfg.spatial_depth,
                    "params": cost.params,
                    "gflops": cost.gflops,
                    "by_part_gflops": {k: v / 1e9 for k, v in cost.by_part.items()},
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(14, *(len(r["fusion"]) for r in rows))  # the fusion column fits every name
    header = f"{'preset':<7} {'fusion':<{width}} {'px':>4} {'stages':<13}"
    header += f" {'params':>9} {'GFLOPs':>8}"
    print(f"{header}  by part")
    for r in rows:
        parts = ", ".join(f"{k} {v:.3g}" for k, v in r["by_part_gflops"].items())
        print(
            f"{r['preset']:<7} {r['fusion']:<{width}} {r['image_size']:>4} "
            f"{str(r['stages']):<13} {r['params'] / 1e6:>8.2f}M {r['gflops']:>8.3f}  {parts}"
        )
    print("FLOPs: forward pass of one sample, 2 per multiply-add (matmul, conv, attention).")
    return 0
